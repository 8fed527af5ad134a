"""The evidence stores, the folder and a real S3-compatible server (moto's), held to the
same promises: only a verified blob is ever visible under its name, uploads stream, and
refusals leave nothing behind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from central.evidence import (
    CHUNK,
    EvidenceError,
    EvidenceStore,
    FilesystemStore,
    HashMismatchError,
    StoredBlob,
    StoreUnavailableError,
    TooLargeError,
    open_store,
)
from central.evidence_s3 import S3Store
from central.settings import Settings
from roadwatch.errors import UserError
from roadwatch.net import free_port
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import NodeIdentity, s3_server  # noqa: F401
from tests.s3 import S3Server

pytestmark = pytest.mark.integration

LIMIT = 4 * CHUNK
ROOT = Path(__file__).resolve().parents[2]


def body(size: int) -> bytes:
    return (os.urandom(997) * (size // 997 + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def put(store: EvidenceStore, name: str, data: bytes, chunk: int = 64 * 1024) -> StoredBlob:
    return asyncio.run(store.put(name, _chunks(data, chunk), LIMIT))


def settings_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        return Settings(data_dir=tmp_path, **server.settings(server.new_bucket(), "ev/"))
    return Settings(data_dir=tmp_path)


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EvidenceStore]:
    chosen = open_store(settings_for(request.param, tmp_path, request))
    chosen.check()
    yield chosen


def test_a_blob_goes_in_and_streams_out(store: EvidenceStore) -> None:
    data = body(2 * CHUNK + 12345)  # several chunks each way
    name = sha(data)
    assert not store.exists(name)
    stored = put(store, name, data)
    assert stored == StoredBlob(name, len(data), created=True)
    assert store.exists(name)
    parts = list(store.read(name))
    assert len(parts) >= 3 and all(len(p) <= CHUNK for p in parts)
    assert b"".join(parts) == data
    # idempotent: a second upload is not stored again; its body is checked all the same
    # (it has crossed the network anyway), so a wrong one is refused as for a new blob
    again = put(store, name, data)
    assert (again.created, again.size) == (False, len(data))
    with pytest.raises(HashMismatchError):
        put(store, name, data[::-1])
    assert b"".join(store.read(name)) == data
    assert list(store.spool_dir.iterdir()) == []
    # Read back checked, once; a blob not (or no longer) stored is not found, in both stores.
    checked = store.open_checked(name)
    assert checked is not None
    with checked:
        assert checked.read() == data
    with pytest.raises(FileNotFoundError):
        store.open_checked(sha(b"never stored"))


@pytest.mark.parametrize(
    ("name", "data", "error", "status"),
    [
        ("wrong", b"evidence", HashMismatchError, 400),
        ("big", b"\x00" * (LIMIT + 1), TooLargeError, 413),
        ("empty", b"", EvidenceError, 400),
    ],
)
def test_refusals_leave_nothing(
    store: EvidenceStore, name: str, data: bytes, error: type[EvidenceError], status: int
) -> None:
    target = sha(b"something else") if name == "wrong" else sha(data)
    with pytest.raises(error) as caught:
        put(store, target, data)
    assert caught.value.status == status
    assert not store.exists(target)
    assert list(store.spool_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["ABC", "0" * 63, "g" * 64, "../" + "0" * 61])
def test_names_are_sha256_only(store: EvidenceStore, name: str) -> None:
    with pytest.raises(EvidenceError, match="not a sha256"):
        put(store, name, b"x")
    with pytest.raises(EvidenceError, match="not a sha256"):
        store.exists(name)


def test_s3_keys_follow_the_folder_layout_under_the_prefix(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket()
    s3 = open_store(Settings(data_dir=tmp_path, **s3_server.settings(bucket, "site-a/ev/")))
    fs = FilesystemStore(tmp_path / "folder")
    data = body(5000)
    name = sha(data)
    put(s3, name, data)
    put(fs, name, data)
    [key] = s3_server.keys(bucket)
    assert key == "site-a/ev/" + fs.path(name).relative_to(fs.root).as_posix()


def test_s3_upload_asks_the_store_to_check_the_bytes(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Each PutObject carries the body's Content-MD5, so the object store refuses bytes
    that changed on the way (AWS S3, MinIO and Ceph check it; moto only records it)."""
    bucket = s3_server.new_bucket()
    s3 = open_store(Settings(data_dir=tmp_path, **s3_server.settings(bucket)))
    assert isinstance(s3, S3Store)
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        )

    s3.client.meta.events.register("before-send.s3.PutObject", capture)
    data = body(3000)
    put(s3, sha(data), data)
    [headers] = sent
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert headers["content-length"] == str(len(data))
    assert b"".join(s3.read(sha(data))) == data


