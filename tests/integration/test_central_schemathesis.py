"""Property-based tests of the served API against its own OpenAPI spec (schemathesis).

Bounded: a few examples per operation, one served instance on SQLite. Every call is made
with a token of a role that may use the operation, so the generated data reaches the
handlers instead of stopping at authentication.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from central.app import create_app
from central.db import make_engine, migrate, session_factory, transaction
from central.records import create_user, register_node
from central.security import issue_access_token
from central.settings import Settings
from central.workflow import Role
from edge.identity import write_key_pair
from roadwatch.contract.signing import generate_private_key, public_key_pem

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECRET = "schemathesis-" + uuid.uuid4().hex * 2
# The live feed streams for as long as it is asked to; it has its own test.
EXCLUDED = {"/api/v1/feed"}
# Requests a schema cannot describe: a random string is not a public key, random bytes
# do not hash to the sha256 in the path, and two times are not a range the traffic flow,
# the violation counts or the violation search read (from before to; for the first two
# at most 31 days by hour, 366 by day, and for the flow 24 hours by minute; the flow's
# `node` needs its `site`).
# Each answers a clear 4xx; they are tested directly.
# A log-out ends the token the next example would use (its role's token is used for no
# other operation).
SEMANTIC = {
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/nodes"),
    ("PUT", "/api/v1/evidence/{sha256}"),
    ("GET", "/api/v1/stats/traffic"),
    ("GET", "/api/v1/stats/violations"),
    ("GET", "/api/v1/violations"),
}


@dataclass(frozen=True)
class Prepared:
    data: Path
    headers: dict[str, dict[str, str]]  # role -> Authorization header


@dataclass(frozen=True)
class Served:
    base_url: str
    headers: dict[str, dict[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    data = tmp_path_factory.mktemp("schemathesis")
    engine = make_engine(f"sqlite:///{data / 'central.db'}")
    migrate(engine)
    headers: dict[str, dict[str, str]] = {}
    with transaction(session_factory(engine)) as session:
        for role in (Role.OFFICER, Role.SUPERVISOR, Role.ADMIN, Role.IOC):
            create_user(session, username=f"{role.value}-st", password="p" * 12, role=role)
            token = issue_access_token(f"{role.value}-st", role, SECRET, 15)
            headers[role.value] = {"Authorization": f"Bearer {token}"}
        node = register_node(
            session,
            site="ql13-km22",
            node="node-01",
            public_key_pem=public_key_pem(generate_private_key().public_key()).decode(),
        )
        headers["node"] = {"Authorization": f"Bearer {node.token}"}
    engine.dispose()
    write_key_pair(data / "case-signing", kind="case-signing key")  # (exports are signed)
    return Prepared(data, headers)


@pytest.fixture
def served(prepared: Prepared) -> Iterator[Served]:
    """A real server per operation, so its worker threads end with the test."""
    port = _free_port()
    app = create_app(
        Settings(
            data_dir=prepared.data,
            secret_key=SECRET,
            max_evidence_bytes=4096,
            migrate_on_start=False,
        )
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="schemathesis-uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        yield Served(f"http://127.0.0.1:{port}", prepared.headers)
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "server did not stop"


def _role_for(method: str, path: str) -> str:
    if path == "/api/v1/auth/logout":
        return "ioc"
    if path.startswith("/api/v1/evidence/") and method in ("PUT", "HEAD"):
        return "node"
    if path in (
        "/api/v1/users",
        "/api/v1/users/{username}",
        "/api/v1/nodes/{site}/{node}/config",
    ) or (path == "/api/v1/nodes" and method == "POST"):
        return "admin"
    return "supervisor"


# The spec of an app that is built but not started: the factory creates nothing.
_SPEC = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(_SPEC).exclude(path=sorted(EXCLUDED))


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_spec(case: schemathesis.Case, served: Served) -> None:  # type: ignore[type-arg]
    method = case.method.upper()
    role = _role_for(method, case.path)
    excluded: list[Any] = [positive_data_acceptance] if (method, case.path) in SEMANTIC else []
    case.call_and_validate(
        base_url=served.base_url, headers=served.headers[role], excluded_checks=excluded
    )
