"""Lanes or no-stopping zones of a scene that overlap in the image, or are too small to
hold a vehicle.

A vehicle in an overlap is taken to be in the first listed (its speed limit, its
closures, its dwell). That is valid, and may be meant, but is more often a polygon drawn
a little too wide: ``scene check`` and the node at each camera's start say where.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from edge.rules.plane import SceneGeometry

# Polygons are shrunk by this much before they are compared: areas drawn edge to edge (two
# lanes beside each other, zones side by side) share their border, which is no overlap.
BORDER_PX = 2
# A lane or zone smaller than this (10 x 10 px) holds no vehicle's ground point for long:
# its points were most likely meant to be farther apart (a typo, one point given twice
# over with a pixel between).
MIN_AREA_PX = 100.0


def overlaps(
    areas: list[tuple[str, list[tuple[float, float]]]], size: tuple[int, int]
) -> list[tuple[str, str, int]]:
    """The pairs of ``areas`` (name, image polygon) whose insides overlap, in the order
    listed, with the pixels they share: where they do, the first listed is taken."""
    width, height = size
    kernel = np.ones((2 * BORDER_PX + 1, 2 * BORDER_PX + 1), np.uint8)
    masks = []
    for _, polygon in areas:
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(np.array(polygon)).astype(np.int32)], 1)
        masks.append(np.asarray(cv2.erode(mask, kernel), dtype=bool))
    found = []
    for i, j in itertools.combinations(range(len(areas)), 2):
        shared = int(np.count_nonzero(np.logical_and(masks[i], masks[j])))
        if shared:
            found.append((areas[i][0], areas[j][0], shared))
    return found


def overlap_warnings(geometry: SceneGeometry) -> list[str]:
    """One line for each pair of lanes, and of no-stopping zones, that overlap."""
    size = (geometry.config.image_size.width, geometry.config.image_size.height)
    lines = []
    for kind, areas in (
        ("lanes", [(lane.label, lane.config.polygon) for lane in geometry.lanes]),
        ("no-stopping zones", [(zone.label, zone.config.polygon) for zone in geometry.zones]),
    ):
        for first, second, pixels in overlaps(areas, size):
            lines.append(
                f"{first} and {second} overlap ({pixels} px): a vehicle there is"
                f" taken to be in {first}, listed first among the {kind}"
            )
    return lines


def polygon_area(polygon: list[tuple[float, float]]) -> float:
    """The area (px²) inside a polygon listed in order around it (shoelace)."""
    points = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def small_area_warnings(geometry: SceneGeometry) -> list[str]:
    """One line for each lane and no-stopping zone under ``MIN_AREA_PX`` in the image."""
    lines = []
    for kind, areas in (
        ("lane", [(lane.label, lane.config.polygon) for lane in geometry.lanes]),
        ("no-stopping zone", [(zone.label, zone.config.polygon) for zone in geometry.zones]),
    ):
        for label, polygon in areas:
            area = polygon_area(polygon)
            if area < MIN_AREA_PX:
                lines.append(
                    f"{label} covers {area:.1f} px² of the image, under {MIN_AREA_PX:.0f} px²"
                    f": no vehicle stands in so small a {kind}; were its points meant to be"
                    " farther apart?"
                )
    return lines


def scene_warnings(geometry: SceneGeometry) -> list[str]:
    """Every warning about a scene's areas, as the scene check prints them and a start
    logs them: areas too small first, then overlaps."""
    return small_area_warnings(geometry) + overlap_warnings(geometry)
