"""Plate colour from the plate's pixels.

White plates are private, yellow commercial transport, blue state, red military. The
background is what tells them apart: the characters are black on white and yellow plates
and white on blue and red ones. Hue and saturation are ratios of the channels, so a
global gain (a dark night frame, an overexposed one) leaves them unchanged; clipped and
near-black pixels carry no colour and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from roadwatch.contract import PlateColour

# The painted background of yellow plates is the bright part (black characters); that of
# blue and red plates is the darker part (white characters), and it stays well above
# the black of ink. Saturation is (max - min) / max of the part's median colour.
MIN_SATURATION = 0.35
MIN_BACKGROUND_SHARE = 0.3  # of the brightness of the bright part, for a dark background
_BANDS: tuple[tuple[PlateColour, float, float], ...] = (
    (PlateColour.RED, -30.0, 20.0),
    (PlateColour.YELLOW, 25.0, 75.0),
    (PlateColour.BLUE, 185.0, 260.0),
)


@dataclass(frozen=True)
class ColourEstimate:
    colour: PlateColour
    bright_saturation: float
    dark_saturation: float


def plate_colour(plate_bgr: npt.NDArray[np.uint8]) -> ColourEstimate:
    """Classify the pixels of a plate's text area (BGR), characters and background."""
    if (
        plate_bgr.ndim != 3
        or plate_bgr.shape[2] != 3
        or plate_bgr.shape[0] * plate_bgr.shape[1] < 16
    ):
        return ColourEstimate(PlateColour.UNKNOWN, 0.0, 0.0)
    px = plate_bgr.reshape(-1, 3).astype(np.float32)
    grey = px.mean(axis=1)
    if float(grey.max() - grey.min()) < 8.0:
        return ColourEstimate(PlateColour.UNKNOWN, 0.0, 0.0)
    threshold = _otsu(grey)
    bright = np.median(px[grey > threshold], axis=0)
    dark = np.median(px[grey <= threshold], axis=0)
    sat_b, hue_b = _saturation_hue(bright)
    sat_d, hue_d = _saturation_hue(dark)
    if sat_b >= MIN_SATURATION and _band(hue_b) is PlateColour.YELLOW:
        return ColourEstimate(PlateColour.YELLOW, sat_b, sat_d)
    if sat_d >= MIN_SATURATION and float(dark.max()) >= MIN_BACKGROUND_SHARE * float(bright.max()):
        band = _band(hue_d)
        if band in (PlateColour.BLUE, PlateColour.RED):
            return ColourEstimate(band, sat_b, sat_d)
    return ColourEstimate(PlateColour.WHITE, sat_b, sat_d)


def _otsu(values: npt.NDArray[np.float32]) -> float:
    hist, edges = np.histogram(
        values, bins=64, range=(float(values.min()), float(values.max()) + 1e-3)
    )
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    w0, w1 = weight[:-1], total - weight[:-1]
    valid = (w0 > 0) & (w1 > 0)
    m0 = np.where(valid, mean[:-1] / np.maximum(w0, 1), 0.0)
    m1 = np.where(valid, (mean[-1] - mean[:-1]) / np.maximum(w1, 1), 0.0)
    between = np.where(valid, w0 * w1 * (m0 - m1) ** 2, -1.0)
    return float(edges[int(between.argmax()) + 1])


def _saturation_hue(bgr: npt.NDArray[np.float32]) -> tuple[float, float]:
    b, g, r = (float(v) for v in bgr)
    hi, lo = max(b, g, r), min(b, g, r)
    if hi < 8.0:
        return 0.0, 0.0
    hue = float(np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2.0 * r - g - b))) % 360.0
    return (hi - lo) / hi, hue


def _band(hue: float) -> PlateColour:
    for colour, start, end in _BANDS:
        if start <= hue <= end or start <= hue - 360.0 <= end:
            return colour
    return PlateColour.UNKNOWN
