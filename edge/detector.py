"""The vehicle detector: one onnxruntime session, letterboxed batches, vectorised post-processing.

The session prefers TensorRT, then CUDA, then the CPU (configurable), is warmed up on load,
and runs all cameras' frames in one call when the model has a dynamic batch. Raw YOLOv8
outputs (B, 4 + classes, anchors) become one ``Detections`` per frame: the product's
classes are picked by name from the model's class list, each class has its own threshold,
and NMS runs per class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.boxes import Letterbox, iou, nms
from edge.detections import BoolArray, Detections, ObjectClass
from edge.device_batch import (
    PAD_VALUE,
    ArrayBackend,
    BackendError,
    BoundSession,
    Candidates,
    cuda_backend,
    host_backend,
    host_image,
    letterbox_on,
    select_candidates,
)
from edge.sources import valid_image
from edge.two_wheelers import TWO_WHEELERS, merge_riders
from roadwatch.errors import UserError

log = logging.getLogger(__name__)

Image = npt.NDArray[Any]  # BGR uint8 (height, width, 3)
FloatArray = npt.NDArray[np.float32]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class DetectorError(UserError):
    """The model cannot be loaded or does not look like a YOLO detector."""


class FrameError(DetectorError):
    """Frames the detector cannot take (``problems``: index in the batch -> why); nothing
    of the batch was inferred."""

    def __init__(self, problems: dict[int, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"frame {i}: {why}" for i, why in problems.items()))


# Smaller than this a side, a frame holds nothing worth detecting (and the letterbox would
# scale a side to nothing).
MIN_FRAME_SIDE = 32


def class_probabilities(value: Any) -> Any:
    """``{label: confidence}`` as ``{ObjectClass: confidence}``, a confidence outside 0-1
    named by its label (a key path would show the class's number)."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, confidence in value.items():
        cls = ObjectClass.from_label(key) if isinstance(key, str) else key
        if isinstance(confidence, int | float) and not 0 <= confidence <= 1:
            raise ValueError(f"{key}: {confidence} is not a confidence between 0 and 1")
        out[cls] = confidence
    return out


class DetectorConfig(BaseModel):
    """How detections are made and filtered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "yolov8n-coco-dynamic", description="manifest name of the ONNX detector to load"
    )
    providers: tuple[str, ...] = Field(
        DEFAULT_PROVIDERS,
        description="onnxruntime execution providers, preferred first; absent ones are skipped",
    )
    confidence: Probability = Field(0.25, description="default minimum confidence")
    class_confidence: dict[ObjectClass, Probability] = Field(
        default_factory=dict, description="per-class minimum confidence, e.g. {motorcycle: 0.2}"
    )
    iou: Probability = Field(0.45, description="NMS IoU above which the weaker box is dropped")
    cross_class_iou: Probability = Field(
        0.7,
        description="IoU above which vehicle boxes of different classes are one vehicle (a"
        " car also called truck); the weaker is dropped",
    )
    max_detections: Annotated[int, Field(ge=1, le=3000)] = 300
    merge_riders: bool = Field(
        True, description="fold a person box riding a two-wheeler box into that two-wheeler"
    )
    rider_evidence: Probability = Field(
        0.1,
        description="lowest two-wheeler confidence that can carry a rider; the merged box"
        " takes the higher of the two scores and must still pass its class threshold",
    )
    low_confidence: Probability = Field(
        0.1,
        description="lowest confidence of a box handed to the tracker below its class"
        " threshold: such a box may continue a track (ByteTrack's second association),"
        " never start one",
    )
    max_batch: Annotated[int, Field(ge=1, le=64)] = Field(
        16, description="most frames in one inference call"
    )
    batch_wait_ms: Annotated[float, Field(ge=0.0, le=1000.0)] = Field(
        20.0,
        description="latency bound of a live batch: it goes to the detector when max_batch"
        " cameras have a frame waiting or when its oldest frame has waited this long",
    )
    threads: Annotated[int, Field(ge=0, le=256)] = Field(
        0, description="CPU threads for inference (0: onnxruntime's default)"
    )
    device_pipeline: bool | None = Field(
        None,
        description="letterbox, inference and candidate selection in the frames' own memory"
        " through IOBinding, only detections coming back to the host. Default: on when the"
        " CUDA provider runs and CuPy is installed. true forces it (on the CPU provider the"
        " same code runs with NumPy); false keeps OpenCV pre-processing on the host",
    )

    @field_validator("class_confidence", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return class_probabilities(value)

    def threshold(self, object_class: ObjectClass) -> float:
        return self.class_confidence.get(object_class, self.confidence)

    def candidate_threshold(self, object_class: ObjectClass, low: bool = False) -> float:
        """The score a box needs to leave the decoder (lower for possible rider carriers,
        and with ``low`` for the boxes that may continue a track)."""
        base = self.threshold(object_class)
        if low:
            base = min(base, self.low_confidence)
        if self.merge_riders and object_class in TWO_WHEELERS:
            return min(base, self.rider_evidence)
        return base

    def passes(self, dets: Detections) -> BoolArray:
        thresholds = np.array([self.threshold(c) for c in ObjectClass], np.float32)
        passed: BoolArray = dets.confidence >= thresholds[dets.class_id]
        return passed


def choose_providers(preferred: Sequence[str], available: Sequence[str]) -> list[str]:
    chosen = [p for p in preferred if p in available]
    if not chosen:
        raise DetectorError(
            f"none of the execution providers {list(preferred)} is available"
            f" (onnxruntime offers {list(available)})"
        )
    return chosen


# A provider as onnxruntime takes it: its name, or its name and its options.
ProviderSpec = str | tuple[str, dict[str, str]]
TRT_CACHE = "trt-cache"  # beside the model: TensorRT's engines, built once per model and GPU


def provider_options(
    providers: Sequence[str], *, model: Path, max_batch: int
) -> list[ProviderSpec]:
    """The chosen providers with the options each GPU one is given (the CPU's has none).

    CUDA: cuDNN picks each convolution's algorithm by its heuristics (``HEURISTIC``)
    instead of timing every algorithm (``EXHAUSTIVE``, onnxruntime's default) at each input
    shape it has not seen: a live batch has any size from 1 to ``max_batch``, and each new
    size stalled the pipeline for that search in a run's first minutes.
    TensorRT: one engine for the whole batch range (an optimisation profile from 1 to
    ``max_batch``, where the model's batch is its only free dimension) instead of one
    built at each new size, kept in ``trt-cache`` beside the model where that folder can
    be written, so a restart does not build it again."""
    out: list[ProviderSpec] = []
    for name in providers:
        if name == "CUDAExecutionProvider":
            out.append((name, {"cudnn_conv_algo_search": "HEURISTIC"}))
        elif name == "TensorrtExecutionProvider":
            out.append((name, _tensorrt_options(model, max_batch)))
        else:
            out.append(name)
    return out


def _tensorrt_options(model: Path, max_batch: int) -> dict[str, str]:
    options: dict[str, str] = {}
    cache = model.parent / TRT_CACHE
    if os.access(model.parent, os.W_OK):
        options |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
    input_name, dims = _model_input(model)
    if dims and dims[0] is None and all(d is not None for d in dims[1:]):
        rest = "x".join(str(d) for d in dims[1:])
        options |= {
            "trt_profile_min_shapes": f"{input_name}:1x{rest}",
            "trt_profile_opt_shapes": f"{input_name}:{max_batch}x{rest}",
            "trt_profile_max_shapes": f"{input_name}:{max_batch}x{rest}",
        }
    return options


def _model_input(model: Path) -> tuple[str, list[int | None]]:
    """The model's first input: its name and dimensions (None where symbolic)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    first = graph.input[0]
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in first.type.tensor_type.shape.dim
    ]
    return first.name, dims


def product_columns(model_classes: Sequence[str]) -> dict[ObjectClass, int]:
    """Which output column holds each product class, matched by name."""
    names = [n.strip().lower() for n in model_classes]
    return {c: names.index(c.label) for c in ObjectClass if c.label in names}


def frame_problem(image: object, size: int) -> str | None:
    """Why ``image`` cannot go to a detector of input ``size``, or None: it must be a BGR
    uint8 frame (h, w, 3), at least ``MIN_FRAME_SIDE`` pixels a side, whose shorter side
    keeps a pixel when the longer is scaled to ``size``."""
    if valid_image(image):
        h, w = (int(v) for v in getattr(image, "shape", ())[:2])
        if min(h, w) < MIN_FRAME_SIDE:
            return f"{w}x{h} pixels, under the {MIN_FRAME_SIDE} a side the detector needs"
        if min(Letterbox.fit(h, w, size).resized) < 1:
            return f"{w}x{h} pixels, too narrow to scale to {size} (a side would be 0 pixels)"
        return None
    dtype, shape = getattr(image, "dtype", None), tuple(getattr(image, "shape", ()))
    if dtype is None:
        return f"not an image ({type(image).__name__})"
    if dtype != np.uint8:
        return f"pixels of type {dtype}, where BGR uint8 (0-255) is expected"
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        return f"greyscale, shape {shape}, where BGR (height, width, 3) is expected"
    if len(shape) != 3 or shape[2] != 3:
        return f"shape {shape}, where BGR (height, width, 3) is expected"
    return f"empty, shape {shape}"


def letterbox_into(image: Image, size: int, out: FloatArray) -> Letterbox:
    """Scale ``image`` (BGR) into ``out`` (3, size, size) as RGB in [0, 1], grey-padded."""
    h, w = image.shape[:2]
    box = Letterbox.fit(h, w, size)
    new_w, new_h = box.resized
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    top, left = round(box.pad_y - 0.1), round(box.pad_x - 0.1)
    canvas[top : top + new_h, left : left + new_w] = resized
    out[...] = canvas[:, :, ::-1].transpose(2, 0, 1)
    out *= np.float32(1 / 255)
    return Letterbox(box.scale, float(left), float(top), w, h)


Plan = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]


def search_plan(columns: dict[ObjectClass, int], config: DetectorConfig, low: bool = False) -> Plan:
    """The product classes searched, their output columns and their candidate thresholds
    (with ``low``, down to the boxes that may continue a track)."""
    classes = np.array(list(columns), dtype=np.int64)
    cols = np.array([columns[ObjectClass(int(c))] for c in classes], dtype=np.int64)
    thresholds = np.array(
        [config.candidate_threshold(ObjectClass(int(c)), low) for c in classes], np.float32
    )
    return classes, cols, thresholds


def decode(
    raw: FloatArray,
    boxes: Sequence[Letterbox],
    columns: dict[ObjectClass, int],
    config: DetectorConfig,
) -> list[Detections]:
    """Raw YOLOv8 head output (B, 4 + classes, anchors) -> one Detections per frame."""
    classes, cols, thresholds = search_plan(columns, config)
    found = select_candidates(host_backend(), raw, cols, thresholds)
    return decode_candidates(found, boxes, classes, config)


def decode_for_tracking(
    raw: FloatArray,
    boxes: Sequence[Letterbox],
    columns: dict[ObjectClass, int],
    config: DetectorConfig,
) -> list[FrameDetections]:
    """As ``decode`` then ``finish``, with each frame's low boxes beside (``FrameDetections``)."""
    classes, cols, thresholds = search_plan(columns, config, low=True)
    found = select_candidates(host_backend(), raw, cols, thresholds)
    pairs = decode_with_low(found, boxes, classes, config)
    return [finish_for_tracking(dets, extra, config) for dets, extra in pairs]


def _finite(found: Candidates) -> Candidates:
    """A broken model (or an FP16 overflow) can give NaN or infinite boxes: one such
    anchor must not cost the frame, nor a batch, its other detections."""
    finite = np.isfinite(found.cxcywh).all(axis=1) & np.isfinite(found.score)
    return found if finite.all() else found.where(finite)


def decode_candidates(
    found: Candidates,
    boxes: Sequence[Letterbox],
    classes: npt.NDArray[np.int64],
    config: DetectorConfig,
) -> list[Detections]:
    """Per-frame NMS of the anchors that passed their thresholds, boxes in image pixels."""
    return [
        _frame_boxes(_finite(found.of_frame(i)), box, classes, config)
        for i, box in enumerate(boxes)
    ]


def decode_with_low(
    found: Candidates,
    boxes: Sequence[Letterbox],
    classes: npt.NDArray[np.int64],
    config: DetectorConfig,
) -> list[tuple[Detections, Detections]]:
    """Per frame, the boxes ``decode_candidates`` makes of the anchors that pass the usual
    candidate thresholds (the very same boxes) and, beside them, the boxes of the anchors
    only the low floor let through, less those that are one of the first boxes again.

    Apart, so that a box under its threshold never changes what is detected: in one NMS
    a car at 0.15 suppressed the motorcycle at 0.12 under it, whose rider then stayed a
    person instead of making it a motorcycle at the rider's 0.38."""
    usual = np.array([config.candidate_threshold(ObjectClass(int(c))) for c in classes], np.float32)
    out: list[tuple[Detections, Detections]] = []
    for i, box in enumerate(boxes):
        mine = _finite(found.of_frame(i))
        sure = mine.score >= usual[mine.column]
        kept = _frame_boxes(mine.where(sure), box, classes, config)
        extra = _frame_boxes(mine.where(~sure), box, classes, config)
        out.append((kept, extra.select(~_seen_again(extra, kept, config))))
    return out


def _seen_again(extra: Detections, kept: Detections, config: DetectorConfig) -> BoolArray:
    """Which ``extra`` boxes NMS would have dropped beside ``kept`` (all of them scoring
    higher): of the same class over ``iou``, of another vehicle class over
    ``cross_class_iou`` (persons and vehicles never suppress each other)."""
    if len(extra) == 0 or len(kept) == 0:
        return np.zeros(len(extra), dtype=bool)
    overlap = iou(extra.xyxy, kept.xyxy)
    same = extra.class_id[:, None] == kept.class_id[None, :]
    person_e = extra.class_id == ObjectClass.PERSON
    person_k = kept.class_id == ObjectClass.PERSON
    vehicles = ~person_e[:, None] & ~person_k[None, :]
    hidden = (same & (overlap > config.iou)) | (
        ~same & vehicles & (overlap > config.cross_class_iou)
    )
    seen: BoolArray = hidden.any(axis=1)
    return seen


def _frame_boxes(
    mine: Candidates, box: Letterbox, classes: npt.NDArray[np.int64], config: DetectorConfig
) -> Detections:
    """One frame's candidates after NMS per class and one class per vehicle, in pixels."""
    if len(mine) == 0:
        return Detections.empty()
    cx, cy, w, h = mine.cxcywh.T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    conf = mine.score
    cls = classes[mine.column]
    kept = nms(xyxy, conf, config.iou, classes=cls, max_keep=config.max_detections)
    kept = _one_class_per_vehicle(xyxy, conf, cls, kept, config.cross_class_iou)
    return Detections(box.to_image(xyxy[kept]), np.clip(conf[kept], 0, 1), cls[kept])


def _one_class_per_vehicle(
    xyxy: FloatArray, conf: FloatArray, cls: npt.NDArray[np.int64], kept: npt.NDArray[np.int64],
    iou_threshold: float,
) -> npt.NDArray[np.int64]:  # fmt: skip
    """Among vehicle boxes, drop the weaker of two near-identical boxes of different classes.

    Persons are left out: a person on a two-wheeler is its rider, which ``merge_riders``
    folds into the vehicle instead of letting the higher score pick the class.
    """
    vehicles = kept[cls[kept] != ObjectClass.PERSON]
    survivors = vehicles[nms(xyxy[vehicles], conf[vehicles], iou_threshold)]
    persons = kept[cls[kept] == ObjectClass.PERSON]
    merged = np.concatenate([survivors, persons])
    return merged[np.argsort(-conf[merged], kind="stable")]


EMPTY = Detections.empty()


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections for the tracker."""

    confident: Detections  # passed their class's threshold: they start and continue tracks
    low: Detections  # from ``low_confidence`` up to it: they may only continue a track
    riders_merged: int = 0


def finish(dets: Detections, config: DetectorConfig) -> tuple[Detections, int]:
    """Riders folded into their two-wheelers, then every class held to its threshold."""
    split = finish_for_tracking(dets, EMPTY, config)
    return split.confident, split.riders_merged


def finish_for_tracking(
    dets: Detections, extra: Detections, config: DetectorConfig
) -> FrameDetections:
    """Riders folded into their two-wheelers (as ``finish``), then each box confident (it
    passes its class's threshold) or low (from ``low_confidence`` up to it); the ``extra``
    boxes (``decode_with_low``: under their thresholds, no riders) are low too."""
    riders = 0
    if config.merge_riders:
        merged = merge_riders(dets)
        dets, riders = merged.detections, merged.riders_merged
    passed = config.passes(dets)
    low = Detections.merge([dets.select(~passed), extra.select(~config.passes(extra))])
    return FrameDetections(
        dets.select(passed), low.select(low.confidence >= config.low_confidence), riders
    )


class Detector:
    """A loaded, warmed-up detector. Build it with ``Detector.load``."""

    def __init__(
        self,
        session: Any,
        model_classes: Sequence[str],
        config: DetectorConfig,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        self._session = session
        self.config = config
        inp = session.get_inputs()[0]
        self._input = inp.name
        shape = inp.shape
        self.size = square_input(shape, input_size)
        self.dynamic_batch = not isinstance(shape[0], int)
        self.columns = product_columns(model_classes)
        if not self.columns:
            raise DetectorError(
                "the model has none of the classes car, motorcycle, bus, truck, bicycle, person"
            )
        if missing := [c.label for c in ObjectClass if c not in self.columns]:
            shown = ", ".join(model_classes[:12]) + (", ..." if len(model_classes) > 12 else "")
            log.warning(
                "the model has no class named %s (matched by name): it never detects %s; its"
                " classes: %s", ", ".join(missing), "them" if len(missing) > 1 else "it", shown,
            )  # fmt: skip
        self.providers: list[str] = list(session.get_providers())
        self.riders_merged = 0
        self._plans = {low: search_plan(self.columns, config, low) for low in (False, True)}
        self.backend = _choose_backend(config.device_pipeline, self.providers)
        self._bound = BoundSession(session, self.backend) if self.backend else None

    @classmethod
    def load(
        cls,
        path: Path,
        config: DetectorConfig,
        model_classes: Sequence[str] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> Detector:
        """The model at ``path``, its classes and (height, width) input size from its
        manifest entry where the model itself does not say them."""
        import onnxruntime as ort

        chosen = choose_providers(config.providers, ort.get_available_providers())
        providers = provider_options(chosen, model=path, max_batch=config.max_batch)
        options = ort.SessionOptions()
        if config.threads:
            options.intra_op_num_threads = config.threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise DetectorError(f"cannot load model {path}: {exc}".splitlines()[0]) from exc
        names = list(model_classes) if model_classes is not None else _metadata_classes(session)
        detector = cls(session, names, config, input_size)
        try:
            detector.warm_up()
        except Exception as exc:  # onnxruntime's own errors again (a shape the graph refuses)
            raise DetectorError(
                f"cannot run model {path} on a {detector.size}x{detector.size} input"
                f" (is its input_size right?): {exc}".splitlines()[0]
            ) from exc
        log.info("detector %s on %s (dynamic batch: %s)", path.name, detector.providers,
                 detector.dynamic_batch)  # fmt: skip
        return detector

    @classmethod
    def from_manifest(cls, config: DetectorConfig) -> Detector:
        from models.registry import model_entry, model_path

        entry = model_entry(config.model)
        return cls.load(model_path(config.model), config, entry.classes, entry.input_size)

    def warm_up(self) -> None:
        """One inference on a blank frame so the first real frame is not slow."""
        self.detect([np.zeros((self.size, self.size, 3), np.uint8)])

    def detect(self, frames: Sequence[Image]) -> list[Detections]:
        """Detections of each frame (BGR uint8, in host memory or a CuPy array on the GPU),
        each passing its class's threshold, in one inference call per batch. ``FrameError``
        before any inference when a frame is not such an image (greyscale, four channels,
        floats) or is too small."""
        return [f.confident for f in self._detect(frames, low=False)]

    def detect_for_tracking(self, frames: Sequence[Image]) -> list[FrameDetections]:
        """As ``detect``, with each frame's low boxes (from ``low_confidence`` up to their
        class's threshold) beside its confident ones, for ByteTrack's second association."""
        return self._detect(frames, low=True)

    def _detect(self, frames: Sequence[Image], low: bool) -> list[FrameDetections]:
        problems = {i: why for i, f in enumerate(frames) if (why := frame_problem(f, self.size))}
        if problems:
            raise FrameError(problems)
        classes, _, _ = plan = self._plans[low]
        results: list[FrameDetections] = []
        step = self.config.max_batch if self.dynamic_batch else 1
        for start in range(0, len(frames), step):
            found, boxes = self._candidates(frames[start : start + step], plan)
            if low:
                pairs = decode_with_low(found, boxes, classes, self.config)
            else:
                pairs = [(d, EMPTY) for d in decode_candidates(found, boxes, classes, self.config)]
            for dets, extra in pairs:
                split = finish_for_tracking(dets, extra, self.config)
                self.riders_merged += split.riders_merged
                results.append(split if low else FrameDetections(split.confident, EMPTY))
        return results

    def _candidates(self, chunk: Sequence[Image], plan: Plan) -> tuple[Candidates, list[Letterbox]]:
        """One inference call for ``chunk``: the anchors that pass the plan's thresholds,
        and how each frame was letterboxed."""
        _, cols, thresholds = plan
        if self._bound is not None and self.backend is not None:
            xp = self.backend.xp
            on_device = xp.empty((len(chunk), 3, self.size, self.size), xp.float32)
            boxes = [
                letterbox_on(xp, self.backend.asarray(f), self.size, on_device[i])
                for i, f in enumerate(chunk)
            ]
            raw = self._bound.run(on_device)
            return select_candidates(self.backend, raw, cols, thresholds), boxes
        batch = np.empty((len(chunk), 3, self.size, self.size), np.float32)
        boxes = [letterbox_into(host_image(f), self.size, batch[i]) for i, f in enumerate(chunk)]
        raw = np.asarray(self._session.run(None, {self._input: batch})[0], np.float32)
        return select_candidates(host_backend(), raw, cols, thresholds), boxes


# Ultralytics' default, for a model with a symbolic input size and no size in its entry.
DEFAULT_INPUT_SIZE = 640


def square_input(shape: Sequence[Any], declared: tuple[int, int] | None) -> int:
    """The side of the square the frames are letterboxed into: the model input's own
    (batch, 3, height, width) where both are fixed, else the manifest entry's
    ``input_size`` (height, width), else ``DEFAULT_INPUT_SIZE``. A rectangle is refused."""
    height, width = (d if isinstance(d, int) and d > 0 else None for d in shape[2:4])
    if height is not None and width is not None:
        where = "the model's input"
        if declared is not None and tuple(declared) != (height, width):
            log.warning(
                "the model's input is %dx%d (width x height), its manifest entry says %dx%d:"
                " using the model's", width, height, declared[1], declared[0],
            )  # fmt: skip
    elif declared is not None:
        (height, width), where = declared, "the manifest entry's input_size"
    else:
        log.info(
            "the model's input size is symbolic and its entry gives none: %d", DEFAULT_INPUT_SIZE
        )
        return DEFAULT_INPUT_SIZE
    if height != width:
        raise DetectorError(
            f"{where} is {width}x{height} (width x height): frames are letterboxed into a"
            " square, so export the model with a square input"
        )
    return height


def _choose_backend(wanted: bool | None, providers: Sequence[str]) -> ArrayBackend | None:
    """The backend of the device pipeline, or None for OpenCV pre-processing on the host."""
    on_gpu = bool(providers) and providers[0] in (
        "CUDAExecutionProvider", "TensorrtExecutionProvider"
    )  # fmt: skip
    if wanted is False:
        return None
    if on_gpu:
        try:
            return cuda_backend()
        except BackendError as exc:
            if wanted:
                raise DetectorError(str(exc)) from exc
            log.warning("pre-processing on the host: %s", exc)
            return None
    return host_backend() if wanted else None


def _metadata_classes(session: Any) -> list[str]:
    import ast

    names = session.get_modelmeta().custom_metadata_map.get("names")
    if not names:
        raise DetectorError("the model names no classes; give them in the manifest")
    parsed = ast.literal_eval(names)
    return [parsed[i] for i in sorted(parsed)] if isinstance(parsed, dict) else list(parsed)
