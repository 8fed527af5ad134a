"""Central as an attacker meets it: request sizes before authentication, sessions that
end when their user's password changes or the user is disabled, log-in throttling, and
the answers that must not tell one account from another."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from central.app import MAX_BODY_BYTES, create_app
from central.settings import Settings
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import (
    SECRET,
    Account,
    CentralDb,
    NodeIdentity,
    signed_event,
    store_events,
)

pytestmark = pytest.mark.integration


def _chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_refused_before_it_is_read_or_authenticated(
    api: TestClient, accounts: dict[str, Account], streamed: bool
) -> None:
    # A JSON body FastAPI would read whole before the token check: refused at the limit.
    big = b'{"username": "' + b"a" * (MAX_BODY_BYTES + 1) + b'"}'
    content: Any = _chunked(big) if streamed else big
    headers = {"Content-Type": "application/json"}
    r = api.post("/api/v1/users", content=content, headers=headers)
    assert r.status_code == 413, r.text
    # Also for a caller who may use the route, and on the log-in form.
    r = api.post("/api/v1/users", content=content if not streamed else _chunked(big),
                 headers={**headers, **accounts["admin"].headers})  # fmt: skip
    assert r.status_code == 413, r.text
    form = b"username=x&password=" + b"a" * MAX_BODY_BYTES
    r = api.post(
        "/api/v1/auth/token",
        content=_chunked(form) if streamed else form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413, r.text
    # A body within the limit is read as before.
    fine = api.post("/api/v1/users", json={"username": "x"}, headers=accounts["admin"].headers)
    assert fine.status_code == 422


def test_evidence_uploads_keep_their_own_limit_above_the_body_limit(
    central_settings: Settings, central_db: CentralDb, make_node: Any
) -> None:
    settings = central_settings.model_copy(update={"max_evidence_bytes": 3 * MAX_BODY_BYTES})
    node: NodeIdentity = make_node()
    blob = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes * (2 * MAX_BODY_BYTES // 16)
    sha = hashlib.sha256(blob).hexdigest()
    with TestClient(create_app(settings, engine=central_db.engine)) as api:
        r = api.put(
            f"/api/v1/evidence/{sha}",
            content=_chunked(blob),
            headers={**node.headers, "Content-Type": "image/jpeg"},
        )
        assert r.status_code == 201, r.text


def _new_user(api: TestClient, admin: Account, role: str = "officer") -> tuple[str, str]:
    name, password = f"u{uuid.uuid4().hex[:10]}", "first password"
    r = api.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"username": name, "password": password, "role": role},
    )
    assert r.status_code == 201, r.text
    return name, password


def _log_in(api: TestClient, name: str, password: str) -> dict[str, str]:
    r = api.post("/api/v1/auth/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_a_password_change_ends_every_session_of_the_user(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    admin = accounts["admin"]
    name, password = _new_user(api, admin, "ioc")
    taken = _log_in(api, name, password)  # (a token that leaked with the password)
    renewed = api.post("/api/v1/auth/refresh", headers=taken)
    assert renewed.status_code == 200
    renewed_h = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    r = api.patch(f"/api/v1/users/{name}", headers=admin.headers, json={"password": "new secret 1"})
    assert r.status_code == 200
    for old in (taken, renewed_h):
        assert api.get("/api/v1/auth/me", headers=old).status_code == 401
        assert api.post("/api/v1/auth/refresh", headers=old).status_code == 401
        assert api.get("/metrics", headers=old).status_code == 401
    fresh = _log_in(api, name, "new secret 1")
    assert api.get("/api/v1/auth/me", headers=fresh).json()["username"] == name
    # A change of role or name leaves the sessions as they are (the role is read anew).
    r = api.patch(f"/api/v1/users/{name}", headers=admin.headers, json={"role": "officer"})
    assert r.status_code == 200
    assert api.get("/api/v1/review/queue", headers=fresh).status_code == 200


def test_logging_out_ends_every_session_of_the_user_and_no_one_elses(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    admin = accounts["admin"]
    name, password = _new_user(api, admin)
    here, elsewhere = _log_in(api, name, password), _log_in(api, name, password)
    renewed = api.post("/api/v1/auth/refresh", headers=here)
    renewed_h = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    assert api.post("/api/v1/auth/logout", headers=here).status_code == 204
    for old in (here, elsewhere, renewed_h):  # (a copy of the token is no use either)
        assert api.get("/api/v1/auth/me", headers=old).status_code == 401
        assert api.post("/api/v1/auth/refresh", headers=old).status_code == 401
    assert api.post("/api/v1/auth/logout", headers=here).status_code == 401
    assert api.get("/api/v1/auth/me", headers=admin.headers).status_code == 200  # others stay
    assert api.get("/api/v1/auth/me", headers=_log_in(api, name, password)).status_code == 200


def test_a_session_ended_by_disabling_does_not_come_back_with_the_account(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    admin = accounts["admin"]
    name, password = _new_user(api, admin)
    taken = _log_in(api, name, password)
    assert api.patch(f"/api/v1/users/{name}", headers=admin.headers,
                     json={"active": False}).status_code == 200  # fmt: skip
    assert api.get("/api/v1/auth/me", headers=taken).status_code == 401
    assert api.patch(f"/api/v1/users/{name}", headers=admin.headers,
                     json={"active": True}).status_code == 200  # fmt: skip
    assert api.get("/api/v1/auth/me", headers=taken).status_code == 401
    assert api.post("/api/v1/auth/refresh", headers=taken).status_code == 401
    assert api.get("/api/v1/auth/me", headers=_log_in(api, name, password)).status_code == 200


def test_a_live_feed_ends_when_its_users_password_changes(
    api: TestClient,
    central_db: CentralDb,
    accounts: dict[str, Account],
    make_node: Any,
) -> None:
    admin = accounts["admin"]
    node: NodeIdentity = make_node()
    name, password = _new_user(api, admin, "ioc")
    taken = _log_in(api, name, password)
    with api.stream("GET", "/api/v1/feed", headers=taken, params={"max_seconds": 30}) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith(": roadwatch live feed")
        r = api.patch(f"/api/v1/users/{name}", headers=admin.headers,
                      json={"password": "new secret 2"})  # fmt: skip
        assert r.status_code == 200
        store_events(central_db, node, [signed_event(node)])
        rest = "\n".join(lines)  # (ends: the stream closes at the next poll)
    assert "event: violation" not in rest


@pytest.mark.timeout(60)
def test_a_live_feed_ends_with_the_token_it_was_opened_with(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    """A copied token is not a day's feed: the stream ends (here, with a token of a few
    seconds, when it runs out) however long it was asked to run; the client renews its
    token and reconnects with its resume token."""
    name, password = _new_user(api, accounts["admin"], "ioc")
    taken = _log_in(api, name, password)["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(taken, SECRET, algorithms=["HS256"])
    short = jwt.encode({**claims, "exp": int(time.time()) + 3}, SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {short}"}
    with api.stream("GET", "/api/v1/feed", headers=headers, params={"max_seconds": 86_400}) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())  # (it ends by itself; the test's timeout bounds it)
    assert lines[0].startswith(": roadwatch live feed")


def test_an_expired_token_is_told_apart_from_one_that_is_not_ours(
    api: TestClient, accounts: dict[str, Account]
) -> None:
    """A client whose token ran out is told so, and what to do: log in again (an expired
    token cannot be renewed); one signed with another key, or mangled, is invalid, and
    only a token whose signature checks is said to have expired."""
    taken = accounts["ioc"].headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(taken, SECRET, algorithms=["HS256"])
    past = {**claims, "exp": int(time.time()) - 5}
    answers = {}
    for name, token in {
        "expired": jwt.encode(past, SECRET, algorithm="HS256"),
        "expired, another key": jwt.encode(past, "not-" + SECRET, algorithm="HS256"),
        "another key": jwt.encode(claims, "not-" + SECRET, algorithm="HS256"),
        "mangled": taken[:-4],
    }.items():
        r = api.get("/api/v1/cameras", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", name
        answers[name] = r.json()["detail"]
    assert answers["expired"].startswith("access token expired")
    assert "/api/v1/auth/token" in answers["expired"]
    for name in ("expired, another key", "another key", "mangled"):
        assert answers[name] == "access token is not valid", (name, answers[name])


def test_a_disabled_users_log_in_costs_a_password_check_like_any_other(
    api: TestClient, accounts: dict[str, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal that skipped the hash check came back in 9 ms instead of 460: a timer
    could tell a disabled account's name from an unknown one."""
    from central.security import verify_password

    admin = accounts["admin"]
    name, password = _new_user(api, admin)
    assert api.patch(f"/api/v1/users/{name}", headers=admin.headers,
                     json={"active": False}).status_code == 200  # fmt: skip
    checked: list[str] = []

    def counted(given: str, hashed: str) -> bool:
        checked.append(given)
        return verify_password(given, hashed)

    monkeypatch.setattr("central.api.admin.verify_password", counted)
    for attempt in ("wrong password", password):
        r = api.post("/api/v1/auth/token", data={"username": name, "password": attempt})
        assert r.status_code == 401
        assert r.json()["detail"] == "wrong user name or password"
    assert checked == ["wrong password", password]


