"""Recovering two-wheelers that the stock COCO detector calls "person".

Seen from behind or from a high pole, YOLOv8n often labels a motorcycle with its rider as
"person" only. Two cues bring them back:

* a person box that sits on a motorcycle or bicycle box is its rider: the rider is merged
  into the two-wheeler (the box grows up and sideways to cover both; its bottom edge, the
  vehicle's ground point, stays the two-wheeler's), so one vehicle stays one object;
* a person track that moves at vehicle speed is a two-wheeler, not a pedestrian
  (``moving_like_a_vehicle``; the tracker applies it, as it needs the track's history).

Pure NumPy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.boxes import ioa
from edge.detections import Detections, ObjectClass

TWO_WHEELERS = (ObjectClass.MOTORCYCLE, ObjectClass.BICYCLE)


@dataclass(frozen=True)
class RiderMerge:
    detections: Detections
    riders_merged: int


def merge_riders(
    dets: Detections, min_overlap: float = 0.3, below_wheels: float = 0.15
) -> RiderMerge:
    """Fold each person box that sits on a two-wheeler box into that two-wheeler.

    A person counts as the rider when at least ``min_overlap`` of the person's box lies
    inside the two-wheeler's box, the person's centre is above its horizontal extent and
    the person sits on it: the person's centre no lower than the two-wheeler's, and the
    person's feet no more than ``below_wheels`` of the two-wheeler's height below its
    wheels. A person standing in front of a two-wheeler (lower in the image, nearer the
    camera), such as the motorcycle behind in a queue, is not its rider.

    The merged box covers both, except below: its bottom edge stays the two-wheeler's, as
    that edge is the vehicle's ground point (stop line, speed).
    """
    is_person = dets.class_id == ObjectClass.PERSON
    is_bike = np.isin(dets.class_id, [int(c) for c in TWO_WHEELERS])
    persons, bikes = np.flatnonzero(is_person), np.flatnonzero(is_bike)
    if persons.size == 0 or bikes.size == 0:
        return RiderMerge(dets, 0)
    p_box, b_box = dets.xyxy[persons], dets.xyxy[bikes]
    overlap = ioa(p_box, b_box)
    cx = (p_box[:, 0] + p_box[:, 2]) / 2
    above = (cx[:, None] >= b_box[None, :, 0]) & (cx[:, None] <= b_box[None, :, 2])
    p_cy, b_cy = (p_box[:, 1] + p_box[:, 3]) / 2, (b_box[:, 1] + b_box[:, 3]) / 2
    b_h = b_box[:, 3] - b_box[:, 1]
    seated = (p_cy[:, None] <= b_cy[None, :]) & (
        p_box[:, 3][:, None] <= (b_box[:, 3] + below_wheels * b_h)[None, :]
    )
    overlap = np.where(above & seated, overlap, 0.0)
    best = overlap.argmax(axis=1)
    rider = overlap[np.arange(len(persons)), best] >= min_overlap
    if not rider.any():
        return RiderMerge(dets, 0)
    xyxy = dets.xyxy.copy()
    conf = dets.confidence.copy()
    for p, b in zip(persons[rider], bikes[best[rider]], strict=True):
        xyxy[b, :2] = np.minimum(xyxy[b, :2], xyxy[p, :2])
        xyxy[b, 2] = max(xyxy[b, 2], xyxy[p, 2])
        # The rider's score vouches for the vehicle as much as the two-wheeler's own.
        conf[b] = max(conf[b], conf[p])
    keep = np.ones(len(dets), dtype=bool)
    keep[persons[rider]] = False
    merged = Detections(xyxy, conf, dets.class_id, dets.tracker_id, dets.low).select(keep)
    return RiderMerge(merged, int(rider.sum()))


@dataclass(frozen=True)
class MotionSample:
    t: float  # seconds
    cx: float
    cy: float
    height: float


def speed_in_heights_per_s(samples: Sequence[MotionSample]) -> float | None:
    """Centre speed over the samples, in box heights per second (scale-free across the view)."""
    if len(samples) < 2:
        return None
    first, last = samples[0], samples[-1]
    dt = last.t - first.t
    if dt <= 0:
        return None
    mean_h = float(np.mean([s.height for s in samples]))
    if mean_h <= 0:
        return None
    dist = float(np.hypot(last.cx - first.cx, last.cy - first.cy))
    return dist / dt / mean_h


def moving_like_a_vehicle(
    samples: Sequence[MotionSample],
    *,
    min_speed: float = 1.5,
    min_samples: int = 4,
    min_span_s: float = 0.4,
) -> bool:
    """True when a person-class track moves faster than people walk.

    A pedestrian (about 1.7 m tall) walking at 1.4 m/s covers under one body height per
    second; a motorcycle with its rider (box about 1.5-2 m tall) at 15-40 km/h covers two
    to seven. The default threshold, 1.5 box heights per second, sits between them.
    """
    if len(samples) < min_samples or samples[-1].t - samples[0].t < min_span_s:
        return False
    speed = speed_in_heights_per_s(samples)
    return speed is not None and speed >= min_speed
