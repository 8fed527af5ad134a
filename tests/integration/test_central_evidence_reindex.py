"""`roadwatch central evidence reindex`: after central's database is restored, the blobs
the evidence store still holds for violations sent again are recorded again, on SQLite
and PostgreSQL, over a folder and an S3 bucket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from central.db import session_factory, transaction
from central.evidence import EvidenceStore, FilesystemStore, open_store
from central.evidence_s3 import S3Store
from central.models import AuditEntry, Blob, Node, Violation
from central.records import record_blob, register_node
from central.settings import Settings
from roadwatch.cli import main
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType
from roadwatch.contract.signing import generate_private_key, public_key_pem
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import (
    SECRET,
    CentralDb,
    NodeIdentity,
    migrated_database,
    signed_event,
    store_events,
    wait_for,
)
from tests.s3 import S3Server

pytestmark = pytest.mark.integration

STARTS = {MediaType.JPEG: b"\xff\xd8\xff\xe0", MediaType.MP4: b"\x00\x00\x00\x18ftypmp42"}


@pytest.fixture(params=["sqlite", "postgresql"])
def restored_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CentralDb]:
    """A database of the test's own: the counts the command prints are all the test's."""
    with migrated_database(request.param, tmp_path / "db") as db:
        yield db


@pytest.fixture(params=["filesystem", "s3"])
def restored_settings(
    request: pytest.FixtureRequest,
    restored_db: CentralDb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Central's settings over that database and a fresh evidence folder or bucket, set
    in the environment as the command line reads them."""
    store: dict[str, Any] = {}
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        store = server.settings(server.new_bucket())
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", restored_db.url)
    monkeypatch.setenv("ROADWATCH_DATA_DIR", str(tmp_path / "data"))
    for name, value in store.items():
        monkeypatch.setenv(f"ROADWATCH_{name.upper()}", value)
    return Settings(
        database_url=restored_db.url, data_dir=tmp_path / "data", secret_key=SECRET, **store
    )


@dataclass(frozen=True)
class Evidence:
    ref: EvidenceRef
    data: bytes


def _evidence(media: MediaType, role: EvidenceRole) -> Evidence:
    data = STARTS[media] + secrets.token_bytes(3000 + secrets.randbelow(3000))
    sha = hashlib.sha256(data).hexdigest()
    return Evidence(EvidenceRef(role=role, media_type=media, sha256=sha, size=len(data)), data)


def _frame_and_clip() -> tuple[Evidence, Evidence]:
    return (
        _evidence(MediaType.JPEG, EvidenceRole.FRAME_AT),
        _evidence(MediaType.MP4, EvidenceRole.CLIP),
    )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _put(store: EvidenceStore, evidence: Evidence) -> None:
    asyncio.run(store.put(evidence.ref.sha256, _chunks(evidence.data), 1 << 20))


def _put_damaged(store: EvidenceStore, evidence: Evidence) -> None:
    """Other bytes under the blob's name, as a disk or a hand may leave them."""
    damaged = evidence.data[:-1] + bytes([evidence.data[-1] ^ 0xFF])
    if isinstance(store, FilesystemStore):
        store.path(evidence.ref.sha256).parent.mkdir(parents=True, exist_ok=True)
        store.path(evidence.ref.sha256).write_bytes(damaged)
    else:
        assert isinstance(store, S3Store)
        store.client.put_object(Bucket=store.bucket, Key=store.key(evidence.ref.sha256),
                                Body=damaged)  # fmt: skip


def _node(db: CentralDb) -> NodeIdentity:
    site, key = f"t{uuid.uuid4().hex[:10]}", generate_private_key()
    with transaction(session_factory(db.engine)) as session:
        reg = register_node(
            session, site=site, node="node-01",
            public_key_pem=public_key_pem(key.public_key()).decode("ascii"),
        )  # fmt: skip
    return NodeIdentity(site, "node-01", key, reg.token)


