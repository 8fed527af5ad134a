from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from calibration.check import GRID_5M
from calibration.projector import RoadProjector
from calibration.store import load_calibration
from roadwatch.cli import main
from tests.services import require_shared_file

ROOT = Path(__file__).resolve().parents[2]
SURVEY = ROOT / "calibration" / "examples" / "kraten_cars.points.yaml"


def test_fit_and_check_on_a_real_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = require_shared_file("kraten_cars.mp4")
    out = tmp_path / "kraten.calib.yaml"
    assert (
        main(
            [
                "calibrate",
                "fit",
                "--points",
                str(SURVEY),
                "--frame",
                str(clip),
                "-o",
                str(out),
                "--by",
                "Tran Thi B",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "RMS" in printed and "C18" in printed
    calibration = load_calibration(out)
    assert calibration.image_size == (640, 360)
    assert calibration.rms_px < 2.0  # dash ends picked to about a pixel
    assert sum(calibration.inliers) >= 16

    picture = tmp_path / "check.png"
    assert main(["calibrate", "check", str(out), "--frame", str(clip), "-o", str(picture)]) == 0
    image = cv2.imread(str(picture))
    assert image is not None
    assert image.shape == (720, 1280, 3)  # small frames are drawn at 2x for readable labels
    # A 5 m grid crossing off the painted lines carries the grid colour over the road.
    projector = RoadProjector(image_to_world=calibration.matrix())
    u, v = (projector.to_image(np.array([[-5.0, 10.0]]))[0] * 2).round().astype(int)
    pixel = image[v, u].astype(float)
    assert np.abs(pixel - np.array(GRID_5M)).max() < np.abs(pixel - 128).max() + 60
    assert pixel[2] > pixel[0] + 40  # yellow-ish (BGR): red well above blue


def test_fit_from_the_installed_entry_point_with_bad_points_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((360, 640, 3), np.uint8))
    survey = yaml.safe_load(SURVEY.read_text())
    survey["points"] = [
        {"name": f"p{i}", "pixel": [100 + 10 * i, 100 + 10 * i], "world": [i, i]} for i in range(5)
    ]
    points = tmp_path / "pts.yaml"
    points.write_text(yaml.safe_dump(survey))
    out = tmp_path / "cam.calib.yaml"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roadwatch",
            "calibrate",
            "fit",
            "--points",
            str(points),
            "--frame",
            str(frame),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "roadwatch: error: image points: all points lie on one line"
    assert not out.exists()


def test_check_refuses_a_frame_of_another_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = require_shared_file("kraten_cars.mp4")
    out = tmp_path / "kraten.calib.yaml"
    assert (
        main(["calibrate", "fit", "--points", str(SURVEY), "--frame", str(clip), "-o", str(out)])
        == 0
    )
    frame = tmp_path / "big.png"
    cv2.imwrite(str(frame), np.zeros((720, 1280, 3), np.uint8))
    assert (
        main(["calibrate", "check", str(out), "--frame", str(frame), "-o", str(tmp_path / "c.png")])
        == 2
    )
    assert "frame is 1280x720, the calibration is for 640x360" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_lens_command_writes_a_lens_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_calibration_lens import PATTERN, POSES, TRUE_LENS, render_checkerboard

    paths = []
    for i, (rvec, centre) in enumerate(POSES[:5]):
        paths.append(tmp_path / f"b{i}.png")
        cv2.imwrite(str(paths[-1]), render_checkerboard(TRUE_LENS, rvec, centre))
    out = tmp_path / "lens.yaml"
    cols, rows = PATTERN
    assert (
        main(
            [
                "calibrate",
                "lens",
                *map(str, paths),
                "--pattern",
                f"{cols}x{rows}",
                "--square-mm",
                "40",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    lens = yaml.safe_load(out.read_text())
    assert lens["image_size"] == [640, 480]
    assert lens["camera_matrix"][0][0] == pytest.approx(520, rel=0.02)
    assert "lens from 5 views" in capsys.readouterr().out


def test_outputs_that_cannot_be_written_are_one_line_and_leave_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = require_shared_file("kraten_cars.mp4")
    fit = ["calibrate", "fit", "--points", str(SURVEY), "--frame", str(clip), "-o"]
    assert main([*fit, str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "kraten.calib.yaml"
    assert main([*fit, str(out)]) == 0
    capsys.readouterr()
    check = ["calibrate", "check", str(out), "--frame", str(clip), "-o"]
    assert main([*check, str(tmp_path / "check.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must end in .png, .jpg or .jpeg" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kraten.calib.yaml"]


def test_fit_writes_over_neither_its_survey_nor_a_calibration_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = require_shared_file("kraten_cars.mp4")
    survey = tmp_path / "survey.yaml"
    survey.write_bytes(SURVEY.read_bytes())
    fit = ["calibrate", "fit", "--points", str(survey), "--frame", str(clip), "-o"]
    assert main([*fit, str(survey)]) == 2
    assert "that is the survey file" in capsys.readouterr().err
    assert survey.read_bytes() == SURVEY.read_bytes()
    out = tmp_path / "cam.calib.yaml"
    out.write_text("the calibration in force\n", encoding="utf-8")
    assert main([*fit, str(out)]) == 2
    assert "exists: give --replace" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "the calibration in force\n"
    assert main([*fit, str(out), "--replace"]) == 0
    assert load_calibration(out).image_size == (640, 360)


def test_lens_writes_over_nothing_unasked_and_never_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_calibration_lens import PATTERN, POSES, TRUE_LENS, render_checkerboard

    boards = []
    for i, (rvec, centre) in enumerate(POSES[:5]):
        boards.append(tmp_path / f"b{i}.png")
        cv2.imwrite(str(boards[-1]), render_checkerboard(TRUE_LENS, rvec, centre))
    survey = tmp_path / "survey.yaml"
    survey.write_bytes(SURVEY.read_bytes())
    cols, rows = PATTERN
    lens = ["calibrate", "lens", *map(str, boards), "--pattern", f"{cols}x{rows}"]
    lens += ["--square-mm", "40", "-o"]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # The survey file (where the lens section goes) was overwritten without a word.
    assert main([*lens, str(survey)]) == 2
    err = capsys.readouterr().err
    assert f"{survey} exists: give --replace to write the new lens over it" in err
    assert err.count("\n") == 1
    # One of its own images, even with --replace.
    assert main([*lens, str(boards[0]), "--replace"]) == 2
    assert "that is the checkerboard image; name the lens file" in capsys.readouterr().err
    # A folder was an IsADirectoryError traceback.
    assert main([*lens, str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder; name the lens file" in capsys.readouterr().err
    assert main([*lens, str(tmp_path / "nowhere" / "lens.yaml")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # Asked, it writes over an older lens file, in one step (no temp file left).
    old = tmp_path / "lens.yaml"
    old.write_text("old lens\n", encoding="utf-8")
    assert main([*lens, str(old), "--replace"]) == 0
    assert yaml.safe_load(old.read_text())["image_size"] == [640, 480]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "lens.yaml"])


def test_fit_does_not_write_over_its_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((360, 640, 3), np.uint8))
    fit = ["calibrate", "fit", "--points", str(SURVEY), "--frame", str(frame), "--replace"]
    assert main([*fit, "-o", str(frame)]) == 2
    assert "that is the frame; name the calibration file" in capsys.readouterr().err
    assert cv2.imread(str(frame)) is not None


def test_frame_saves_a_still_of_a_recording_at_its_own_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The technician needs a picture of the camera's view to measure the survey's pixel
    points and the scene's lines on; `fit` and `check` read a video, nothing wrote one."""
    clip = tmp_path / "cam-02.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 240))
    for value in range(6):
        writer.write(np.full((240, 320, 3), value * 40, np.uint8))
    writer.release()
    out = tmp_path / "cam-02.png"
    assert main(["calibrate", "frame", str(clip), "--frame-index", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "320x240" in printed and "{width: 320, height: 240}" in printed
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (240, 320, 3)
    assert abs(float(image.mean()) - 120) < 10  # frame 3, not frame 0

    # Written over neither unasked nor the recording itself; a frame past the end is one line.
    before = out.read_bytes()
    assert main(["calibrate", "frame", str(clip), "-o", str(out)]) == 2
    assert "exists: give --replace" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["calibrate", "frame", str(clip), "-o", str(clip)]) == 2
    assert "that is the source" in capsys.readouterr().err
    late = tmp_path / "late.png"
    assert main(["calibrate", "frame", str(clip), "--frame-index", "99", "-o", str(late)]) == 2
    assert "has no frame 99" in capsys.readouterr().err
    assert not late.exists()


def test_frame_of_a_stream_that_cannot_be_opened_names_it_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "f.png"
    # (its password in the user part, or a token in the query, as some cameras take it)
    for url, shown in (
        (f"rtsp://admin:s3cret@127.0.0.1:{port}/stream1", f"rtsp://admin:***@127.0.0.1:{port}/stream1"),
        (f"rtsp://127.0.0.1:{port}/live?token=s3cret&ch=1", f"rtsp://127.0.0.1:{port}/live?token=***&ch=1"),
    ):  # fmt: skip
        assert main(["calibrate", "frame", url, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        # (the node's words for a camera it cannot open, with why as far as it can tell)
        assert f"cannot open video source {shown} (127.0.0.1:{port} refuses connections" in err
        assert "s3cret" not in err
        assert not out.exists()


@contextlib.contextmanager
def _stalling_camera(frames: int) -> Iterator[int]:
    """An HTTP camera (MJPEG) that sends ``frames`` frames and then nothing, keeping the
    connection open; its port."""
    ok, jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))
    assert ok
    part = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % jpeg.size
    head = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=f\r\n\r\n"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.1)
    done = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)
            conn.settimeout(2.0)
            with contextlib.suppress(OSError):
                conn.recv(4096)
                conn.sendall(head)
                for _ in range(frames):
                    conn.sendall(part + jpeg.tobytes() + b"\r\n")

    thread = threading.Thread(target=serve, name="stalling-camera", daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        server.close()
        for conn in held:
            conn.close()
        assert not thread.is_alive()


@pytest.mark.parametrize(
    ("frames", "said"),
    [
        # It answers and sends no picture: not opened within the time-out, as the node says.
        (0, "cannot open video source http://admin:***@127.0.0.1:{port}/video (127.0.0.1:{port}"
            " answers: check the URL's path, user and password)"),
        # It sends three frames and stalls: it said "the stream ended before frame 5"
        # (after the time-out), which sent the technician looking for a camera that stops.
        (3, "http://admin:***@127.0.0.1:{port}/video: no frame within 1 s: the stream stalled"
            " before frame 5"),
    ],
    ids=["no picture", "stalls"],
)  # fmt: skip
def test_frame_of_a_stream_that_gives_no_picture_says_so_within_its_timeout(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    frames: int,
    said: str,
) -> None:
    """The stream is read as the node reads its cameras: within the time-out, with the
    node's words, its password replaced by ***."""
    import calibration.frames

    monkeypatch.setattr(calibration.frames, "STREAM_OPEN_TIMEOUT_S", 1.0)
    out = tmp_path / "f.png"
    with _stalling_camera(frames) as port:
        url = f"http://admin:s3cret@127.0.0.1:{port}/video"
        started = time.monotonic()
        assert main(["calibrate", "frame", url, "--frame-index", "5", "-o", str(out)]) == 2
        took = time.monotonic() - started
    err = capsys.readouterr().err
    assert said.format(port=port) in err, err
    assert "s3cret" not in err and err.count("\n") == 1, err
    assert took < 6.0
    assert not out.exists()


def test_frame_to_a_picture_it_cannot_write_is_refused_before_the_stream_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A picture name OpenCV cannot write (.bmp, no ending) is said at once, as a folder
    that is not there is; before, the camera's stream was opened and read first (up to
    its 10 s open timeout), then the name refused."""
    import calibration.frames

    opened: list[str] = []
    real = calibration.frames.read_source_frame

    def recorded(source: str, index: int = 0) -> object:
        opened.append(source)
        return real(source, index)

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(calibration.frames, "read_source_frame", recorded)
        for name in ("still.bmp", "still"):
            out = tmp_path / name
            assert main(["calibrate", "frame", f"rtsp://127.0.0.1:{port}/s", "-o", str(out)]) == 2
            assert "must end in .png, .jpg or .jpeg" in capsys.readouterr().err
            assert not out.exists()
    assert opened == []


def test_frame_replacing_a_picture_keeps_the_old_one_when_the_write_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`frame --replace` wrote the new picture straight over the old one: a write the disk
    refused (full) or a kill left neither. The new one is written beside it and renamed
    over it only once on disk: a failed write is one line and the old picture is kept."""
    import errno

    source = tmp_path / "view.png"
    cv2.imwrite(str(source), np.full((240, 320, 3), 200, np.uint8))
    out = tmp_path / "cam-02.png"
    cv2.imwrite(str(out), np.zeros((120, 160, 3), np.uint8))
    old = out.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", disk_full)
        assert main(["calibrate", "frame", str(source), "-o", str(out), "--replace"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {out}: No space left on device" in err, err
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-02.png", "view.png"]

    assert main(["calibrate", "frame", str(source), "-o", str(out), "--replace"]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (240, 320, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-02.png", "view.png"]
