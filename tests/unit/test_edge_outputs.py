"""`edge run`'s outputs: never one of the run's inputs, and written in place only at the end."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge.detections import Detections
from edge.outputs import AnnotatedVideo, TrackLog
from edge.sources import Frame
from tests.edge_support import cli, cli_env


def _frame(index: int) -> Frame:
    return Frame("cam1", index, float(index), datetime.now(UTC), np.zeros((64, 96, 3), np.uint8))


@pytest.mark.parametrize("keep", [True, False])
def test_outputs_replace_an_earlier_run_only_when_finished(tmp_path: Path, keep: bool) -> None:
    tracks, video = tmp_path / "t.jsonl", tmp_path / "a.mp4"
    tracks.write_text("earlier run\n")
    video.write_bytes(b"earlier run")
    log, annotated = TrackLog(tracks), AnnotatedVideo(video, 10.0)
    for i in range(3):
        log.write(_frame(i), Detections.empty())
        annotated.write(_frame(i), Detections.empty())
    # While the run goes on, the files of the earlier run are as they were.
    assert tracks.read_text() == "earlier run\n"
    assert video.read_bytes() == b"earlier run"
    log.close(keep)
    annotated.close(keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "t.jsonl"]
    if keep:
        assert len(tracks.read_text().splitlines()) == 3
        cap = cv2.VideoCapture(str(video))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
        cap.release()
    else:  # a failed run
        assert tracks.read_text() == "earlier run\n"
        assert video.read_bytes() == b"earlier run"


SCENE = "version: v1\ncamera: cam1\nimage_size: {width: 64, height: 64}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # The clip was overwritten by its own annotated video.
        (["--source", "CLIP", "--annotate", "CLIP"], "--annotate CLIP: that is the --source video"),
        (["--source", "CLIP", "--tracks", "LINK"], "--tracks LINK: that is the --source video"),
        # The configuration was overwritten by the violations.
        (["--config", "SITE", "--violations", "SITE"], "--violations SITE: that is the --config"),
        (["--config", "SITE", "--violations", "SCENE"], "that is camera cam1's scene file"),
        (["--config", "SITE", "--violations", "CAMCLIP"], "that is camera cam1's video"),
        (
            ["--source", "CLIP", "--tracks", "OUT", "--annotate", "OUT"],
            "--annotate OUT: also given to --tracks; name another file",
        ),
    ],
)
def test_an_output_that_is_an_input_is_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    files = {
        "CLIP": tmp_path / "clip.mp4",
        "CAMCLIP": tmp_path / "cam.mp4",
        "SITE": tmp_path / "site.yaml",
        "SCENE": tmp_path / "cam1.scene.yaml",
        "OUT": tmp_path / "out.mp4",
    }
    files["CLIP"].write_bytes(b"the only copy of the clip")
    files["CAMCLIP"].write_bytes(b"the camera's clip")
    files["SCENE"].write_text(SCENE)
    files["SITE"].write_text(
        "site: s\nnode: n\ncameras:\n  - {id: cam1, url: cam.mp4, scene: cam1.scene.yaml}\n"
    )
    (tmp_path / "sub").mkdir()
    files["LINK"] = tmp_path / "sub" / ".." / "clip.mp4"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    named = [str(files.get(a, a)) for a in args]
    proc = subprocess.run(
        cli("edge", "run", *named),
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    for name, path in files.items():
        message = message.replace(name, str(path))
    assert line.startswith("roadwatch: error: ") and message in line, line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.parametrize(
    "central_key", ["central.pub", ["central.pub"], ["central.pub", "central-2027.pub"]]
)
def test_each_of_centrals_config_keys_is_an_input_no_output_may_overwrite(
    tmp_path: Path, central_key: str | list[str]
) -> None:
    from edge.config import parse_site_config
    from edge.perception_cli import _config_files

    config = parse_site_config(
        {
            "site": "s", "node": "n", "cameras": [{"id": "cam1", "url": "rtsp://cam/1"}],
            "delivery": {"key_path": "node.key", "config_push": {"central_key": central_key}},
        }
    ).resolved(tmp_path)  # fmt: skip
    keys = [central_key] if isinstance(central_key, str) else central_key
    assert _config_files(config) == [
        ("the node key", tmp_path / "node.key"),
        *[("central's config key", tmp_path / key) for key in keys],
    ]


class _Delivery:
    """Stands in for a node's delivery: what is left in its outbox after the drain."""

    def __init__(self, pending: int, blobs: int) -> None:
        self.outbox = SimpleNamespace(
            stats=lambda: SimpleNamespace(pending=pending, blobs_pending=blobs)
        )
        self.calls: list[str] = []

    def drain(self, timeout_s: float) -> bool:
        self.calls.append(f"drain {timeout_s:g}")
        return False

    def stop(self) -> bool:
        self.calls.append("stop")
        return True


@pytest.mark.parametrize(
    ("pending", "blobs", "said"),
    [
        (0, 0, None),
        (0, 5, "still to send: 0 message(s) and 5 evidence file(s)"),
        (2, 1, "still to send: 2 message(s) and 1 evidence file(s)"),
    ],
)
def test_a_recordings_run_says_what_it_left_to_send(
    pending: int, blobs: int, said: str | None
) -> None:
    """`edge run --source` with a delivery section ended saying what it stored, and an
    operator took the cases as at central while their evidence still waited to upload."""
    from edge.perception_cli import DRAIN_S, _stop_delivery

    delivery = _Delivery(pending, blobs)
    left = _stop_delivery(delivery, DRAIN_S)
    assert delivery.calls == [f"drain {DRAIN_S:g}", "stop"]
    if said is None:
        assert left is None
    else:
        assert left is not None and left.startswith(said) and "edge deliver" in left
    assert _stop_delivery(None, DRAIN_S) is None
