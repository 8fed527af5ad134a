"""Agreement between a model variant's detections and its reference's."""

from __future__ import annotations

import numpy as np
import pytest

from edge.detections import Detections
from edge.parity import compare


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    if not rows:
        return Detections.empty()
    arr = np.array(rows, dtype=np.float64)
    return Detections(
        arr[:, :4].astype(np.float32), arr[:, 4].astype(np.float32), arr[:, 5].astype(np.int64)
    )


CAR = (100.0, 100.0, 200.0, 180.0, 0.9, 0)
BIKE = (300.0, 120.0, 340.0, 200.0, 0.7, 1)
FAINT = (500.0, 100.0, 540.0, 140.0, 0.3, 0)


@pytest.mark.parametrize(
    ("reference", "candidate", "recall", "classes", "shift", "score"),
    [
        ("same", [[CAR, BIKE]], 1.0, 1.0, 0.0, 0.0),
        ("shifted", [[(101.5, 100, 200, 180, 0.9, 0), BIKE]], 1.0, 1.0, 1.5, 0.0),
        ("rescored", [[(100, 100, 200, 180, 0.88, 0), BIKE]], 1.0, 1.0, 0.0, 0.02),
        ("missing bike", [[CAR]], 0.5, 1.0, 0.0, 0.0),
        ("class flip", [[(100, 100, 200, 180, 0.9, 3), BIKE]], 1.0, 0.5, 0.0, 0.0),
        ("faint box gone", [[CAR, BIKE]], 1.0, 1.0, 0.0, 0.0),
        ("nothing found", [[]], 0.0, 1.0, 0.0, 0.0),
    ],
)
def test_agreement_table(
    reference: str,
    candidate: list[list[tuple[float, float, float, float, float, int]]],
    recall: float,
    classes: float,
    shift: float,
    score: float,
) -> None:
    ref = [dets(CAR, BIKE, FAINT)]
    report = compare(ref, [dets(*rows) for rows in candidate])
    assert report.reference_boxes == 2  # the faint box never counts
    assert report.recall == pytest.approx(recall)
    assert report.class_agreement == pytest.approx(classes)
    assert report.max_shift_px == pytest.approx(shift, abs=1e-4)
    assert report.max_score_diff == pytest.approx(score, abs=1e-6)


def test_one_candidate_box_pairs_with_one_reference_box() -> None:
    twin = (102.0, 100.0, 202.0, 180.0, 0.85, 0)
    report = compare([dets(CAR, twin)], [dets(CAR)])
    assert report.reference_boxes == 2 and report.matched == 1


def test_tolerances_and_frame_counts() -> None:
    report = compare([dets(CAR)], [dets((103, 100, 200, 180, 0.9, 0))])
    assert report.within(shift_px=3.0, score=0.01, recall=1.0, classes=1.0)
    assert not report.within(shift_px=2.0, score=0.01, recall=1.0, classes=1.0)
    with pytest.raises(ValueError, match="2 reference frames but 1"):
        compare([dets(CAR), dets(CAR)], [dets(CAR)])
