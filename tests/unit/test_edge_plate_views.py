"""Which views of a violator its plate is read from: the largest near the decisive moment,
never one cut by the frame (a cut plate reads as another, valid one)."""

from __future__ import annotations

import pytest

from edge.enforcement import PLATE_FRAMES, SeenBox, plate_views

W, H = 640, 480


def seen(t: float, box: tuple[float, float, float, float]) -> SeenBox:
    return SeenBox(mono_s=t, box=box)


CASES = {
    "the largest whole view first": (
        [seen(9.8, (100, 100, 200, 180)), seen(10.0, (100, 100, 260, 220))],
        [10.0, 9.8],
    ),
    "a larger view cut by the right edge is left out": (
        [seen(10.0, (500, 100, 640, 220)), seen(9.9, (400, 100, 520, 200))],
        [9.9],
    ),
    "cut by the bottom or the top": (
        [seen(10.0, (100, 300, 260, 480)), seen(10.1, (100, 0, 260, 100))],
        [],
    ),
    "the views nearest the moment, not the largest ever": (
        [seen(10.0 + 0.1 * k, (100, 100, 150 + k, 180)) for k in range(PLATE_FRAMES * 2)]
        + [seen(30.0, (50, 50, 600, 450))],
        [10.0 + 0.1 * k for k in reversed(range(PLATE_FRAMES, PLATE_FRAMES * 2))],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plate_views(name: str) -> None:
    boxes, times = CASES[name]
    assert [b.mono_s for b in plate_views(boxes, 10.0, W, H)] == pytest.approx(times)
