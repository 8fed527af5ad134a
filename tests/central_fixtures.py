"""Fixtures of the central service's tests, over SQLite and the real PostgreSQL.

Import them into a test module with ``from tests.central_fixtures import *``. The
database fixture is parametrized: each test that uses it runs on both databases. The
PostgreSQL database is a fresh schema on the shared server, made and migrated once per
test session and dropped at its end; tests isolate their data by unique site ids and
user names.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from central.app import create_app
from central.db import make_engine, migrate, session_factory, transaction
from central.evidence import EvidenceStore
from central.intake import Message
from central.records import KeyCache, create_user, record_batch, record_blob, register_node
from central.security import issue_access_token
from central.settings import Settings
from central.workflow import Role
from roadwatch.contract import (
    CameraTopic,
    EvidenceRef,
    EvidenceRole,
    MediaType,
    ViolationEvent,
    camera_topic,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign
from tests.factories import violation_event
from tests.s3 import S3Server, moto_server
from tests.services import BrokerAddress, missing, mqtt_address, postgres_url

SECRET = "test-" + secrets.token_hex(24)
PASSWORD = "correct horse battery"

__all__ = [
    "EVIDENCE_STORES",
    "PASSWORD",
    "Account",
    "CentralDb",
    "NodeIdentity",
    "accounts",
    "api",
    "case_key",
    "central_accounts",
    "central_db",
    "central_settings",
    "empty_database",
    "make_node",
    "migrated_database",
    "postgres_schema_url",
    "publisher",
    "s3_server",
    "signed_event",
    "store_events",
]


@dataclass(frozen=True)
class CentralDb:
    kind: str
    url: str
    engine: Engine

    def session(self) -> Session:
        return session_factory(self.engine)()


def postgres_schema_url() -> Iterator[str]:
    """URL of a fresh schema on the real PostgreSQL; dropped when the generator ends."""
    import psycopg

    base = postgres_url()
    try:
        with psycopg.connect(base, connect_timeout=3):
            pass
    except Exception as exc:
        missing(f"no PostgreSQL at {base}: {exc}")
    schema = f"rw_central_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = base.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def central_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CentralDb]:
    """A migrated database: SQLite in a temporary folder, or a fresh PostgreSQL schema."""
    with migrated_database(request.param, tmp_path_factory.mktemp("central-db")) as db:
        yield db


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database with nothing in it, for a test of migrations: SQLite in a
    temporary folder, or a fresh PostgreSQL schema, dropped at the end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    urls = postgres_schema_url()
    yield next(urls)
    for _ in urls:  # drops the schema
        pass


@contextmanager
def migrated_database(kind: str, folder: Path) -> Iterator[CentralDb]:
    """A migrated database of its own: SQLite (``kind`` "sqlite") in ``folder``, or a fresh
    PostgreSQL schema, dropped at the end."""
    if kind == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{folder / 'central.db'}"])
    else:
        urls = postgres_schema_url()
    url = next(urls)
    engine = make_engine(url)
    try:
        migrate(engine)
        yield CentralDb(kind, url, engine)
    finally:
        engine.dispose()
        for _ in urls:  # drops the PostgreSQL schema
            pass


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible endpoint (moto's server process) for the test session."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


# Tests that apply to every evidence store take
# ``@pytest.mark.parametrize("central_settings", EVIDENCE_STORES, indirect=True)``.
EVIDENCE_STORES = ["filesystem", "s3"]


@pytest.fixture
def central_settings(
    request: pytest.FixtureRequest, central_db: CentralDb, tmp_path: Path
) -> Settings:
    """Settings over the test's database; evidence in a folder, or (param "s3") in a
    fresh bucket of the S3 server."""
    store: dict[str, Any] = {}
    if getattr(request, "param", "filesystem") == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        store = server.settings(server.new_bucket())
    broker = mqtt_address()
    return Settings(
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        database_url=central_db.url,
        data_dir=tmp_path,
        secret_key=SECRET,
        max_evidence_bytes=64 * 1024,
        feed_poll_s=0.05,
        **store,
    )


@pytest.fixture
def case_key(central_settings: Settings) -> Path:
    """Central's case-signing key pair in its default place; the public key's path."""
    from edge.identity import write_key_pair

    prefix = central_settings.resolved_case_key.with_suffix("")
    return write_key_pair(prefix, kind="case-signing key").public


@pytest.fixture
def api(central_settings: Settings, central_db: CentralDb) -> Iterator[TestClient]:
    with TestClient(create_app(central_settings, engine=central_db.engine)) as client:
        yield client


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def central_accounts(central_db: CentralDb) -> dict[str, Account]:
    tag = uuid.uuid4().hex[:6]
    wanted = {
        "officer": Role.OFFICER,
        "officer2": Role.OFFICER,
        "supervisor": Role.SUPERVISOR,
        "supervisor2": Role.SUPERVISOR,
        "admin": Role.ADMIN,
        "ioc": Role.IOC,
    }
    out: dict[str, Account] = {}
    with transaction(session_factory(central_db.engine)) as session:
        for name, role in wanted.items():
            username = f"{name}-{tag}"
            create_user(session, username=username, password=PASSWORD, role=role)
            out[name] = Account(username, role, issue_access_token(username, role, SECRET, 15))
    return out


@pytest.fixture
def accounts(central_accounts: dict[str, Account]) -> dict[str, Account]:
    """One account per role (two officers, two supervisors), made once per database."""
    return central_accounts


@dataclass(frozen=True)
class NodeIdentity:
    site: str
    node: str
    key: Ed25519PrivateKey
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def topic(self, camera: str = "cam-01", kind: CameraTopic = CameraTopic.VIOLATION) -> str:
        return camera_topic(self.site, self.node, camera, kind)


@pytest.fixture
def make_node(central_db: CentralDb) -> Any:
    """Register a node under a fresh site id; returns its key and upload token."""

    def make(site: str | None = None, node: str = "node-01") -> NodeIdentity:
        site = site or f"t{uuid.uuid4().hex[:10]}"
        key = generate_private_key()
        with transaction(session_factory(central_db.engine)) as session:
            reg = register_node(
                session,
                site=site,
                node=node,
                public_key_pem=public_key_pem(key.public_key()).decode("ascii"),
            )
        return NodeIdentity(site, node, key, reg.token)

    return make


def signed_event(node: NodeIdentity, **overrides: Any) -> ViolationEvent:
    fields: dict[str, Any] = {"site": node.site, "node": node.node}
    fields.update(overrides)
    return sign(violation_event(**fields), node.key)


def jpeg_blob() -> tuple[bytes, EvidenceRef]:
    """A frame's bytes of its own and the reference an event lists it by."""
    frame = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes * 100
    ref = EvidenceRef(
        role=EvidenceRole.FRAME_AT,
        media_type=MediaType.JPEG,
        sha256=hashlib.sha256(frame).hexdigest(),
        size=len(frame),
    )
    return frame, ref


