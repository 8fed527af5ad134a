"""`roadwatch edge run` end to end on a stretch of the real Hanoi clip, and its signals."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.edge_support import cli, cli_env, hanoi_clip, require_model

# (serial: `edge run` paces its cameras at their frame rate and must keep up)
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _stretch(tmp_path: Path, first: int, count: int) -> Path:
    """Frames [first, first + count) of the Hanoi clip as their own MP4."""
    import cv2

    cap = cv2.VideoCapture(str(hanoi_clip()))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    out = tmp_path / "stretch.mp4"
    writer = None
    for _ in range(count):
        ok, image = cap.read()
        assert ok
        if writer is None:
            h, w = image.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
        writer.write(image)
    assert writer is not None
    writer.release()
    cap.release()
    return out


def test_run_on_a_video_writes_tracks_and_an_annotated_video(tmp_path: Path) -> None:
    import cv2

    require_model("yolov8n-coco-dynamic")
    clip = _stretch(tmp_path, 236, 24)
    tracks, video = tmp_path / "t.jsonl", tmp_path / "a.mp4"
    args = ["--source", str(clip), "--annotate", str(video), "--tracks", str(tracks)]
    proc = subprocess.run(
        cli("edge", "run", *args),
        capture_output=True, text=True, env=cli_env(), timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "frame 24/24 (100%)" in proc.stderr
    records = [json.loads(line) for line in tracks.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(24))
    ids = {t["track_id"] for r in records for t in r["tracks"]}
    assert 8 <= len(ids) <= 60
    first = records[-1]["tracks"][0]
    assert set(first) == {"track_id", "class", "confidence", "box"}
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    cap.release()


@pytest.mark.parametrize(
    ("processes", "running"),
    [
        (1, r"running 2 camera\(s\) decoded by (opencv|nvdec)"),
        (2, r"running 2 camera\(s\) in 2 worker processes"),
    ],
)
def test_run_with_a_config_stops_cleanly_on_sigterm(
    tmp_path: Path, processes: int, running: str
) -> None:
    require_model("yolov8n-coco-dynamic")
    clip = _stretch(tmp_path, 0, 12)
    config = tmp_path / "site.yaml"
    config.write_text(
        f"site: test\nnode: n1\nprocesses: {processes}\ncameras:\n"
        f"  - id: cam1\n    url: {clip}\n    loop: true\n"
        f"  - id: cam2\n    url: {clip}\n    loop: true\n"
    )
    proc = subprocess.Popen(
        cli("-v", "edge", "run", "--config", str(config)),
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=cli_env(),
    )  # fmt: skip
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stderr or ():
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    seen: list[str] = []

    def wait_for(pattern: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(re.search(pattern, line) for line in seen):
            assert time.monotonic() < deadline, f"never {pattern!r}: {''.join(seen)}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.5))

    try:
        wait_for(running)
        wait_for(r"camera cam\d: up")  # (in a worker: its readers and detector are loaded)
        time.sleep(3)  # let it detect a few frames
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(10)
    while not lines.empty():
        seen.append(lines.get())
    rest = "".join(seen)
    assert rc == 0, rest
    assert "SIGTERM, stopping" in rest
    found = re.search(r"^(\d+) frames .* tracks", rest, re.MULTILINE)
    assert found is not None and int(found.group(1)) > 0, rest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "/nonexistent/clip.mp4"], "no such video file: /nonexistent/clip.mp4"),
        ([], "give --config site.yaml, --source VIDEO, or both"),
        (["--config", "CONFIG"], "camera cam1: no such video file: /nonexistent/cam.mp4"),
        (["--config", "WORKERS"], "camera cam1: no such video file: /nonexistent/cam.mp4"),
        # An output named is left as it was when the run does not start.
        (
            ["--source", "/nonexistent/clip.mp4", "--violations", "KEEP"],
            "no such video file: /nonexistent/clip.mp4",
        ),
        (
            ["--config", "CONFIG", "--violations", "KEEP"],
            "camera cam1: no such video file: /nonexistent/cam.mp4",
        ),
        (
            ["--config", "CONFIG", "--violations", "/nonexistent/v.jsonl"],
            "--violations /nonexistent/v.jsonl: no folder /nonexistent",
        ),
        (["--config", "CONFIG", "--violations", "FOLDER"], "is a folder; name a file"),
        (["--source", "CONFIG", "--tracks", "FOLDER"], "--tracks"),
        # A file camera that holds no video is refused, not retried for ever.
        (["--config", "NOTVIDEO"], "camera cam1: cannot open video source"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    keep = tmp_path / "v.jsonl"
    keep.write_text('{"kept": "from an earlier run"}\n')
    args = [str(keep) if a == "KEEP" else str(tmp_path) if a == "FOLDER" else a for a in args]
    config = tmp_path / "site.yaml"
    processes = 2 if "WORKERS" in args else 1
    url = keep if "NOTVIDEO" in args else "/nonexistent/cam.mp4"
    config.write_text(
        f"site: s\nnode: n\nprocesses: {processes}\ncameras:\n  - id: cam1\n    url: {url}\n"
    )
    args = ["CONFIG" if a in ("WORKERS", "NOTVIDEO") else a for a in args]
    args = [str(config) if a == "CONFIG" else a for a in args]
    proc = subprocess.run(
        cli("edge", "run", *args),
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("roadwatch: error: ") and message in line, line
    assert keep.read_text() == '{"kept": "from an earlier run"}\n'


@pytest.mark.parametrize("processes", [1, 2])
def test_a_run_on_an_outbox_another_process_delivers_from_is_refused_first(
    tmp_path: Path, processes: int
) -> None:
    """It said "running 2 camera(s) …" and only then refused: the outbox's delivery lock
    is taken before the run says it runs."""
    import fcntl

    from edge.identity import write_key_pair

    require_model("yolov8n-coco-dynamic")
    write_key_pair(tmp_path / "node")
    (tmp_path / "outbox").mkdir()
    config = tmp_path / "site.yaml"
    config.write_text(
        f"site: s\nnode: n\nprocesses: {processes}\ncameras:\n"
        "  - id: cam1\n    url: rtsp://127.0.0.1:9/cam1\n"
        "  - id: cam2\n    url: rtsp://127.0.0.1:9/cam2\n"
        "delivery:\n  key_path: node.key\n  broker: {host: 127.0.0.1, port: 9}\n"
        "  outbox: {path: outbox}\n"
    )
    keep = tmp_path / "v.jsonl"
    keep.write_text('{"kept": "from an earlier run"}\n')
    with (tmp_path / "outbox" / "delivery.lock").open("a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # (edge deliver, say)
        proc = subprocess.run(
            cli("edge", "run", "--config", str(config), "--violations", str(keep)),
            capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"roadwatch: error: another process is already delivering from the outbox"
        f" {tmp_path / 'outbox'} (edge run or edge deliver for this node): run one of them"
    ]
    assert keep.read_text() == '{"kept": "from an earlier run"}\n'


def test_a_camera_refused_is_said_in_the_nodes_own_lines_only(tmp_path: Path) -> None:
    """FFmpeg (inside OpenCV) printed "[tcp @ 0x…] Connection to tcp://…?timeout=0
    failed: Connection refused" at every attempt, outside the log's format; the node's
    own line says the same."""
    from roadwatch.net import free_port

    require_model("yolov8n-coco-dynamic")
    port = free_port()
    config = tmp_path / "site.yaml"
    config.write_text(
        f"site: s\nnode: n\ncameras:\n  - id: cam1\n    url: rtsp://127.0.0.1:{port}/cam1\n"
    )
    proc = subprocess.Popen(
        cli("edge", "run", "--config", str(config)),
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=cli_env(),
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        for line in proc.stderr:  # (FFmpeg's line came before the node's, at the open)
            seen.append(line)
            if "camera cam1: down" in line:
                break
        proc.send_signal(signal.SIGTERM)
        seen += proc.stderr.readlines()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = "".join(seen)
    assert f"camera cam1: down (cannot open video source rtsp://127.0.0.1:{port}/cam1" in text
    assert f"127.0.0.1:{port} refuses connections" in text
    assert "[tcp @" not in text and "Connection to tcp://" not in text, text


def test_nvdec_where_it_cannot_run_is_one_line(tmp_path: Path) -> None:
    # A PyNvVideoCodec that cannot load (as on a box without the gpu extra or a driver).
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "PyNvVideoCodec.py").write_text("raise ImportError('libnvcuvid.so.1: not found')\n")
    config = tmp_path / "site.yaml"
    config.write_text(
        f"site: s\nnode: n\ndecode: {{decoder: nvdec}}\n"
        f"cameras:\n  - id: cam1\n    url: {hanoi_clip()}\n"
    )
    env = cli_env()
    env["PYTHONPATH"] = f"{shim}:{env['PYTHONPATH']}"
    proc = subprocess.run(
        cli("edge", "run", "--config", str(config)),
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "roadwatch: error: decode.decoder is nvdec, which cannot run here (NVDEC decoding"
        " needs PyNvVideoCodec (the gpu extra): libnvcuvid.so.1: not found); use auto or opencv"
    ]
