"""Box geometry: IoU, intersection over area, non-maximum suppression, letterbox maths.

Pure NumPy, no I/O: the NMS works on the whole IoU matrix at once and only walks the
kept boxes, so its cost is one matrix product plus a short loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def box_area(xyxy: FloatArray) -> FloatArray:
    out: FloatArray = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(
        xyxy[:, 3] - xyxy[:, 1], 0, None
    )
    return out


def intersection(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise intersection areas, shape (len(a), len(b))."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    out: FloatArray = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return out


def iou(a: FloatArray, b: FloatArray) -> FloatArray:
    inter = intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    out: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    return out


def ioa(a: FloatArray, b: FloatArray) -> FloatArray:
    """Intersection over the area of each box of ``a`` (how much of a lies inside b)."""
    inter = intersection(a, b)
    area = box_area(a)[:, None]
    out: FloatArray = np.where(area > 0, inter / np.maximum(area, 1e-9), 0.0).astype(np.float32)
    return out


def nms(
    xyxy: FloatArray,
    scores: FloatArray,
    iou_threshold: float,
    classes: IntArray | None = None,
    max_keep: int | None = None,
) -> IntArray:
    """Indices of the boxes kept, best first.

    With ``classes``, a box only suppresses boxes of its own class.
    """
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    boxes = xyxy.astype(np.float32)
    if classes is not None:
        # Shift each class into its own region so boxes of different classes never overlap.
        offset = (float(boxes.max()) + 1.0) * classes.astype(np.float32)
        boxes = boxes + offset[:, None]
    order = np.argsort(-scores, kind="stable")
    overlaps = iou(boxes[order], boxes[order]) > iou_threshold
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        suppressed |= overlaps[i]
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


@dataclass(frozen=True)
class Letterbox:
    """How an image of (height, width) was scaled and padded into a square model input."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> Letterbox:
        scale = min(size / height, size / width)
        new_w, new_h = round(width * scale), round(height * scale)
        return cls(scale, (size - new_w) / 2, (size - new_h) / 2, width, height)

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) of the scaled image inside the padding."""
        return round(self.width * self.scale), round(self.height * self.scale)

    def to_image(self, xyxy: FloatArray) -> FloatArray:
        """Boxes from model-input pixels back to image pixels, clipped to the image."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, [0, 2]] = (xyxy[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (xyxy[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, self.width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, self.height)
        return out
