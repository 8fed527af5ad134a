"""`roadwatch central ...` as a user runs it: node registry, users, serve and shut down."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from central.db import current_revision, make_engine, revisions, session_factory
from central.models import AuditEntry, Node, User
from central.security import NODE_TOKEN_PREFIX
from roadwatch.cli import main
from tests.central_fixtures import *  # noqa: F403
from tests.central_fixtures import postgres_schema_url

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env["ROADWATCH_DATA_DIR"] = str(tmp_path / "data")
    return env


def _rw(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", *args],
        env={**_env(tmp_path), **(env or {})},
        cwd=tmp_path,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_nodes_keys_are_listed_added_and_revoked_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from roadwatch.contract.signing import key_fingerprint, load_public_key_pem

    for name in ("old", "new", "leaked"):
        assert main(["edge", "keygen", "--out", str(tmp_path / name)]) == 0
    for name, value in _env(tmp_path).items():
        if name.startswith("ROADWATCH_"):
            monkeypatch.setenv(name, value)
    at = ["--site", "ql13-km22", "--node", "node-01"]

    def fingerprint(name: str) -> str:
        return key_fingerprint(load_public_key_pem((tmp_path / f"{name}.pub").read_bytes()))

    def central(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["central", *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert central("node", "add", *at, "--public-key", str(tmp_path / "old.pub"))[0] == 0
    code, out, _ = central("node", "key", "add", *at, "--public-key", str(tmp_path / "new.pub"))
    assert code == 0 and f"key {fingerprint('new')} added" in out
    code, out, _ = central("node", "key", "list", *at)
    assert code == 0 and out.count("in force") == 2
    revoke = ("node", "key", "revoke", *at, "--fingerprint", fingerprint("old")[:16])
    code, out, _ = central(*revoke, "--reason", "box stolen")
    assert code == 0 and f"key {fingerprint('old')} of node ql13-km22/node-01 revoked" in out
    # Revoked from now, what central took before stands (it said they were flagged).
    assert "the cases it signed that central received before stand" in out, out
    assert "flagged" not in out
    code, out, _ = central("node", "key", "add", *at, "--public-key", str(tmp_path / "leaked.pub"))
    assert code == 0, out
    code, out, _ = central(
        "node", "key", "revoke", *at, "--fingerprint", fingerprint("leaked"),
        "--reason", "key file leaked", "--since", "2026-12-01T08:00+07:00",
    )  # fmt: skip
    assert code == 0, out
    assert "received from 2026-12-01T08:00:00+07:00 on are flagged" in out, out
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'central.db'}")
    try:
        with session_factory(engine)() as session:
            revoked = session.scalars(
                select(AuditEntry.detail)
                .where(AuditEntry.action == "node_key_revoke")
                .order_by(AuditEntry.seq)
            ).all()
    finally:
        engine.dispose()
    # The audit entry names the time the key is revoked from, as the API's does.
    since = [json.loads(detail)["since"] for detail in revoked]
    assert len(since) == 2 and since[1].startswith("2026-12-01T08:00:00+07:00"), since
    code, out, _ = central("node", "key", "list", *at)
    lines = dict(line.split("  ", 1) for line in out.splitlines())
    assert (
        lines[fingerprint("old")].endswith(": box stolen")
        and "revoked" in lines[fingerprint("old")]
    )
    assert lines[fingerprint("new")].endswith("in force")
    for args, said in (
        ((*revoke, "--reason", "again"), "was revoked already"),
        (("node", "key", "revoke", *at, "--fingerprint", "zz", "--reason", "x"), "16 to 64 hex"),
        (("node", "key", "add", *at, "--public-key", str(tmp_path / "new.pub")), "already"),
        (("node", "key", "list", "--site", "nowhere", "--node", "n1"), "no node nowhere/n1"),
    ):  # fmt: skip
        code, _, err = central(*args)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err


def test_a_nodes_status_order_is_reset_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node put back to a version whose statuses central refuses as replayed (without
    their place, or a session before the one held) is taken again once the operator resets
    the position held; the reset is audited under the account that ran it."""
    from datetime import timedelta

    from central.cli import cli_actor
    from central.intake import Message
    from central.records import Checked, store_checked
    from roadwatch.contract import (
        CameraHealth,
        CameraState,
        NodeState,
        NodeStatus,
        NodeTopic,
        node_topic,
    )
    from roadwatch.contract.signing import load_private_key, sign
    from tests.factories import T0

    assert main(["edge", "keygen", "--out", str(tmp_path / "node")]) == 0
    for name, value in _env(tmp_path).items():
        if name.startswith("ROADWATCH_"):
            monkeypatch.setenv(name, value)
    at = ["--site", "ql13-km22", "--node", "node-01"]
    assert main(["central", "node", "add", *at, "--public-key", str(tmp_path / "node.pub")]) == 0
    key = load_private_key(tmp_path / "node.key")

    def status(session_at: datetime | None, sequence: int | None) -> NodeStatus:
        return sign(
            NodeStatus(
                site="ql13-km22", node="node-01", state=NodeState.ONLINE, sent_at=T0,
                cameras=[CameraHealth(camera="cam-01", state=CameraState.UP)],
                session_started_at=session_at, sequence=sequence,
            ),
            key,
        )  # fmt: skip

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'central.db'}")
    message = Message(node_topic("ql13-km22", "node-01", NodeTopic.STATUS), b"{}")

    def stored(sent: NodeStatus, ingest: str = "central-a") -> tuple[int, int]:
        with session_factory(engine).begin() as session:
            result = store_checked(session, [Checked(message, sent)], ingest=ingest)
        return result.statuses, len(result.late_refusals)

    try:
        assert stored(status(T0, 5)) == (1, 0)
        assert stored(status(T0, 5), "central-b") == (0, 0)
        # Put back to a version without the place, and to a session before: refused.
        assert stored(status(None, None)) == (0, 1)
        assert stored(status(T0 - timedelta(days=1), 1)) == (0, 1)
        capsys.readouterr()
        assert main(["central", "node", "status-order", "reset", *at]) == 0
        out = capsys.readouterr().out
        assert "(status 5 of the session begun 2026-11-23T07:03:05.120+00:00)" in out, out
        assert "its next status is taken" in out
        assert stored(status(T0 - timedelta(days=1), 1)) == (1, 0)
        assert stored(status(T0 - timedelta(days=1), 2)) == (1, 0)
        # Another ingest, behind, had received status 5 before the reset: the statuses
        # it gets after are late copies there, not statuses published again.
        assert stored(status(T0 - timedelta(days=1), 1), "central-b") == (0, 0)
        assert stored(status(T0 - timedelta(days=1), 1)) == (0, 1)  # again: replayed
        with session_factory(engine)() as session:
            audited = session.execute(
                select(AuditEntry.actor, AuditEntry.detail).where(
                    AuditEntry.action == "node_status_order_reset"
                )
            ).all()
    finally:
        engine.dispose()
    assert [actor for actor, _ in audited] == [cli_actor()]
    assert cli_actor().startswith("cli")
    detail = json.loads(audited[0][1])
    assert (detail["node"], detail["sequence"]) == ("node-01", 5)
    assert main(["central", "node", "status-order", "reset", "--site", "x", "--node", "n1"]) == 2
    assert "no node x/n1" in capsys.readouterr().err


