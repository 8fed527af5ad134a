"""The central API on SQLite and the real PostgreSQL: roles, review workflow, audit,
search, statistics, the registry, evidence upload and the live feed."""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from central.api.deps import REFUSALS
from central.app import create_app
from central.db import read_session_factory, session_factory, transaction
from central.evidence import FilesystemStore
from central.intake import Message
from central.models import Camera, User, Violation
from central.models import EvidenceRef as EvidenceRefRow
from central.node_config import publish_retained
from central.records import (
    REGISTRY_REFUSALS,
    KeyCache,
    add_node_key,
    append_audit,
    create_user,
    record_batch,
)
from central.security import issue_access_token
from central.settings import Settings
from central.ui.routes import STATIC
from central.workflow import (
    Action,
    Actor,
    Case,
    Command,
    Policy,
    Role,
    Status,
    WorkflowError,
    decide,
)
from edge.identity import write_key_pair
from roadwatch.contract import (
    CameraHealth,
    CameraState,
    CameraTopic,
    EvidenceRef,
    EvidenceRole,
    LaneFlow,
    Measurement,
    MediaType,
    NodeState,
    NodeStatus,
    NodeTopic,
    PlateColour,
    PlateReading,
    TrafficStats,
    VehicleClass,
    ViolationType,
    node_topic,
    to_wire,
)
from roadwatch.contract.ids import new_event_id
from roadwatch.contract.signing import (
    generate_private_key,
    key_fingerprint,
    public_key_pem,
    sign,
)
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import (
    EVIDENCE_STORES,
    PASSWORD,
    SECRET,
    Account,
    CentralDb,
    NodeIdentity,
    fresh_evidence,
    jpeg_blob,
    migrated_database,
    signed_event,
    sse_events,
    store_events,
    store_of,
)
from tests.factories import T0, status_position
from tests.services import mqtt_address

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"roadwatch test frame " * 40
JPEG_SHA = hashlib.sha256(JPEG).hexdigest()

HUMANS = {"officer", "supervisor", "admin", "ioc"}
REVIEW = {"officer", "supervisor"}
MANAGE = {"supervisor", "admin"}

# Every route and who may use it. The test fails when a route is missing from this table.
ROUTE_ROLES: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/auth/me"): HUMANS,
    ("POST", "/api/v1/auth/refresh"): HUMANS,
    ("POST", "/api/v1/auth/logout"): HUMANS,
    ("GET", "/api/v1/users"): {"admin"},
    ("POST", "/api/v1/users"): {"admin"},
    ("PATCH", "/api/v1/users/{username}"): {"admin"},
    ("GET", "/api/v1/nodes"): {"supervisor", "admin", "ioc"},
    ("POST", "/api/v1/nodes"): {"admin"},
    ("PUT", "/api/v1/nodes/{site}/{node}/config"): {"admin"},
    ("GET", "/api/v1/nodes/{site}/{node}/config"): {"admin"},
    ("GET", "/api/v1/nodes/{site}/{node}/keys"): MANAGE,
    ("POST", "/api/v1/nodes/{site}/{node}/keys"): {"admin"},
    ("POST", "/api/v1/nodes/{site}/{node}/keys/{fingerprint}/revoke"): {"admin"},
    ("GET", "/api/v1/cameras"): HUMANS,
    ("GET", "/api/v1/cameras.geojson"): HUMANS,
    ("PATCH", "/api/v1/cameras/{camera_id}"): MANAGE,
    ("GET", "/api/v1/violations"): HUMANS,
    ("GET", "/api/v1/violations/{violation_id}"): HUMANS,
    ("POST", "/api/v1/violations/{violation_id}/review"): REVIEW,
    ("POST", "/api/v1/violations/{violation_id}/export"): REVIEW,
    ("GET", "/api/v1/violations/{violation_id}/audit"): {"officer", "supervisor", "admin"},
    ("GET", "/api/v1/review/queue"): REVIEW,
    ("GET", "/api/v1/review/deadlines"): REVIEW,
    ("GET", "/api/v1/ui/queue"): REVIEW,
    ("GET", "/api/v1/ui/plate"): REVIEW,
    ("GET", "/api/v1/ui/cases/{violation_id}"): {"officer", "supervisor", "admin"},
    ("GET", "/api/v1/audit"): MANAGE,
    ("GET", "/api/v1/audit/verify"): MANAGE,
    ("GET", "/api/v1/stats/violations"): HUMANS,
    ("GET", "/api/v1/stats/traffic"): HUMANS,
    ("GET", "/api/v1/quarantine"): MANAGE,
    ("GET", "/api/v1/feed"): HUMANS,
    ("PUT", "/api/v1/evidence/{sha256}"): {"node"},
    ("HEAD", "/api/v1/evidence/{sha256}"): {"node"},
    ("POST", "/api/v1/events/known"): {"node"},
    ("GET", "/api/v1/evidence/{sha256}"): REVIEW,
    ("GET", "/metrics"): {"supervisor", "admin", "ioc"},
}
OPEN_ROUTES = {("GET", "/health"), ("POST", "/api/v1/auth/token")}


def _routes(client: TestClient) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}


def _request(
    client: TestClient, method: str, path: str, headers: dict[str, str], ctx: dict[str, Any]
) -> httpx.Response:
    params: dict[str, Any] = {}
    body: Any = None
    content: bytes | None = None
    url = path.format(
        username=ctx["patch_user"],
        camera_id=ctx["camera_id"],
        violation_id=ctx["violation_id"],
        sha256=JPEG_SHA,
        site=ctx["site"],
        node=ctx["node"],
        fingerprint=ctx["fingerprint"],
    )
    if path == "/api/v1/nodes/{site}/{node}/config" and method == "PUT":
        cameras = [{"id": "cam-01", "url": "rtsp://10.0.0.21/stream1"}]
        body = {"config": {"site": ctx["site"], "node": ctx["node"], "version": "v1",
                           "cameras": cameras}}  # fmt: skip
    elif path == "/api/v1/users":
        body = {"username": f"u{uuid.uuid4().hex[:10]}", "password": "p" * 12, "role": "ioc"}
    elif path == "/api/v1/users/{username}":
        body = {"full_name": "Trần Thị Bình"}
    elif path == "/api/v1/nodes":
        key = public_key_pem(generate_private_key().public_key()).decode()
        body = {"site": f"t{uuid.uuid4().hex[:10]}", "node": "n1", "public_key_pem": key}
    elif path == "/api/v1/nodes/{site}/{node}/keys" and method == "POST":
        body = {"public_key_pem": public_key_pem(generate_private_key().public_key()).decode()}
    elif path.endswith("/revoke"):
        body = {"reason": "a spare key, never used"}
    elif path == "/api/v1/cameras/{camera_id}":
        body = {"name": "QL13 Km 22"}
    elif path.endswith("/review"):
        body = {"action": "start_review", "version": 999}  # a stale version: 409, not 403
    elif path == "/api/v1/feed":
        params = {"max_events": 1, "max_seconds": 0.1}
    elif path == "/api/v1/ui/plate":
        params = {"text": "51F-123.45"}
    elif path == "/api/v1/events/known":
        body = {"event_ids": [new_event_id()]}
    elif path == "/api/v1/evidence/{sha256}" and method == "PUT":
        content = JPEG
        headers = {**headers, "Content-Type": "image/jpeg"}
    r: httpx.Response = client.request(
        method, url, headers=headers, params=params, json=body, content=content
    )
    return r


def _throwaway_session(api: TestClient, admin: Account, role: str) -> dict[str, str]:
    name, password = f"u{uuid.uuid4().hex[:10]}", "p" * 12
    made = api.post("/api/v1/users", headers=admin.headers,
                    json={"username": name, "password": password, "role": role})  # fmt: skip
    assert made.status_code == 201, made.text
    token = api.post("/api/v1/auth/token", data={"username": name, "password": password})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.mark.parametrize("role", ["anonymous", "officer", "supervisor", "admin", "ioc", "node"])
def test_each_role_can_do_exactly_its_part(
    api: TestClient,
    central_db: CentralDb,
    central_settings: Settings,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    role: str,
) -> None:
    routes = _routes(api)
    assert routes - OPEN_ROUTES == set(ROUTE_ROLES), "the role table must list every route"
    node = make_node()
    [vid] = store_events(central_db, node, [signed_event(node)])
    assert api.put(
        f"/api/v1/evidence/{JPEG_SHA}",
        content=JPEG,
        headers={**node.headers, "Content-Type": "image/jpeg"},
    ).status_code in (200, 201)
    with central_db.session() as s:
        camera_id = s.scalar(select(Camera.id).where(Camera.site == node.site))
    with transaction(session_factory(central_db.engine)) as session:
        spare = generate_private_key().public_key()
        add_node_key(
            session, site=node.site, node=node.node,
            public_key_pem=public_key_pem(spare).decode("ascii"),
        )  # fmt: skip
    ctx = {
        "violation_id": vid,
        "camera_id": camera_id,
        "patch_user": accounts["officer2"].username,
        "site": node.site,
        "node": node.node,
        "fingerprint": key_fingerprint(spare),
    }
    write_key_pair(central_settings.resolved_config_key.with_suffix(""))
    write_key_pair(central_settings.resolved_case_key.with_suffix(""))
    if role == "anonymous":
        headers: dict[str, str] = {}
    elif role == "node":
        headers = node.headers
    else:
        headers = accounts[role].headers
    wrong = []
    for (method, path), allowed in sorted(ROUTE_ROLES.items()):
        used = headers
        if path == "/api/v1/auth/logout" and role in HUMANS:
            # (a log-out ends every session of its user: not those of the shared accounts)
            used = _throwaway_session(api, accounts["admin"], role)
        code = _request(api, method, path, used, ctx).status_code
        if role == "anonymous":
            ok = code == 401
        elif role in allowed:
            ok = 200 <= code < 300 if method != "POST" or "review" not in path else code == 409
        else:
            ok = code in (401, 403)
            if code == 403 and role != "node" and method != "HEAD":
                # (named, so a client words it in its user's language)
                body = _request(api, method, path, used, ctx).json()
                ok = body.get("code") == "role_not_allowed" and body["params"]["role"] == role
        if not ok:
            wrong.append(f"{method} {path} -> {code}")
    assert not wrong, f"{role}: {wrong}"
    for method, path in OPEN_ROUTES:
        if method == "GET":
            assert api.get(path).status_code == 200
    # The admin's push left a retained config on the broker: remove it.
    publish_retained(central_settings, node_topic(node.site, node.node, NodeTopic.CONFIG), b"")


