"""The web UI's own routes on SQLite and the real PostgreSQL: the pages are served with a
strict content policy, the filtered queue, and the case page's bundle per role."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from roadwatch.contract import (
    EvidenceRef,
    EvidenceRole,
    MediaType,
    PlateColour,
    PlateReading,
    ViolationType,
)
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import (
    EVIDENCE_STORES,
    Account,
    CentralDb,
    NodeIdentity,
    fresh_evidence,
    signed_event,
    store_events,
    store_of,
)
from tests.factories import T0

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"roadwatch ui frame " * 40
JPEG_SHA = hashlib.sha256(JPEG).hexdigest()


def test_the_pages_are_served_with_a_strict_policy(api: TestClient) -> None:
    r = api.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/"
    page = api.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert api.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert api.get("/ui/i18n/en.json").json()["login.submit"] == "Log in"
    for bad in ("/ui/../app.py", "/ui/%2e%2e/routes.py", "/ui/nothing.js", "/ui/i18n"):
        assert api.get(bad).status_code == 404, bad
    # The UI's own routes are documented with the rest of the API.
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/ui/queue", "/api/v1/ui/cases/{violation_id}"} <= set(paths)
    assert "/ui/{asset}" not in paths


def test_the_queue_filters_by_camera_type_and_time_oldest_first(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    cam = f"c{uuid.uuid4().hex[:8]}"
    when = [
        (cam, T0 + timedelta(minutes=30), ViolationType.SPEEDING),
        (cam, T0, ViolationType.RED_LIGHT),
        (cam, T0 + timedelta(minutes=10), ViolationType.SPEEDING),
        ("other", T0 - timedelta(minutes=5), ViolationType.SPEEDING),
    ]
    events = [
        signed_event(node, camera=c, occurred_at=t, type=kind, evidence=fresh_evidence())
        for c, t, kind in when
    ]
    late, early, middle, _other = store_events(central_db, node, events, arrived=store_of(api))
    officer = accounts["officer"].headers

    def queue(**params: str) -> list[int]:
        r = api.get("/api/v1/ui/queue", params={"camera": cam, **params}, headers=officer)
        assert r.status_code == 200, r.text
        return [item["id"] for item in r.json()["items"]]

    assert queue() == [early, middle, late]
    assert queue(type="speeding") == [middle, late]
    assert queue(type="red_light") == [early]
    start = (T0 + timedelta(minutes=5)).isoformat()
    end = (T0 + timedelta(minutes=20)).isoformat()
    assert queue(**{"from": start}) == [middle, late]
    assert queue(**{"from": start, "to": end}) == [middle]
    item = api.get("/api/v1/ui/queue", params={"camera": cam}, headers=officer).json()["items"][0]
    assert item["deadlines"][0]["name"] == "notice"
    # A decided case leaves the queue.
    for action, version in (("start_review", 1), ("confirm", 2)):
        r = api.post(
            f"/api/v1/violations/{early}/review",
            json={"action": action, "version": version},
            headers=officer,
        )
        assert r.status_code == 200, r.text
    assert queue() == [middle, late]
    # Bad filters are refused with a reason; other roles may not read the queue.
    assert (
        api.get("/api/v1/ui/queue", params={"type": "parking"}, headers=officer).status_code == 422
    )
    naive = api.get("/api/v1/ui/queue", params={"from": "2026-11-23T07:00:00"}, headers=officer)
    assert naive.status_code == 422 and "zone" in naive.text
    for role in ("admin", "ioc"):
        assert api.get("/api/v1/ui/queue", headers=accounts[role].headers).status_code == 403
    assert api.get("/api/v1/ui/queue").status_code == 401


@pytest.mark.parametrize("route", ["/api/v1/ui/queue", "/api/v1/review/queue"])
def test_a_walk_through_the_queue_by_pages_neither_repeats_nor_skips_a_case(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    route: str,
) -> None:
    """Pages of 3, each after the last case of the one before (as the page walks it): a
    case decided by someone else between two pages hides no other (by offset, the fourth
    was skipped)."""
    node = make_node()
    cam = f"c{uuid.uuid4().hex[:8]}"
    events = [
        signed_event(node, camera=cam, occurred_at=T0 + timedelta(minutes=i),
                     evidence=fresh_evidence())
        for i in range(7)
    ]  # fmt: skip
    ids = store_events(central_db, node, events, arrived=store_of(api))
    officer, other = accounts["officer"].headers, accounts["officer2"].headers
    walked: list[int] = []
    after: dict[str, str] = {}
    for _ in range(5):  # (3 pages hold them all)
        r = api.get(route, params={"camera": cam, "limit": 3, **after}, headers=officer)
        assert r.status_code == 200, r.text
        page = r.json()
        walked += [item["id"] for item in page["items"]]
        if len(walked) == 3:  # someone else decides the first case meanwhile
            for action, version in (("start_review", 1), ("reject", 2)):
                done = api.post(
                    f"/api/v1/violations/{ids[0]}/review",
                    headers=other,
                    json={"action": action, "version": version, "reason": "x"},
                )
                assert done.status_code == 200, done.text  # fmt: skip
        if not page["has_more"]:
            break
        last = page["items"][-1]
        after = {"after_id": str(last["id"])}
    assert walked == ids
    unknown = api.get(route, params={"after_id": str(2**62)}, headers=officer)
    assert unknown.status_code == 404 and "no case" in unknown.text


@pytest.mark.parametrize("central_settings", EVIDENCE_STORES, indirect=True)
def test_the_case_page_bundle_follows_the_roles(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    frame = EvidenceRef(
        role=EvidenceRole.FRAME_AT, media_type=MediaType.JPEG, sha256=JPEG_SHA, size=len(JPEG)
    )
    [vid] = store_events(central_db, node, [signed_event(node, evidence=[frame])])
    api.put(
        f"/api/v1/evidence/{JPEG_SHA}",
        content=JPEG,
        headers={**node.headers, "Content-Type": "image/jpeg"},
    )
    officer = accounts["officer"]
    r = api.post(
        f"/api/v1/violations/{vid}/review",
        json={"action": "start_review", "version": 1},
        headers=officer.headers,
    )
    assert r.status_code == 200
    page = api.get(f"/api/v1/ui/cases/{vid}", headers=officer.headers).json()
    assert page["case"]["id"] == vid and page["case"]["status"] == "in_review"
    assert page["camera"]["camera"] == "cam-01" and page["camera"]["site"] == node.site
    assert [e["action"] for e in page["audit"]] == ["start_review"]
    assert page["audit"][0]["actor"] == officer.username
    assert page["can_review"] is True and page["evidence_visible"] is True
    assert page["actions"] == ["release", "correct_plate", "confirm", "reject"]
    other = api.get(f"/api/v1/ui/cases/{vid}", headers=accounts["officer2"].headers).json()
    assert other["can_review"] is True and other["actions"] == []  # officer holds the case
    [evidence] = page["case"]["evidence"]
    assert evidence["arrived"] is True
    assert api.get(evidence["url"], headers=officer.headers).content == JPEG
    admin = api.get(f"/api/v1/ui/cases/{vid}", headers=accounts["admin"].headers).json()
    assert admin["can_review"] is False and admin["evidence_visible"] is False
    assert admin["actions"] == []
    assert api.get(f"/api/v1/ui/cases/{vid}", headers=accounts["ioc"].headers).status_code == 403
    assert api.get(f"/api/v1/ui/cases/{vid}").status_code == 401
    assert api.get("/api/v1/ui/cases/999999999", headers=officer.headers).status_code == 404


def test_a_case_read_through_the_api_offers_evidence_links_only_to_who_may_follow_them(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """The IOC (and the admin) may read a case but not download its evidence: the case
    lists each blob (role, type, hash, size, arrived) without a link that would answer
    403; officers and supervisors get the link."""
    node = make_node()
    [vid] = store_events(central_db, node, [signed_event(node)])
    for role, linked in (("ioc", False), ("admin", False), ("officer", True), ("supervisor", True)):
        r = api.get(f"/api/v1/violations/{vid}", headers=accounts[role].headers)
        assert r.status_code == 200, r.text
        evidence = r.json()["evidence"]
        assert evidence and all(e["sha256"] for e in evidence), role
        links = [f"/api/v1/evidence/{e['sha256']}" if linked else None for e in evidence]
        assert [e["url"] for e in evidence] == links, role


def test_the_lists_say_which_roadside_readings_failed_the_format_check(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """The queue and the search mark a plate that is no plate to act on, not the case page
    alone."""
    node = make_node()
    cam = f"c{uuid.uuid4().hex[:8]}"
    bad = PlateReading(text="61A-12", confidence=0.5, valid=False, colour=PlateColour.WHITE)
    events = [
        signed_event(node, camera=cam, occurred_at=T0, evidence=fresh_evidence()),
        signed_event(node, camera=cam, occurred_at=T0 + timedelta(minutes=1), plate=bad,
                     evidence=fresh_evidence()),
    ]  # fmt: skip
    good_id, bad_id = store_events(central_db, node, events, arrived=store_of(api))
    officer = accounts["officer"].headers
    queue = api.get("/api/v1/ui/queue", params={"camera": cam}, headers=officer).json()
    assert [(i["id"], i["plate_valid"]) for i in queue["items"]] == [
        (good_id, True),
        (bad_id, False),
    ]
    found = api.get("/api/v1/violations", params={"camera": cam}, headers=officer).json()
    assert [(i["id"], i["plate_valid"]) for i in found["items"]] == [
        (bad_id, False),
        (good_id, True),
    ]


@pytest.mark.parametrize(
    ("typed", "plate", "reads", "suggestion"),
    [
        ("51a12345", "51A-123.45", True, None),
        ("59X1 12345", "59-X1 123.45", True, None),
        ("51A123", "51A123", False, None),  # a slip: no plate has so few digits
        ("51F1234S", "51F1234S", False, "51F-123.45"),  # an S where a 5 goes
        ("ABC 1234", "ABC 1234", False, None),  # a foreign plate: may still be sent
    ],
)
def test_a_plate_correction_is_read_by_the_plate_grammar_before_it_is_sent(
    api: TestClient,
    accounts: dict[str, Account],
    typed: str,
    plate: str,
    reads: bool,
    suggestion: str | None,
) -> None:
    officer = accounts["officer"].headers
    r = api.get("/api/v1/ui/plate", params={"text": typed}, headers=officer)
    assert r.status_code == 200, r.text
    assert r.json() == {"plate": plate, "reads_as_plate": reads, "suggestion": suggestion}
    assert api.get("/api/v1/ui/plate", params={"text": typed}).status_code == 401
    ioc = accounts["ioc"].headers
    assert api.get("/api/v1/ui/plate", params={"text": typed}, headers=ioc).status_code == 403
    too_long = api.get("/api/v1/ui/plate", params={"text": "1" * 17}, headers=officer)
    assert too_long.status_code == 422
