"""The detector: post-processing on synthetic head outputs, and the real model on real stills."""

from __future__ import annotations

import collections
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.boxes import Letterbox
from edge.detections import Detections, ObjectClass
from edge.detector import (
    DEFAULT_PROVIDERS,
    Detector,
    DetectorConfig,
    DetectorError,
    FrameError,
    choose_providers,
    decode,
    decode_for_tracking,
    finish,
    product_columns,
    provider_options,
)
from tests.edge_support import cli, cli_env, read_image, require_model, shared_detector
from tests.services import require_shared_file

COCO_HEAD = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]


def _raw(rows: list[tuple[float, float, float, float, int, float]]) -> np.ndarray:
    """A (1, 4 + classes, anchors) head output from (cx, cy, w, h, coco class, score) rows."""
    out = np.zeros((1, 4 + len(COCO_HEAD), len(rows)), np.float32)
    for a, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[0, :4, a] = (cx, cy, w, h)
        out[0, 4 + cls, a] = score
    return out


def test_decode_thresholds_nms_classes_and_letterbox() -> None:
    raw = _raw(
        [
            (100, 180, 40, 40, 2, 0.9),  # car
            (102, 180, 40, 40, 2, 0.6),  # the same car again: NMS drops it
            (300, 300, 20, 40, 3, 0.22),  # motorcycle below the default 0.25 ...
            (500, 300, 30, 30, 4, 0.99),  # an airplane: not a product class
            (400, 400, 50, 50, 7, 0.3),  # truck
        ]
    )
    columns = product_columns(COCO_HEAD)
    config = DetectorConfig(class_confidence={"motorcycle": 0.2}, merge_riders=False)
    box = Letterbox(scale=0.5, pad_x=0, pad_y=80, width=1280, height=960)
    (dets,) = decode(raw, [box], columns, config)
    dets, _ = finish(dets, config)
    assert sorted(dets.labels) == ["car", "motorcycle", "truck"]
    car = dets.select(dets.class_id == ObjectClass.CAR)
    assert car.xyxy[0].tolist() == pytest.approx([160, 160, 240, 240])
    strict = DetectorConfig(merge_riders=False)
    (dets2,) = decode(raw, [box], columns, strict)
    assert "motorcycle" not in finish(dets2, strict)[0].labels


def test_boxes_under_their_class_threshold_go_to_the_tracker_as_low() -> None:
    """Each box is confident or low by its own class's threshold (motorcycles 0.2 here):
    low boxes, from low_confidence (0.1) up, may continue a track; a person box under
    its threshold is no rider."""
    raw = _raw(
        [
            (100, 100, 40, 40, 3, 0.22),  # motorcycle over its 0.2: confident
            (300, 100, 40, 40, 3, 0.15),  # motorcycle under it: low
            (500, 100, 40, 40, 2, 0.2),  # car under the default 0.25: low
            (100, 400, 40, 40, 2, 0.05),  # car under low_confidence: gone
            (300, 390, 30, 50, 0, 0.2),  # person under 0.25, on a motorcycle: low, no rider
            (300, 410, 40, 40, 3, 0.6),  # that motorcycle
        ]
    )
    config = DetectorConfig(class_confidence={"motorcycle": 0.2})
    columns = product_columns(COCO_HEAD)
    (split,) = decode_for_tracking(raw, [Letterbox(1, 0, 0, 640, 640)], columns, config)
    assert _scored(split.confident) == [("motorcycle", 0.22), ("motorcycle", 0.6)]
    assert _scored(split.low) == [("car", 0.2), ("motorcycle", 0.15), ("person", 0.2)]
    assert split.riders_merged == 0
    # Without low, the decoder keeps to the thresholds as before (and the merge to them).
    (plain,) = decode(raw, [Letterbox(1, 0, 0, 640, 640)], columns, config)
    assert _scored(finish(plain, config)[0]) == [("motorcycle", 0.22), ("motorcycle", 0.6)]


