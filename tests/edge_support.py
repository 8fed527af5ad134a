"""Shared helpers for the edge perception tests: pulled models, sample media, the detector."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tests.services import missing, require_shared_file

if TYPE_CHECKING:
    from edge.detector import Detector

REPO = Path(__file__).resolve().parents[1]


def require_model(name: str) -> Path:
    """The verified path of a manifest entry; missing (CI: fail) when not pulled."""
    from models.registry import ModelError, model_path

    try:
        return model_path(name)
    except ModelError as exc:
        missing(str(exc))
        raise AssertionError from exc  # unreachable


@functools.cache
def _detector() -> Detector:
    from edge.detector import Detector, DetectorConfig

    return Detector.load(require_model("yolov8n-coco-dynamic"), DetectorConfig())


def shared_detector() -> Detector:
    """One warmed-up CPU detector for the whole test session (loading costs seconds; its
    model is verified once, at the load: tests call this for every frame)."""
    return _detector()


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return np.asarray(image, dtype=np.uint8)


def hanoi_clip() -> Path:
    return require_shared_file("vn_redlight_16h30.mp4")


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "roadwatch", *args]