def test_s3_start_up_check_names_the_problem(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    missing_bucket = Settings(data_dir=tmp_path, **s3_server.settings("rw-no-such-bucket"))
    with pytest.raises(UserError, match="bucket 'rw-no-such-bucket' does not exist"):
        open_store(missing_bucket).check()
    # the app refuses to start on it, before it touches the database
    with (
        pytest.raises(UserError, match="does not exist"),
        TestClient(create_app(missing_bucket)),
    ):
        pass
    assert not (tmp_path / "central.db").exists()
    nobody_there = missing_bucket.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}", "s3_bucket": "rw-any"}
    )
    with pytest.raises(UserError, match="cannot be reached"):
        open_store(nobody_there).check()


def test_s3_unreachable_is_503_for_the_uploader(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    gone = Settings(
        data_dir=tmp_path,
        **{**s3_server.settings("rw-any"), "s3_endpoint_url": f"http://127.0.0.1:{free_port()}"},
    )
    store = open_store(gone)
    data = b"evidence"
    with pytest.raises(StoreUnavailableError) as caught:
        put(store, sha(data), data)
    assert caught.value.status == 503
    with pytest.raises(StoreUnavailableError):
        store.exists(sha(data))
    assert not store.spool_dir.exists() or list(store.spool_dir.iterdir()) == []


def test_serve_stops_at_once_on_a_missing_bucket(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env["ROADWATCH_DATA_DIR"] = str(tmp_path / "data")
    for name, value in s3_server.settings("rw-not-made-yet").items():
        env[f"ROADWATCH_{name.upper()}"] = str(value)
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "bucket 'rw-not-made-yet' does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "central.db").exists()


@pytest.mark.parametrize("central_settings", ["s3"], indirect=True)
def test_a_bucket_gone_under_a_running_service_is_503(
    api: TestClient,
    central_settings: Settings,
    s3_server: S3Server,  # noqa: F811
    make_node: Callable[..., NodeIdentity],
) -> None:
    node = make_node()
    data = b"\xff\xd8" + os.urandom(2000)
    headers = {**node.headers, "Content-Type": "image/jpeg"}
    assert central_settings.s3_bucket is not None
    s3_server.client().delete_bucket(Bucket=central_settings.s3_bucket)
    r = api.put(f"/api/v1/evidence/{sha(data)}", content=data, headers=headers)
    assert r.status_code == 503 and "evidence store unavailable" in r.json()["detail"]
    assert list(api.app.state.central.store.spool_dir.iterdir()) == []  # type: ignore[attr-defined]


def test_an_upload_to_a_full_disk_is_503_and_said_in_the_log(
    api: TestClient,
    make_node: Callable[..., NodeIdentity],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The spool's disk full (ENOSPC, from the kernel's /dev/full) is the store out of use
    for now, 503 for the node to send the blob again, with a line in central's log: it was
    a 500 and uvicorn's traceback, which named no folder to make room in."""
    import logging
    import tempfile

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    spool_dir: Path = api.app.state.central.store.spool_dir  # type: ignore[attr-defined]
    made: list[Path] = []

    def full_disk(*, dir: Path, prefix: str) -> tuple[int, str]:
        made.append(Path(dir) / f"{prefix}full")
        return os.open("/dev/full", os.O_WRONLY), str(made[-1])

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    node = make_node()
    data = b"\xff\xd8" + os.urandom(30_000)
    headers = {**node.headers, "Content-Type": "image/jpeg"}
    caplog.set_level(logging.ERROR, logger="central.evidence")
    r = api.put(f"/api/v1/evidence/{sha(data)}", content=data, headers=headers)
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith("evidence store unavailable: no room left"), r.text
    assert made and not made[0].exists()
    said = [rec.getMessage() for rec in caplog.records if rec.name == "central.evidence"]
    assert said == [f"no room for an evidence upload in {spool_dir}: No space left on device"]
    monkeypatch.undo()  # (room again: the node's next try is stored)
    r = api.put(f"/api/v1/evidence/{sha(data)}", content=data, headers=headers)
    assert r.status_code == 201, r.text
