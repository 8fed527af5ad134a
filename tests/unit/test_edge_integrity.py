"""Scene-integrity guard on real camera frames with synthetic shifts, covers and blur."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.integrity import (
    IntegrityBounds,
    IntegrityGuard,
    ReferenceView,
    ViewVerdict,
    check_view,
)
from tests.media import read_frames

Frame = npt.NDArray[np.uint8]

# (clip, reference frame, later frames of the same, unmoved view)
CLIPS = [
    ("kraten_cars.mp4", 0, [300, 900, 1180]),
    ("vn_saigon.mp4", 0, [100, 200]),
    ("vn_redlight_16h30.mp4", 0, [150, 380]),
    ("pk_raasta_traffic.mp4", 0, [250, 499]),  # about 3 px of real camera drift
]


def _translate(dx: float, dy: float) -> Callable[[Frame], Frame]:
    def apply(frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
        return np.asarray(cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT))

    return apply


def _rotate(degrees: float) -> Callable[[Frame], Frame]:
    def apply(frame: Frame) -> Frame:
        h, w = frame.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        return np.asarray(cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT))

    return apply


def _cover(share: float) -> Callable[[Frame], Frame]:
    def apply(frame: Frame) -> Frame:
        out = frame.copy()
        out[:, : int(frame.shape[1] * share)] = 40
        return out

    return apply


def _blur(sigma: float) -> Callable[[Frame], Frame]:
    return lambda frame: np.asarray(cv2.GaussianBlur(frame, (0, 0), sigma))


def _uniform(frame: Frame) -> Frame:
    return np.full_like(frame, 90)


CHANGES: list[tuple[str, Callable[[Frame], Frame], ViewVerdict]] = [
    ("shift 3 px", _translate(3, 1.5), ViewVerdict.OK),
    ("shift 12 px", _translate(12, 6), ViewVerdict.SHIFTED),
    ("shift 30 px", _translate(30, 15), ViewVerdict.SHIFTED),
    ("turned 3 degrees", _rotate(3), ViewVerdict.SHIFTED),
    ("70 % covered", _cover(0.7), ViewVerdict.BLOCKED),
    ("lens capped", _uniform, ViewVerdict.BLOCKED),
    ("out of focus", _blur(5), ViewVerdict.BLURRED),
    ("slightly soft", _blur(1), ViewVerdict.OK),
]


@pytest.fixture(scope="module", params=CLIPS, ids=[c[0] for c in CLIPS])
def clip(request: pytest.FixtureRequest) -> tuple[ReferenceView, list[Frame]]:
    name, ref_index, later = request.param
    frames = read_frames(name, [ref_index, *later])
    return ReferenceView.from_frame(frames[ref_index]), [frames[i] for i in later]


def test_the_unmoved_view_with_moving_traffic_is_ok(
    clip: tuple[ReferenceView, list[Frame]],
) -> None:
    reference, later = clip
    for frame in later:
        check = check_view(reference, frame, IntegrityBounds())
        assert check.verdict is ViewVerdict.OK, check.reason
        assert check.shift_px is not None and check.shift_px < 4.0


@pytest.mark.parametrize(("change", "apply", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_synthetic_changes_of_a_real_view(
    clip: tuple[ReferenceView, list[Frame]],
    change: str,
    apply: Callable[[Frame], Frame],
    expected: ViewVerdict,
) -> None:
    reference, later = clip
    check = check_view(reference, apply(later[-1]), IntegrityBounds())
    assert check.verdict is expected, f"{change}: {check.reason}"


def test_the_measured_shift_matches_the_applied_one() -> None:
    frames = read_frames("vn_saigon.mp4", [0, 200])
    reference = ReferenceView.from_frame(frames[0])
    for dx in (10.0, 20.0, 40.0):
        check = check_view(reference, _translate(dx, 0)(frames[200]), IntegrityBounds())
        assert check.shift_px == pytest.approx(dx, rel=0.15)
        assert f"{check.shift_px:.1f} px" in check.reason


def test_guard_pauses_and_resumes_with_inertia() -> None:
    frames = read_frames("kraten_cars.mp4", [0, 300])
    good = frames[300]
    shifted = _translate(25, 10)(good)
    guard = IntegrityGuard(ReferenceView.from_frame(frames[0]), IntegrityBounds(inertia=3))
    sequence = [good, shifted, shifted, good, shifted, shifted, shifted, shifted, good, good, good]
    states = [guard.update(f) for f in sequence]
    # one or two odd checks change nothing; the third shifted check in a row pauses, and it
    # takes three good ones in a row to resume
    assert states == [True, True, True, True, True, True, False, False, False, False, True]
    assert guard.reason == "view matches the reference"


def test_guard_reports_why_it_paused() -> None:
    frames = read_frames("vn_redlight_16h30.mp4", [0, 150])
    guard = IntegrityGuard(ReferenceView.from_frame(frames[0]), IntegrityBounds(inertia=2))
    covered = _cover(0.8)(frames[150])
    assert guard.update(covered) is True
    assert guard.update(covered) is False
    assert guard.reason.startswith("view blocked")


def test_bad_input_is_refused_clearly() -> None:
    frames = read_frames("vn_redlight_16h30.mp4", [0])
    reference = ReferenceView.from_frame(frames[0])
    with pytest.raises(ValueError, match="reference view 640x480"):
        check_view(reference, np.zeros((720, 1280, 3), np.uint8), IntegrityBounds())
    with pytest.raises(ValueError, match="BGR uint8"):
        check_view(reference, np.zeros((480, 640), np.uint8), IntegrityBounds())
    with pytest.raises(ValueError, match="features"):
        ReferenceView.from_frame(np.full((480, 640, 3), 128, np.uint8))
    with pytest.raises(ValueError):
        IntegrityBounds(inertia=0)
