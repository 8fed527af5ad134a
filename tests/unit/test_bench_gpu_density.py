"""The stream-density bench's own checks and peers, run without a GPU (stand-ins for
PyNvVideoCodec and CuPy where the GPU path is measured)."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from edge import nvdec
from edge.nvdec import NvdecCapture
from tests.bench_support import load_bench
from tests.edge_support import hanoi_clip
from tests.nvdec_standin import FAKE_XP, StreamDecoder, StreamNvc


@pytest.fixture(scope="module")
def density() -> ModuleType:
    return load_bench("gpu_density")


class RecordingNvc(StreamNvc):
    """The stand-in, recording how each decoder was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.decoders: list[dict[str, Any]] = []

    def CreateDecoder(self, **kwargs: Any) -> StreamDecoder:  # noqa: N802
        self.decoders.append(kwargs)
        return super().CreateDecoder(**kwargs)


def test_the_nvdec_ceiling_decodes_as_the_camera_readers_do(
    density: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ceiling's decoders are made as a camera's capture makes its own (RGB, low
    latency) and each picture is copied into a BGR array of its own, as a camera's is: a
    ceiling of NV12 pictures left in the decoder's surface would flatter the ratio."""
    copies = [0]

    def copy(array: Any) -> Any:
        copies[0] += 1
        return FAKE_XP.ascontiguousarray(array)

    xp = SimpleNamespace(from_dlpack=FAKE_XP.from_dlpack, ascontiguousarray=copy)
    ceiling, camera = RecordingNvc(), RecordingNvc()
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", ceiling)
    monkeypatch.setattr(nvdec, "load_cupy", lambda gpu: xp)
    rate = density.nvdec_ceiling(hanoi_clip(), 2, 1.0)
    assert rate > 0 and copies[0] > 0
    cap = NvdecCapture(str(hanoi_clip()), nvc=camera, xp=FAKE_XP)
    cap.release()
    assert ceiling.decoders and all(d == camera.decoders[0] for d in ceiling.decoders)
