from __future__ import annotations

import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from roadwatch.cli import main
from roadwatch.contract.signing import load_private_key, load_public_key_pem, sign, verify
from roadwatch.errors import UserError
from tests.factories import violation_event
from tests.threads import leaked_threads


def test_keygen_writes_owner_only_private_key_and_a_matching_public_key(tmp_path: Path) -> None:
    assert main(["edge", "keygen", "--out", str(tmp_path / "n1")]) == 0
    private, public = tmp_path / "n1.key", tmp_path / "n1.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    assert b"PRIVATE" not in public.read_bytes()
    signed = sign(violation_event(), load_private_key(private))
    verify(signed, load_public_key_pem(public.read_bytes()))


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "n1.key").write_bytes(b"keep me")
    assert main(["edge", "keygen", "--out", str(tmp_path / "n1")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "n1.key").read_bytes() == b"keep me"
    assert not (tmp_path / "n1.pub").exists()


def test_keygen_into_missing_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "keygen", "--out", str(tmp_path / "nope" / "n1")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_keygen_into_a_folder_writes_node_key_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keys").mkdir()
    assert main(["edge", "keygen", "--out", f"{tmp_path / 'keys'}/"]) == 0
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["node.key", "node.pub"]
    monkeypatch.chdir(tmp_path / "keys")
    assert main(["edge", "keygen", "--out", "."]) == 2  # ./node.key is there already


def test_keygen_leaves_no_private_key_when_the_public_one_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from edge import identity

    real_open = os.open

    def disk_full_at_pub(path: Any, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".pub"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", disk_full_at_pub)  # (the one edge.identity calls)
    with pytest.raises(UserError, match="No space left on device"):
        identity.write_key_pair(tmp_path / "n1")
    assert list(tmp_path.iterdir()) == []


def test_cli_help_and_version_from_the_installed_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roadwatch", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "edge" in out
    version = subprocess.run(
        [sys.executable, "-m", "roadwatch", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.startswith("roadwatch ")


def test_thread_leak_detector_sees_a_running_thread() -> None:
    before = set(threading.enumerate())
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="left-running", daemon=True)
    worker.start()
    try:
        leaked = leaked_threads(before, grace_s=0.1)
        assert [t.name for t in leaked] == ["left-running"]
    finally:
        stop.set()
        worker.join(timeout=2)
    assert leaked_threads(before, grace_s=1.0) == []


def test_config_keygen_writes_the_configured_file_even_beside_a_folder_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keys" / "central").mkdir(parents=True)
    monkeypatch.setenv("ROADWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ROADWATCH_CONFIG_KEY", str(tmp_path / "keys" / "central.key"))
    assert main(["central", "config", "keygen"]) == 0
    assert (tmp_path / "keys" / "central.key").is_file()
    assert list((tmp_path / "keys" / "central").iterdir()) == []
    capsys.readouterr()
    assert main(["central", "config", "keygen"]) == 2
    assert "refusing to overwrite a config-signing key" in capsys.readouterr().err


def test_keygen_leaves_neither_file_when_the_public_key_breaks_off_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from edge import identity

    def disk_full(_key: Any) -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(identity, "public_key_pem", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        identity.write_key_pair(tmp_path / "n1")
    assert list(tmp_path.iterdir()) == []  # so the next try is not refused


@pytest.mark.parametrize("given", ["node.key", "node.pub", "node"])
def test_keygen_takes_a_key_file_name_as_its_pair(tmp_path: Path, given: str) -> None:
    # `--out node.key` wrote node.key.key and node.key.pub.
    assert main(["edge", "keygen", "--out", str(tmp_path / given)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key", "node.pub"]


def test_edge_run_help_says_what_a_run_does(capsys: pytest.CaptureFixture[str]) -> None:
    # It said "detection and tracking" only, and that --source writes the annotated video.
    with pytest.raises(SystemExit):
        main(["edge", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in ("the violation rules", "evidence package", "outbox", "delivery.config_push"):
        assert part in text
    assert "--annotate ANNOTATE with --source: write the video with the tracks drawn" in text
    assert "and write the annotated video" not in text


def test_output_piped_into_a_reader_that_goes_away_is_no_traceback() -> None:
    # `roadwatch verify case.zip | head -2` printed a BrokenPipeError traceback.
    scene = Path(__file__).resolve().parents[1] / "data" / "rules_vn_redlight_16h30.scene.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadwatch", "scene", "check", str(scene)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # (before the command writes: the reader is gone)
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