@dataclass(frozen=True)
class Restored:
    """Three violations sent again after a restore: ``whole``'s blobs are both in the store,
    ``damaged``'s clip is there but damaged, ``absent``'s clip is not there (its frame is
    recorded). The ``blobs`` table has no row of the others."""

    node_id: int
    whole: int
    damaged: int
    absent: int
    intact: list[Evidence]
    damaged_clip: Evidence
    absent_clip: Evidence


def _restored(db: CentralDb, store: EvidenceStore) -> Restored:
    node = _node(db)
    whole, damaged, absent = _frame_and_clip(), _frame_and_clip(), _frame_and_clip()
    events = [
        signed_event(node, evidence=[each.ref for each in pair])
        for pair in (whole, damaged, absent)
    ]
    whole_id, damaged_id, absent_id = store_events(db, node, events)
    for each in (*whole, damaged[0], absent[0]):
        _put(store, each)
    _put_damaged(store, damaged[1])
    with transaction(session_factory(db.engine)) as session:
        ref = absent[0].ref
        record_blob(session, sha256=ref.sha256, size=ref.size,
                    media_type=ref.media_type.value, node_id=None)  # fmt: skip
        node_id = session.scalars(select(Node.id).where(Node.site == node.site)).one()
    return Restored(
        node_id, whole_id, damaged_id, absent_id, intact=[*whole, damaged[0]],
        damaged_clip=damaged[1], absent_clip=absent[1],
    )  # fmt: skip


def _state(db: CentralDb) -> tuple[dict[str, tuple[int, str, int | None]], dict[int, bool]]:
    """Every blob recorded, and whether each violation's evidence is complete."""
    with session_factory(db.engine)() as session:
        blobs = {b.sha256: (b.size, b.media_type, b.node_id) for b in session.scalars(select(Blob))}
        complete = {v.id: v.evidence_complete for v in session.scalars(select(Violation))}
    return blobs, complete


def _audited(db: CentralDb) -> list[dict[str, Any]]:
    with session_factory(db.engine)() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "evidence_reindex")
        ).all()
        return [json.loads(e.detail) for e in entries]


def _reindex(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["central", "evidence", "reindex", *args])
    return code, capsys.readouterr().out


