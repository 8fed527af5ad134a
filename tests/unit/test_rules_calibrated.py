"""A scene placed on the road plane by a real calibration projector."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.projector import RoadProjector
from edge.rules.calibrated import image_to_world
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry
from edge.rules.scene import SceneError
from tests.rules_tracks import scene_config


def test_the_projector_puts_lines_on_the_road_in_metres() -> None:
    # 10 px per metre, straight down: image (x, y) is road (x/10, y/10).
    scene = SceneGeometry(scene_config(), image_to_world(RoadProjector(np.diag([0.1, 0.1, 1.0]))))
    assert scene.metric and scene.unit == "m"
    [lane1, _] = scene.lanes
    assert lane1.stop is not None
    assert lane1.stop.first.points == (Point(40.0, 50.0), Point(60.0, 50.0))
    assert lane1.stop.first.length == pytest.approx(20.0)


def test_a_line_above_the_horizon_is_refused() -> None:
    # The horizon of this camera is image row y = 450: the went-on line (y = 400) is above.
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.01, -4.5]])
    with pytest.raises(SceneError, match="does not reach the road plane"):
        SceneGeometry(scene_config(), image_to_world(RoadProjector(matrix)))
