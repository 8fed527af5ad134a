"""Central as an attacker meets it: request sizes before authentication, sessions that
end when their user's password changes or the user is disabled, log-in throttling, and
the answers that must not tell one account from another."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central.app import MAX_BODY_BYTES, create_app
from central.settings import Settings
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import Account, CentralDb, NodeIdentity

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
