"""The calibration's image -> road-plane mapping, in the shape the rules take."""

from __future__ import annotations

import numpy as np

from calibration.projector import RoadProjector
from edge.rules.geometry import ImageToWorld, Point


def image_to_world(projector: RoadProjector) -> ImageToWorld:
    """``SceneGeometry(scene, image_to_world(projector))`` puts a scene on the road plane.

    Points on or above the horizon come back as NaN, which the scene refuses with a clear
    message when a line is drawn there.
    """

    def to_world(p: Point) -> Point:
        x, y = projector.to_world(np.array([[p.x, p.y]], dtype=np.float64))[0]
        return Point(float(x), float(y))

    return to_world
