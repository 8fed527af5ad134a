"""Batches built, inferred and filtered where the frames are: host memory or GPU memory.

One array code path serves NumPy (host) and CuPy (GPU), chosen by ``ArrayBackend``:

- letterbox: a bilinear resize by gathering the four neighbours of each output pixel (the
  same sampling as OpenCV's ``INTER_LINEAR``; where to sample is worked out once per frame
  size, see ``ResizePlan``), grey padding, BGR -> RGB, [0, 1], written straight into the
  batch tensor;
- inference: the batch and a pre-allocated output are bound to onnxruntime by pointer
  (IOBinding), so on the CUDA provider neither crosses to the host;
- candidates: the per-anchor best class and its threshold test run beside the output, and
  only the anchors that pass come back to the host for NMS.

On the host the same code runs with NumPy and the CPU provider, which is how it is tested
where there is no GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.boxes import Letterbox

PAD_VALUE = 114
Array = Any  # numpy.ndarray or cupy.ndarray: the same operations on either
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class BackendError(RuntimeError):
    """The requested array backend cannot run here."""


@dataclass(frozen=True)
class ArrayBackend:
    """Where arrays live: ``xp`` is the array module, ``device`` onnxruntime's device name."""

    xp: Any
    device: str
    device_id: int
    pointer: Callable[[Array], int]
    to_host: Callable[[Array], npt.NDArray[Any]]
    synchronize: Callable[[], None]

    def asarray(self, frame: Array) -> Array:
        """A frame on this backend: a host frame is copied up to the GPU, a GPU frame down to
        the host; one already there is returned as is."""
        if self.xp is np:
            return host_image(frame)
        return self.xp.asarray(frame)


def host_image(image: Array) -> npt.NDArray[np.uint8]:
    """An image in host memory: a GPU (CuPy) array is copied down, a host one returned as is."""
    if isinstance(image, np.ndarray):
        return image
    host: npt.NDArray[np.uint8] = np.asarray(image.get(), dtype=np.uint8)
    return host


def host_backend() -> ArrayBackend:
    return ArrayBackend(
        xp=np,
        device="cpu",
        device_id=0,
        pointer=lambda a: int(a.ctypes.data),
        to_host=np.asarray,
        synchronize=lambda: None,
    )


def cuda_backend(device_id: int = 0) -> ArrayBackend:
    """CuPy on one GPU; ``BackendError`` when CuPy or the GPU is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendError("GPU pre-processing needs CuPy (the gpu extra)") from exc
    try:
        cupy.cuda.Device(device_id).use()
    except Exception as exc:  # CuPy raises its own runtime errors without a common base
        raise BackendError(f"GPU {device_id} is not usable: {exc}") from exc
    return ArrayBackend(
        xp=cupy,
        device="cuda",
        device_id=device_id,
        pointer=lambda a: int(a.data.ptr),
        to_host=cupy.asnumpy,
        synchronize=lambda: cupy.cuda.get_current_stream().synchronize(),
    )


def _axis(xp: Any, out_len: int, in_len: int) -> tuple[Array, Array, Array]:
    """Source indices and weights of a bilinear resize along one axis (half-pixel centres)."""
    pos = (xp.arange(out_len, dtype=xp.float32) + 0.5) * (in_len / out_len) - 0.5
    pos = xp.clip(pos, 0, in_len - 1)
    low = xp.floor(pos).astype(xp.int32)
    high = xp.minimum(low + 1, in_len - 1)
    return low, high, (pos - low).astype(xp.float32)


@dataclass(frozen=True)
class ResizePlan:
    """Where each pixel of a bilinear resize samples its source, and with what weights.

    A camera's frames keep their size, so a plan is made once per source and output size
    (``resize_plan``) and every frame after that costs only its gathers and the blend.
    """

    rows: tuple[Array, Array]  # (out_h,) source rows above and below
    cols: tuple[Array, Array]  # (out_w,) source columns left and right
    wy: tuple[Array, Array]  # (out_h, 1, 1) weights of the rows above and below
    wx: tuple[Array, Array]  # (1, out_w, 1) weights of the columns left and right

    def resize(self, image: Array) -> Array:
        """(H, W, C) uint8 -> (out_h, out_w, C) float32 in 0..255.

        The needed rows, then the needed columns of them, are taken from the uint8 frame
        (``take`` copies whole rows, far quicker than gathering pixel by pixel), so only
        output-sized arrays are converted and blended, never the whole frame.
        """
        (y0, y1), (x0, x1) = self.rows, self.cols
        (ay, by), (ax, bx) = self.wy, self.wx
        above, below = image.take(y0, axis=0), image.take(y1, axis=0)
        top = above.take(x0, axis=1) * ax + above.take(x1, axis=1) * bx
        bottom = below.take(x0, axis=1) * ax + below.take(x1, axis=1) * bx
        return top * ay + bottom * by


@functools.lru_cache(maxsize=64)
def _plan(xp: Any, device: int, shape: tuple[int, int, int, int]) -> ResizePlan:
    in_h, in_w, out_h, out_w = shape
    y0, y1, wy = _axis(xp, out_h, in_h)
    x0, x1, wx = _axis(xp, out_w, in_w)
    return ResizePlan(
        rows=(y0, y1),
        cols=(x0, x1),
        wy=((1 - wy)[:, None, None], wy[:, None, None]),
        wx=((1 - wx)[None, :, None], wx[None, :, None]),
    )


def resize_plan(xp: Any, in_h: int, in_w: int, out_h: int, out_w: int) -> ResizePlan:
    """The plan for resizing (in_h, in_w) to (out_h, out_w) on ``xp``'s current device."""
    cuda = getattr(xp, "cuda", None)
    device = int(cuda.Device().id) if cuda is not None else -1
    return _plan(xp, device, (in_h, in_w, out_h, out_w))


