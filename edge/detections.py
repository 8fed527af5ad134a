"""The one typed value that carries detections between stages: a struct of arrays.

``Detections`` validates itself on construction (shapes, dtypes, finite boxes, class ids
in the product's classes, positive track ids) and is immutable: a stage that changes
something returns a new value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from roadwatch.contract import VehicleClass

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class ObjectClass(IntEnum):
    """The product's detection classes: the contract's vehicle classes plus person."""

    CAR = 0
    MOTORCYCLE = 1
    BUS = 2
    TRUCK = 3
    BICYCLE = 4
    PERSON = 5  # riders and pedestrians; kept for helmet checks and two-wheeler recovery

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> ObjectClass:
        try:
            return cls[label.upper()]
        except KeyError:
            known = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown class {label!r} (known: {known})") from None


VEHICLE_CLASS: dict[ObjectClass, VehicleClass] = {
    ObjectClass.CAR: VehicleClass.CAR,
    ObjectClass.MOTORCYCLE: VehicleClass.MOTORCYCLE,
    ObjectClass.BUS: VehicleClass.BUS,
    ObjectClass.TRUCK: VehicleClass.TRUCK,
    ObjectClass.BICYCLE: VehicleClass.BICYCLE,
}


def vehicle_class(object_class: ObjectClass) -> VehicleClass | None:
    """The contract's vehicle class of a detection class; None for a person."""
    return VEHICLE_CLASS.get(object_class)


_MAX_CLASS = max(ObjectClass)


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Detections:
    """N detections of one frame: boxes in pixels (x1, y1, x2, y2), scores, classes, ids.

    ``low`` marks the tracked rows that continue their track from a low-score box
    (ByteTrack's second association): the vehicle is there, but its box is less sure, so
    its place is not a speed sample. None: no row is."""

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray | None = None
    low: BoolArray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        confidence = np.asarray(self.confidence, dtype=np.float32)
        class_id = np.asarray(self.class_id)
        if confidence.shape != (n,):
            raise ValueError(f"confidence has shape {confidence.shape}, expected ({n},)")
        if class_id.shape != (n,) or (n and not np.issubdtype(class_id.dtype, np.integer)):
            raise ValueError(f"class_id must be {n} integers, got {class_id.dtype}{class_id.shape}")
        if not np.all(np.isfinite(xyxy)):
            raise ValueError("boxes must be finite")
        if np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
            raise ValueError("boxes must have x2 >= x1 and y2 >= y1")
        if np.any((confidence < 0) | (confidence > 1)):
            raise ValueError("confidence must be within [0, 1]")
        if n and (class_id.min() < 0 or class_id.max() > _MAX_CLASS):
            raise ValueError(f"class_id must be one of the product's classes 0..{_MAX_CLASS}")
        object.__setattr__(self, "xyxy", _frozen(xyxy))
        object.__setattr__(self, "confidence", _frozen(confidence))
        object.__setattr__(self, "class_id", _frozen(class_id.astype(np.int64)))
        if self.tracker_id is not None:
            ids = np.asarray(self.tracker_id)
            if ids.shape != (n,) or (n and not np.issubdtype(ids.dtype, np.integer)):
                raise ValueError(f"tracker_id must be {n} integers")
            if n and ids.min() <= 0:
                raise ValueError("tracker ids are positive; there is no sentinel id")
            object.__setattr__(self, "tracker_id", _frozen(ids.astype(np.int64)))
        if self.low is not None:
            low = np.asarray(self.low)
            if low.shape != (n,) or low.dtype != np.bool_:
                raise ValueError(f"low must be {n} booleans")
            object.__setattr__(self, "low", _frozen(low))

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        tracked = [p.tracker_id is not None for p in parts]
        if any(tracked) and not all(tracked):
            raise ValueError("cannot merge tracked with untracked detections")
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tracker_id for p in parts if p.tracker_id is not None])
            if all(tracked)
            else None,
            np.concatenate([p.low_rows for p in parts])
            if any(p.low is not None for p in parts)
            else None,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    @property
    def low_rows(self) -> BoolArray:
        """``low`` of every row (all False where it is None)."""
        return np.zeros(len(self), dtype=bool) if self.low is None else self.low

    def select(self, index: BoolArray | IntArray | Sequence[int]) -> Detections:
        idx = np.asarray(index)
        return Detections(
            self.xyxy[idx],
            self.confidence[idx],
            self.class_id[idx],
            None if self.tracker_id is None else self.tracker_id[idx],
            None if self.low is None else self.low[idx],
        )

    def with_tracker_ids(self, tracker_id: IntArray) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, tracker_id, self.low)

    def with_class_ids(self, class_id: IntArray) -> Detections:
        return Detections(self.xyxy, self.confidence, class_id, self.tracker_id, self.low)

    def with_boxes(self, xyxy: FloatArray) -> Detections:
        return Detections(xyxy, self.confidence, self.class_id, self.tracker_id, self.low)

    def of_class(self, *classes: ObjectClass) -> Detections:
        return self.select(np.isin(self.class_id, [int(c) for c in classes]))

    @property
    def labels(self) -> list[str]:
        return [ObjectClass(int(c)).label for c in self.class_id]

    @property
    def centers(self) -> FloatArray:
        out: FloatArray = np.stack(
            [(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2],
            axis=1,
        ).astype(np.float32)
        return out
