"""Detections struct-of-arrays, box maths and the rider merge: tables of synthetic boxes."""

from __future__ import annotations

import numpy as np
import pytest

from edge.boxes import Letterbox, iou, nms
from edge.detections import Detections, ObjectClass, vehicle_class
from edge.two_wheelers import MotionSample, merge_riders, moving_like_a_vehicle
from roadwatch.contract import VehicleClass

CAR, MOTO, PERSON = int(ObjectClass.CAR), int(ObjectClass.MOTORCYCLE), int(ObjectClass.PERSON)


def _d(boxes: list[list[float]], conf: list[float], cls: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(conf), np.array(cls))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"xyxy": [[0, 0, 1, 1]], "confidence": [0.5, 0.5], "class_id": [0]},
            "confidence has shape",
        ),
        ({"xyxy": [[0, 0, 1, 1]], "confidence": [0.5], "class_id": [0.5]}, "class_id must be"),
        ({"xyxy": [[5, 0, 1, 1]], "confidence": [0.5], "class_id": [0]}, "x2 >= x1"),
        ({"xyxy": [[0, 0, np.nan, 1]], "confidence": [0.5], "class_id": [0]}, "finite"),
        ({"xyxy": [[0, 0, 1, 1]], "confidence": [1.5], "class_id": [0]}, "within"),
        ({"xyxy": [[0, 0, 1, 1]], "confidence": [0.5], "class_id": [9]}, "product's classes"),
        (
            {"xyxy": [[0, 0, 1, 1]], "confidence": [0.5], "class_id": [0], "tracker_id": [-1]},
            "no sentinel",
        ),
    ],
)
def test_detections_refuse_bad_arrays(kwargs: dict[str, object], message: str) -> None:
    arrays = {k: np.asarray(v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        Detections(**arrays)


def test_detections_are_immutable_and_select_keeps_columns_together() -> None:
    dets = _d([[0, 0, 10, 10], [5, 5, 20, 30]], [0.9, 0.4], [CAR, MOTO])
    with pytest.raises(ValueError):
        dets.xyxy[0, 0] = 3
    picked = dets.select(np.array([False, True]))
    assert picked.labels == ["motorcycle"]
    assert picked.confidence.tolist() == pytest.approx([0.4])
    tracked = dets.with_tracker_ids(np.array([7, 8]))
    merged_ids = Detections.merge([tracked, tracked]).tracker_id
    assert merged_ids is not None and merged_ids.tolist() == [7, 8, 7, 8]
    assert len(Detections.empty()) == 0


def test_product_classes_map_to_the_contract() -> None:
    assert vehicle_class(ObjectClass.MOTORCYCLE) is VehicleClass.MOTORCYCLE
    assert vehicle_class(ObjectClass.PERSON) is None
    assert {vehicle_class(c) for c in ObjectClass} - {None} == set(VehicleClass) - {
        VehicleClass.UNKNOWN
    }
    assert ObjectClass.from_label("Bus") is ObjectClass.BUS
    with pytest.raises(ValueError, match="unknown class 'tram'"):
        ObjectClass.from_label("tram")


def test_iou_table() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert iou(a, b)[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])


@pytest.mark.parametrize(
    ("classes", "kept"),
    [
        (None, [0, 2]),  # the second box overlaps the first and is weaker
        ([CAR, MOTO, CAR], [0, 1, 2]),  # different classes do not suppress each other
    ],
)
def test_nms(classes: list[int] | None, kept: list[int]) -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    cls = None if classes is None else np.array(classes, np.int64)
    assert sorted(nms(boxes, scores, 0.5, classes=cls).tolist()) == kept


def test_letterbox_maps_model_pixels_back_to_the_image() -> None:
    box = Letterbox.fit(480, 640, 640)  # 640x480 -> scale 1, 80 px bands above and below
    assert (box.scale, box.pad_x, box.pad_y) == (1.0, 0.0, 80.0)
    out = box.to_image(np.array([[10, 90, 20, 100], [-5, 0, 700, 700]], np.float32))
    assert out.tolist() == [[10, 10, 20, 20], [0, 0, 640, 480]]


BIKE: list[float] = [100, 80, 150, 140]  # height 60, centre y 110, wheels at y 140


@pytest.mark.parametrize(
    ("person", "bike_cls", "merged_box"),
    [
        ([105, 40, 135, 110], MOTO, [100, 40, 150, 140]),  # rider sitting on the motorcycle
        ([300, 40, 330, 110], MOTO, None),  # pedestrian elsewhere
        ([105, 40, 135, 110], CAR, None),  # a person next to a car is not its rider
        ([160, 60, 190, 110], MOTO, None),  # overlaps the box but centre is beside it
        # feet a little below the wheels (within 0.15 of the bike's height): still the
        # rider, and the bike's bottom edge (its ground point) does not move down
        ([105, 50, 135, 148], MOTO, [100, 50, 150, 140]),
        ([95, 40, 140, 110], MOTO, [95, 40, 150, 140]),  # a rider wider than the bike
        ([105, 60, 135, 155], MOTO, None),  # feet 15 px (0.25 heights) below the wheels
        ([105, 100, 135, 140], MOTO, None),  # inside the bike box, but centred below its centre
    ],
)
def test_merge_riders(person: list[float], bike_cls: int, merged_box: list[float] | None) -> None:
    dets = _d([BIKE, person], [0.3, 0.8], [bike_cls, PERSON])
    result = merge_riders(dets)
    assert result.riders_merged == int(merged_box is not None)
    if merged_box is not None:
        assert result.detections.labels == ["motorcycle"]
        assert result.detections.xyxy[0].tolist() == merged_box
        assert result.detections.confidence[0] == pytest.approx(0.8)
    else:
        assert len(result.detections) == 2
        assert result.detections.xyxy.tolist() == dets.xyxy.tolist()


def test_merge_riders_leaves_the_motorcycle_behind_a_queued_one() -> None:
    """Hanoi clip, frame 168: a motorcycle labelled "person" (0.55) stands in front of
    (below, in the image) the motorcycle box of the one ahead of it (0.17), its centre
    inside that box's x-range. It is not that motorcycle's rider: merged, the box ahead
    took its bottom edge, 27 px (0.6 of its height) further down the road."""
    dets = _d([[181, 316, 219, 393], [163, 322, 221, 366]], [0.55, 0.17], [PERSON, MOTO])
    result = merge_riders(dets)
    assert result.riders_merged == 0
    assert result.detections.xyxy.tolist() == dets.xyxy.tolist()


@pytest.mark.parametrize(
    ("step_px", "n", "moving"),
    [(5.0, 6, False), (40.0, 6, True), (40.0, 2, False)],
)
def test_moving_like_a_vehicle(step_px: float, n: int, moving: bool) -> None:
    samples = [MotionSample(t=i * 0.2, cx=100, cy=100 + i * step_px, height=80) for i in range(n)]
    assert moving_like_a_vehicle(samples) is moving


def test_the_low_mark_follows_its_rows() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], dtype=np.float32)
    tracked = Detections(boxes, np.array([0.9, 0.15, 0.8]), np.array([2, 2, 3]),
                         np.array([1, 2, 3]), np.array([False, True, False]))  # fmt: skip
    assert tracked.select([1, 2]).low_rows.tolist() == [True, False]
    assert tracked.with_boxes(boxes + 1).low_rows.tolist() == [False, True, False]
    unmarked = tracked.select([0]).with_tracker_ids(np.array([7]))
    plain = Detections(boxes[:1], np.array([0.5]), np.array([2]), np.array([9]))
    assert plain.low is None and plain.low_rows.tolist() == [False]
    assert Detections.merge([plain, tracked]).low_rows.tolist() == [False, False, True, False]
    assert Detections.merge([plain, plain]).low is None
    assert unmarked.low_rows.tolist() == [False]
    with pytest.raises(ValueError, match="low must be 3 booleans"):
        Detections(boxes, np.array([0.9, 0.1, 0.8]), np.array([2, 2, 3]), None, np.array([1, 0, 1]))
