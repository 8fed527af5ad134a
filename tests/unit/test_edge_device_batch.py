"""The device pipeline (array letterbox, IOBinding, candidate selection) run on the host.

The same code runs with CuPy on a GPU; here NumPy and the CPU provider stand in, and its
detections must be those of the OpenCV host path.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.detections import Detections
from edge.detector import Detector, DetectorConfig, FrameDetections, letterbox_into
from edge.device_batch import (
    host_backend,
    letterbox_on,
    resize_bilinear,
    resize_plan,
    select_candidates,
)
from edge.parity import compare
from tests.edge_support import read_image, require_model


@pytest.mark.parametrize(("h", "w", "size"), [(1080, 1920, 640), (480, 640, 640), (37, 91, 64)])
def test_array_letterbox_matches_opencv(h: int, w: int, size: int) -> None:
    image = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    want = np.empty((3, size, size), np.float32)
    got = np.empty((3, size, size), np.float32)
    box_cv = letterbox_into(image, size, want)
    box_xp = letterbox_on(np, image, size, got)
    assert box_xp == box_cv
    # OpenCV weights in 11-bit fixed point; one grey level apart at most.
    assert np.abs(got - want).max() <= 1.01 / 255


def test_a_plan_is_made_once_per_size_and_each_size_keeps_its_own() -> None:
    assert resize_plan(np, 1080, 1920, 360, 640) is resize_plan(np, 1080, 1920, 360, 640)
    rng = np.random.default_rng(7)
    wide = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, (1920, 1080, 3), dtype=np.uint8)
    for image in (wide, tall, wide, tall):  # two cameras' frames in turn
        want = np.empty((3, 640, 640), np.float32)
        got = np.empty((3, 640, 640), np.float32)
        assert letterbox_on(np, image, 640, got) == letterbox_into(image, 640, want)
        assert np.abs(got - want).max() <= 1.01 / 255


def test_bilinear_resize_keeps_a_flat_image_flat_and_scales_a_ramp() -> None:
    flat = np.full((10, 20, 3), 77, np.uint8)
    assert np.all(resize_bilinear(np, flat, 7, 3) == 77)
    ramp = np.tile(np.arange(0, 200, 2, dtype=np.uint8)[None, :, None], (4, 1, 3))
    half = resize_bilinear(np, ramp, 50, 4)
    assert np.allclose(np.diff(half[0, 5:-5, 0]), 4.0)


def test_only_anchors_above_their_class_threshold_come_back() -> None:
    raw = np.zeros((2, 4 + 3, 5), np.float32)
    raw[:, :4, :] = np.arange(5, dtype=np.float32)  # box values = anchor index
    raw[0, 4 + 1, 2] = 0.9  # frame 0, anchor 2: column 1
    raw[1, 4 + 2, 4] = 0.3  # frame 1, anchor 4: column 2, under its 0.5
    raw[1, 4 + 0, 1] = 0.6  # frame 1, anchor 1: column 0
    found = select_candidates(
        host_backend(), raw, np.array([0, 1, 2]), np.array([0.5, 0.5, 0.5], np.float32)
    )
    assert found.frame.tolist() == [0, 1]
    assert found.column.tolist() == [1, 0]
    assert found.cxcywh[:, 0].tolist() == [2.0, 1.0]
    assert found.score.tolist() == pytest.approx([0.9, 0.6])
    assert len(found.of_frame(1)) == 1


@pytest.fixture(scope="module")
def two_paths() -> tuple[Detector, Detector, list[npt.NDArray[np.uint8]]]:
    """The detector with OpenCV pre-processing, the same with the device pipeline on the
    host, and two frames (a junction photo and the same at 1920x1080)."""
    path = require_model("yolov8n-coco-dynamic")
    plain = Detector.load(path, DetectorConfig(providers=("CPUExecutionProvider",)), None)
    bound = Detector.load(
        path,
        DetectorConfig(providers=("CPUExecutionProvider",), device_pipeline=True),
        None,
    )
    assert plain.backend is None and bound.backend is not None
    frames = [read_image(require_model("bangkok_junction"))]
    frames.append(np.asarray(cv2.resize(frames[0], (1920, 1080)), np.uint8))
    return plain, bound, frames


def test_device_pipeline_on_the_host_finds_what_the_opencv_path_finds(
    two_paths: tuple[Detector, Detector, list[npt.NDArray[np.uint8]]],
) -> None:
    plain, bound, frames = two_paths
    # Inputs differ by at most one grey level, so boxes near a threshold may come and go;
    # the confident ones must all be there, in place and of the same class.
    report = compare(plain.detect(frames), bound.detect(frames))
    assert report.reference_boxes > 10
    assert report.within(shift_px=2.0, score=0.02, recall=1.0, classes=1.0), report.describe()


def test_device_pipeline_on_the_host_hands_the_tracker_what_the_opencv_path_does(
    two_paths: tuple[Detector, Detector, list[npt.NDArray[np.uint8]]],
) -> None:
    """The node tracks with ``detect_for_tracking``: its low boxes leave the device through
    the same candidate search, at the low floor, as on the host. A box near its class
    threshold may be confident on one path and low on the other (the inputs differ by a
    grey level), so the tracker's whole input is compared: the confident boxes of both,
    and every box clear of the low floor found again, in place and of the same class."""
    plain, bound, frames = two_paths
    want, got = plain.detect_for_tracking(frames), bound.detect_for_tracking(frames)
    sure = compare([f.confident for f in want], [f.confident for f in got])
    assert sure.within(shift_px=2.0, score=0.02, recall=1.0, classes=1.0), sure.describe()
    assert sum(len(f.low) for f in want) > 50

    def tracker_input(found: list[FrameDetections]) -> list[Detections]:
        return [Detections.merge([f.confident, f.low]) for f in found]

    floor = plain.config.low_confidence
    report = compare(tracker_input(want), tracker_input(got), confident=floor + 0.02)
    assert report.reference_boxes > 100
    assert report.within(shift_px=8.0, score=0.02, recall=1.0, classes=1.0), report.describe()


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge import detector
    from edge.detector import DetectorError, _choose_backend
    from edge.device_batch import BackendError

    def no_gpu() -> None:
        raise BackendError("GPU pre-processing needs CuPy (the gpu extra)")

    monkeypatch.setattr(detector, "cuda_backend", no_gpu)
    cpu, gpu = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert _choose_backend(None, cpu) is None
    assert _choose_backend(False, gpu) is None
    host = _choose_backend(True, cpu)
    assert host is not None and host.device == "cpu"
    assert _choose_backend(None, gpu) is None  # falls back to OpenCV, with a warning
    with pytest.raises(DetectorError, match="needs CuPy"):
        _choose_backend(True, gpu)