def test_the_blobs_the_store_holds_for_violations_sent_again_are_recorded(
    restored_db: CentralDb, restored_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(restored_settings)
    restored = _restored(restored_db, store)
    before = _state(restored_db)
    assert not any(before[1].values())

    code, out = _reindex(capsys)  # a dry run: counts, changes nothing
    assert code == 0, out
    for line in (
        "violations with evidence incomplete: 3",
        "blobs they list that central has no record of: 5",
        "in the evidence store and intact: 3",
        "in the evidence store but damaged: 1",
        "not in the evidence store: 1",
        "dry run: nothing recorded",
    ):
        assert line in out, out
    sha = restored.damaged_clip.ref.sha256
    assert f"damaged, left alone: {sha[:2]}/{sha[2:4]}/{sha} hashes to " in out
    assert _state(restored_db) == before
    assert _audited(restored_db) == []

    code, out = _reindex(capsys, "--yes")
    assert code == 0, out
    assert "recorded 3 blobs" in out and "evidence complete now: 1" in out, out
    assert f"damaged, left alone: {sha[:2]}/{sha[2:4]}/{sha}" in out
    blobs, complete = _state(restored_db)
    for each in restored.intact:
        ref = each.ref
        assert blobs[ref.sha256] == (ref.size, ref.media_type.value, restored.node_id)
    assert restored.damaged_clip.ref.sha256 not in blobs
    assert restored.absent_clip.ref.sha256 not in blobs
    assert complete == {restored.whole: True, restored.damaged: False, restored.absent: False}
    [entry] = _audited(restored_db)
    assert entry["recorded"] == 3 and entry["completed"] == 1
    assert entry["damaged"] == [sha] and entry["absent"] == 1
    # The damaged copy is left as it was.
    assert b"".join(store.read(sha)) != restored.damaged_clip.data

    after = _state(restored_db)
    code, out = _reindex(capsys, "--yes")  # again: nothing more to do
    assert code == 0, out
    assert "blobs they list that central has no record of: 2" in out
    assert "recorded 0 blobs" in out and "evidence complete now: 0" in out, out
    assert _state(restored_db) == after
    assert len(_audited(restored_db)) == 2


@pytest.mark.parametrize("restored_settings", ["filesystem"], indirect=True)
def test_an_upload_of_the_same_blob_meanwhile_fails_neither(
    restored_db: CentralDb,
    restored_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The node uploads a blob again (recorded as the upload route does) after the run
    found it missing and before it records it: both record it once, and the violations
    are complete as they should be."""
    import central.evidence_reindex as reindex

    store = open_store(restored_settings)
    restored = _restored(restored_db, store)
    uploaded = restored.intact[0].ref
    checked = reindex.check_stored

    def upload_meanwhile(
        store: EvidenceStore, sha256: str, listings: list[reindex.Listing]
    ) -> reindex.Checked:
        if sha256 == uploaded.sha256:
            with transaction(session_factory(restored_db.engine)) as session:
                record_blob(session, sha256=sha256, size=uploaded.size,
                            media_type=uploaded.media_type.value, node_id=None)  # fmt: skip
        return checked(store, sha256, listings)

    monkeypatch.setattr(reindex, "check_stored", upload_meanwhile)
    code, out = _reindex(capsys, "--yes")
    assert code == 0, out
    blobs, complete = _state(restored_db)
    assert blobs[uploaded.sha256] == (uploaded.size, uploaded.media_type.value, None)
    assert all(each.ref.sha256 in blobs for each in restored.intact)
    assert complete == {restored.whole: True, restored.damaged: False, restored.absent: False}


@pytest.mark.parametrize("restored_db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("restored_settings", ["filesystem"], indirect=True)
def test_a_run_that_meets_an_upload_in_flight_waits_for_it_and_both_succeed(
    restored_db: CentralDb, restored_settings: Settings
) -> None:
    """An upload has recorded a blob and not yet committed when the run comes to record
    the same one: the run waits for it (PostgreSQL's row lock), then takes the blob as
    recorded; neither fails."""
    from central.evidence_reindex import Reindexed, reindex

    store = open_store(restored_settings)
    restored = _restored(restored_db, store)
    uploaded = restored.intact[1].ref
    sessions = session_factory(restored_db.engine)
    done: list[Reindexed | BaseException] = []

    def run() -> None:
        try:
            done.append(reindex(sessions, store, apply=True))
        except BaseException as exc:
            done.append(exc)

    with sessions() as upload, upload.begin():
        record_blob(upload, sha256=uploaded.sha256, size=uploaded.size,
                    media_type=uploaded.media_type.value, node_id=None)  # fmt: skip
        xid = upload.scalar(text("SELECT pg_current_xact_id()::text"))
        runner = threading.Thread(target=run)
        runner.start()
        with sessions() as watch:  # (on a timeout the upload rolls back: the run ends)
            wait_for(
                "the run to wait on the upload's insert",
                lambda: bool(
                    watch.scalar(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid'"
                            " AND transactionid::text = :xid AND NOT granted"
                        ),
                        {"xid": xid},
                    )
                ),
            )
    runner.join(timeout=60)
    assert not runner.is_alive()
    [found] = done
    assert isinstance(found, Reindexed), found
    assert found.recorded == 3 and found.completed == 1
    blobs, complete = _state(restored_db)
    assert blobs[uploaded.sha256] == (uploaded.size, uploaded.media_type.value, None)
    assert complete == {restored.whole: True, restored.damaged: False, restored.absent: False}
