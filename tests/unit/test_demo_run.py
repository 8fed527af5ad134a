"""The demo's run folder and port: what it replaces, and what it refuses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from roadwatch.demo.run import RUN_MARK, _fresh_run_dir, _port_free
from roadwatch.errors import UserError


def test_the_last_runs_folder_is_replaced(tmp_path: Path) -> None:
    run = _fresh_run_dir(tmp_path / "run")
    (run / "central.log").write_text("last run")
    (run / "outbox").mkdir()
    again = _fresh_run_dir(tmp_path / "run")
    assert sorted(p.name for p in again.iterdir()) == [RUN_MARK]
    # A run from before the mark, with only what runs leave, is replaced too.
    (again / RUN_MARK).unlink()
    (again / "mosquitto.log").write_text("older run")
    assert sorted(p.name for p in _fresh_run_dir(again).iterdir()) == [RUN_MARK]


def test_a_folder_with_someone_elses_files_is_refused_and_kept(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match=r"holds files the demo did not make \(notes.txt\)"):
        _fresh_run_dir(run)
    assert (run / "notes.txt").read_text() == "precious"
    (run / RUN_MARK).write_text("a demo run once")  # a demo folder someone added to
    with pytest.raises(UserError, match="holds files the demo did not make"):
        _fresh_run_dir(run)
    assert (run / "notes.txt").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        _fresh_run_dir(tmp_path / "file")


def test_a_port_left_in_time_wait_by_the_last_run_is_free() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side waits in TIME_WAIT
        client.close()
    _port_free(port)


def test_a_port_another_program_holds_is_refused() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} is in use"):
            _port_free(port)
    _port_free(port)  # free again


def test_a_step_stopped_by_an_interrupt_says_so() -> None:
    """A step that says nothing (an interrupt stopped it) is told by how it ended, not as
    an empty "failed:" line."""
    import signal
    import subprocess

    from roadwatch.demo.run import _why

    def done(code: int, stderr: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["roadwatch"], code, "", stderr)

    assert _why(done(-signal.SIGINT)) == "stopped by SIGINT"
    assert _why(done(2, "  site 'x' is not registered\n")) == "site 'x' is not registered"
    assert _why(done(1)) == "exit status 1, nothing said"
