"""Text detection and recognition with the PP-OCR models that ship in the rapidocr wheel.

The models are read from the installed ``rapidocr`` package and checked against the
sha256 below before use; nothing is ever downloaded (every model path is given to
rapidocr explicitly, so its download code is never reached). Detection uses rapidocr's
own pre- and post-processing; recognition runs the ONNX model directly, so the decoder
sees every character's probability and not only the best string.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.plates.decode import ALPHABET, SEPARATORS, LineScores, reduce_vocabulary
from roadwatch.errors import UserError

Image8 = npt.NDArray[np.uint8]
Quad = npt.NDArray[np.float32]  # (4, 2) corners, clockwise from top-left

# rapidocr 3.10.0 wheel, rapidocr/models/
DET_MODEL = (
    "PP-OCRv6_det_small.onnx",
    "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
)
REC_MODEL = (
    "PP-OCRv6_rec_small.onnx",
    "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
)
CLS_MODEL = (
    "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
)
REC_HEIGHT = 48
DET_SIDE = 480  # detector input: the longer side of the vehicle crop, in pixels


@dataclass(frozen=True)
class PackagedModels:
    det: Path
    rec: Path
    cls: Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def packaged_models() -> PackagedModels:
    """The OCR models inside the installed rapidocr wheel, verified by sha256."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise UserError("rapidocr is not installed (pip install 'roadwatch[edge]')")
    folder = Path(spec.origin).parent / "models"
    paths: list[Path] = []
    for name, expected in (DET_MODEL, REC_MODEL, CLS_MODEL):
        path = folder / name
        if not path.is_file():
            raise UserError(f"OCR model {path} is missing from the rapidocr package")
        actual = _sha256(path)
        if actual != expected:
            raise UserError(f"OCR model {path} has sha256 {actual}, expected {expected}")
        paths.append(path)
    return PackagedModels(*paths)


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class TextDetector:
    """PP-OCR text-line detector: quadrilaterals of the text lines in an image."""

    def __init__(self, models: PackagedModels, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        n = threads or _threads()
        self._engine: Any = RapidOCR(
            params={
                "Global.log_level": "error",
                "Global.use_cls": False,
                "Global.use_rec": False,
                "Det.model_path": str(models.det),
                "Rec.model_path": str(models.rec),
                "Cls.model_path": str(models.cls),
                "Det.limit_type": "max",
                "Det.limit_side_len": DET_SIDE,
                "EngineConfig.onnxruntime.intra_op_num_threads": n,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )

    def __call__(self, image: Image8) -> list[Quad]:
        h, w = image.shape[:2]
        scale = DET_SIDE / max(h, w)
        resized = cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA,
        )
        out = self._engine(resized, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(out, "boxes", None)
        if boxes is None:
            return []
        return [np.asarray(b, dtype=np.float32) / scale for b in boxes]


class TextRecognizer:
    """PP-OCR text-line recognizer returning per-step scores folded onto the plate alphabet."""

    def __init__(self, models: PackagedModels, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(models.rec), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        meta = self._session.get_modelmeta().custom_metadata_map
        vocabulary = ["<blank>", *meta["character"].splitlines(), " "]
        self._columns = _alphabet_columns(vocabulary)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, lines: Sequence[Image8]) -> list[LineScores]:
        if not lines:
            return []
        widths = [max(1, math.ceil(REC_HEIGHT * im.shape[1] / max(im.shape[0], 1))) for im in lines]
        batch_w = max(max(widths), REC_HEIGHT * 2)
        batch = np.zeros((len(lines), 3, REC_HEIGHT, batch_w), np.float32)
        for i, (im, w) in enumerate(zip(lines, widths, strict=True)):
            resized = cv2.resize(im, (w, REC_HEIGHT), interpolation=cv2.INTER_CUBIC)
            batch[i, :, :, :w] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        probs = self._session.run(None, {self._input: batch})[0]
        out: list[LineScores] = []
        for i, w in enumerate(widths):
            steps = max(1, math.ceil(probs.shape[1] * w / batch_w))
            out.append(reduce_vocabulary(probs[i, :steps], self._columns))
        return out


def _alphabet_columns(vocabulary: Sequence[str]) -> list[list[int]]:
    index: dict[str, list[int]] = {}
    for i, ch in enumerate(vocabulary):
        index.setdefault(ch, []).append(i)
    blank = [0] + [i for sep in SEPARATORS for i in index.get(sep, [])]
    columns = [blank]
    for ch in ALPHABET:
        variants = {ch, ch.lower()}
        if ch == "Đ":
            variants |= {"Ð", "đ"}
        columns.append(sorted(i for v in variants for i in index.get(v, [])))
    return columns


def crop_quad(image: Image8, quad: Quad, pad: float = 0.08) -> Image8:
    """The text line under a detector quadrilateral, straightened, with a little margin."""
    q = quad.astype(np.float32)
    width = float(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))
    height = float(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    width, height = max(width, 2.0), max(height, 2.0)
    m = pad * height
    target = np.array(
        [[m, m], [width + m, m], [width + m, height + m], [m, height + m]], dtype=np.float32
    )
    homography = cv2.getPerspectiveTransform(q, target)
    size = (round(width + 2 * m), round(height + 2 * m))
    line = cv2.warpPerspective(
        image, homography, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return np.ascontiguousarray(line, dtype=np.uint8)