def test_node_add_and_create_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "keygen", "--out", str(tmp_path / "node")]) == 0
    add = _rw(
        tmp_path,
        "node",
        "add",
        "--site",
        "ql13-km22",
        "--node",
        "node-01",
        "--public-key",
        str(tmp_path / "node.pub"),
    )
    assert add.returncode == 0, add.stderr
    token = add.stdout.split("upload token (shown once, give it to the node): ")[1].split()[0]
    assert token.startswith(NODE_TOKEN_PREFIX) and len(token) > 40
    user = _rw(
        tmp_path,
        "create-user",
        "--username",
        "nguyen.an",
        "--role",
        "supervisor",
        "--password-stdin",
        stdin="a long passphrase\n",
    )
    assert user.returncode == 0, user.stderr

    # Refusals, in process: one line each, nothing stored.
    for name, value in _env(tmp_path).items():
        if name.startswith("ROADWATCH_"):
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    (tmp_path / "bad.pub").write_text("not a key")
    refusals = [
        (
            [
                "node",
                "add",
                "--site",
                "ql13-km22",
                "--node",
                "node-01",
                "--public-key",
                str(tmp_path / "node.pub"),
            ],
            "node ql13-km22/node-01 is already registered",
        ),
        (
            [
                "node",
                "add",
                "--site",
                "s",
                "--node",
                "n",
                "--public-key",
                str(tmp_path / "bad.pub"),
            ],
            "not a PEM public key",
        ),
        (
            [
                "node",
                "add",
                "--site",
                "S/../x",
                "--node",
                "n",
                "--public-key",
                str(tmp_path / "node.pub"),
            ],
            "not a valid topic level",
        ),
        (["create-user", "--username", "nguyen.an", "--role", "officer"], "exists"),
        (["create-user", "--username", "x", "--role", "officer"], "user name"),
        (["create-user", "--username", "canbo2\n", "--role", "officer"], "user name"),
        (
            [
                "create-user",
                "--username",
                "tran.binh",
                "--role",
                "officer",
                "--full-name",
                "x" * 129,
            ],
            "--full-name: at most 128",
        ),
    ]
    monkeypatch.setenv("ROADWATCH_NEW_PASSWORD", "another long passphrase")
    for args, message in refusals:
        assert main(["central", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("roadwatch: error: ") and message in err and err.count("\n") == 1
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'central.db'}")
    try:
        with session_factory(engine)() as s:
            node = s.scalar(select(Node))
            assert node is not None
            assert node.token_hash == hashlib.sha256(token.encode()).hexdigest()
            assert token not in repr(s.execute(select(Node.__table__)).all())
            assert s.scalar(select(func.count()).select_from(Node)) == 1
            users = s.scalars(select(User)).all()
            assert [(u.username, u.role) for u in users] == [("nguyen.an", "supervisor")]
            assert users[0].password_hash.startswith("$argon2")
    finally:
        engine.dispose()


def test_a_database_that_cannot_be_used_and_a_missing_password_are_one_line_errors(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    urls = {
        "foo://bar": "invalid central settings: setting 'database_url': ROADWATCH_DATABASE_URL"
        " names foo: central runs on PostgreSQL",
        "mysql://root@127.0.0.1/test": "invalid central settings: setting 'database_url':",
        "postgresql://roadwatch:s3cret@127.0.0.1:1/nowhere": "database postgresql://roadwatch:***@",
        "not a url": "ROADWATCH_DATABASE_URL is not a database URL",
    }
    for url, message in urls.items():
        serving = ["serve", "--port", str(_free_port())]  # (not uvicorn's traceback of its start)
        for args in (["migrate"], ["partitions", "list"], serving):
            run = subprocess.run(
                [sys.executable, "-m", "roadwatch", "central", *args],
                env={**env, "ROADWATCH_DATABASE_URL": url},
                cwd=tmp_path, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert run.returncode == 2, (url, run.stderr)
            assert run.stderr.startswith("roadwatch: error: " + message), run.stderr
            assert run.stderr.count("\n") == 1 and "s3cret" not in run.stderr
    # No terminal to ask for a password on, and none given another way.
    ask = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "create-user", "--username", "le.cuong",
         "--role", "officer"],
        env=env, cwd=tmp_path, input="", capture_output=True, text=True, timeout=120,
        start_new_session=True,  # (no controlling terminal)
    )  # fmt: skip
    assert ask.returncode == 2 and "no password given" in ask.stderr, ask.stderr
    assert "Traceback" not in ask.stderr
    for port in ("99999", "0", "-5", "http"):
        serve = _rw(tmp_path, "serve", "--port", port)
        assert serve.returncode == 2 and "--port" in serve.stderr, serve.stderr


def test_a_database_a_newer_central_migrated_is_a_one_line_error(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "central.db"
    env = {**_env(tmp_path), "ROADWATCH_DATABASE_URL": f"sqlite:///{db}"}
    command = [sys.executable, "-m", "roadwatch", "central"]
    run = subprocess.run(
        [*command, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(db) as conn:  # (as a later version's migration leaves it)
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_a_later_central'")
    for args in (["migrate"], ["serve", "--port", str(_free_port())]):
        run = subprocess.run(
            [*command, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 2, (args, run.stderr)
        assert run.stderr.startswith("roadwatch: error: database sqlite:///"), run.stderr
        assert "'0099_from_a_later_central'" in run.stderr, run.stderr
        assert "a newer central migrated it" in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1, run.stderr


def test_migrate_to_a_revision_goes_back_only_when_told_to(
    tmp_path: Path, empty_database: str
) -> None:
    """``migrate --to REV`` takes the database to a revision: ahead as ``migrate`` does,
    back (which drops data) only with ``--yes``; a revision these migrations lack is one
    line, and nothing changes without ``--yes`` or with a bad REV."""
    env = {"ROADWATCH_DATABASE_URL": empty_database}
    head = revisions()[-1].id

    def migrate(*args: str) -> tuple[int, str, str]:
        run = _rw(tmp_path, "migrate", *args, env=env)
        return run.returncode, run.stdout, run.stderr

    def at() -> str | None:
        engine = make_engine(empty_database)
        try:
            return current_revision(engine)
        finally:
            engine.dispose()

    assert migrate() == (0, f"central: database at revision {head} (was none)\n", "")
    assert migrate("--to", "head") == (0, f"central: database already at revision {head}\n", "")
    code, out, err = migrate("--to", "0015")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"roadwatch: error: going back from revision {head} to 0015_status")
    assert "docs/central.md, Rolling back" in err and "--yes" in err
    assert at() == head
    code, out, err = migrate("--to", "0015", "--yes")
    assert (code, err) == (0, ""), err
    assert out == f"central: database at revision 0015_status_received (was {head})\n"
    assert at() == "0015_status_received"
    for rev in ("0099", "0015_status", "tail"):
        code, out, err = migrate("--to", rev, "--yes")
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"roadwatch: error: --to: no revision '{rev}': name one of 0001_")
        assert head in err
    assert at() == "0015_status_received"
    assert migrate("--to", "0017_traffic_part_end") == (
        0, "central: database at revision 0017_traffic_part_end (was 0015_status_received)\n", ""
    )  # fmt: skip
    assert migrate() == (
        0, f"central: database at revision {head} (was 0017_traffic_part_end)\n", ""
    )  # fmt: skip
    assert at() == head


def test_a_migration_that_fails_on_postgresql_lets_go_of_its_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The migration's own error comes out, and replicas starting later are not stuck
    behind the lock. It used to come out as "current transaction is aborted" (the unlock
    failing on it), the lock left held by the pooled connection."""
    import psycopg
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from central.db import _MIGRATION_LOCK_ID, migrate
    from tests.services import postgres_url

    def failing(cfg: Any, _target: str) -> None:
        cfg.attributes["connection"].execute(text("SELECT 1 / 0"))

    monkeypatch.setattr(command, "upgrade", failing)
    urls = postgres_schema_url()
    engine = make_engine(next(urls))
    try:
        with pytest.raises(DBAPIError, match="division by zero"):
            migrate(engine)
        with psycopg.connect(postgres_url(), autocommit=True) as other:
            lock = "SELECT pg_try_advisory_lock(%s)"
            assert other.execute(lock, (_MIGRATION_LOCK_ID,)).fetchone() == (True,)
    finally:
        engine.dispose()
        for _ in urls:  # drops the schema
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_with_embedded_defaults_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadwatch", "central", "serve", "--port", str(port)],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = r.read()
            except OSError:
                assert proc.poll() is None, "serve exited"
                time.sleep(0.2)
        assert health is not None and b'"ok"' in health
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/violations", timeout=5)
        assert err.value.code == 401
        assert (tmp_path / "data" / "central.db").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def test_serve_where_it_cannot_listen_is_a_one_line_error(tmp_path: Path) -> None:
    """A port another server holds, or an address not on this machine, stops `serve` with
    one line and exit 2, with one worker as with several: one worker used to print
    "serving on" and then uvicorn's own log, and exit 3."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        for workers in ("1", "2"):
            run = _rw(tmp_path, "serve", "--port", str(port), "--workers", workers)
            assert run.returncode == 2, (workers, run.stdout, run.stderr)
            assert run.stderr.startswith(f"roadwatch: error: cannot listen on 127.0.0.1:{port}: ")
            assert run.stderr.count("\n") == 1 and "serving on" not in run.stdout, run
    run = _rw(tmp_path, "serve", "--host", "192.0.2.1", "--port", str(port))  # (TEST-NET-1)
    assert run.returncode == 2 and "cannot listen on 192.0.2.1" in run.stderr, run.stderr


def test_serve_with_workers_migrates_nothing_when_told_not_to(tmp_path: Path) -> None:
    """``ROADWATCH_MIGRATE_ON_START=false`` holds for ``serve --workers 2`` as for one
    worker: the database is left as it is (here empty; the port is held, so that the run
    ends at once). It used to be migrated before the workers started, whatever it said."""
    import sqlite3

    (tmp_path / "data").mkdir()
    database = tmp_path / "data" / "central.db"
    sqlite3.connect(database).close()
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        for workers in ("1", "2"):
            run = _rw(
                tmp_path, "serve", "--port", str(port), "--workers", workers,
                env={"ROADWATCH_MIGRATE_ON_START": "false"},
            )  # fmt: skip
            assert run.returncode == 2 and "cannot listen" in run.stderr, (workers, run)
            with contextlib.closing(sqlite3.connect(database)) as db:
                tables = db.execute("SELECT name FROM sqlite_master").fetchall()
            assert tables == [], (workers, tables)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _socket_owners(pids: set[int], server_port: int, client_ports: list[int]) -> list[int | None]:
    """For each client port, the pid among ``pids`` holding the server's end (Linux /proc)."""
    inodes: dict[int, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, inode = parts[1], parts[2], parts[9]
        if int(local.split(":")[1], 16) == server_port:
            inodes[int(remote.split(":")[1], 16)] = inode
    holder: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                holder[target[8:-1]] = pid
    return [holder.get(inodes.get(port, "")) for port in client_ports]


def _answer(client: socket.socket, request: str) -> str:
    """One request over a kept connection; the answer's body."""
    client.sendall(request.encode("ascii") + b"\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(65536)
        assert chunk, "connection closed before the answer"
        answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?i)content-length: (\d+)", head)
    assert length is not None, head
    while len(body) < int(length.group(1)):
        chunk = client.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    return body.decode("utf-8")


def _health(port: int, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
        body: bytes = r.read()
        return body


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux /proc")
def test_serve_workers_share_kept_connections_replace_a_dead_worker_and_stop(
    tmp_path: Path,
) -> None:
    """With --workers 2, connections opened at once and kept open spread over both
    workers (each listens on its own socket), and /metrics on either counts the requests
    both answered; a worker killed with SIGKILL is replaced and requests meanwhile wait
    instead of failing; SIGTERM stops the parent and every worker."""
    port = _free_port()
    command = [sys.executable, "-m", "roadwatch", "central", "serve", "--port", str(port)]
    token = "metrics-" + "k" * 32
    proc = subprocess.Popen(
        [*command, "--workers", "2"],
        env={**_env(tmp_path), "ROADWATCH_METRICS_TOKEN": token},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert b'"ok"' in _health(port, timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        for _ in range(16):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for client in clients:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        for client in clients:
            answer = b""
            while b'"ok"' not in answer:
                chunk = client.recv(4096)
                assert chunk, "connection closed before the answer"
                answer += chunk
        listening = [
            line.split()
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port
        ]
        assert len(listening) == 2  # a socket per worker (SO_REUSEPORT), not one shared
        workers = _children(proc.pid)
        owners = _socket_owners(workers, port, [c.getsockname()[1] for c in clients])
        assert None not in owners
        assert len(set(owners)) == 2, f"every kept connection on one worker: {owners}"
        # At least 17 health checks answered (one or more at the start, as a check that
        # timed out on a loaded machine is tried again, then 16), by both workers: /metrics
        # on each worker counts them all, the same sum (each worker's own count is less).
        counted = []
        for worker in set(owners):
            client = clients[owners.index(worker)]
            text = _answer(
                client, f"GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}"
            )
            health = re.search(
                r'roadwatch_http_request_seconds_count\{method="GET",route="/health",'
                r'status="200"\} (\S+)', text,
            )  # fmt: skip
            assert health is not None, (worker, text[:2000])
            counted.append(float(health.group(1)))
        assert counted[0] == counted[1] >= 17.0, counted

        victim = owners[0]
        assert victim is not None
        family = _children(proc.pid)
        os.kill(victim, signal.SIGKILL)
        for _ in range(8):  # some of these wait, queued for the dead worker's socket
            assert b'"ok"' in _health(port)
        deadline = time.monotonic() + 30
        while victim in (now := _children(proc.pid)) or len(now - family) != 1:
            assert time.monotonic() < deadline, f"worker {victim} not replaced: {now}"
            time.sleep(0.1)
    finally:
        for client in clients:
            client.close()
        before = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    # multiprocessing's resource tracker ends when it reads the parent's pipe close
    deadline = time.monotonic() + 5
    while (
        left := [p for p in before if Path(f"/proc/{p}").exists()]
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, "a process of serve outlived it"
