"""Reading frames of the real sample clips in ../shared/data."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from tests.services import require_shared_file


def read_frames(clip: str, indices: Iterable[int]) -> dict[int, npt.NDArray[np.uint8]]:
    """The frames of ``clip`` at ``indices`` (BGR), decoded in one pass."""
    wanted = set(indices)
    capture = cv2.VideoCapture(str(require_shared_file(clip)))
    frames: dict[int, npt.NDArray[np.uint8]] = {}
    try:
        index = 0
        while len(frames) < len(wanted):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                frames[index] = np.asarray(frame, dtype=np.uint8)
            index += 1
    finally:
        capture.release()
    missing = wanted - frames.keys()
    if missing:
        raise AssertionError(f"{clip} has no frames {sorted(missing)}")
    return frames