def test_a_name_is_locked_after_five_failed_log_ins_in_a_row(
    api: TestClient, accounts: dict[str, Account], central_db: CentralDb
) -> None:
    """Thirty wrong passwords in a row were thirty 401s, the right one then let in: a
    password could be guessed as fast as the service hashed."""
    from sqlalchemy import update

    from central.db import session_factory, transaction
    from central.models import LoginFailure, utcnow

    name, password = _new_user(api, accounts["admin"])
    unknown = f"nobody{uuid.uuid4().hex[:8]}"

    def log_in(who: str, secret: str) -> Any:
        return api.post("/api/v1/auth/token", data={"username": who, "password": secret})

    for who in (name, unknown):  # (an account and a name that is none: the same answers)
        codes = [log_in(who, f"guess number {i}").status_code for i in range(5)]
        assert codes == [401, 401, 401, 401, 429], (who, codes)
        locked = log_in(who, password)
        assert locked.status_code == 429
        assert locked.json()["code"] == "login_locked"
        assert 0 < int(locked.headers["Retry-After"]) <= 300
    # Another name is not held up.
    assert log_in(accounts["officer"].username, "correct horse battery").status_code == 200
    # Once the lock has run out the right password lets in and the count starts again.
    with transaction(session_factory(central_db.engine)) as s:
        s.execute(
            update(LoginFailure)
            .where(LoginFailure.username == name)
            .values(locked_until=utcnow(), last_failed_at=utcnow())
        )
    assert log_in(name, password).status_code == 200
    assert [log_in(name, "wrong again").status_code for _ in range(4)] == [401] * 4
