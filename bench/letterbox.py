"""The device pipeline's letterbox per 1080p frame: ours against the same resize that works
out its sampling for every frame and converts the whole frame first, in the same run.

``edge.device_batch.letterbox_on`` is the array code that runs with CuPy on a GPU and with
NumPy on the host; this measures it with NumPy. A camera's frames keep their size, so ours
makes the sampling plan (source rows, columns and weights) once per size and per frame
gathers only the output's pixels from the uint8 frame. The peer is that letterbox as it
was before: the plan worked out for each frame and the whole frame converted to float32
before the gathers. OpenCV's host letterbox (``letterbox_into``) is printed for reference.
The three batch tensors are compared before any figure is printed.

CuPy serves its arrays from a memory pool. glibc serves arrays of this size by mapping
fresh pages, and those page faults would outweigh the arithmetic both ways, so the bench
runs itself with glibc's mapping threshold raised, which keeps them in a reused heap as a
pool would. On the GPU the same change also cuts the array operations (kernel launches) per
frame from about 47 to about 19, which this bench does not measure.

    .venv/bin/python bench/letterbox.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge.boxes import Letterbox  # noqa: E402
from edge.detector import letterbox_into  # noqa: E402
from edge.device_batch import PAD_VALUE, _axis, letterbox_on  # noqa: E402


def peer_letterbox(xp: Any, image: Any, size: int, out: Any) -> Letterbox:
    """The letterbox before plans: sampling worked out per frame, the frame float32 whole."""
    h, w = image.shape[:2]
    box = Letterbox.fit(h, w, size)
    new_w, new_h = box.resized
    top, left = round(box.pad_y - 0.1), round(box.pad_x - 0.1)
    y0, y1, wy = _axis(xp, new_h, h)
    x0, x1, wx = _axis(xp, new_w, w)
    src = image.astype(xp.float32)
    wx = wx[None, :, None]
    upper = src[y0][:, x0] * (1 - wx) + src[y0][:, x1] * wx
    lower = src[y1][:, x0] * (1 - wx) + src[y1][:, x1] * wx
    wy = wy[:, None, None]
    resized = xp.rint(upper * (1 - wy) + lower * wy)
    out[...] = PAD_VALUE / 255
    out[:, top : top + new_h, left : left + new_w] = resized[:, :, ::-1].transpose(2, 0, 1) / 255
    return Letterbox(box.scale, float(left), float(top), w, h)


def frames(clip: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(clip))
    out = []
    while len(out) < count:
        ok, frame = capture.read()
        if not ok:
            break
        out.append(np.ascontiguousarray(cv2.resize(frame, (1920, 1080)), dtype=np.uint8))
    capture.release()
    if not out:
        raise SystemExit(f"no frames in {clip}")
    return out


def timed(
    fn: Callable[..., Any], images: list[np.ndarray], size: int, repeat: int
) -> tuple[float, np.ndarray]:
    """Best ms per frame over ``repeat`` passes, and the batch of the last pass."""
    batch = np.empty((len(images), 3, size, size), np.float32)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for i, image in enumerate(images):
            if fn is letterbox_into:
                fn(image, size, batch[i])
            else:
                fn(np, image, size, batch[i])
        best = min(best, (time.perf_counter() - started) / len(images))
    return best * 1000, batch


POOLED = {"MALLOC_MMAP_THRESHOLD_": str(1 << 28), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def main() -> int:
    if any(os.environ.get(k) != v for k, v in POOLED.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **POOLED})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=ROOT.parent / "shared/data/vn_saigon.mp4")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    images = frames(args.clip, args.frames)
    ours_ms, ours = timed(letterbox_on, images, args.size, args.repeat)
    peer_ms, peer = timed(peer_letterbox, images, args.size, args.repeat)
    cv_ms, cv = timed(letterbox_into, images, args.size, args.repeat)
    if not np.array_equal(ours, peer):
        raise SystemExit("the two array letterboxes differ")
    grey = np.abs(ours - cv).max() * 255
    print(f"{len(images)} frames 1920x1080 -> {args.size}, best of {args.repeat}"
          " (NumPy, glibc's heap reused as a pool)")  # fmt: skip
    print(f"ours, plan per size, output pixels gathered: {ours_ms:.2f} ms per frame")
    print(f"peer, plan per frame, whole frame float32:   {peer_ms:.2f} ms per frame")
    print(f"OpenCV letterbox_into (reference):           {cv_ms:.2f} ms per frame"
          f" (at most {grey:.2f} grey levels from ours)")  # fmt: skip
    print(f"ratio, peer to ours: {peer_ms / ours_ms:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
