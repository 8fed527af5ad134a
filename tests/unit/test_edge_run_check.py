"""`edge run --config site.yaml --check`: a camera added to a node's file is checked as the
start would check it, without stopping the node that runs (nothing opened or written)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from calibration.store import save_calibration
from edge.identity import write_key_pair
from roadwatch.cli import main
from roadwatch.demo.scene import demo_camera, surveyed_calibration, write_scene_file


def _site(folder: Path) -> dict[str, Any]:
    write_key_pair(folder / "node")
    write_scene_file(folder / "cam-01.scene.yaml", demo_camera())
    calibration = surveyed_calibration(demo_camera(), 3, datetime.now(UTC))
    save_calibration(calibration, folder / "cam-01.calib.yaml")
    save_calibration(calibration.model_copy(update={"camera": "cam-09"}), folder / "cam-09.yaml")
    return {
        "site": "s1",
        "node": "node-01",
        "version": "v2",
        "plates": False,
        "cameras": [
            {"id": "cam-01", "url": "rtsp://10.0.0.21/s", "scene": "cam-01.scene.yaml",
             "calibration": "cam-01.calib.yaml"},
            {"id": "cam-02", "url": "rtsp://10.0.0.22/s"},
        ],
        "delivery": {
            "key_path": "node.key",
            "broker": {"host": "127.0.0.1", "port": 1883},
            "outbox": {"path": "outbox"},
        },
    }  # fmt: skip


def test_check_says_what_would_run_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(_site(tmp_path)))
    assert main(["edge", "run", "--config", str(site), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{site}: valid, version v2: 2 camera(s), rules on cam-01;")
    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"calibration": "cam-09.yaml"}, "cam-09.yaml: calibration is for camera cam-09, not"),
        ({"scene": "cam-02.scene.yaml"}, "cam-02.scene.yaml"),
        ({"calibraton": "cam-01.calib.yaml"}, "cameras.0.calibraton: Extra inputs"),
    ],
    ids=["another-cameras-calibration", "missing-scene", "misspelt-key"],
)
def test_check_refuses_what_the_start_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], error: str
) -> None:
    doc = _site(tmp_path)
    doc["cameras"][0].update(change)
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(doc))
    assert main(["edge", "run", "--config", str(site), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err, err
    assert not (tmp_path / "outbox").exists()


def test_check_is_for_the_nodes_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "run", "--source", str(tmp_path / "clip.mp4"), "--check"]) == 2
    assert "--check checks a --config file" in capsys.readouterr().err


def test_check_refuses_a_scene_line_its_calibration_puts_above_the_horizon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scene placed on the road by the camera's calibration is part of what a start
    checks (a line drawn above the calibration's horizon is refused there): `--check`
    said "valid" for it, and the node restarted on it did not start."""
    doc = _site(tmp_path)
    scene_path = tmp_path / "cam-01.scene.yaml"
    scene = yaml.safe_load(scene_path.read_text())
    scene.setdefault("solid_lines", []).append(
        {"id": "sky", "points": [[100, 5], [800, 5]]}  # (row 5: above this view's horizon)
    )
    scene_path.write_text(yaml.safe_dump(scene))
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(doc))
    assert main(["edge", "run", "--config", str(site), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not reach the road plane" in err, err
    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--violations", "found.jsonl"], "--violations"),
        (["--camera", "cam-01"], "--camera"),
        (["--annotate", "out.mp4"], "--annotate"),
        (["--quiet", "--tracks", "tracks.jsonl"], "--tracks, --quiet"),
    ],
    ids=["violations", "camera", "annotate", "several"],
)
def test_check_refuses_the_options_of_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    """`--check` starts nothing and writes nothing: an option of a run given with it was
    accepted and ignored (`--violations` said "valid" and wrote no file), so the
    technician believed it had been checked; it is refused, naming the option."""
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(_site(tmp_path)))
    argv = ["edge", "run", "--config", str(site), "--check"]
    argv += [str(tmp_path / o) if o.endswith((".jsonl", ".mp4")) else o for o in options]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert f"--check starts nothing and writes nothing: leave out {named}" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cam-01.calib.yaml", "cam-01.scene.yaml", "cam-09.yaml", "node.key", "node.pub",
        "site.yaml",
    ]  # fmt: skip