def test_login_issues_a_short_lived_token(api: TestClient, accounts: dict[str, Account]) -> None:
    from tests.central_fixtures import PASSWORD

    user = accounts["officer"].username
    r = api.post("/api/v1/auth/token", data={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "officer" and body["expires_in"] == 15 * 60
    me = api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == user
    bad = api.post("/api/v1/auth/token", data={"username": user, "password": "wrong password"})
    assert bad.status_code == 401
    forged = api.get("/api/v1/auth/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401
    # Sent as JSON (as every other body is), not as the OAuth2 form: said so, not only
    # "Field required"; the password is not echoed.
    json_body = api.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    assert json_body.status_code == 422 and PASSWORD not in json_body.text
    [error] = [e for e in json_body.json()["detail"] if e["type"] == "form_expected"]
    assert "application/x-www-form-urlencoded" in error["msg"]


def _act(
    api: TestClient, who: Account, vid: int, action: str, version: int, **extra: Any
) -> httpx.Response:
    r: httpx.Response = api.post(
        f"/api/v1/violations/{vid}/review",
        headers=who.headers,
        json={"action": action, "version": version, **extra},
    )
    return r


def test_review_workflow_end_to_end_with_audit(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    event = signed_event(node, evidence=fresh_evidence())
    [vid] = store_events(central_db, node, [event], arrived=store_of(api))
    officer, sup, sup2 = accounts["officer"], accounts["supervisor"], accounts["supervisor2"]
    steps = [
        (officer, "start_review", {}, "in_review"),
        (officer, "correct_plate", {"plate": "51F-123.46"}, "in_review"),
        (officer, "confirm", {}, "confirmed"),
        (sup, "issue_notice", {}, "notice_issued"),
        (sup2, "close", {"note": "đã nộp phạt"}, "closed"),
    ]
    version = 1
    for who, action, extra, status in steps:
        r = _act(api, who, vid, action, version, **extra)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status
        assert r.json()["version"] == version + 1
        version += 1
    case = r.json()
    assert case["plate_text"] == "51F-123.45"  # the roadside reading is kept
    assert case["plate_corrected"] == "51F-123.46" and case["plate"] == "51F-123.46"
    assert case["confirmed_by"] == officer.username
    assert case["notice_issued_by"] == sup.username
    assert case["deadlines"] == []
    trail = api.get(f"/api/v1/violations/{vid}/audit", headers=sup.headers).json()
    assert [e["action"] for e in trail] == [a for _w, a, _e, _s in steps]
    assert trail[1]["detail"]["plate_before"] == "51F-123.45"
    assert [e["actor"] for e in trail] == [w.username for w, _a, _e, _s in steps]
    # The confirmation and the notice name the signed event (and so its evidence) they
    # were decided on.
    decided_on = hashlib.sha256(to_wire(event)).hexdigest()
    assert [e["detail"].get("payload_sha256") for e in trail] == [
        None,
        None,
        decided_on,
        decided_on,
        None,
    ]
    chain = api.get("/api/v1/audit/verify", headers=accounts["admin"].headers).json()
    assert chain["ok"] is True and chain["entries"] >= len(steps)


def test_invalid_actions_change_nothing(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    [vid] = store_events(central_db, node, [signed_event(node)])
    officer, officer2, sup = accounts["officer"], accounts["officer2"], accounts["supervisor"]
    assert _act(api, officer, vid, "confirm", 1).status_code == 409  # not in review yet
    assert _act(api, officer, vid, "issue_notice", 1).status_code == 403  # officer's role
    assert _act(api, officer, vid, "start_review", 1).status_code == 200
    r = _act(api, officer, vid, "reject", 2, reason="  ")
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    assert _act(api, officer, vid, "correct_plate", 2, plate="<b>51F</b>").status_code == 422
    assert _act(api, officer2, vid, "confirm", 2).status_code == 409  # someone else's case
    assert _act(api, officer, vid, "bogus", 2).status_code == 422
    assert (
        api.post(
            f"/api/v1/violations/{vid}/review",
            headers=officer.headers,
            content=b"{not json",
        ).status_code
        == 422
    )
    assert (
        api.post(
            "/api/v1/violations/999999999/review",
            headers=officer.headers,
            json={"action": "confirm", "version": 1},
        ).status_code
        == 404
    )
    case = api.get(f"/api/v1/violations/{vid}", headers=officer.headers).json()
    assert case["status"] == "in_review" and case["version"] == 2
    assert case["plate_corrected"] is None
    trail = api.get(f"/api/v1/violations/{vid}/audit", headers=sup.headers).json()
    assert [e["action"] for e in trail] == ["start_review"]
    # a reason is all it takes
    r = _act(api, officer, vid, "reject", 2, reason="Xe ưu tiên đang làm nhiệm vụ")
    assert r.status_code == 200 and r.json()["reject_reason"].startswith("Xe ưu tiên")


def _worded(r: httpx.Response) -> str:
    """The code of a refusal, checked to carry every value the review page's words for
    it use, in both languages."""
    body = r.json()
    code, params = body["code"], body["params"]
    assert isinstance(body["detail"], str) and body["detail"]
    for lang in ("vi", "en"):
        words = json.loads((STATIC / "i18n" / f"{lang}.json").read_text("utf-8"))
        assert set(re.findall(r"\{(\w+)\}", words[f"error.{code}"])) <= set(params), (lang, body)
    return str(code)


def test_each_refusal_is_named_so_the_review_page_can_word_it(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A refused review carries a code from ``REFUSALS`` and the values its message needs,
    beside the English detail: the page shows it in the reviewer's language."""
    node = make_node()
    [vid] = store_events(
        central_db, node, [signed_event(node, evidence=fresh_evidence())], arrived=store_of(api)
    )
    [other] = store_events(
        central_db, node, [signed_event(node, evidence=fresh_evidence())], arrived=store_of(api)
    )
    [waiting] = store_events(central_db, node, [signed_event(node)])
    [unread] = store_events(
        central_db, node, [signed_event(node, plate=None, evidence=fresh_evidence())],
        arrived=store_of(api),
    )  # fmt: skip
    officer, officer2, sup = accounts["officer"], accounts["officer2"], accounts["supervisor"]
    refused = [
        (_act(api, officer, vid, "confirm", 1), 409),
        (_act(api, officer, vid, "issue_notice", 1), 403),
        (_act(api, officer, vid, "start_review", 2), 409),
    ]
    assert _act(api, officer, vid, "start_review", 1).status_code == 200
    refused += [
        (_act(api, officer, vid, "reject", 2, reason="  "), 422),
        (_act(api, officer, vid, "correct_plate", 2, plate="<b>51F</b>"), 422),
        (_act(api, officer2, vid, "confirm", 2), 409),
    ]
    for version, action in enumerate(("start_review", "confirm"), start=1):
        assert _act(api, sup, other, action, version).status_code == 200
    refused.append((_act(api, sup, other, "issue_notice", 3), 403))
    assert _act(api, sup, waiting, "start_review", 1).status_code == 200
    refused.append((_act(api, sup, waiting, "confirm", 2), 409))
    assert _act(api, sup, unread, "start_review", 1).status_code == 200
    refused.append((_act(api, sup, unread, "confirm", 2), 409))
    assert [r.status_code for r, _ in refused] == [status for _, status in refused]
    codes = [_worded(r) for r, _ in refused]
    assert codes == [
        "invalid_transition",
        "forbidden",
        "changed",
        "reason_required",
        "invalid_plate",
        "not_reviewer",
        "two_person_rule",
        "evidence_incomplete",
        "plate_required",
    ]
    assert refused[1][0].json()["params"] == {"role": "officer", "action": "issue_notice"}
    # The API's schema keeps reasons to the workflow's limit; the workflow says it too.
    with pytest.raises(WorkflowError) as err:
        decide(
            Case(Status.IN_REVIEW, T0, reviewer="an"),
            Command(Action.REJECT, reason="x" * 2001),
            Actor("an", Role.OFFICER),
            T0,
            Policy(),
        )
    assert err.value.code == "reason_too_long" and err.value.params == {"max": 2000}
    # The rest are the admin's: see test_the_last_active_admin_stays_one.
    assert set(REFUSALS) - set(codes) == {
        "reason_too_long",
        "last_admin",
        "evidence_damaged",  # (see test_a_stored_blob_altered_in_the_store_…)
        "record_altered",  # (see test_a_case_changed_in_the_database_…)
        "no_case_key",  # (see test_without_centrals_case_signing_key_…)
        "login_locked",  # (see test_central_security)
        "role_not_allowed",  # (see test_each_role_can_do_exactly_its_part)
        *REGISTRY_REFUSALS,  # (see test_a_node_key_rotated_and_revoked)
    }


def test_hostile_text_numbers_and_times_are_refused_and_change_nothing(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    [vid] = store_events(central_db, node, [signed_event(node)])
    officer, admin, ioc = accounts["officer"], accounts["admin"], accounts["ioc"]
    assert _act(api, officer, vid, "start_review", 1).status_code == 200
    review = f"/api/v1/violations/{vid}/review"
    for body in (
        b'{"action": "confirm", "version": NaN}',
        b'{"action": "confirm", "version": 1e400}',  # infinity
        b'{"action": "confirm", "version": -Infinity}',
        b'{"action": "reject", "version": 2, "reason": "sai\\u0000"}',
        b'{"action": "reject", "version": 2, "reason": "bi\\ud800n s\\u1ed1"}',  # (a lone half)
    ):
        json_headers = {**officer.headers, "Content-Type": "application/json"}
        r = api.post(review, headers=json_headers, content=body)
        assert r.status_code == 422, (body, r.text)
    case = api.get(f"/api/v1/violations/{vid}", headers=officer.headers).json()
    assert (case["status"], case["version"], case["reject_reason"]) == ("in_review", 2, None)
    # Times that do not exist in UTC, ids past 64 bits, NUL in a path or a filter: 422.
    far = [{"from": "0001-01-01T00:00:00+14:00"}, {"to": "9999-12-31T23:59:59-10:00"}]
    for path in ("/api/v1/violations", "/api/v1/stats/violations", "/api/v1/stats/traffic"):
        for params in far:
            assert api.get(path, headers=ioc.headers, params=params).status_code == 422
    for params in ({"since": far[0]["from"]}, {"after_id": str(2**64)}):
        assert api.get("/api/v1/feed", headers=ioc.headers, params=params).status_code == 422
    nul = [
        ("/api/v1/violations", {"plate": "51F\x00"}),
        ("/api/v1/audit", {"actor": "a\x00b"}),
        ("/api/v1/quarantine", {"reason_code": "a\x00b"}),
    ]
    for path, params in nul:
        r = api.get(path, headers=admin.headers, params=params)
        assert r.status_code == 422 and "NUL" in r.json()["detail"][0]["msg"], path
    assert api.patch("/api/v1/users/a%00b", headers=admin.headers, json={}).status_code == 422
    assert api.get("/ui/%00").status_code in (404, 422)
    assert api.get("/ui/a%00.html").status_code in (404, 422)
    login = api.post("/api/v1/auth/token", data={"username": "a\x00b", "password": "x" * 12})
    assert login.status_code == 401
    name = f"nul.{uuid.uuid4().hex[:8]}"
    created = api.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"username": name, "password": "a long passphrase", "role": "ioc",
              "full_name": "Nguyễn\x00"},
    )  # fmt: skip
    assert created.status_code == 422
    assert created.json()["detail"][0]["loc"] == ["body", "full_name"]
    with central_db.session() as s:
        assert s.scalar(select(User).where(User.username == name)) is None


def test_two_officers_cannot_decide_the_same_case_twice(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    [vid] = store_events(
        central_db, node, [signed_event(node, evidence=fresh_evidence())], arrived=store_of(api)
    )
    sup, sup2 = accounts["supervisor"], accounts["supervisor2"]
    assert _act(api, sup, vid, "start_review", 1).status_code == 200
    first = _act(api, sup, vid, "confirm", 2)
    second = _act(api, sup2, vid, "reject", 2, reason="ảnh mờ")
    assert first.status_code == 200
    assert second.status_code == 409
    assert "changed by someone else" in second.json()["detail"]
    assert "reload" in second.json()["detail"]


def test_the_version_column_stops_a_lost_update(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """Two requests that both read version 1: the second write fails even if it got past
    the version check (the race the HTTP check alone cannot close)."""
    node = make_node()
    [vid] = store_events(central_db, node, [signed_event(node)])
    sessions = session_factory(central_db.engine)
    with sessions() as a, sessions() as b:
        va = a.get(Violation, vid)
        a.commit()
        vb = b.get(Violation, vid)
        b.commit()
        assert va is not None and vb is not None and va.version == vb.version == 1
        va.status, va.reviewer = "in_review", "an"
        a.commit()
        vb.status, vb.reviewer = "in_review", "binh"
        with pytest.raises(StaleDataError):
            b.commit()
    with sessions() as s:
        assert s.get(Violation, vid).reviewer == "an"  # type: ignore[union-attr]


def test_two_person_rule_via_api(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    [vid] = store_events(
        central_db, node, [signed_event(node, evidence=fresh_evidence())], arrived=store_of(api)
    )
    sup, sup2 = accounts["supervisor"], accounts["supervisor2"]
    assert _act(api, sup, vid, "start_review", 1).status_code == 200
    assert _act(api, sup, vid, "confirm", 2).status_code == 200
    r = _act(api, sup, vid, "issue_notice", 3)
    assert r.status_code == 403 and "confirmed" in r.json()["detail"]
    assert _act(api, sup2, vid, "issue_notice", 3).status_code == 200


def test_a_case_changed_in_the_database_behind_the_service_is_found(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A plate, a speed, an evidence hash or a status changed in the database by hand: the
    case page lists what disagrees with the signed event and the audit trail, and no
    confirmation or notice goes out on it."""
    node = make_node()
    [vid, other] = store_events(
        central_db,
        node,
        [signed_event(node, evidence=fresh_evidence()) for _ in range(2)],
        arrived=store_of(api),
    )
    sup, sup2 = accounts["supervisor"], accounts["supervisor2"]

    def problems(case_id: int) -> list[str]:
        got: list[str] = api.get(f"/api/v1/violations/{case_id}", headers=sup.headers).json()[
            "record_problems"
        ]
        return got

    assert problems(vid) == [] and problems(other) == []
    assert _act(api, sup, vid, "start_review", 1).status_code == 200
    with transaction(session_factory(central_db.engine)) as s:
        s.execute(
            text("UPDATE violations SET plate_text = '99Z-000.00', speed_kmh = 140 WHERE id = :i"),
            {"i": vid},
        )
        s.execute(
            text("UPDATE evidence_refs SET sha256 = :h WHERE violation_id = :i AND role = 'clip'"),
            {"h": "e" * 64, "i": vid},
        )
        s.execute(
            text(
                "UPDATE violations SET status = 'confirmed', confirmed_by = :u, version = 2"
                " WHERE id = :i"
            ),
            {"u": accounts["officer"].username, "i": other},
        )
    assert problems(vid) == [
        "plate_text differs from the signed event",
        "speed_kmh differs from the signed event",
        "the evidence list differs from the signed event's",
    ]
    assert problems(other) == [
        "its status confirmed is not where its audit trail leads (new)",
        "its confirmed_by is not what its audit trail says",
    ]
    refused = _act(api, sup, vid, "confirm", 2)
    assert refused.status_code == 409 and refused.json()["code"] == "record_altered"
    notice = _act(api, sup2, other, "issue_notice", 2)
    assert notice.status_code == 409 and notice.json()["code"] == "record_altered"
    assert _act(api, sup, vid, "reject", 2, reason="hồ sơ bị sửa").status_code == 200
    page = api.get(f"/api/v1/ui/cases/{other}", headers=sup2.headers).json()
    assert "issue_notice" not in page["actions"]


def test_a_case_reads_the_explanation_in_vietnamese_as_its_node_signed_it(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """The reviewer's Vietnamese explanation is the signed event's; an older node's event,
    English only, reads as it did, its English kept verbatim beside."""
    node = make_node()
    english = "car crossed the stop line of lane 2 at 14:03:12.000, 2.4 s after red began"
    vietnamese = "Ô tô vượt đèn đỏ: qua vạch dừng của làn 2 lúc 14:03:12.000"
    [both, older] = store_events(
        central_db,
        node,
        [
            signed_event(node, explanation=english, explanation_vi=vietnamese),
            signed_event(node, explanation=english),
        ],
    )
    officer = accounts["officer"]
    for case_id, said in ((both, vietnamese), (older, None)):
        page = api.get(f"/api/v1/ui/cases/{case_id}", headers=officer.headers).json()["case"]
        assert (page["explanation"], page["explanation_vi"]) == (english, said)
        assert page["record_problems"] == []
        assert ("explanation_vi" in page["event"]) == (said is not None)


def test_a_decision_changed_in_the_database_behind_the_service_is_found(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """After a correction and a confirmation, the corrected plate and the confirmer are
    changed by hand (so that the notice goes to another plate, and the confirmer could
    issue it himself): the trail's decisions say otherwise, and no notice goes out."""
    node = make_node()
    [vid] = store_events(
        central_db, node, [signed_event(node, evidence=fresh_evidence())], arrived=store_of(api)
    )
    officer, sup, sup2 = accounts["officer"], accounts["supervisor"], accounts["supervisor2"]
    assert _act(api, officer, vid, "start_review", 1).status_code == 200
    assert _act(api, officer, vid, "correct_plate", 2, plate="51F-123.46").status_code == 200
    corrected = _act(api, officer, vid, "correct_plate", 3, plate="51F-128.46")
    assert corrected.status_code == 200
    confirmed = _act(api, sup, vid, "confirm", 4)
    assert confirmed.status_code == 200
    trail = api.get(f"/api/v1/violations/{vid}/audit", headers=sup.headers).json()
    corrections = [e["detail"] for e in trail if e["action"] == "correct_plate"]
    assert [(c["plate_before"], c["plate_after"]) for c in corrections] == [
        ("51F-123.45", "51F-123.46"),
        ("51F-123.46", "51F-128.46"),  # (the plate it replaced, not the roadside reading)
    ]
    [confirm] = [e["detail"] for e in trail if e["action"] == "confirm"]
    assert confirm["plate"] == "51F-128.46"
    case = api.get(f"/api/v1/violations/{vid}", headers=sup.headers).json()
    assert case["record_problems"] == []
    with transaction(session_factory(central_db.engine)) as s:
        s.execute(
            text("UPDATE violations SET plate_corrected = '30A-999.99', confirmed_by = :u"
                 " WHERE id = :i"),
            {"u": officer.username, "i": vid},
        )  # fmt: skip
    case = api.get(f"/api/v1/violations/{vid}", headers=sup.headers).json()
    assert case["record_problems"] == [
        "its plate_corrected is not what its audit trail says",
        "its confirmed_by is not what its audit trail says",
    ]
    notice = _act(api, sup, vid, "issue_notice", 5)
    assert notice.status_code == 409 and notice.json()["code"] == "record_altered"
    assert _act(api, sup2, vid, "issue_notice", 5).json()["code"] == "record_altered"


def test_a_case_names_the_other_cases_of_its_plate_nearby(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """One act found twice (the vehicle hidden from the camera a while and tracked again)
    comes as two cases of one plate: each case names the other, so the reviewer confirms
    one and rejects the other. Another plate, type or camera, or a case more than 30
    minutes off, is not named; a plate corrected by a reviewer counts as corrected."""
    node = make_node()
    t0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)

    def event(
        plate: str | None,
        minutes: float,
        type: ViolationType = ViolationType.NO_STOPPING,
        **more: Any,
    ) -> Any:
        reading = None if plate is None else PlateReading(
            text=plate, confidence=0.9, valid=True, colour=PlateColour.WHITE
        )  # fmt: skip
        return signed_event(
            node, plate=reading, occurred_at=t0 + timedelta(minutes=minutes),
            type=type, measured=Measurement(dwell_s=31.0), **more,
        )  # fmt: skip

    ids = store_events(
        central_db,
        node,
        [
            event("61A-123.45", 0),  # the first case
            event("61A-123.45", 4),  # the same stop, found again
            event("61A-123.45", 29),
            event("61A-123.45", 31),  # (over half an hour after the first)
            event("61A-123.46", 2),  # another plate
            event("61A-123.45", 1, type=ViolationType.FORBIDDEN_LANE),
            event("61A-123.45", 1, camera="cam-02"),
            event(None, 1),  # no plate read
            event("61A-128.45", 3),  # misread; corrected below
        ],
    )
    first, again, late, later, other, lane, cam2, unread, misread = ids
    sup, officer = accounts["supervisor"], accounts["officer"]

    def nearby(case_id: int) -> list[int]:
        case = api.get(f"/api/v1/violations/{case_id}", headers=sup.headers).json()
        return [c["id"] for c in case["same_plate_nearby"]]

    assert nearby(first) == [again, late]
    assert nearby(again) == [first, late, later]
    assert nearby(other) == [] and nearby(lane) == [] and nearby(cam2) == []
    assert nearby(unread) == []
    assert _act(api, officer, misread, "start_review", 1).status_code == 200
    assert _act(api, officer, misread, "correct_plate", 2, plate="61A-123.45").status_code == 200
    assert nearby(misread) == [first, again, late, later]
    assert nearby(first) == [misread, again, late]
    [shown] = [
        c
        for c in api.get(f"/api/v1/violations/{first}", headers=sup.headers).json()[
            "same_plate_nearby"
        ]
        if c["id"] == again
    ]
    assert shown["status"] == "new" and shown["occurred_at"].startswith("2026-12-07T02:04:00")


def test_the_audit_log_is_append_only_in_the_database(
    api: TestClient, central_db: CentralDb, accounts: dict[str, Account]
) -> None:
    api.patch(
        f"/api/v1/users/{accounts['officer2'].username}",
        headers=accounts["admin"].headers,
        json={"full_name": "Lê Văn Cường"},
    )
    statements = ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"]
    if central_db.kind == "postgresql":  # (SQLite has no TRUNCATE)
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with (
            pytest.raises(DBAPIError, match="append-only"),
            transaction(session_factory(central_db.engine)) as s,
        ):
            s.execute(text(statement))
    chain = api.get("/api/v1/audit/verify", headers=accounts["supervisor"].headers).json()
    assert chain["ok"] is True


def test_entries_taken_off_the_end_of_the_audit_log_are_found(
    central_db: CentralDb, central_settings: Settings
) -> None:
    """With its triggers dropped (an owner of the database can), the last entry is
    deleted: the chain that is left is intact, but it no longer ends at its head."""
    with migrated_database(central_db.kind, central_settings.data_dir) as db:
        settings = central_settings.model_copy(update={"database_url": db.url})
        with TestClient(create_app(settings, engine=db.engine)) as client:
            with transaction(session_factory(db.engine)) as s:
                create_user(s, username="admin.one", password=PASSWORD, role=Role.ADMIN)
                for n in range(3):
                    append_audit(s, actor="admin.one", action="user_update", detail={"n": n})
            token = issue_access_token("admin.one", Role.ADMIN, SECRET, 15)
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/api/v1/audit/verify", headers=headers).json()["ok"] is True
            # An entry added outside the chain, past its head.
            with transaction(session_factory(db.engine)) as s:
                s.execute(
                    text(
                        "INSERT INTO audit_log (seq, at, actor, action, detail, prev_hash,"
                        " entry_hash) SELECT 9, at, actor, action, detail, prev_hash,"
                        " entry_hash FROM audit_log WHERE seq = 3"
                    )
                )
            past = client.get("/api/v1/audit/verify", headers=headers).json()
            assert past["ok"] is False and "entries past the head (up to 9" in past["problem"]
            drop = {
                "postgresql": ["ALTER TABLE audit_log DISABLE TRIGGER USER"],
                "sqlite": ["DROP TRIGGER audit_log_no_delete"],
            }[db.kind]
            with transaction(session_factory(db.engine)) as s:
                for statement in drop:
                    s.execute(text(statement))
                s.execute(text("DELETE FROM audit_log WHERE seq IN (3, 9)"))
            chain = client.get("/api/v1/audit/verify", headers=headers).json()
    assert chain["ok"] is False and chain["first_bad_seq"] == 3
    assert "head records entry 3" in chain["problem"]


def test_a_log_rewritten_whole_is_found_by_the_checkpoints_kept_elsewhere(
    central_db: CentralDb,
    central_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The chain alone cannot show a log rewritten whole by someone who can write the
    database (each hash recomputed, the head too): a checkpoint central signed before
    can. A checkpoint altered, or signed by another key, is said so; so is a log cut
    short of a checkpoint."""
    import json

    from central.audit import GENESIS
    from central.models import AuditHead
    from roadwatch.cli import main

    with migrated_database(central_db.kind, central_settings.data_dir) as db:
        monkeypatch.setenv("ROADWATCH_DATABASE_URL", db.url)
        monkeypatch.setenv("ROADWATCH_DATA_DIR", str(central_settings.data_dir))

        def central(*args: str) -> tuple[int, str]:
            capsys.readouterr()
            code = main(["central", "audit", *args])
            out, err = capsys.readouterr()
            return code, out + err

        def write_log(actors: list[str]) -> None:
            with transaction(session_factory(db.engine)) as s:
                for n, actor in enumerate(actors):
                    append_audit(s, actor=actor, action="user_update", detail={"n": n})

        kept = tmp_path / "checkpoints.jsonl"
        assert central("checkpoint", "--out", str(kept))[0] == 2  # no key yet
        write_key_pair(central_settings.resolved_case_key.with_suffix(""), kind="case key")
        code, out = central("checkpoint", "--out", str(kept))
        assert code == 2 and "the audit log is empty" in out  # (nothing to vouch for)
        assert not kept.exists()
        write_log(["admin.one", "admin.one", "admin.two"])
        code, out = central("checkpoint", "--out", str(kept))
        assert code == 0 and "appended the checkpoint of entry 3" in out, out
        write_log(["admin.two"])
        assert central("checkpoint", "--out", str(kept))[0] == 0
        code, out = central("verify", "--checkpoints", str(kept))
        assert code == 0, out
        assert "OK   the chain: 4 entries" in out and out.count("the log agrees") == 2

        # Central's case key changed: one file holds checkpoints under the old key and
        # the new; both keys given, each checkpoint verifies under its own.
        case_key = central_settings.resolved_case_key
        old_pub = tmp_path / "case-signing-old.pub"
        old_pub.write_bytes(case_key.with_suffix(".pub").read_bytes())
        renewed = tmp_path / "case-signing-2027"
        write_key_pair(renewed, kind="case key")
        both = tmp_path / "both.jsonl"
        both.write_text(kept.read_text())
        monkeypatch.setenv("ROADWATCH_CASE_KEY", str(renewed) + ".key")
        assert central("checkpoint", "--out", str(both))[0] == 0
        monkeypatch.delenv("ROADWATCH_CASE_KEY")
        new_pub = f"{renewed}.pub"
        code, out = central("verify", "--checkpoints", str(both), "--central-key", new_pub)
        assert code == 1 and out.count("not signed by central's key") == 2, out
        code, out = central(
            "verify", "--checkpoints", str(both),
            "--central-key", str(old_pub), "--central-key", new_pub,
        )  # fmt: skip
        assert code == 0 and out.count("the log agrees") == 3, out
        stranger = tmp_path / "stranger"
        write_key_pair(stranger, kind="another key")
        code, out = central(
            "verify", "--checkpoints", str(both),
            "--central-key", new_pub, "--central-key", f"{stranger}.pub",
        )  # fmt: skip
        assert code == 1 and out.count("not signed by any of the 2 central keys given") == 2

        # Rewritten whole, by someone who can write the database: entry 2 names another.
        drop = {
            "postgresql": ["ALTER TABLE audit_log DISABLE TRIGGER USER"],
            "sqlite": ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
        }[db.kind]
        with transaction(session_factory(db.engine)) as s:
            for statement in drop:
                s.execute(text(statement))
            s.execute(text("DELETE FROM audit_log"))
            s.execute(update(AuditHead).values(seq=0, entry_hash=GENESIS))
        write_log(["admin.one", "mallory", "admin.two", "admin.two"])
        code, out = central("verify")
        assert code == 0 and "OK   the chain: 4 entries" in out  # (the chain cannot tell)
        code, out = central("verify", "--checkpoints", str(kept))
        assert code == 1
        assert "FAIL checkpoint of entry 3" in out and "the log was rewritten at or before" in out
        assert "FAIL checkpoint of entry 4" in out

        # A checkpoint altered by hand, and one checked with another key.
        lines = [json.loads(line) for line in kept.read_text().splitlines()]
        forged = tmp_path / "forged.jsonl"
        forged.write_text(json.dumps({**lines[0], "seq": 2}) + "\n")
        code, out = central("verify", "--checkpoints", str(forged))
        assert code == 1 and "not signed by central's key" in out
        other = tmp_path / "other"
        write_key_pair(other, kind="another key")
        code, out = central(
            "verify", "--checkpoints", str(kept), "--central-key", str(other) + ".pub"
        )
        assert code == 1 and out.count("not signed by central's key") == 2
        # Cut short of a checkpoint.
        with transaction(session_factory(db.engine)) as s:
            s.execute(text("DELETE FROM audit_log WHERE seq = 4"))
            s.execute(update(AuditHead).values(seq=3, entry_hash=lines[0]["entry_hash"]))
        code, out = central("verify", "--checkpoints", str(kept))
        assert code == 1 and "the log holds 3 entries, but on" in out
        good = lines[0]
        for junk in (
            "not json",
            "[" * 100_000 + "]" * 100_000,
            json.dumps({**good, "seq": True}),
            json.dumps({**good, "seq": 10**30}),
            json.dumps({**good, "at": float("nan")}),
            json.dumps({**good, "entry_hash": 7}),
            json.dumps({k: v for k, v in good.items() if k != "signature"}),
        ):
            (tmp_path / "junk.jsonl").write_text(json.dumps(good) + "\n" + junk + "\n")
            code, out = central("verify", "--checkpoints", str(tmp_path / "junk.jsonl"))
            assert code == 2 and "junk.jsonl:2: not an audit checkpoint" in out, junk[:80]


def test_search_filters_and_pages(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    events = [
        signed_event(node, camera="cam-a", type=ViolationType.SPEEDING, occurred_at=T0),
        signed_event(
            node,
            camera="cam-b",
            type=ViolationType.RED_LIGHT,
            occurred_at=T0 + timedelta(hours=1),
            plate=None,
        ),
        signed_event(
            node, camera="cam-b", type=ViolationType.SPEEDING, occurred_at=T0 + timedelta(days=1)
        ),
    ]
    ids = store_events(central_db, node, events)
    h = accounts["ioc"].headers

    def search(**params: Any) -> list[int]:
        r = api.get("/api/v1/violations", headers=h, params={"site": node.site, **params})
        assert r.status_code == 200, r.text
        return [item["id"] for item in r.json()["items"]]

    assert search() == ids[::-1]  # newest first
    assert search(camera="cam-b") == [ids[2], ids[1]]
    assert search(type="red_light") == [ids[1]]
    assert search(plate="51f-123.45") == [ids[2], ids[0]]
    assert search(plate="51f12345") == [ids[2], ids[0]]  # (in its normal form too)
    assert search(**{"from": "2026-11-23T07:30:00Z", "to": "2026-11-23T09:00:00Z"}) == [ids[1]]
    assert search(status="new") == ids[::-1] and search(status="closed") == []
    page = api.get("/api/v1/violations", headers=h, params={"site": node.site, "limit": 2}).json()
    assert page["has_more"] is True and len(page["items"]) == 2
    page2 = api.get(
        "/api/v1/violations", headers=h, params={"site": node.site, "limit": 2, "offset": 2}
    ).json()
    assert page2["has_more"] is False and [i["id"] for i in page2["items"]] == [ids[0]]
    # Read page by page while an officer decides a case of the search: by offset the next
    # page skips one; after the last case read, it does not.
    [first] = search(status="new", limit=1)
    assert first == ids[2]
    assert _act(api, accounts["officer"], first, "start_review", 1).status_code == 200
    assert search(status="new", limit=1, offset=1) == [ids[0]]  # (ids[1] skipped)
    assert search(status="new", limit=1, after_id=first) == [ids[1]]
    assert search(status="new", limit=2, after_id=ids[1]) == [ids[0]]
    gone = api.get("/api/v1/violations", headers=h, params={"after_id": 2**62})
    assert gone.status_code == 404 and "no case" in gone.json()["detail"]
    for bad in ({"type": "jaywalking"}, {"limit": 0}, {"camera": "../etc"}, {"from": "yesterday"}):
        assert api.get("/api/v1/violations", headers=h, params=bad).status_code == 422
    naive = api.get("/api/v1/violations", headers=h, params={"from": "2026-11-23T07:00:00"})
    assert naive.status_code == 422
    # A range backwards (or empty) is a mistake, refused as the statistics refuse it, not
    # an empty page that reads as "nothing happened then".
    for start, end in (
        ("2026-11-24T00:00:00Z", "2026-11-23T00:00:00Z"),
        (T0.isoformat(), T0.isoformat()),
    ):
        when = {"from": str(start), "to": str(end)}
        backwards = api.get("/api/v1/violations", headers=h, params=when)
        assert backwards.status_code == 422, backwards.text
        [problem] = backwards.json()["detail"]
        assert problem["loc"] == ["query", "from"] and "before" in problem["msg"]
    queue = api.get(
        "/api/v1/review/queue", headers=accounts["officer"].headers, params={"camera": "cam-a"}
    ).json()
    assert ids[0] in [i["id"] for i in queue["items"]]
    item = next(i for i in queue["items"] if i["id"] == ids[0])
    assert item["deadlines"][0]["name"] == "notice"
    due = api.get("/api/v1/review/deadlines", headers=accounts["officer"].headers).json()
    assert due["items"] == [] or all(i["deadlines"] for i in due["items"])


@pytest.mark.parametrize(
    ("path", "params", "unknown", "taken"),
    [
        # A misspelt filter would otherwise answer the unfiltered search as if filtered.
        ("/api/v1/violations", {"form": "2026-11-23T07:00:00Z"}, ["form"], "from"),
        (
            "/api/v1/violations",
            {"cameras": "cam-a", "plates": "51F"},
            ["cameras", "plates"],
            "camera",
        ),
        ("/api/v1/stats/traffic", {"by": "hour", "camera_id": "cam-a"}, ["camera_id"], "camera"),
        (
            "/api/v1/stats/violations",
            {"by": "day", "utcoffset": "+07:00"},
            ["utcoffset"],
            "utc_offset",
        ),
        ("/api/v1/feed", {"after": "3", "max_seconds": "1"}, ["after"], "after_id"),
        ("/api/v1/ui/queue", {"camera": "cam-a", "page": "2"}, ["page"], "after_id"),
        ("/api/v1/cameras", {"site": "ql13-km22"}, ["site"], "no query parameters"),
        # A token in the address is not read (and not echoed either).
        ("/api/v1/auth/me", {"access_token": "s3cr3t-t0ken"}, ["access_token"], "no query"),
    ],
)
def test_an_unknown_query_parameter_is_refused_naming_the_ones_taken(
    api: TestClient,
    accounts: dict[str, Account],
    path: str,
    params: dict[str, str],
    unknown: list[str],
    taken: str,
) -> None:
    r = api.get(path, headers=accounts["supervisor"].headers, params=params)
    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert [p["loc"] for p in problems] == [["query", name] for name in sorted(unknown)]
    for problem in problems:
        assert problem["type"] == "extra_forbidden"
        assert problem["loc"][1] in problem["msg"] and taken in problem["msg"]
    assert "s3cr3t" not in r.text


@pytest.mark.parametrize(
    ("path", "params", "repeated"),
    [
        # Two cameras asked for at once would count the last one alone, read as both.
        (
            "/api/v1/stats/traffic",
            [("by", "hour"), ("camera", "cam-a"), ("camera", "cam-b")],
            ["camera"],
        ),
        ("/api/v1/stats/violations", [("by", "hour"), ("by", "day")], ["by"]),
        (
            "/api/v1/violations",
            [("site", "a"), ("site", "b"), ("status", "new"), ("status", "closed")],
            ["site", "status"],
        ),
    ],
)
def test_a_query_parameter_of_one_value_given_twice_is_refused(
    api: TestClient,
    accounts: dict[str, Account],
    path: str,
    params: list[tuple[str, str]],
    repeated: list[str],
) -> None:
    r = api.get(path, headers=accounts["ioc"].headers, params=params)
    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert [p["loc"] for p in problems] == [["query", name] for name in repeated]
    for problem in problems:
        assert problem["type"] == "repeated_parameter"
        assert f"'{problem['loc'][1]}' given 2 times" in problem["msg"]
    # Once each, the same request is answered.
    once = list(dict(params).items())
    assert api.get(path, headers=accounts["ioc"].headers, params=once).status_code in (200, 404)


def test_the_parameters_a_route_declares_and_the_pages_outside_the_api_are_not_refused(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    h = accounts["supervisor"].headers
    declared = {"from": "2026-11-23T07:00:00Z", "to": "2026-11-24T07:00:00Z", "status": "new"}
    assert api.get("/api/v1/violations", headers=h, params=declared).status_code == 200
    aliased = {"by": "day", "utc_offset": "+07:00", **declared}
    aliased.pop("status")
    assert api.get("/api/v1/stats/violations", headers=h, params=aliased).status_code == 200
    assert api.get("/api/v1/audit/verify", headers=h).status_code == 200
    # The web UI's own pages and assets, and the service's health, take what a browser
    # or a probe adds.
    assert api.get("/ui/index.html", params={"v": "2"}).status_code == 200
    assert api.get("/health", params={"probe": "1"}).status_code == 200
    # The schema lists the refusal of a route that takes no parameter too.
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/cameras", "/api/v1/auth/me", "/api/v1/audit/verify"):
        assert "query parameter" in paths[path]["get"]["responses"]["422"]["description"]


def test_counts_by_camera_keep_two_sites_cameras_of_one_id_apart(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """Two sites each with a camera "cam-a": counted by camera over every site, each count
    names its site, and the two are not merged into one."""
    at = T0 - timedelta(days=2, microseconds=uuid.uuid4().int % 10**10)  # this test's alone
    first, second = make_node(), make_node()
    store_events(central_db, first, [signed_event(first, camera="cam-a", occurred_at=at)])
    store_events(
        central_db, second,
        [signed_event(second, camera="cam-a", occurred_at=at) for _ in range(2)],
    )  # fmt: skip
    window = {"from": at.isoformat(), "to": (at + timedelta(microseconds=1)).isoformat()}
    r = api.get(
        "/api/v1/stats/violations", headers=accounts["ioc"].headers,
        params={"by": "camera", **window},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    counts = sorted((c["site"], c["key"], c["count"]) for c in r.json()["counts"])
    assert counts == sorted([(first.site, "cam-a", 1), (second.site, "cam-a", 2)])
    assert r.json()["total"] == 3
    by_type = api.get(
        "/api/v1/stats/violations", headers=accounts["ioc"].headers,
        params={"by": "type", **window},
    ).json()  # fmt: skip
    assert by_type["counts"] == [{"key": "speeding", "count": 3, "site": None}]


def test_violation_counts_as_csv_are_the_json_answer_row_for_row(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    at = datetime(2026, 11, 20, 7, 3, tzinfo=UTC)
    store_events(
        central_db, node,
        [signed_event(node, camera="cam-a", occurred_at=at),
         signed_event(node, camera="cam-b", type=ViolationType.RED_LIGHT,
                      occurred_at=at + timedelta(hours=2))],
    )  # fmt: skip
    h = accounts["ioc"].headers
    day = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z", "site": node.site}
    for by, header in (
        ("type", ["key", "count"]),
        ("camera", ["key", "count", "site"]),
        ("hour", ["key", "count"]),
    ):
        answer = api.get("/api/v1/stats/violations", headers=h, params={"by": by, **day})
        assert answer.status_code == 200, answer.text
        r = api.get(
            "/api/v1/stats/violations", headers=h, params={"by": by, "format": "csv", **day}
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == (
            f'attachment; filename="violations_by-{by}_{node.site}'
            '_2026-11-20T0700+0700_2026-11-21T0700+0700.csv"'
        )
        reader = csv.DictReader(io.StringIO(r.content.decode(), newline=""))
        rows = list(reader)
        assert reader.fieldnames == header
        expected = [
            {k: str(v) for k, v in c.items() if k in header} for c in answer.json()["counts"]
        ]
        assert rows == expected and len(rows) == 2
    # Hours named at the offset asked for, as in the JSON.
    r = api.get(
        "/api/v1/stats/violations",
        headers=h,
        params={"by": "hour", "format": "csv", "utc_offset": "+00:00", **day},
    )
    assert [row["key"] for row in csv.DictReader(io.StringIO(r.text))] == [
        "2026-11-20T07:00:00Z",
        "2026-11-20T09:00:00Z",
    ]
    # Refused as the JSON is, in JSON.
    r = api.get(
        "/api/v1/stats/violations",
        headers=h,
        params={"by": "camera", "camera": "cam-z", "format": "csv", **day},
    )
    assert r.status_code == 404 and "no camera 'cam-z'" in r.json()["detail"]
    r = api.get("/api/v1/stats/violations", params={"by": "type", "format": "csv"})
    assert r.status_code == 401


def test_statistics_and_traffic_flow(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    store_events(
        central_db,
        node,
        [
            signed_event(node, camera="cam-a", occurred_at=T0),
            signed_event(node, camera="cam-a", occurred_at=T0 + timedelta(minutes=5)),
            signed_event(
                node,
                camera="cam-b",
                type=ViolationType.RED_LIGHT,
                occurred_at=T0 + timedelta(hours=2),
            ),
        ],
    )
    h = accounts["ioc"].headers
    day = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z"}

    def stats(by: str) -> dict[str, int]:
        params = {"by": by, "site": node.site, **day}
        r = api.get("/api/v1/stats/violations", headers=h, params=params)
        assert r.status_code == 200, r.text
        return {c["key"]: c["count"] for c in r.json()["counts"]}

    assert stats("type") == {"red_light": 1, "speeding": 2}
    assert stats("camera") == {"cam-a": 2, "cam-b": 1}
    # (hours and days in Vietnam, the service's default offset: 07:03 UTC is 14:03 there)
    assert stats("hour") == {"2026-11-23T14:00:00+07:00": 2, "2026-11-23T16:00:00+07:00": 1}
    assert stats("day") == {"2026-11-23T00:00:00+07:00": 3}
    assert stats("status") == {"new": 3}
    minute = T0.replace(second=0, microsecond=0)
    traffic = [
        TrafficStats(
            site=node.site,
            node=node.node,
            camera="cam-a",
            minute_start=minute + timedelta(minutes=i),
            lanes=[
                LaneFlow(
                    lane="lane-1",
                    counts={VehicleClass.CAR: 10, VehicleClass.MOTORCYCLE: 30},
                    mean_speed_kmh=40.0 + 10 * i,
                    occupancy=0.2,
                )
            ],
        )
        for i in range(2)
    ]
    # A second node of the site has a camera of the same name: its minutes are its own.
    other = make_node(site=node.site, node="node-02")
    theirs = [sign(t.model_copy(update={"node": other.node}), other.key) for t in traffic[:1]]
    traffic = [sign(t, node.key) for t in traffic]
    messages = [
        Message(node.topic("cam-a", CameraTopic.TRAFFIC), to_wire(t)) for t in traffic + traffic
    ] + [Message(other.topic("cam-a", CameraTopic.TRAFFIC), to_wire(t)) for t in theirs]
    with transaction(session_factory(central_db.engine)) as s:
        result = record_batch(s, messages, KeyCache())
    assert result.quarantined == {}
    asked = {"site": node.site, "by": "hour", "classes": "true", **day}
    flow = api.get("/api/v1/stats/traffic", headers=h, params=asked).json()
    assert (flow["from"], flow["to"]) == ("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z")
    assert flow["buckets"] == [
        {
            "bucket": "2026-11-23T14:00:00+07:00",
            "site": node.site,
            "node": "node-01",
            "camera": "cam-a",
            "vehicles": 80,  # re-sent minutes are counted once
            "mean_speed_kmh": 45.0,
            "mean_occupancy": 0.2,
            "minutes": 2,  # of the hour's 60: the camera reported two
            "counts": {"car": 20, "motorcycle": 60},  # (likewise once)
        },
        {
            "bucket": "2026-11-23T14:00:00+07:00",
            "site": node.site,
            "node": "node-02",
            "camera": "cam-a",
            "vehicles": 40,
            "mean_speed_kmh": 40.0,
            "mean_occupancy": 0.2,
            "minutes": 1,
            "counts": {"car": 10, "motorcycle": 30},
        },
    ]


def test_traffic_flow_spans_a_bounded_range_and_refuses_odd_ones(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """One request reads at most 31 days by hour (366 by day), never the whole table; an
    open end is filled in and said; a reversed range or a time at the end of the calendar
    is a 422, not a server error."""
    node = make_node()
    minute = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    lanes = [LaneFlow(lane="lane-1", counts={VehicleClass.CAR: 10}, occupancy=0.1)]

    def minute_at(at: datetime) -> bytes:
        stats = TrafficStats(
            site=node.site, node=node.node, camera="cam-01", minute_start=at, lanes=lanes
        )
        return to_wire(sign(stats, node.key))

    topic = node.topic("cam-01", CameraTopic.TRAFFIC)
    messages = [Message(topic, minute_at(at)) for at in (minute, minute + timedelta(days=40))]
    with transaction(session_factory(central_db.engine)) as s:
        assert not record_batch(s, messages, KeyCache()).quarantined
    h = accounts["ioc"].headers

    def flow(**params: str) -> Any:
        return api.get("/api/v1/stats/traffic", headers=h, params={"site": node.site, **params})

    r = flow(by="hour", **{"from": "2026-11-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"]) == ("2026-11-01T00:00:00Z", "2026-12-02T00:00:00Z")
    assert [b["bucket"] for b in r.json()["buckets"]] == ["2026-11-23T14:00:00+07:00"]
    r = flow(by="day", to="2027-01-03T00:00:00Z")
    # (from the first whole day at +07:00 within 366 days: the first bucket is whole)
    assert r.json()["from"] == "2026-01-02T17:00:00Z"
    assert [b["vehicles"] for b in r.json()["buckets"]] == [10, 10]
    for params in (
        {"by": "hour", "from": "2026-11-01T00:00:00Z", "to": "2026-12-02T00:00:01Z"},
        {"by": "day", "from": "2025-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
        {"by": "hour", "from": "2026-11-24T00:00:00Z", "to": "2026-11-23T00:00:00Z"},
        {"by": "hour", "from": "2026-11-24T00:00:00Z", "to": "2026-11-24T00:00:00Z"},
    ):
        r = flow(**params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "query", params
    for params in ({"from": "9999-12-31T23:00:00Z"}, {"to": "0001-01-01T01:00:00Z"}):
        r = flow(by="day", **params)
        assert r.status_code == 200 and r.json()["buckets"] == [], (params, r.text)


def store_traffic_minute(db: CentralDb, node: NodeIdentity, minute: datetime) -> None:
    """Five cars in lane-1 of cam-01 in ``minute``, through the ingest's batch path."""
    traffic = TrafficStats(
        site=node.site,
        node=node.node,
        camera="cam-01",
        minute_start=minute,
        lanes=[LaneFlow(lane="lane-1", counts={VehicleClass.CAR: 5}, occupancy=0.1)],
    )
    message = Message(node.topic("cam-01", CameraTopic.TRAFFIC), to_wire(sign(traffic, node.key)))
    with transaction(session_factory(db.engine)) as s:
        assert not record_batch(s, [message], KeyCache()).quarantined


def test_days_and_hours_are_counted_at_the_offset_asked_for(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """23:30 and 00:30 in Vietnam are two days there, one day in UTC; 23:59:59.9996 is
    still the first day (SQLite, which reads times in rounded milliseconds, too)."""
    node = make_node()
    late = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    store_events(
        central_db,
        node,
        [
            signed_event(node, occurred_at=late),
            signed_event(node, occurred_at=late + timedelta(hours=1)),
            signed_event(node, occurred_at=late.replace(minute=59, second=59, microsecond=999600)),
        ],
    )
    store_traffic_minute(central_db, node, late.replace(minute=0))
    h = accounts["ioc"].headers

    def counts(by: str, offset: str | None) -> dict[str, int]:
        params = {"by": by, "site": node.site} | ({"utc_offset": offset} if offset else {})
        params |= {"from": "2026-11-23T00:00:00Z", "to": "2026-11-25T00:00:00Z"}
        r = api.get("/api/v1/stats/violations", headers=h, params=params)
        assert r.status_code == 200, r.text
        return {c["key"]: c["count"] for c in r.json()["counts"]}

    assert counts("day", "+00:00") == {"2026-11-23T00:00:00Z": 3}
    vietnam_days = {"2026-11-23T00:00:00+07:00": 2, "2026-11-24T00:00:00+07:00": 1}
    assert counts("day", "+07:00") == vietnam_days
    assert counts("day", None) == vietnam_days  # (the service's default)
    assert counts("hour", "+07:00") == {
        "2026-11-23T23:00:00+07:00": 2,
        "2026-11-24T00:00:00+07:00": 1,
    }
    assert counts("hour", "+00:00") == {"2026-11-23T16:00:00Z": 2, "2026-11-23T17:00:00Z": 1}
    assert counts("day", "-05:30") == {"2026-11-23T00:00:00-05:30": 3}
    flow = api.get(
        "/api/v1/stats/traffic",
        headers=h,
        params={
            "site": node.site,
            "by": "hour",
            "utc_offset": "+07:00",
            "from": "2026-11-23T00:00:00+07:00",
            "to": "2026-11-25T00:00:00+07:00",
        },
    ).json()
    assert [b["bucket"] for b in flow["buckets"]] == ["2026-11-23T23:00:00+07:00"]
    for bad in ("+7", "07:00", "+15:00", "+07:60"):
        r = api.get("/api/v1/stats/violations", headers=h, params={"by": "day", "utc_offset": bad})
        assert r.status_code == 422, bad
    # A zone's name is no offset: the refusal says what to send for it.
    for route in ("/api/v1/stats/violations", "/api/v1/stats/traffic"):
        for zone, sent in (("Asia/Ho_Chi_Minh", "%2B07:00"), ("UTC", "%2B00:00")):
            r = api.get(route, headers=h, params={"by": "day", "utc_offset": zone})
            assert r.status_code == 422, r.text
            [problem] = r.json()["detail"]
            assert problem["loc"] == ["query", "utc_offset"]
            assert f"not a zone's name: {zone} is" in problem["msg"], problem
            assert f"utc_offset={sent}" in problem["msg"], problem
    r = api.get(
        "/api/v1/stats/traffic", headers=h, params={"by": "day", "utc_offset": "Asia/Nowhere"}
    )
    assert r.status_code == 422 and "zone" not in r.text, r.text


def test_violation_counts_by_hour_or_day_span_a_bounded_range_and_refuse_odd_ones(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """By hour or day one request counts at most 31 days by hour (366 by day), never a
    bucket per hour of all time: an open end is filled in as for traffic flow and said; a
    reversed or too long range is a 422 naming the parameter. By type, camera or status
    (a row each, however long the range) it may be open or long; a reversed one is refused
    too."""
    node = make_node()
    first = datetime(2025, 10, 1, 7, 0, tzinfo=UTC)
    store_events(
        central_db,
        node,
        [signed_event(node, occurred_at=at) for at in (first, first + timedelta(days=40))],
    )
    h = accounts["ioc"].headers

    def stats(**params: str) -> Any:
        return api.get("/api/v1/stats/violations", headers=h, params={"site": node.site, **params})

    r = stats(by="hour", **{"from": "2025-09-15T00:00:00Z"})
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"]) == ("2025-09-15T00:00:00Z", "2025-10-16T00:00:00Z")
    assert r.json()["counts"] == [{"key": "2025-10-01T14:00:00+07:00", "count": 1, "site": None}]
    r = stats(by="day", to="2026-01-01T00:00:00Z")
    assert (r.json()["from"], r.json()["to"]) == ("2024-12-31T17:00:00Z", "2026-01-01T00:00:00Z")
    assert r.json()["total"] == 2
    reversed_ = {"from": "2025-10-02T00:00:00Z", "to": "2025-10-01T00:00:00Z"}
    empty = {"from": "2025-10-01T00:00:00Z", "to": "2025-10-01T00:00:00Z"}
    refusals = [
        ("hour", {"from": "2025-09-15T00:00:00Z", "to": "2025-10-16T00:00:01Z"},
         "to", "at most 31 days by hour in one request"),
        ("day", {"from": "2025-01-01T00:00:00Z", "to": "2026-01-02T00:00:01Z"},
         "to", "at most 366 days by day in one request"),
        ("hour", reversed_, "from", "from must be before to"),
        ("day", empty, "from", "from must be before to"),
        ("type", reversed_, "from", "from must be before to"),
        ("camera", empty, "from", "from must be before to"),
        ("status", reversed_, "from", "from must be before to"),
    ]  # fmt: skip
    for by, ends, loc, msg in refusals:
        r = stats(by=by, **ends)
        assert r.status_code == 422, (by, ends, r.text)
        assert r.json()["detail"] == [
            {"type": "value_error", "loc": ["query", loc], "msg": msg, "input": None}
        ], (by, ends)
    for params in ({"from": "9999-12-31T23:00:00Z"}, {"to": "0001-01-01T01:00:00Z"}):
        r = stats(by="day", **params)
        assert r.status_code == 200 and r.json()["counts"] == [], (params, r.text)
    # By type, camera or status any range is one row each: years, or no end at all.
    r = stats(by="type", **{"from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"], r.json()["total"]) == (
        "2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z", 2,
    )  # fmt: skip
    for by in ("type", "camera", "status"):
        r = stats(by=by)
        assert r.status_code == 200, r.text
        assert (r.json()["from"], r.json()["to"], r.json()["total"]) == (None, None, 2), by
    r = stats(by="camera", to="2025-10-02T00:00:00Z")
    assert (r.json()["from"], r.json()["to"], r.json()["total"]) == (
        None, "2025-10-02T00:00:00Z", 1,
    )  # fmt: skip


def test_violation_counts_by_hour_or_day_without_a_range_are_the_span_up_to_now(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """No from and no to: the last 31 days by hour, the last 366 by day, ending now, from
    the first whole hour or day (at the service's +07:00) within them: no partial first
    bucket."""
    node = make_node()
    now = datetime.now(UTC)
    store_events(
        central_db,
        node,
        [signed_event(node, occurred_at=now - timedelta(days=d)) for d in (1, 40, 400)],
    )
    h = accounts["ioc"].headers
    for by, days, total in (("hour", 31, 1), ("day", 366, 2)):
        before = datetime.now(UTC)
        r = api.get("/api/v1/stats/violations", headers=h, params={"by": by, "site": node.site})
        assert r.status_code == 200, r.text
        start, end = (datetime.fromisoformat(r.json()[k]) for k in ("from", "to"))
        assert before <= end <= datetime.now(UTC)
        bucket = timedelta(hours=1) if by == "hour" else timedelta(days=1)
        assert timedelta(days=days) - bucket < end - start <= timedelta(days=days)
        local = start.astimezone(timezone(timedelta(hours=7)))
        assert (local.minute, local.second, local.microsecond) == (0, 0, 0)
        assert by == "hour" or local.hour == 0
        assert r.json()["total"] == total, by


def test_hours_and_days_are_counted_at_the_services_offset_unless_one_is_asked_for(
    api: TestClient,
    central_settings: Settings,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A client that names no utc_offset gets the service's (ROADWATCH_STATS_UTC_OFFSET,
    Vietnam's +07:00 unless set); one it names is still the one counted at."""
    node = make_node()
    late = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 23:30 in Vietnam, 22:00 in India
    store_events(central_db, node, [signed_event(node, occurred_at=late)])
    store_traffic_minute(central_db, node, late)
    h = accounts["ioc"].headers
    window = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-25T00:00:00Z"}

    def buckets(client: TestClient, offset: str | None) -> tuple[list[str], list[str]]:
        params = {"site": node.site, **window} | ({"utc_offset": offset} if offset else {})
        r = client.get("/api/v1/stats/violations", headers=h, params={"by": "day", **params})
        assert r.status_code == 200, r.text
        f = client.get("/api/v1/stats/traffic", headers=h, params={"by": "hour", **params})
        assert f.status_code == 200, f.text
        return [c["key"] for c in r.json()["counts"]], [b["bucket"] for b in f.json()["buckets"]]

    assert central_settings.stats_utc_offset == "+07:00"
    assert buckets(api, None) == (["2026-11-23T00:00:00+07:00"], ["2026-11-23T23:00:00+07:00"])
    india = central_settings.model_copy(update={"stats_utc_offset": "+05:30"})
    with TestClient(create_app(india, engine=central_db.engine)) as other:
        assert buckets(other, None) == (
            ["2026-11-23T00:00:00+05:30"], ["2026-11-23T22:00:00+05:30"],
        )  # fmt: skip
        assert buckets(other, "+07:00") == (
            ["2026-11-23T00:00:00+07:00"], ["2026-11-23T23:00:00+07:00"],
        )  # fmt: skip
        assert buckets(other, "+00:00") == (["2026-11-23T00:00:00Z"], ["2026-11-23T16:00:00Z"])
        assert buckets(other, "-05:00") == (
            ["2026-11-23T00:00:00-05:00"], ["2026-11-23T11:00:00-05:00"],
        )  # fmt: skip


BATCHINGS = {
    "one batch": [[0, 1, 2]],
    "two batches": [[0], [1, 2]],
    "the other content first in the second batch": [[0], [2, 1]],
}


@pytest.mark.parametrize("batches", list(BATCHINGS))
def test_one_event_id_with_two_contents_is_refused_however_the_batches_fall(
    central_db: CentralDb, make_node: Any, batches: str
) -> None:
    """The second content of an id is quarantined as reused, whether it comes in the same
    batch as the first or in a later one; the same content again is a duplicate, in
    whatever order the two come."""
    node: NodeIdentity = make_node()
    first = signed_event(node, explanation="first")
    other = signed_event(node, event_id=first.event_id, explanation="another violation")
    messages = [Message(node.topic(e.camera), to_wire(e)) for e in (first, first, other)]
    results = []
    with transaction(session_factory(central_db.engine)) as s:
        for group in BATCHINGS[batches]:
            results.append(record_batch(s, [messages[i] for i in group], KeyCache()))
    assert sum(r.accepted for r in results) == 1
    assert sum(r.duplicates for r in results) == 1
    assert [r.quarantined for r in results][-1] == {"reused_event_id": 1}
    assert first.event_id in results[-1].held_event_ids  # (the duplicate is receipted)
    with session_factory(central_db.engine)() as s:
        stored = s.scalars(
            select(Violation.explanation).where(Violation.event_id == first.event_id)
        )
        assert list(stored) == ["first"]


def test_a_message_refused_again_is_counted_on_its_quarantine_row(
    api: TestClient, accounts: dict[str, Account], central_db: CentralDb, make_node: Any
) -> None:
    """A node re-sends an event until it is receipted: the same message refused again for
    the same reason (in one batch or a later one) counts on its first row instead of adding
    one per re-send; the same bytes refused for another reason keep a row of their own."""
    node: NodeIdentity = make_node()
    event = signed_event(node)
    forged = to_wire(event).replace(event.explanation.encode(), b"forged", 1)
    again = Message(node.topic(event.camera), forged)
    elsewhere = Message(node.topic("cam-09"), forged)  # names another camera than its topic
    with transaction(session_factory(central_db.engine)) as s:
        assert record_batch(s, [again, again], KeyCache()).quarantined == {"forged": 2}
    for _ in range(3):
        with transaction(session_factory(central_db.engine)) as s:
            record_batch(s, [again], KeyCache())
    with transaction(session_factory(central_db.engine)) as s:
        record_batch(s, [elsewhere], KeyCache())
    listed = api.get(
        "/api/v1/quarantine", headers=accounts["supervisor"].headers, params={"limit": 5}
    ).json()
    mine = [q for q in listed if q["topic"] in (again.topic, elsewhere.topic)]
    assert [(q["reason_code"], q["times"]) for q in mine] == [
        ("topic_mismatch", 1),
        ("forged", 5),
    ]
    assert mine[1]["last_received_at"] > mine[1]["received_at"]
    assert mine[0]["last_received_at"] == mine[0]["received_at"]


def test_a_batch_stores_every_column_as_sent(central_db: CentralDb, make_node: Any) -> None:
    """The batch insert (one array per column on PostgreSQL) keeps each value in its row,
    optional values left out in every event of the batch included."""
    node: NodeIdentity = make_node()
    bare = [
        signed_event(
            node,
            lane=None,
            plate=None,
            place=None,
            evidence=[],
            measured=Measurement(),
            explanation=f'Đi ngược chiều {i}, "làn 2" \\ 50% ${{x}} \\u0041',  # JSON-hostile
        )
        for i in range(3)
    ]
    full = [
        signed_event(node, track_id=100 + i, occurred_at=T0 + timedelta(seconds=i))
        for i in range(2)
    ]
    bare_only = [Message(node.topic(e.camera), to_wire(e)) for e in bare]
    mixed = [Message(node.topic(e.camera), to_wire(e)) for e in [*full, full[0]]]
    with transaction(session_factory(central_db.engine)) as s:
        first = record_batch(s, bare_only, KeyCache())
        second = record_batch(s, mixed, KeyCache())
    assert (first.accepted, first.duplicates, first.incomplete_ids) == (3, 0, [])
    assert (second.accepted, second.duplicates, len(second.incomplete_ids)) == (2, 1, 2)
    with session_factory(central_db.engine)() as s:
        rows = {
            v.event_id: v
            for v in s.scalars(
                select(Violation).where(Violation.event_id.in_([e.event_id for e in bare + full]))
            )
        }
        refs = {
            (r.violation_id, r.role, r.sha256, r.media_type, r.size)
            for r in s.scalars(
                select(EvidenceRefRow).where(
                    EvidenceRefRow.violation_id.in_([v.id for v in rows.values()])
                )
            )
        }
    assert len(rows) == 5
    for event in bare + full:
        row = rows[event.event_id]
        plate = event.plate
        assert row.payload == to_wire(event).decode()
        assert row.payload_sha256 == hashlib.sha256(to_wire(event)).hexdigest()
        assert (row.type, row.camera, row.lane, row.occurred_at, row.vehicle_class) == (
            event.type.value,
            event.camera,
            event.lane,
            event.occurred_at,
            event.vehicle_class.value,
        )
        assert (row.plate_text, row.plate_confidence, row.plate_valid) == (
            (plate.text, plate.confidence, plate.valid) if plate else (None, None, None)
        )
        assert (row.speed_kmh, row.speed_limit_kmh, row.place, row.explanation) == (
            event.measured.speed_kmh,
            event.measured.speed_limit_kmh,
            event.place,
            event.explanation,
        )
        assert (row.evidence_count, row.evidence_complete, row.status) == (
            len(event.evidence),
            not event.evidence,
            "new",
        )
    assert refs == {
        (rows[e.event_id].id, r.role.value, r.sha256, r.media_type.value, r.size)
        for e in full
        for r in e.evidence
    }


def test_reading_sessions_read_beside_a_writer_and_refuse_to_write(
    central_db: CentralDb,
) -> None:
    """GET requests read in reading sessions: while another session holds a write
    transaction they read (SQLite: without waiting for the write lock) the last committed
    state, and an attempt to write through one fails, leaving nothing behind."""
    engine = central_db.engine
    username = f"reader-{uuid.uuid4().hex[:8]}"
    with session_factory(engine)() as writer:
        writer.add(User(username=username, password_hash="x", role="officer", active=True))
        writer.flush()  # holds the write transaction (SQLite: the database's write lock)
        with read_session_factory(engine)() as reader:
            seen = reader.scalar(select(User).where(User.username == username))
            assert seen is None  # not committed yet
            reader.add(User(username=username + "-r", password_hash="x", role="officer"))
            with pytest.raises(RuntimeError, match="must not write"):
                reader.flush()
            reader.rollback()
            with pytest.raises(RuntimeError, match="must not write"):
                reader.execute(update(User).values(active=False))
        writer.commit()
    with read_session_factory(engine)() as reader:
        names = reader.scalars(select(User.username).where(User.username.startswith(username)))
        assert list(names) == [username]


# SQLite writers hold the database for the whole transaction (BEGIN IMMEDIATE): the race
# exists only where replicas write side by side.
@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
def test_an_event_stored_by_another_replica_mid_batch_is_held_not_doubled(
    central_db: CentralDb, make_node: Any
) -> None:
    """Between this replica's look-up of stored events and its insert, another replica
    stores two of the same events: they are counted as duplicates (held, acknowledged),
    the rest as new, and no event or evidence row is written twice."""
    node: NodeIdentity = make_node()
    events = [signed_event(node, track_id=200 + i) for i in range(4)]
    messages = [Message(node.topic(e.camera), to_wire(e)) for e in events]
    factory = session_factory(central_db.engine)
    other: list[Any] = []
    raced: list[bool] = []

    def race(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if raced or not statement.lstrip().upper().startswith("INSERT INTO VIOLATIONS"):
            return
        raced.append(True)
        with transaction(factory) as s:
            other.append(record_batch(s, messages[:2], KeyCache()))

    sa_event.listen(central_db.engine, "before_cursor_execute", race)
    try:
        with transaction(factory) as s:
            mine = record_batch(s, messages, KeyCache())
    finally:
        sa_event.remove(central_db.engine, "before_cursor_execute", race)
    assert other and other[0].accepted == 2
    assert (mine.accepted, mine.duplicates) == (2, 2)
    assert sorted(mine.held_event_ids) == sorted(e.event_id for e in events)
    with factory() as s:
        rows = s.execute(
            select(Violation.event_id, Violation.id).where(
                Violation.event_id.in_([e.event_id for e in events])
            )
        ).all()
        refs = s.scalars(
            select(EvidenceRefRow.violation_id).where(
                EvidenceRefRow.violation_id.in_([vid for _e, vid in rows])
            )
        ).all()
    assert len(rows) == 4
    assert len(refs) == sum(len(e.evidence) for e in events)


def test_the_place_a_node_names_for_its_camera_reaches_the_camera_list(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()

    def status(place: str | None) -> None:
        _camera_placed(central_db, node, place)

    def places() -> tuple[str, str, str | None]:
        [cam] = [
            c for c in api.get("/api/v1/cameras", headers=ioc).json() if c["site"] == node.site
        ]
        geo = api.get("/api/v1/cameras.geojson", headers=ioc).json()["features"]
        [feature] = [f["properties"] for f in geo if f["properties"]["site"] == node.site]
        shown = (cam["place"], cam["registered_place"], cam["node_place"])
        assert (feature["place"], feature["registered_place"], feature["node_place"]) == shown
        return shown

    ioc = accounts["ioc"].headers
    # Nothing set on central: the list shows the place the node's evidence prints.
    status("QL13 Km 22+300")
    assert places() == ("QL13 Km 22+300", "", "QL13 Km 22+300")
    # A place set on central is the one shown; the node's stays beside it, to compare.
    [cam] = [c for c in api.get("/api/v1/cameras", headers=ioc).json() if c["site"] == node.site]
    sup = accounts["supervisor"].headers
    set_here = "QL13 Km 22+300, Thuận An"
    patched = api.patch(
        f"/api/v1/cameras/{cam['id']}", headers=sup, json={"registered_place": set_here}
    )
    assert patched.status_code == 200
    assert (patched.json()["place"], patched.json()["node_place"]) == (set_here, "QL13 Km 22+300")
    status("QL13 Km 22+500")  # (the node's configuration changed)
    assert places() == (set_here, set_here, "QL13 Km 22+500")
    # Cleared on central, and named by no node: no place.
    cleared = {"registered_place": None}
    assert api.patch(f"/api/v1/cameras/{cam['id']}", headers=sup, json=cleared).is_success
    assert places() == ("QL13 Km 22+500", "", "QL13 Km 22+500")
    status(None)
    assert places() == ("", "", None)


def test_a_camera_read_and_written_back_keeps_its_node_place_apart(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A client that reads a camera and sends back its writable fields changes nothing:
    the node's place stays the node's (its later changes still show); the place shown is
    refused as a field to set, naming the one to use, and changes nothing either."""
    node = make_node()

    def status(place: str) -> None:
        _camera_placed(central_db, node, place)

    def read() -> dict[str, Any]:
        cams: list[dict[str, Any]] = api.get(
            "/api/v1/cameras", headers=accounts["ioc"].headers
        ).json()
        [cam] = [c for c in cams if c["site"] == node.site]
        return cam

    sup = accounts["supervisor"].headers
    status("QL13 Km 22+300")
    cam = read()
    writable = ("name", "registered_place", "latitude", "longitude")
    trail = api.get("/api/v1/audit", headers=sup).json()
    back = api.patch(
        f"/api/v1/cameras/{cam['id']}", headers=sup, json={k: cam[k] for k in writable}
    )
    assert back.status_code == 200, back.text
    assert api.get("/api/v1/audit", headers=sup).json() == trail  # (no change, no entry)
    assert read() == cam
    # The place shown, sent back as read (an older client): refused, nothing changed.
    for sent in ({"place": cam["place"]}, {"place": "QL13 Km 22+300, Thuận An"}):
        refused = api.patch(f"/api/v1/cameras/{cam['id']}", headers=sup, json=sent)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["detail"]
        assert (error["loc"], error["type"]) == (["body", "place"], "place_shown")
        assert "send registered_place" in error["msg"]
    assert read() == cam
    assert api.get("/api/v1/audit", headers=sup).json() == trail
    # The node's configuration changes: the camera shows its new place, as set nowhere else.
    status("QL13 Km 22+500")
    assert (read()["place"], read()["registered_place"]) == ("QL13 Km 22+500", "")
    # A place set on central is audited by the name it was sent with.
    here = {"registered_place": "QL13 Km 22+300, Thuận An"}
    assert api.patch(f"/api/v1/cameras/{cam['id']}", headers=sup, json=here).is_success
    [last] = api.get("/api/v1/audit", headers=sup, params={"limit": 1}).json()
    assert last["detail"] == {"camera_id": cam["id"], **here}
    assert (read()["place"], read()["node_place"]) == (here["registered_place"], "QL13 Km 22+500")


def test_registry_status_geojson_and_feed(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    status = NodeStatus(
        site=node.site,
        node=node.node,
        state=NodeState.ONLINE,
        sent_at=T0,
        cameras=[CameraHealth(camera="cam-01", state=CameraState.UP, fps=25.0)],
        **status_position(),
    )
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    with transaction(session_factory(central_db.engine)) as s:
        signed = Message(topic, to_wire(sign(status, node.key)))
        assert not record_batch(s, [signed], KeyCache()).quarantined
    ioc = accounts["ioc"].headers
    nodes = {(n["site"], n["node"]): n for n in api.get("/api/v1/nodes", headers=ioc).json()}
    assert nodes[(node.site, node.node)]["state"] == "online"
    assert nodes[(node.site, node.node)]["status"]["cameras"][0]["fps"] == 25.0
    cams = [c for c in api.get("/api/v1/cameras", headers=ioc).json() if c["site"] == node.site]
    assert [(c["camera"], c["state"]) for c in cams] == [("cam-01", "up")]
    r = api.patch(
        f"/api/v1/cameras/{cams[0]['id']}",
        headers=accounts["supervisor"].headers,
        json={"latitude": 10.9046, "longitude": 106.7047, "registered_place": "QL13 Km 22+300"},
    )
    assert r.status_code == 200
    assert (
        api.patch(
            f"/api/v1/cameras/{cams[0]['id']}",
            headers=accounts["supervisor"].headers,
            json={"latitude": 123.0},
        ).status_code
        == 422
    )
    sup = accounts["supervisor"].headers
    trail = api.get("/api/v1/audit", headers=sup).json()
    same = {"registered_place": "QL13 Km 22+300", "latitude": 10.9046, "longitude": 106.7047}
    nothing = api.patch(f"/api/v1/cameras/{cams[0]['id']}", headers=sup, json=same)
    assert nothing.status_code == 200 and nothing.json()["place"] == "QL13 Km 22+300"
    assert api.get("/api/v1/audit", headers=sup).json() == trail  # no entry for no change
    # One half of a position cleared, or given alone: refused, the camera unchanged (the
    # map shows a camera only with both; moving its pin north with the latitude alone is
    # one change).
    for half in ({"longitude": None}, {"latitude": None, "longitude": 106.7}):
        r = api.patch(f"/api/v1/cameras/{cams[0]['id']}", headers=sup, json=half)
        assert r.status_code == 422, r.text
        [error] = r.json()["detail"]
        assert error["loc"][-1] in ("latitude", "longitude")
        assert error["msg"].startswith("a map position needs both latitude and longitude")
    assert api.get("/api/v1/audit", headers=sup).json() == trail
    north = api.patch(f"/api/v1/cameras/{cams[0]['id']}", headers=sup, json={"latitude": 10.91})
    assert (north.json()["latitude"], north.json()["longitude"]) == (10.91, 106.7047)
    api.patch(f"/api/v1/cameras/{cams[0]['id']}", headers=sup, json={"latitude": 10.9046})
    trail = api.get("/api/v1/audit", headers=sup).json()
    geo = api.get("/api/v1/cameras.geojson", headers=ioc)
    assert geo.headers["content-type"].startswith("application/geo+json")
    feature = next(f for f in geo.json()["features"] if f["id"] == cams[0]["id"])
    assert feature["geometry"] == {"type": "Point", "coordinates": [106.7047, 10.9046]}
    # A position put in by mistake can be taken out again.
    cleared = api.patch(
        f"/api/v1/cameras/{cams[0]['id']}",
        headers=sup,
        json={"latitude": None, "longitude": None, "name": None},
    )
    assert cleared.status_code == 200
    assert (cleared.json()["latitude"], cleared.json()["longitude"]) == (None, None)
    assert cleared.json()["place"] == "QL13 Km 22+300" and cleared.json()["name"] == ""
    geo = api.get("/api/v1/cameras.geojson", headers=ioc).json()
    assert cams[0]["id"] not in [f["id"] for f in geo["features"] if f["geometry"] is not None]
    [last] = api.get("/api/v1/audit", headers=sup, params={"limit": 1}).json()
    assert last["action"] == "camera_update"
    # (its name was never set: clearing it is no change, so the entry leaves it out)
    assert last["detail"] == {"camera_id": cams[0]["id"], "latitude": None, "longitude": None}

    # Live feed, replayed from a point in time: a new violation, then the node's last will
    # turning its camera offline.
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    [vid] = store_events(central_db, node, [signed_event(node)])
    # (the will is signed at connect, the session's first: sequence 0)
    went = {"state": NodeState.OFFLINE, "cameras": [], "sequence": 0}
    will = sign(status.model_copy(update=went), node.key)
    with transaction(session_factory(central_db.engine)) as s:
        assert not record_batch(s, [Message(topic, to_wire(will))], KeyCache()).quarantined
    r = api.get(
        "/api/v1/feed",
        headers=ioc,
        params={
            "after_id": vid - 1,
            "since": since.isoformat(),
            "max_events": 3,
            "max_seconds": 5,
        },
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    kinds = [kind for _id, kind, _data in events]
    assert kinds[0] == "violation" and events[0][2]["id"] == vid
    assert "camera" in kinds and "node" in kinds
    camera_event = next(data for _id, kind, data in events if kind == "camera")
    assert camera_event["state"] == "offline" and camera_event["site"] == node.site
    assert events[-1][0] is not None  # (the poll's resume token)


@pytest.mark.parametrize("central_settings", EVIDENCE_STORES, indirect=True)
def test_evidence_upload(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    frame = b"\xff\xd8" + uuid.uuid4().bytes * 100
    clip = b"\x00\x00\x00\x18ftypmp42" + uuid.uuid4().bytes * 50
    refs = [
        EvidenceRef(
            role=EvidenceRole.FRAME_AT,
            media_type=MediaType.JPEG,
            sha256=hashlib.sha256(frame).hexdigest(),
            size=len(frame),
        ),
        EvidenceRef(
            role=EvidenceRole.CLIP,
            media_type=MediaType.MP4,
            sha256=hashlib.sha256(clip).hexdigest(),
            size=len(clip),
        ),
    ]
    [vid] = store_events(central_db, node, [signed_event(node, evidence=refs)])
    officer = accounts["officer"].headers

    def put(
        sha: str, body: bytes, media: str = "image/jpeg", headers: Any = None
    ) -> httpx.Response:
        h = {**(headers if headers is not None else node.headers), "Content-Type": media}
        r: httpx.Response = api.put(f"/api/v1/evidence/{sha}", content=body, headers=h)
        return r

    def complete() -> bool:
        return bool(
            api.get(f"/api/v1/violations/{vid}", headers=officer).json()["evidence_complete"]
        )

    frame_sha, clip_sha = refs[0].sha256, refs[1].sha256
    assert api.head(f"/api/v1/evidence/{frame_sha}", headers=node.headers).status_code == 404
    # refused, nothing stored
    assert put(frame_sha, frame + b"x").status_code == 400  # hash mismatch
    assert put("ABC", frame).status_code == 400  # not a sha256
    assert put(frame_sha, frame, media="text/html").status_code == 415
    big = b"\x00" * (64 * 1024 + 1)
    assert put(hashlib.sha256(big).hexdigest(), big).status_code == 413
    assert put(frame_sha, frame, headers={}).status_code == 401
    assert put(frame_sha, frame, headers={"Authorization": "Bearer rwn_forged"}).status_code == 401
    assert put(frame_sha, frame, headers=officer).status_code == 403
    assert api.head(f"/api/v1/evidence/{frame_sha}", headers=node.headers).status_code == 404
    store = api.app.state.central.store  # type: ignore[attr-defined]
    assert not store.exists(frame_sha) and not store.exists(hashlib.sha256(big).hexdigest())
    assert not complete()
    # stored, idempotent, complete when both are there
    r = put(frame_sha, frame)
    assert r.status_code == 201 and r.json()["completed_violations"] == []
    assert put(frame_sha, frame).status_code == 200
    assert api.head(f"/api/v1/evidence/{frame_sha}", headers=node.headers).status_code == 200
    assert not complete()
    r = put(clip_sha, clip, media="video/mp4")
    assert r.status_code == 201 and r.json()["completed_violations"] == [vid]
    assert complete()
    got = api.get(f"/api/v1/evidence/{clip_sha}", headers=officer)
    assert got.status_code == 200 and got.content == clip
    assert got.headers["content-type"] == "video/mp4"
    # Opened on its own, a blob is never taken for a page (nor run as one).
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
    detail = api.get(f"/api/v1/violations/{vid}", headers=officer).json()
    assert {e["role"]: e["arrived"] for e in detail["evidence"]} == {
        "clip": True,
        "frame_at": True,
    }
    # a later event listing blobs already stored is complete on arrival
    [vid2] = store_events(central_db, node, [signed_event(node, evidence=refs)])
    assert api.get(f"/api/v1/violations/{vid2}", headers=officer).json()["evidence_complete"]
    assert list(store.spool_dir.iterdir()) == []
    # A blob of another type, or of another size, than its signed event lists has not
    # arrived as listed: the case stays incomplete. A body that is not the type it is
    # sent as is refused and not stored.
    mp4 = b"\x00\x00\x00\x18ftypmp42"
    for body, media, extra, status in [
        (mp4, "video/mp4", 0, 201),
        (b"\xff\xd8", "image/jpeg", 7, 201),
        (b"\xff\xd8", "video/mp4", 0, 415),
        (mp4, "image/jpeg", 0, 415),
    ]:
        still = body + uuid.uuid4().bytes * 30
        listed = EvidenceRef(
            role=EvidenceRole.FRAME_AT,
            media_type=MediaType.JPEG,
            sha256=hashlib.sha256(still).hexdigest(),
            size=len(still) + extra,
        )
        [odd] = store_events(central_db, node, [signed_event(node, evidence=[listed])])
        r = put(listed.sha256, still, media=media)
        assert r.status_code == status, (media, r.text)
        if status == 201:
            assert r.json()["completed_violations"] == []
        else:
            assert f"the body is not {media}" in r.text and not store.exists(listed.sha256)
        case = api.get(f"/api/v1/violations/{odd}", headers=officer).json()
        assert not case["evidence_complete"] and not case["evidence"][0]["arrived"]


def _overwrite_stored(store: Any, sha256: str, data: bytes) -> None:
    """Change a stored blob behind the service's back, as a tampering hand or a failing
    disk would."""
    if isinstance(store, FilesystemStore):
        store.path(sha256).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.key(sha256), Body=data)


@pytest.mark.parametrize("central_settings", EVIDENCE_STORES, indirect=True)
def test_a_stored_blob_altered_in_the_store_is_not_served_and_its_node_can_mend_it(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    frame, listed = jpeg_blob()
    sha = listed.sha256
    [vid] = store_events(central_db, node, [signed_event(node, evidence=[listed])])
    officer = accounts["officer"].headers
    jpeg = {**node.headers, "Content-Type": "image/jpeg"}
    assert api.put(f"/api/v1/evidence/{sha}", content=frame, headers=jpeg).status_code == 201
    # A wrong body for a blob already stored is refused, as for a new one.
    wrong = api.put(f"/api/v1/evidence/{sha}", content=frame[:4] + frame[4:][::-1], headers=jpeg)
    assert wrong.status_code == 400 and "hashes to" in wrong.text
    store = api.app.state.central.store  # type: ignore[attr-defined]
    forged = frame.replace(b"\xff\xd8", b"\xff\xd9", 1)  # (the same size)
    _overwrite_stored(store, sha, forged)
    got = api.get(f"/api/v1/evidence/{sha}", headers=officer)
    assert got.status_code == 409 and got.json()["code"] == "evidence_damaged"
    assert forged not in got.content
    metrics = api.get("/metrics", headers=accounts["supervisor"].headers).text
    assert "roadwatch_evidence_damaged_total 1.0" in metrics
    # The node is told it is not stored, sends it again, and the sound copy is served.
    assert api.head(f"/api/v1/evidence/{sha}", headers=node.headers).status_code == 404
    again = api.put(f"/api/v1/evidence/{sha}", content=frame, headers=jpeg)
    assert again.status_code == 201 and again.json()["stored"] is True
    got = api.get(f"/api/v1/evidence/{sha}", headers=officer)
    assert got.status_code == 200 and got.content == frame
    assert api.head(f"/api/v1/evidence/{sha}", headers=node.headers).status_code == 200
    case = api.get(f"/api/v1/violations/{vid}", headers=officer).json()
    assert case["evidence_complete"] and case["evidence"][0]["arrived"]
    assert list(store.spool_dir.iterdir()) == []


@pytest.mark.parametrize("central_settings", EVIDENCE_STORES, indirect=True)
def test_no_decision_stands_on_evidence_damaged_in_the_store(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A stored frame overwritten behind the service: nobody could see what a confirmation
    or a notice would stand on, so neither is taken until the node sends it again."""
    node = make_node()
    frame, listed = jpeg_blob()
    [vid] = store_events(central_db, node, [signed_event(node, evidence=[listed])])
    jpeg = {**node.headers, "Content-Type": "image/jpeg"}
    path = f"/api/v1/evidence/{listed.sha256}"
    assert api.put(path, content=frame, headers=jpeg).status_code == 201
    store = api.app.state.central.store  # type: ignore[attr-defined]
    _overwrite_stored(store, listed.sha256, frame.replace(b"\xff\xd8", b"\xff\xd9", 1))
    sup, sup2 = accounts["supervisor"], accounts["supervisor2"]
    assert _act(api, sup, vid, "start_review", 1).status_code == 200
    refused = _act(api, sup, vid, "confirm", 2)
    assert refused.status_code == 409 and refused.json()["code"] == "evidence_damaged"
    assert "frame_at" in refused.json()["detail"]
    assert api.get(f"/api/v1/violations/{vid}", headers=sup.headers).json()["status"] == (
        "in_review"
    )
    assert api.put(path, content=frame, headers=jpeg).status_code == 201  # mended
    assert _act(api, sup, vid, "confirm", 2).status_code == 200
    _overwrite_stored(store, listed.sha256, frame[:-1] + bytes([frame[-1] ^ 0xFF]))
    notice = _act(api, sup2, vid, "issue_notice", 3)
    assert notice.status_code == 409 and notice.json()["code"] == "evidence_damaged"
    assert api.put(path, content=frame, headers=jpeg).status_code == 201  # mended
    if isinstance(store, FilesystemStore):  # and then lost (a disk, a bucket's lifecycle)
        store.path(listed.sha256).unlink()
    else:
        store.client.delete_object(Bucket=store.bucket, Key=store.key(listed.sha256))
    notice = _act(api, sup2, vid, "issue_notice", 3)
    assert notice.status_code == 409 and "is gone from the store" in notice.json()["detail"]
    assert api.put(path, content=frame, headers=jpeg).status_code == 201
    assert _act(api, sup2, vid, "issue_notice", 3).status_code == 200


def test_an_upload_cut_off_midway_is_a_400_and_stores_nothing(
    api: TestClient, make_node: Callable[..., NodeIdentity]
) -> None:
    import asyncio

    node = make_node()
    blob = b"\xff\xd8" + uuid.uuid4().bytes * 64
    sha = hashlib.sha256(blob).hexdigest()
    path = f"/api/v1/evidence/{sha}"
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": blob[:100], "more_body": True},
        {"type": "http.disconnect"},  # the node's link drops
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"), (b"content-type", b"image/jpeg"),
            *((k.lower().encode(), v.encode()) for k, v in node.headers.items()),
        ],
    }  # fmt: skip
    asyncio.run(api.app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    store = api.app.state.central.store  # type: ignore[attr-defined]
    assert not store.exists(sha) and list(store.spool_dir.iterdir()) == []
    assert api.head(path, headers=node.headers).status_code == 404


def test_metrics_token(api: TestClient, accounts: dict[str, Account]) -> None:
    assert api.get("/metrics").status_code == 401
    r = api.get("/metrics", headers=accounts["ioc"].headers)
    assert r.status_code == 200 and "roadwatch_http_request_seconds" in r.text


def test_roles_in_tokens_follow_the_user_record(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    admin = accounts["admin"].headers
    name = f"tmp{uuid.uuid4().hex[:8]}"
    r = api.post(
        "/api/v1/users", headers=admin, json={"username": name, "password": "x" * 12, "role": "ioc"}
    )
    assert r.status_code == 201
    assert (
        api.post(
            "/api/v1/users",
            headers=admin,
            json={"username": name, "password": "x" * 12, "role": "ioc"},
        ).status_code
        == 409
    )
    assert (
        api.post(
            "/api/v1/users",
            headers=admin,
            json={"username": "x", "password": "short", "role": "node"},
        ).status_code
        == 422
    )
    login = api.post("/api/v1/auth/token", data={"username": name, "password": "x" * 12}).json()
    h = {"Authorization": f"Bearer {login['access_token']}"}
    assert api.get("/api/v1/stats/violations", headers=h).status_code == 200
    assert Role.IOC.value == login["role"]
    # A refresh carries the role the record has now.
    assert api.patch(f"/api/v1/users/{name}", headers=admin, json={"role": "officer"}).is_success
    fresh = api.post("/api/v1/auth/refresh", headers=h).json()
    assert fresh["role"] == "officer" and fresh["expires_in"] > 0
    h2 = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert api.get("/api/v1/review/queue", headers=h2).status_code == 200
    assert (
        api.patch(f"/api/v1/users/{name}", headers=admin, json={"active": False}).status_code == 200
    )
    assert api.get("/api/v1/stats/violations", headers=h).status_code == 401
    assert api.post("/api/v1/auth/refresh", headers=h2).status_code == 401


def test_cases_held_by_a_user_who_can_no_longer_review_go_back_to_the_queue(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    # A disabled officer's cases in review stayed held by the account: every other
    # officer was refused them ("being reviewed by ..."), until a supervisor found and
    # released each one by hand.
    admin, officer2 = accounts["admin"], accounts["officer2"]
    node = make_node()
    held = store_events(central_db, node, [signed_event(node) for _ in range(3)])
    users = {}
    for role in ("officer", "supervisor"):
        headers = _throwaway_session(api, admin, role)
        users[role] = api.get("/api/v1/auth/me", headers=headers).json()["username"]
        for vid in held[:2] if role == "officer" else held[2:]:
            r = api.post(f"/api/v1/violations/{vid}/review", headers=headers,
                         json={"action": "start_review", "version": 1})  # fmt: skip
            assert r.status_code == 200, r.text
    refused = _act(api, officer2, held[0], "reject", 2, reason="biển số bị che")
    assert refused.json()["code"] == "not_reviewer"

    # A change of name leaves the cases held; a disabled account, or one made ioc, not.
    r = api.patch(f"/api/v1/users/{users['officer']}", headers=admin.headers,
                  json={"full_name": "Nguyễn An"})  # fmt: skip
    assert r.status_code == 200
    assert api.get(f"/api/v1/violations/{held[0]}", headers=admin.headers).json()["reviewer"]
    r = api.patch(f"/api/v1/users/{users['officer']}", headers=admin.headers,
                  json={"active": False})  # fmt: skip
    assert r.status_code == 200
    r = api.patch(f"/api/v1/users/{users['supervisor']}", headers=admin.headers,
                  json={"role": "ioc"})  # fmt: skip
    assert r.status_code == 200
    for vid in held:
        case = api.get(f"/api/v1/violations/{vid}", headers=admin.headers).json()
        assert (case["status"], case["reviewer"], case["record_problems"]) == ("new", None, [])
        [*_, release] = api.get(f"/api/v1/violations/{vid}/audit", headers=admin.headers).json()
        assert (release["actor"], release["action"]) == (admin.username, "release")
        assert release["detail"]["from"] == "in_review" and release["detail"]["to"] == "new"
        assert "can no longer review" in release["detail"]["reason"]
    assert _act(api, officer2, held[0], "start_review", 3).status_code == 200
    assert api.get("/api/v1/audit/verify", headers=admin.headers).json()["ok"] is True


def test_a_renewed_session_still_ends_when_its_log_in_is_too_old(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    import time

    from central.security import decode_access_token

    who = accounts["officer"]
    signed_in = time.time() - 11 * 3600  # (the default longest session is 12 h)
    token = issue_access_token(who.username, who.role, SECRET, 15, signed_in_at=signed_in)
    r = api.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    renewed = decode_access_token(r.json()["access_token"], SECRET)
    assert renewed is not None and renewed.signed_in_at == int(signed_in)  # carried on
    stale = issue_access_token(who.username, who.role, SECRET, 15,
                               signed_in_at=time.time() - 13 * 3600)  # fmt: skip
    r = api.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {stale}"})
    assert r.status_code == 401 and "log in again" in r.json()["detail"]
    # (the token itself still works until it expires: only its renewal is refused)
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stale}"}).is_success


def test_migrations_match_the_models(central_db: CentralDb) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from central.models import Base
    from central.partitions import layout_filter

    with central_db.engine.connect() as conn:
        # PostgreSQL's monthly partitions of violations are compared in test_central_partitions.
        context = MigrationContext.configure(
            conn, opts={"include_object": layout_filter(conn.dialect.name)}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_upgrading_to_node_keys_keeps_each_registered_nodes_key(tmp_path: Path) -> None:
    """Migration 0007 gives every node registered before it its key as its first."""
    from alembic import command
    from sqlalchemy import create_engine

    from central.db import alembic_config
    from central.models import NodeKey

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0006_audit_no_truncate")
    key = generate_private_key().public_key()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO nodes (site, node, public_key_pem, token_hash, created_at,"
                    " state, updated_at) VALUES ('s1', 'n1', :pem, :token, :at, 'unknown', :at)"
                ),
                {"pem": public_key_pem(key).decode(), "token": "t" * 64, "at": T0},
            )
        command.upgrade(cfg, "head")
        with session_factory(engine)() as session:
            [row] = session.scalars(select(NodeKey)).all()
            assert row.fingerprint == key_fingerprint(key) and row.revoked_at is None
            assert row.added_at == T0
    finally:
        engine.dispose()


def test_known_events_answers_only_for_the_calling_node(
    api: TestClient, central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    node = make_node()
    other = make_node()
    mine = [signed_event(node) for _ in range(3)]
    theirs = signed_event(other)
    store_events(central_db, node, mine[:2])
    store_events(central_db, other, [theirs])
    asked = [e.event_id for e in mine] + [theirs.event_id]
    r = api.post("/api/v1/events/known", json={"event_ids": asked}, headers=node.headers)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["known"]) == sorted(e.event_id for e in mine[:2])
    too_many = {"event_ids": [new_event_id() for _ in range(1001)]}
    assert api.post("/api/v1/events/known", json=too_many, headers=node.headers).status_code == 422
    bad = {"event_ids": ["not-an-id"]}
    assert api.post("/api/v1/events/known", json=bad, headers=node.headers).status_code == 422


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_central(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TestClient, CentralDb]]:
    """An API over a database of its own (no other test's accounts in it)."""
    with migrated_database(request.param, tmp_path) as db:
        broker = mqtt_address()
        settings = Settings(
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            database_url=db.url,
            data_dir=tmp_path,
            secret_key=SECRET,
        )
        with TestClient(create_app(settings, engine=db.engine)) as client:
            yield client, db


def test_the_last_active_admin_stays_one(empty_central: tuple[TestClient, CentralDb]) -> None:
    api, db = empty_central
    with transaction(session_factory(db.engine)) as session:
        create_user(session, username="admin.one", password=PASSWORD, role=Role.ADMIN)
    one = {"Authorization": f"Bearer {issue_access_token('admin.one', Role.ADMIN, SECRET, 15)}"}
    for change in ({"role": "officer"}, {"active": False}, {"role": "ioc", "active": True}):
        r = api.patch("/api/v1/users/admin.one", headers=one, json=change)
        assert r.status_code == 409 and "last active admin" in r.text, change
        assert _worded(r) == "last_admin" and r.json()["params"] == {"user": "admin.one"}
    trail = api.get("/api/v1/audit", headers=one).json()
    assert api.patch("/api/v1/users/admin.one", headers=one, json={}).status_code == 200
    assert api.get("/api/v1/audit", headers=one).json() == trail  # nothing changed
    two = {"username": "admin.two", "password": PASSWORD, "role": "admin"}
    assert api.post("/api/v1/users", headers=one, json=two).status_code == 201
    again = api.post("/api/v1/users", headers=one, json=two)
    assert again.status_code == 409 and _worded(again) == "user_exists"
    r = api.patch("/api/v1/users/admin.one", headers=one, json={"role": "supervisor"})
    assert r.status_code == 200 and r.json()["role"] == "supervisor"
    r = api.patch("/api/v1/users/admin.two", headers=one, json={"active": False})
    assert r.status_code == 403  # admin.one is an admin no longer
    with session_factory(db.engine)() as session:
        roles = {name: role for name, role in session.execute(select(User.username, User.role))}
    assert roles == {"admin.one": "supervisor", "admin.two": "admin"}


def _case_with_a_frame(
    api: TestClient, db: CentralDb, node: NodeIdentity
) -> tuple[int, bytes, EvidenceRef]:
    """A case of ``node`` listing one frame, the frame uploaded as the node does."""
    frame, listed = jpeg_blob()
    [vid] = store_events(db, node, [signed_event(node, evidence=[listed])])
    jpeg = {**node.headers, "Content-Type": "image/jpeg"}
    assert api.put(f"/api/v1/evidence/{listed.sha256}", content=frame, headers=jpeg).is_success
    return vid, frame, listed


@pytest.mark.parametrize("central_settings", ["s3"], indirect=True)
def test_a_view_of_evidence_in_s3_downloads_it_once_and_serves_the_bytes_it_checked(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check against the sha256 and the download served are one read of the object
    (a large clip is kept in a nameless file in the spool folder meanwhile)."""
    node = make_node()
    _vid, frame, listed = _case_with_a_frame(api, central_db, node)
    store = api.app.state.central.store  # type: ignore[attr-defined]
    downloads: list[str] = []
    get_object = store.client.get_object

    def counted(**kwargs: Any) -> Any:
        downloads.append(kwargs["Key"])
        return get_object(**kwargs)

    store.client.get_object = counted
    officer = accounts["officer"].headers
    for in_memory in (1 << 20, 16):  # in memory, then spilled to the spool folder
        monkeypatch.setattr("central.evidence_s3.SPOOL_IN_MEMORY", in_memory)
        got = api.get(f"/api/v1/evidence/{listed.sha256}", headers=officer)
        assert got.status_code == 200 and got.content == frame
    assert downloads == [store.key(listed.sha256)] * 2
    assert list(store.spool_dir.iterdir()) == []


def _rezip(source: Path, target: Path, change: Callable[[str, bytes], bytes]) -> None:
    """A copy of the package at ``source`` with each member passed through ``change``."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, change(info.filename, old.read(info)))


@pytest.mark.parametrize("central_settings", EVIDENCE_STORES, indirect=True)
def test_an_exported_case_checks_out_without_central_and_tampering_shows(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    case_key: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A case exported for a court: the signed event, the node's key, the evidence on file,
    the audit trail and a manifest signed by central, checked by `roadwatch verify` with
    the node's and central's keys. Evidence not yet arrived is named and fails the check;
    altered evidence, an altered event and a wrong key each fail it; the export is in the
    case's audit trail."""
    from roadwatch.case_package import verify_package
    from roadwatch.cli import main

    node = make_node()
    frame, frame_ref = jpeg_blob()
    before, before_ref = jpeg_blob()
    before_ref = before_ref.model_copy(update={"role": EvidenceRole.FRAME_BEFORE})
    clip = b"\x00\x00\x00\x18ftypmp42" + uuid.uuid4().bytes * 300
    clip_ref = EvidenceRef(
        role=EvidenceRole.CLIP, media_type=MediaType.MP4,
        sha256=hashlib.sha256(clip).hexdigest(), size=len(clip),
    )  # fmt: skip
    event = signed_event(node, evidence=[frame_ref, before_ref, clip_ref])
    [vid] = store_events(central_db, node, [event])
    for body, media in ((frame, "image/jpeg"), (clip, "video/mp4")):
        sha = hashlib.sha256(body).hexdigest()
        put = api.put(
            f"/api/v1/evidence/{sha}", content=body, headers={**node.headers, "Content-Type": media}
        )
        assert put.status_code == 201, put.text
    officer = accounts["officer"].headers
    r = api.post(
        f"/api/v1/violations/{vid}/review", headers=officer,
        json={"action": "start_review", "version": 1},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    key = tmp_path / "node.pub"
    key.write_bytes(public_key_pem(node.key.public_key()))

    def export(name: str) -> Path:
        got = api.post(f"/api/v1/violations/{vid}/export", headers=officer)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/zip"
        assert got.headers["x-package-sha256"] == hashlib.sha256(got.content).hexdigest()
        path = tmp_path / name
        path.write_bytes(got.content)
        return path

    def failures(
        path: Path, pem: bytes | None = None, central_pem: bytes | None = None
    ) -> dict[str, str]:
        report = verify_package(path, pem or key.read_bytes(), central_pem or case_key.read_bytes())
        return {c.what: c.detail for c in report.checks if not c.ok}

    first = export("first.zip")
    assert failures(first) == {"evidence frame_before": "missing: it has not arrived at central"}
    before_put = api.put(
        f"/api/v1/evidence/{before_ref.sha256}", content=before,
        headers={**node.headers, "Content-Type": "image/jpeg"},
    )  # fmt: skip
    assert before_put.status_code == 201
    whole = export("whole.zip")
    assert failures(whole) == {}
    assert main(["verify", str(whole), "--key", str(key), "--central-key", str(case_key)]) == 0
    out = capsys.readouterr().out
    assert "the package checks out" in out and event.event_id in out
    # Under review, not confirmed: the reader is told it is no finding of a violation.
    assert f"case {vid} at central: in_review" in out
    assert "NOTE: this case is in_review, not confirmed by an officer" in out
    assert "OK   audit trail: 2 entries, each hashing to its own hash: start_review, export" in out
    assert "OK   central's signature: the manifest, and through it the audit trail" in out

    # A clip altered after the export, an event altered, another node's key: each fails.
    altered = tmp_path / "altered.zip"
    # (its last byte flipped: set to a fixed value, it was the same byte once in 256 runs)
    _rezip(whole, altered, lambda n, b: b[:-1] + bytes([b[-1] ^ 0xFF]) if n.endswith(".mp4") else b)
    assert set(failures(altered)) == {"evidence clip", "manifest"}
    plate = event.plate.text if event.plate else ""
    forged = tmp_path / "forged.zip"
    _rezip(
        whole,
        forged,
        lambda n, b: b.replace(plate.encode(), b"51F-999.99") if n == "event.json" else b,
    )
    assert "signature" in failures(forged)
    other = public_key_pem(generate_private_key().public_key())
    assert "signature does not match" in failures(whole, other)["signature"]
    assert set(failures(whole, central_pem=other)) == {"central's signature"}
    assert main(["verify", str(forged), "--key", str(key)]) == 1
    capsys.readouterr()
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert main(["verify", str(tmp_path / "junk.zip")]) == 2
    assert "not a case package" in capsys.readouterr().err

    # The exports are in the case's trail, and move nothing: the case is as it was.
    trail = api.get(f"/api/v1/violations/{vid}/audit", headers=officer).json()
    exports = [e for e in trail if e["action"] == "export"]
    assert len(exports) == 2
    assert exports[-1]["detail"]["package_sha256"] == hashlib.sha256(whole.read_bytes()).hexdigest()
    case = api.get(f"/api/v1/violations/{vid}", headers=officer).json()
    assert case["status"] == "in_review" and case["record_problems"] == []
    assert (
        api.post(f"/api/v1/violations/{vid}/export", headers=accounts["ioc"].headers).status_code
        == 403
    )
    assert api.post("/api/v1/violations/999999999/export", headers=officer).status_code == 404


def test_an_export_reads_the_evidence_holding_no_database_lock(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    case_key: Path,
) -> None:
    """While an export reads a (slow) store, the ingest and reviews go on writing."""
    node = make_node()
    vid, _frame, _listed = _case_with_a_frame(api, central_db, node)
    store = api.app.state.central.store  # type: ignore[attr-defined]
    read = store.read
    wrote: list[int] = []

    def meanwhile(sha256: str) -> Any:
        # Another writer, as the ingest would be, while the export reads the blob.
        wrote.extend(store_events(central_db, node, [signed_event(node)]))
        return read(sha256)

    store.read = meanwhile
    got = api.post(f"/api/v1/violations/{vid}/export", headers=accounts["officer"].headers)
    assert got.status_code == 200, got.text
    assert len(wrote) == 1


def test_without_centrals_case_signing_key_nothing_is_exported_nor_audited(
    api: TestClient,
    central_db: CentralDb,
    central_settings: Settings,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    vid, _frame, _listed = _case_with_a_frame(api, central_db, node)
    officer = accounts["officer"].headers
    got = api.post(f"/api/v1/violations/{vid}/export", headers=officer)
    assert got.status_code == 503
    assert got.json()["code"] == "no_case_key"
    assert "roadwatch central case keygen" in got.json()["detail"]
    trail = api.get(f"/api/v1/violations/{vid}/audit", headers=officer).json()
    assert [e for e in trail if e["action"] == "export"] == []
    # A file that is not a key, a key kept under a passphrase, another kind of key: the
    # same refusal, saying why.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    locked = generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"a passphrase"),
    )
    ecdsa = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for content in (b"not a key", locked, ecdsa):
        central_settings.resolved_case_key.write_bytes(content)
        got = api.post(f"/api/v1/violations/{vid}/export", headers=officer)
        assert got.status_code == 503, got.text
        assert got.json()["code"] == "no_case_key"
        assert "cannot load the case-signing key" in got.json()["detail"]


def test_a_case_exported_from_the_command_line(
    api: TestClient,
    central_db: CentralDb,
    central_settings: Settings,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`central case keygen` once, then `central case export`: the same signed package as
    the case page's button, audited as the command line's; never written over."""
    from roadwatch.case_package import verify_package
    from roadwatch.cli import main

    monkeypatch.setenv("ROADWATCH_DATABASE_URL", central_db.url)
    monkeypatch.setenv("ROADWATCH_DATA_DIR", str(central_settings.data_dir))
    node = make_node()
    vid, _frame, _listed = _case_with_a_frame(api, central_db, node)
    out = tmp_path / "court"
    out.mkdir()
    export = ["central", "case", "export", "--id", str(vid), "--out", str(out)]
    assert main(export) == 2
    assert "roadwatch central case keygen" in capsys.readouterr().err
    assert list(out.iterdir()) == []

    assert main(["central", "case", "keygen"]) == 0
    assert "case-signing.pub" in capsys.readouterr().out
    assert main(["central", "case", "keygen"]) == 2  # never overwritten
    capsys.readouterr()
    assert main(export) == 0
    said = capsys.readouterr().out
    package = out / f"case-{vid}.zip"
    assert f"wrote {package}" in said
    pub_path = central_settings.resolved_case_key.with_suffix(".pub")
    # The hint names central's .pub where it is (DATA_DIR), not a bare name beside the caller.
    assert f"roadwatch verify {package} --central-key {pub_path}" in said
    central_pub = pub_path.read_bytes()
    report = verify_package(package, public_key_pem(node.key.public_key()), central_pub)
    assert report.ok, [c for c in report.checks if not c.ok]
    trail = api.get(f"/api/v1/violations/{vid}/audit", headers=accounts["officer"].headers)
    [entry] = [e for e in trail.json() if e["action"] == "export"]
    assert entry["actor"] == f"cli:{getpass.getuser()}"  # (who ran it, as the system knows)
    assert entry["detail"]["package_sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()

    assert package.stat().st_mode & 0o777 == 0o644  # (readable by whoever hands it on)

    assert main(export) == 2  # the file is there: not written over
    assert "exists" in capsys.readouterr().err
    assert main(["central", "case", "export", "--id", "999999999", "--out", str(tmp_path)]) == 2
    assert "no case 999999999" in capsys.readouterr().err
    for bad_out, said in ((tmp_path / "newdir", "a file name ending in .zip"),
                          (tmp_path / "gone" / "case.zip", "cannot write in")):  # fmt: skip
        assert main([*export[:-1], str(bad_out)]) == 2
        assert said in capsys.readouterr().err
    # A filesystem without hard links (a USB stick's FAT): created anew, still never over.
    import errno

    def no_links(*_a: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    assert main([*export[:-1], str(out / "on-a-stick.zip")]) == 0
    capsys.readouterr()
    stick = verify_package(out / "on-a-stick.zip", central_key=central_pub)
    assert stick.ok and stick.origin_proven
    assert main([*export[:-1], str(out / "on-a-stick.zip")]) == 2
    assert "exists" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", central_db.url)
    monkeypatch.setenv("ROADWATCH_DATA_DIR", str(central_settings.data_dir))
    # The audit trail refuses the entry: the file written is taken back.
    import central.case_export

    def refused(*_a: object, **_k: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(central.case_export, "record_export", refused)
    with pytest.raises(RuntimeError, match="went away"):
        main([*export[:-1], str(out / "again.zip")])
    names = sorted(p.name for p in out.iterdir())
    assert names == [package.name, "on-a-stick.zip"]  # (no partial file either)


def test_one_key_added_to_two_nodes_at_once_is_taken_once(
    central_db: CentralDb, make_node: Callable[..., NodeIdentity]
) -> None:
    """Two admins add the same key to two nodes at the same moment: the second waits for
    the first to commit, then is refused (each node has its own key). Without the wait,
    each check would miss the other's key, still uncommitted, and both would be taken."""
    import threading

    from central.records import RegistryConflictError

    first, second = make_node(), make_node()
    pem = public_key_pem(generate_private_key().public_key()).decode("ascii")
    factory = session_factory(central_db.engine)
    outcome: list[object] = []
    started = threading.Event()

    def add_second() -> None:
        started.set()
        try:
            with transaction(factory) as s:
                add_node_key(s, site=second.site, node=second.node, public_key_pem=pem)
            outcome.append("taken")
        except RegistryConflictError as exc:
            outcome.append(exc.code)

    with transaction(factory) as s:
        add_node_key(s, site=first.site, node=first.node, public_key_pem=pem)
        other = threading.Thread(target=add_second)
        other.start()
        started.wait(5)
        other.join(0.5)  # (it waits for this transaction; without the lock it would finish)
    other.join(30)
    assert not other.is_alive()
    assert outcome == ["key_taken"]


def test_a_node_key_rotated_and_revoked(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A node gets a new key: what either key signs is taken. Its old key is revoked: what
    that key signs from then on is quarantined as revoked_key, the cases it signed before
    stand, and the new key goes on working. A key revoked from a time past (it leaked):
    the cases central received since are flagged and cannot be confirmed. Each change is
    in the audit log."""
    from central.models import Quarantine

    node = make_node()
    admin = accounts["admin"].headers
    keys_url = f"/api/v1/nodes/{node.site}/{node.node}/keys"
    old = key_fingerprint(node.key.public_key())
    [before] = store_events(central_db, node, [signed_event(node)])
    new_key = generate_private_key()
    new_pem = public_key_pem(new_key.public_key()).decode("ascii")
    r = api.post(keys_url, headers=admin, json={"public_key_pem": new_pem})
    assert r.status_code == 201, r.text
    new = r.json()["fingerprint"]
    assert new == key_fingerprint(new_key.public_key())

    def refused(url: str, body: dict[str, str]) -> tuple[int, str]:
        """The status and the code the page words the refusal by."""
        got = api.post(url, headers=admin, json=body)
        return got.status_code, got.json().get("code", "")

    assert refused(keys_url, {"public_key_pem": new_pem}) == (409, "key_taken")
    again = api.post(keys_url, headers=admin, json={"public_key_pem": new_pem}).json()
    assert again["params"] == {"key": new[:16], "node": f"{node.site}/{node.node}"}
    assert refused(keys_url, {"public_key_pem": "-----BEGIN x"}) == (422, "invalid_key")
    missing = "/api/v1/nodes/nosuchsite/n1/keys"
    assert refused(missing, {"public_key_pem": new_pem}) == (404, "node_unknown")

    rotated = NodeIdentity(node.site, node.node, new_key, node.token)
    taken = store_events(central_db, node, [signed_event(rotated), signed_event(node)])
    assert len(taken) == 2  # both keys are in force

    revoke = f"{keys_url}/{old[:16]}/revoke"
    assert refused(revoke, {"reason": " "})[0] == 422  # (the schema's: the page asks first)
    # A reason the schema takes (not blank to it) that is blank once trimmed.
    assert refused(revoke, {"reason": "\x1c"}) == (422, "revoke_reason_required")
    unknown = f"{keys_url}/{'0' * 16}/revoke"
    assert refused(unknown, {"reason": "lost"}) == (404, "key_unknown")
    r = api.post(revoke, headers=admin, json={"reason": "box stolen from its cabinet"})
    assert r.status_code == 200, r.text
    assert r.json()["fingerprint"] == old and r.json()["revoked_at"]
    assert refused(revoke, {"reason": "twice"}) == (409, "key_revoked_already")
    listed = {k["fingerprint"]: k for k in api.get(keys_url, headers=admin).json()}
    assert listed[old]["revoke_reason"] == "box stolen from its cabinet"
    assert listed[new]["revoked_at"] is None

    stolen = signed_event(node)
    with transaction(session_factory(central_db.engine)) as session:
        result = record_batch(
            session,
            [Message(node.topic(), to_wire(e)) for e in (stolen, signed_event(rotated))],
            KeyCache(),
        )
    assert result.quarantined == {"revoked_key": 1} and len(result.new_violation_ids) == 1
    with central_db.session() as s:
        code, reason = s.execute(
            select(Quarantine.reason_code, Quarantine.reason).where(
                Quarantine.payload == to_wire(stolen)
            )
        ).one()
    assert code == "revoked_key" and "box stolen" in reason
    officer = accounts["officer"].headers
    case = api.get(f"/api/v1/violations/{before}", headers=officer).json()
    assert case["record_problems"] == []  # received before the revocation: it stands

    # The new key leaked too, since before a case it signed came: that case is flagged.
    [leaked] = store_events(central_db, node, [signed_event(rotated)])
    with central_db.session() as s:
        received = s.scalar(select(Violation.received_at).where(Violation.id == leaked))
    assert received is not None
    since = (received - timedelta(seconds=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    revoke_new = f"{keys_url}/{new}/revoke"
    assert refused(revoke_new, {"reason": "leaked", "since": future}) == (
        422, "revoke_since_ahead",
    )  # fmt: skip
    for outside in ("0001-01-01T00:30:00+01:00", "2026-11-23T07:00:00", "1764000000"):
        got = api.post(revoke_new, headers=admin, json={"reason": "leaked", "since": outside})
        assert got.status_code == 422, (outside, got.text)  # (the key stays in force)
    r = api.post(revoke_new, headers=admin, json={"reason": "leaked", "since": since})
    assert r.status_code == 200, r.text
    case = api.get(f"/api/v1/violations/{leaked}", headers=officer).json()
    assert any("revoked since" in p for p in case["record_problems"]), case["record_problems"]
    for action, version in (("start_review", 1), ("confirm", 2)):
        r = api.post(
            f"/api/v1/violations/{leaked}/review", headers=officer,
            json={"action": action, "version": version},
        )  # fmt: skip
    assert r.status_code == 409 and r.json()["code"] == "record_altered"
    assert api.get(f"/api/v1/violations/{before}", headers=officer).json()["record_problems"] == []
    trail = api.get("/api/v1/audit", headers=admin, params={"actor": accounts["admin"].username})
    actions = [(e["action"], e["detail"].get("fingerprint")) for e in trail.json()]
    assert ("node_key_add", new) in actions and ("node_key_revoke", old) in actions


def test_a_refused_password_is_never_echoed_back(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    """A 422 names what was wrong and echoes the input, as for any field, but never a
    password: the answer lands in logs, proxies and the browser's console."""
    admin = accounts["admin"].headers
    secret = "hunter2"
    for path, method, body in [
        ("/api/v1/users", "post", {"username": "new.user", "password": secret, "role": "ioc"}),
        ("/api/v1/users", "post", {"username": "x", "password": secret * 2, "role": "nobody"}),
        ("/api/v1/users", "post", {"password": secret * 2, "role": "ioc", "extra": 1}),
        ("/api/v1/users/officer", "patch", {"password": secret}),
        ("/api/v1/users/officer", "patch", {"password": secret * 2, "active": "maybe"}),
    ]:
        r = api.request(method, path, headers=admin, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert secret not in r.text, r.text
        assert r.json()["detail"], r.text  # (still says what was wrong, and where)
    r = api.post(
        "/api/v1/users", headers=admin,
        json={"username": "new.user", "password": secret, "role": "ioc"},
    )  # fmt: skip
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "password"] and error["input"] == "(hidden)"


@pytest.mark.parametrize(
    ("route", "query", "name"),
    [
        ("/api/v1/stats/traffic", "utc_offset=+07:00", "utc_offset"),
        ("/api/v1/stats/violations", "by=day&utc_offset=+05:30", "utc_offset"),
        ("/api/v1/stats/traffic", "from=2026-11-23T00:00:00+07:00", "from"),
        ("/api/v1/violations", "to=2026-11-23T00:00:00.5+07:00", "to"),
        ("/api/v1/feed", "since=2026-11-23T00:00+07:00", "since"),
    ],
)
def test_a_plus_sent_unencoded_in_a_query_is_named_as_the_mistake(
    api: TestClient, accounts: dict[str, Account], route: str, query: str, name: str
) -> None:
    """A "+" typed into a query string as it is arrives as a space (form encoding): the 422
    says to send it as %2B, rather than that the pattern or the date does not match."""
    r = api.get(f"{route}?{query}", headers=accounts["ioc"].headers)
    assert r.status_code == 422, r.text
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["query", name]
    assert "%2B" in problem["msg"], problem["msg"]


def test_statistics_for_a_site_or_camera_never_heard_of_say_so(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Callable[..., NodeIdentity],
) -> None:
    """A mistyped camera or site is a 404 naming it, not an empty answer that reads as a
    quiet road; a camera central has heard of (from its node's status, or only from what
    it recorded) with nothing in the range is an empty answer, as before."""
    node = make_node()
    minute = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    store_traffic_minute(central_db, node, minute)  # (cam-01: recorded, no status)
    store_events(central_db, node, [signed_event(node, camera="cam-a", occurred_at=minute)])
    h = accounts["ioc"].headers
    typo = f"cam-{uuid.uuid4().hex[:8]}"
    nowhere = f"site-{uuid.uuid4().hex[:8]}"
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}  # (nothing in it)
    for route, params, named in [
        ("/api/v1/stats/traffic", {"camera": typo}, typo),
        ("/api/v1/stats/traffic", {"site": nowhere}, nowhere),
        ("/api/v1/stats/traffic", {"site": nowhere, "camera": "cam-01"}, nowhere),
        ("/api/v1/stats/violations", {"by": "type", "camera": typo}, typo),
        ("/api/v1/stats/violations", {"by": "day", "site": nowhere, **window}, nowhere),
    ]:
        r = api.get(route, headers=h, params=params)
        assert r.status_code == 404, (route, params, r.text)
        assert named in r.json()["detail"] and "/api/v1/cameras" in r.json()["detail"]
    for route, params in [
        ("/api/v1/stats/traffic", {"site": node.site, "camera": "cam-01", **window}),
        ("/api/v1/stats/traffic", {"camera": "cam-01", **window}),
        ("/api/v1/stats/violations", {"by": "hour", "camera": "cam-a", **window}),
        ("/api/v1/stats/violations", {"by": "type", "site": node.site, **window}),
    ]:
        r = api.get(route, headers=h, params=params)
        assert r.status_code == 200, (route, params, r.text)
        body = r.json()
        assert body.get("buckets", body.get("counts")) == [], (route, params)


def test_a_node_registered_through_the_api_is_given_its_broker_login(
    api: TestClient, accounts: dict[str, Account], central_db: CentralDb
) -> None:
    """The API made the node's broker password and kept only its hash: a node registered
    through it could not log in to the broker until its credentials were renewed (which
    also changed the upload token just given). The answer gives the login once, with the
    step that puts it in force."""
    import base64

    from central.broker_acl import broker_username, mosquitto_password_hash
    from central.models import Node

    site = f"t{uuid.uuid4().hex[:10]}"
    key = public_key_pem(generate_private_key().public_key()).decode()
    r = api.post(
        "/api/v1/nodes",
        headers=accounts["admin"].headers,
        json={"site": site, "node": "n1", "public_key_pem": key},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["broker_username"] == broker_username(site, "n1")
    assert "broker-files" in body["broker_password_in_force"]
    with central_db.session() as session:
        stored = session.scalars(select(Node.mqtt_password_hash).where(Node.site == site)).one()
    assert stored is not None
    salt = base64.b64decode(stored.split("$")[3])
    assert mosquitto_password_hash(body["broker_password"], salt=salt) == stored


def _camera_placed(central_db: CentralDb, node: NodeIdentity, place: str | None) -> None:
    """Node ``node``'s signed status, taken, says its cam-01 is up at ``place``."""
    health = CameraHealth(camera="cam-01", state=CameraState.UP, fps=25.0, place=place)
    sent = NodeStatus(
        site=node.site,
        node=node.node,
        state=NodeState.ONLINE,
        sent_at=T0,
        cameras=[health],
        **status_position(),
    )
    topic = node_topic(node.site, node.node, NodeTopic.STATUS)
    with transaction(session_factory(central_db.engine)) as s:
        signed = Message(topic, to_wire(sign(sent, node.key)))
        assert not record_batch(s, [signed], KeyCache()).quarantined