def test_low_boxes_never_change_the_confident_ones() -> None:
    """Hanoi clip, frame 289: a person at 0.38 rides a motorcycle seen at 0.12, which a car
    box at 0.15 covers. Decoded together, the car (under its threshold) took the
    motorcycle's place and the rider stayed a person; apart, the motorcycle takes its rider
    as without low boxes, and the car, the same vehicle again, is not a low box either."""
    raw = _raw(
        [
            (330, 214, 17, 35, 0, 0.38),  # person
            (333, 214, 24, 38, 3, 0.12),  # motorcycle
            (333, 215, 24, 37, 2, 0.15),  # car
            (100, 100, 40, 40, 2, 0.15),  # a car elsewhere: low
        ]
    )
    config, columns = DetectorConfig(), product_columns(COCO_HEAD)
    (split,) = decode_for_tracking(raw, [Letterbox(1, 0, 0, 640, 640)], columns, config)
    (plain,) = decode(raw, [Letterbox(1, 0, 0, 640, 640)], columns, config)
    assert _scored(finish(plain, config)[0]) == [("motorcycle", 0.38)]
    assert _scored(split.confident) == [("motorcycle", 0.38)] and split.riders_merged == 1
    assert _scored(split.low) == [("car", 0.15)]


def _scored(dets: Detections) -> list[tuple[str, float]]:
    return sorted(
        (c, round(s, 2)) for c, s in zip(dets.labels, dets.confidence.tolist(), strict=True)
    )


def test_cross_class_duplicates_are_one_object() -> None:
    raw = _raw([(100, 100, 60, 40, 2, 0.8), (101, 100, 60, 40, 7, 0.5)])  # car and truck
    (dets,) = decode(
        raw, [Letterbox(1, 0, 0, 640, 640)], product_columns(COCO_HEAD), DetectorConfig()
    )
    assert dets.labels == ["car"]


def test_non_finite_anchors_are_dropped_and_the_frame_keeps_its_detections() -> None:
    """One NaN or infinite coordinate in the model's output failed the whole batch (the
    Detections refused it) or became a box squashed against the frame's edge."""
    raw = _raw(
        [
            (100, 100, 50, 40, 2, 0.9),  # a good car
            (300, 300, np.nan, 40, 3, 0.8),  # a motorcycle with a NaN width
            (np.inf, 300, 20, 40, 3, 0.7),  # and one with an infinite centre
            (200, 400, 30, 30, 7, np.nan),  # a truck with a NaN score
        ]
    )
    (dets,) = decode(
        raw, [Letterbox.fit(1080, 1920, 640)], product_columns(COCO_HEAD), DetectorConfig()
    )
    assert dets.labels == ["car"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((64, 64), np.uint8), r"greyscale, shape \(64, 64\)"),
        (np.zeros((64, 64, 1), np.uint8), r"greyscale, shape \(64, 64, 1\)"),
        (np.zeros((64, 64, 4), np.uint8), r"shape \(64, 64, 4\), where BGR"),
        (np.zeros((64, 64, 3), np.float32), "pixels of type float32"),
        (np.zeros((64, 64, 3), np.uint16), "pixels of type uint16"),
        (np.zeros((0, 0, 3), np.uint8), r"empty, shape \(0, 0, 3\)"),
        (np.zeros((1, 2000, 3), np.uint8), "2000x1 pixels, under the 32"),
        (np.zeros((32, 50000, 3), np.uint8), "50000x32 pixels, too narrow"),
        ("frame.jpg", "not an image"),
    ],
)
def test_detect_refuses_frames_it_cannot_take(frame: object, message: str) -> None:
    """Greyscale and four-channel frames crashed inside OpenCV, float frames gave no
    detection at all, a frame one pixel high crashed cv2.resize: each is refused, before
    any inference, with what is wrong, and the good frames of the batch are named apart."""
    good = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(FrameError, match=f"^frame 1: {message}") as refused:
        shared_detector().detect([good, frame])  # type: ignore[list-item]
    assert list(refused.value.problems) == [1]


class _Input:
    def __init__(self, shape: list[object]) -> None:
        self.name, self.shape = "images", shape