def resize_bilinear(xp: Any, image: Array, width: int, height: int) -> Array:
    """(H, W, C) uint8 -> (height, width, C) float32 in 0..255."""
    h, w = image.shape[:2]
    return resize_plan(xp, h, w, height, width).resize(image)


def letterbox_on(xp: Any, image: Array, size: int, out: Array) -> Letterbox:
    """Scale ``image`` (BGR uint8, on xp) into ``out`` (3, size, size) as RGB in [0, 1]."""
    h, w = image.shape[:2]
    box = Letterbox.fit(h, w, size)
    new_w, new_h = box.resized
    top, left = round(box.pad_y - 0.1), round(box.pad_x - 0.1)
    resized = xp.rint(resize_bilinear(xp, image, new_w, new_h))
    out[...] = PAD_VALUE / 255
    out[:, top : top + new_h, left : left + new_w] = resized[:, :, ::-1].transpose(2, 0, 1) / 255
    return Letterbox(box.scale, float(left), float(top), w, h)


@dataclass(frozen=True)
class Candidates:
    """Anchors that passed their class threshold, on the host: one row each."""

    frame: IntArray  # index of the frame in the batch
    cxcywh: FloatArray  # (N, 4) model-input pixels
    score: FloatArray
    column: IntArray  # index into the columns that were searched

    def of_frame(self, i: int) -> Candidates:
        return self.where(self.frame == i)

    def where(self, keep: npt.NDArray[np.bool_]) -> Candidates:
        return Candidates(self.frame[keep], self.cxcywh[keep], self.score[keep], self.column[keep])

    def __len__(self) -> int:
        return len(self.score)


def select_candidates(
    backend: ArrayBackend, raw: Array, columns: IntArray, thresholds: FloatArray
) -> Candidates:
    """Best searched class per anchor of raw YOLOv8 output (B, 4 + classes, A); only anchors
    whose best score reaches that class's threshold leave the backend."""
    xp = backend.xp
    cols = xp.asarray(columns)
    scores = raw[:, 4 + cols, :]  # (B, K, A)
    best = scores.argmax(axis=1)  # (B, A)
    score = xp.take_along_axis(scores, best[:, None, :], axis=1)[:, 0, :]
    frame, anchor = xp.nonzero(score >= xp.asarray(thresholds)[best])
    boxes = raw[frame, :4, anchor]  # (N, 4)
    return Candidates(
        frame=backend.to_host(frame).astype(np.int64),
        cxcywh=backend.to_host(boxes).astype(np.float32),
        score=backend.to_host(score[frame, anchor]).astype(np.float32),
        column=backend.to_host(best[frame, anchor]).astype(np.int64),
    )


class BoundSession:
    """An onnxruntime session run through IOBinding on one backend's memory."""

    def __init__(self, session: Any, backend: ArrayBackend) -> None:
        self.session = session
        self.backend = backend
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        tail = out.shape[1:]
        if not all(isinstance(d, int) for d in tail):
            raise BackendError(f"output {out.name!r} has a symbolic shape {out.shape}")
        self.output_tail: tuple[int, ...] = tuple(tail)

    def run(self, batch: Array) -> Array:
        """Raw output for ``batch`` (float32, contiguous, on the backend), on the backend."""
        xp, b = self.backend.xp, self.backend
        batch = xp.ascontiguousarray(batch, dtype=xp.float32)
        output = xp.empty((batch.shape[0], *self.output_tail), dtype=xp.float32)
        binding = self.session.io_binding()
        binding.bind_input(
            self.input_name, b.device, b.device_id, np.float32, list(batch.shape), b.pointer(batch)
        )
        binding.bind_output(
            self.output_name, b.device, b.device_id, np.float32, list(output.shape),
            b.pointer(output),
        )  # fmt: skip
        b.synchronize()  # the batch is written before onnxruntime's stream reads it
        self.session.run_with_iobinding(binding)
        return output