# The bytes of each blob ``fresh_evidence`` made, by sha256, for ``store_events`` to store.
_FRESH: dict[str, bytes] = {}


def fresh_evidence() -> list[EvidenceRef]:
    """A frame and a clip of their own (the factory's default hashes are shared by every
    event: noted as arrived, they would complete other tests' cases)."""
    refs = []
    for role, media, head in (
        (EvidenceRole.FRAME_AT, MediaType.JPEG, b"\xff\xd8\xff\xe0"),
        (EvidenceRole.CLIP, MediaType.MP4, b"\x00\x00\x00\x18ftypmp42"),
    ):
        data = head + secrets.token_bytes(secrets.randbelow(9999) + 1)
        sha = hashlib.sha256(data).hexdigest()
        _FRESH[sha] = data
        refs.append(EvidenceRef(role=role, media_type=media, sha256=sha, size=len(data)))
    return refs


def store_of(api: TestClient) -> EvidenceStore:
    """The evidence store of the service ``api`` talks to."""
    store: EvidenceStore = api.app.state.central.store  # type: ignore[attr-defined]
    return store


def store_events(
    db: CentralDb,
    node: NodeIdentity,
    events: list[ViolationEvent],
    *,
    arrived: EvidenceStore | None = None,
) -> list[int]:
    """Store signed events through the ingest's own batch path; returns the new ids. With
    ``arrived`` (the service's store: ``store_of(api)``) the blobs they list are stored
    there and noted as arrived too, as the upload route does, so that their cases can be
    confirmed; give such events ``fresh_evidence()``."""
    if arrived is not None:
        shared = {r.sha256 for r in violation_event().evidence}
        listed = {r.sha256 for e in events for r in e.evidence}
        assert not shared & listed and listed <= set(_FRESH), "fresh_evidence()"
        for sha in listed:
            asyncio.run(arrived.put(sha, _chunks(_FRESH[sha]), len(_FRESH[sha])))
    messages = [Message(node.topic(e.camera), to_wire(e)) for e in events]
    with transaction(session_factory(db.engine)) as session:
        result = record_batch(session, messages, KeyCache())
        if arrived is not None:
            for ref in {r.sha256: r for e in events for r in e.evidence}.values():
                record_blob(
                    session,
                    sha256=ref.sha256,
                    size=ref.size,
                    media_type=ref.media_type.value,
                    node_id=None,
                )
    assert not result.quarantined, result.quarantined
    return result.new_violation_ids


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


# -- MQTT: a publisher that waits for each PUBACK, and the ingest's settings for a test --


def sse_events(text: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """A server-sent event stream as (id, event, data) per event, comments left out."""
    out: list[tuple[str | None, str, dict[str, Any]]] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":") and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return out


class Publisher:
    """A QoS 1 publisher that waits for each PUBACK."""

    def __init__(self, broker: BrokerAddress) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_broker: BrokerAddress) -> Iterator[Publisher]:
    pub = Publisher(mqtt_broker)
    try:
        yield pub
    finally:
        pub.close()


def ingest_settings(base: Settings, broker: BrokerAddress, site: str) -> Settings:
    return base.model_copy(
        update={
            "mqtt_host": broker.host,
            "mqtt_port": broker.port,
            "mqtt_site": site,
            "mqtt_share_group": f"g{uuid.uuid4().hex[:10]}",
            "mqtt_client_id": f"central-test-{uuid.uuid4().hex[:10]}",
            "mqtt_session_expiry_s": 60,
        }
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