class _Session:
    """What ``Detector`` reads of an onnxruntime session before any inference."""

    def __init__(self, shape: list[object]) -> None:
        self._shape = shape

    def get_inputs(self) -> list[_Input]:
        return [_Input(self._shape)]

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("shape", "entry_size", "size"),
    [
        ([1, 3, 640, 640], None, 640),
        (["batch", 3, 480, 480], (640, 640), 480),  # the model's own fixed size wins
        (["batch", 3, "height", "width"], (320, 320), 320),  # a dynamic export's entry
        (["batch", 3, "height", "width"], (1280, 1280), 1280),
        (["batch", 3, "height", "width"], None, 640),  # no size anywhere: Ultralytics' 640
        ([1, 3, 384, 640], None, "the model's input is 640x384"),
        (["batch", 3, "height", "width"], (384, 640), "input_size is 640x384"),
    ],
)
def test_input_size_from_the_model_or_its_manifest_entry(
    shape: list[object], entry_size: tuple[int, int] | None, size: int | str
) -> None:
    """A model exported with symbolic height and width was letterboxed to 640 whatever its
    manifest entry said; a rectangle cannot be letterboxed into and is refused."""
    session, config = _Session(shape), DetectorConfig()
    if isinstance(size, str):
        with pytest.raises(DetectorError, match=size):
            Detector(session, COCO_HEAD, config, entry_size)
    else:
        assert Detector(session, COCO_HEAD, config, entry_size).size == size


def test_from_manifest_gives_the_entry_s_input_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.manifest import Artifact, Derivation

    entry = Artifact(
        derive=Derivation(base="m", transform="dynamic-batch"),
        file="mine.onnx", sha256="0" * 64, licence="x", input_size=(320, 320), classes=COCO_HEAD,
    )  # fmt: skip
    monkeypatch.setattr("models.registry.model_entry", lambda name: entry)
    monkeypatch.setattr("models.registry.model_path", lambda name: f"{name}.onnx")
    loaded: dict[str, object] = {}

    def load(path: object, config: object, classes: object, input_size: object = None) -> None:
        loaded.update(path=path, classes=classes, input_size=input_size)

    monkeypatch.setattr(Detector, "load", load)
    Detector.from_manifest(DetectorConfig(model="mine"))
    assert loaded == {"path": "mine.onnx", "classes": COCO_HEAD, "input_size": (320, 320)}


