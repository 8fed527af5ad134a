"""The plate reader with the OCR models that ship in the rapidocr wheel (CPU, offline)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge.plates import ocr
from edge.plates.grammar import PlateKind
from edge.plates.reader import PlateReader, stretch_contrast
from edge.plates.synth import FONT_FILES, PlateSpec, render_plate
from roadwatch.contract import PlateColour
from roadwatch.errors import UserError
from tests.plates_support import require_fonts


@pytest.fixture(scope="module")
def reader() -> Iterator[PlateReader]:
    # Any attempt to reach the network while the models load or run fails the test.
    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access to {address!r} during plate reading")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        yield PlateReader.from_packaged_models(threads=2)


def on_car(plate: np.ndarray, width: int) -> np.ndarray:
    """A plate scaled to ``width`` pixels on a textured grey vehicle-like crop."""
    h = round(plate.shape[0] * width / plate.shape[1])
    small = cv2.resize(plate, (width, h), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(3)
    canvas = rng.normal(90, 12, (width * 2, round(width * 2.4), 3)).clip(0, 255).astype(np.uint8)
    y, x = canvas.shape[0] - h - width // 4, (canvas.shape[1] - width) // 2
    canvas[y : y + h, x : x + width] = small
    return canvas


@pytest.mark.parametrize(
    "spec",
    [
        PlateSpec("51F-123.45", ("51F-123.45",), PlateKind.CAR, PlateColour.WHITE),
        PlateSpec("61A-905.27", ("61A", "905.27"), PlateKind.CAR, PlateColour.YELLOW),
        PlateSpec("59-X1 123.45", ("59-X1", "123.45"), PlateKind.MOTORCYCLE, PlateColour.WHITE),
        PlateSpec("29-MĐ1 480.16", ("29-MĐ1", "480.16"), PlateKind.MOTORCYCLE, PlateColour.BLUE),
        PlateSpec("TM-12-34", ("TM-12-34",), PlateKind.MILITARY, PlateColour.RED),
    ],
    ids=lambda s: s.text,
)
def test_reads_rendered_plates_top_line_first(reader: PlateReader, spec: PlateSpec) -> None:
    require_fonts()
    width = 150 if len(spec.lines) == 1 else 100
    got = reader.read(on_car(render_plate(spec, FONT_FILES[1]), width))
    assert got.plate.valid
    assert got.plate.text == spec.text
    assert got.plate.lines == len(spec.lines)
    assert got.colour is spec.colour
    assert 0.5 < got.confidence <= 1.0
    assert got.plate_crop is not None and got.plate_crop.size > 0


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.full((12, 40, 3), 128, np.uint8), "too small"),
        (np.full((200, 300, 3), 128, np.uint8), "blank"),
        (np.full((200, 300, 3), 255, np.uint8), "blank"),
        (np.pad(np.full((194, 294, 3), 255, np.uint8), ((3, 3), (3, 3), (0, 0))), "overexposed"),
        (np.zeros((200, 300), np.uint8), "colour"),
    ],
)
def test_bad_crops_are_unreadable_with_zero_confidence(
    reader: PlateReader, image: np.ndarray, reason: str
) -> None:
    got = reader.read(image)
    assert not got.plate.valid
    assert got.confidence == 0.0
    assert reason in got.reason


def test_text_that_is_not_a_plate_is_never_valid(reader: PlateReader) -> None:
    require_fonts()
    sign = np.full((120, 520, 3), 235, np.uint8)
    cv2.putText(sign, "TOYOTA 2024", (10, 85), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (20, 20, 20), 5)
    got = reader.read(on_car(sign, 160))
    assert not got.plate.valid
    assert got.confidence == 0.0


def test_packaged_models_are_verified_by_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    ocr.packaged_models.cache_clear()
    monkeypatch.setattr(ocr, "REC_MODEL", (ocr.REC_MODEL[0], "0" * 64))
    try:
        with pytest.raises(UserError, match="sha256"):
            ocr.packaged_models()
    finally:
        ocr.packaged_models.cache_clear()


def test_stretch_contrast_spreads_a_dark_line_and_leaves_a_flat_one() -> None:
    rng = np.random.default_rng(0)
    dark = rng.integers(10, 40, (20, 60, 3)).astype(np.uint8)
    out = stretch_contrast(dark)
    assert out.dtype == np.uint8 and out.shape == dark.shape
    assert int(out.min()) <= 5 and int(out.max()) >= 250
    flat = np.full((20, 60, 3), 30, np.uint8)
    assert stretch_contrast(flat) is flat