def test_product_classes_the_model_lacks_are_said_once_at_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A custom model that calls motorcycles "motorbike" never detects one: say so."""
    names = ["car", "motorbike", "bus", "truck", "person"]
    with caplog.at_level("WARNING", logger="edge.detector"):
        detector = Detector(_Session([1, 3, 640, 640]), names, DetectorConfig())
    assert ObjectClass.MOTORCYCLE not in detector.columns
    [record] = [r for r in caplog.records if "no class named" in r.getMessage()]
    assert record.getMessage() == (
        "the model has no class named motorcycle, bicycle (matched by name): it never detects"
        " them; its classes: car, motorbike, bus, truck, person"
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="edge.detector"):
        Detector(_Session([1, 3, 640, 640]), COCO_HEAD, DetectorConfig())
    assert not [r for r in caplog.records if "no class named" in r.getMessage()]


def test_a_model_that_fails_its_warm_up_is_a_clear_error(tmp_path: Path) -> None:
    """The stock weights with height and width made symbolic (as a dynamic export's are) but
    a head still built for 640: at the entry's 320 the warm-up fails, and says so in one
    line instead of onnxruntime's traceback."""
    import onnx

    model = onnx.load(str(require_model("yolov8n-coco-dynamic")))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    path = tmp_path / "symbolic.onnx"
    onnx.save(model, str(path))
    assert Detector.load(path, DetectorConfig(), COCO_HEAD, (640, 640)).size == 640
    with pytest.raises(DetectorError, match=r"^cannot run model .* on a 320x320 input"):
        Detector.load(path, DetectorConfig(), COCO_HEAD, (320, 320))


def test_provider_preference() -> None:
    preferred = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert choose_providers(preferred, ["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(DetectorError, match="none of the execution providers"):
        choose_providers(["TensorrtExecutionProvider"], ["CPUExecutionProvider"])


def test_bangkok_junction_has_ten_motorcycles_and_ten_cars() -> None:
    image = read_image(require_shared_file("bangkok_junction.jpg"))
    dets = shared_detector().detect([image])[0]
    counts = collections.Counter(
        label for label, c in zip(dets.labels, dets.confidence, strict=True) if c >= 0.25
    )
    assert counts["motorcycle"] >= 10 and counts["car"] >= 10, counts


def test_one_batch_gives_the_same_as_one_frame_at_a_time() -> None:
    import cv2

    still = read_image(require_shared_file("bangkok_junction.jpg"))
    frames = [still, cv2.flip(still, 1), still[100:500, 200:900].copy()]
    detector = shared_detector()
    together = detector.detect(frames)
    for frame, batched in zip(frames, together, strict=True):
        alone = detector.detect([frame])[0]
        assert batched.labels == alone.labels
        np.testing.assert_allclose(batched.xyxy, alone.xyxy, atol=0.05)


def test_cli_detect_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    still = require_shared_file("bangkok_junction.jpg")
    proc = subprocess.run(
        cli("edge", "detect", str(still), "--json"),
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["detections"]
    assert {"class", "confidence", "box"} <= set(rows[0])
    assert collections.Counter(r["class"] for r in rows)["car"] >= 10
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    proc = subprocess.run(
        cli("edge", "detect", str(bad), "--json"),
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"roadwatch: error: cannot read image {bad}: not a picture OpenCV reads"
    ]
    for missing, said in (
        (tmp_path / "gone.jpg", "no such file: {}"),
        (tmp_path, "{} is not a file"),
    ):
        proc = subprocess.run(
            cli("edge", "detect", str(missing)),
            capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [f"roadwatch: error: {said.format(missing)}"]
    for confidence, message in (("2", "less than or equal to 1"), ("-1", "greater than")):
        proc = subprocess.run(
            cli("edge", "detect", str(still), "--confidence", confidence),
            capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("roadwatch: error: --model/--confidence: confidence: "), line
        assert message in line


def test_each_gpu_provider_gets_its_options_and_the_cpu_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """cuDNN's algorithm by heuristics (not timed per new batch size), TensorRT's engine
    for the whole batch range, kept beside the model: what the session is given."""
    import onnxruntime as ort

    model = tmp_path / "yolov8n-coco-dynamic.onnx"
    model.write_bytes(require_model("yolov8n-coco-dynamic").read_bytes())
    real = ort.InferenceSession
    given: list[Any] = []

    def session(path: str, sess_options: Any = None, providers: Any = None) -> Any:
        given.append(providers)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(DEFAULT_PROVIDERS))
    Detector.load(model, DetectorConfig(max_batch=8), COCO_HEAD)
    assert given[-1] == [
        (
            "TensorrtExecutionProvider",
            {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(tmp_path / "trt-cache"),
                "trt_profile_min_shapes": "images:1x3x640x640",
                "trt_profile_opt_shapes": "images:8x3x640x640",
                "trt_profile_max_shapes": "images:8x3x640x640",
            },
        ),
        ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),
        "CPUExecutionProvider",
    ]
    Detector.load(model, DetectorConfig(providers=("CPUExecutionProvider",)), COCO_HEAD)
    assert given[-1] == ["CPUExecutionProvider"]  # the CPU's as before: no options


def test_tensorrt_builds_per_shape_where_more_than_the_batch_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model of fixed batch gets no profile; a models folder it cannot write, no cache."""
    fixed = require_model("yolov8n-coco")
    spec = provider_options(["TensorrtExecutionProvider"], model=fixed, max_batch=8)[0]
    assert isinstance(spec, tuple) and spec[0] == "TensorrtExecutionProvider"
    options = spec[1]
    assert set(options) == {"trt_engine_cache_enable", "trt_engine_cache_path"}
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    dynamic = require_model("yolov8n-coco-dynamic")
    spec = provider_options(["TensorrtExecutionProvider"], model=dynamic, max_batch=8)[0]
    assert isinstance(spec, tuple)
    options = spec[1]
    assert "trt_engine_cache_enable" not in options and "trt_profile_max_shapes" in options
