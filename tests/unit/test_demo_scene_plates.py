"""The demo scene's plates: drawn over the cut-outs' own at their real size in the
camera's view, and read from the rendered frames by the node's plate reader alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.scene_render import PlateArt, SceneAssets, SceneRenderer, load_assets
from edge.plates.reader import PlateReader
from roadwatch.demo.scene import demo_camera, demo_plate_texts, demo_plates, demo_spec
from tests.plates_support import require_fonts
from tests.services import SHARED_DATA, require_shared_file


@pytest.fixture(scope="module")
def assets() -> SceneAssets:
    require_shared_file("kraten_cars.mp4")
    require_fonts()
    return load_assets(SHARED_DATA)


@pytest.fixture(scope="module")
def reader() -> Iterator[PlateReader]:
    yield PlateReader.from_packaged_models(threads=1)


def test_the_own_plate_of_every_cut_out_of_the_sample_clip_is_found(
    assets: SceneAssets,
) -> None:
    # Rear views from the gantry: each blue plate sits low on the rear, near the middle
    # (one rear seen at an angle puts it right of centre; the blue truck's body is not it).
    assert len(assets.sprites) == 8
    for sprite in assets.sprites:
        assert sprite.plate_at is not None, sprite.source
        fx, fy = sprite.plate_at
        assert 0.35 <= fx <= 0.8 and 0.6 <= fy <= 0.95, (sprite.source, sprite.plate_at)


def test_near_vehicles_plates_read_as_drawn_and_no_reading_is_ever_another_plate(
    assets: SceneAssets, reader: PlateReader
) -> None:
    spec = demo_spec()
    drawn = demo_plate_texts(spec.seed)
    renderer = SceneRenderer(spec, assets, demo_plates(spec.seed))
    read: dict[int, str] = {}
    for index in (8, 24, 142):  # vehicles 2, 3 and 5 near the camera, others further
        image, truth = renderer.render(index)
        for box in truth.boxes:
            x0, y0, x1, y1 = (round(v) for v in box.xyxy)
            got = reader.read(np.ascontiguousarray(image[y0:y1, x0:x1]))
            if got.plate.valid:
                assert got.plate.text == drawn[box.vehicle_id], (index, box.vehicle_id)
                read[box.vehicle_id] = got.plate.text
    assert {2, 5} <= set(read), read


def test_the_same_view_at_960x540_shows_plates_too_small_to_read(
    assets: SceneAssets, reader: PlateReader
) -> None:
    # Why the demo films in 1080p: the nearest vehicle's plate, 50 px wide, reads as nothing.
    spec = replace(demo_spec(), camera=demo_camera())
    renderer = SceneRenderer(spec, assets, demo_plates(spec.seed))
    image, truth = renderer.render(8)
    near = next(b for b in truth.boxes if b.vehicle_id == 2)
    x0, y0, x1, y1 = (round(v) for v in near.xyxy)
    assert not reader.read(np.ascontiguousarray(image[y0:y1, x0:x1])).plate.valid


def test_a_plate_for_a_vehicle_the_scene_lacks_or_a_bad_picture_is_refused(
    assets: SceneAssets,
) -> None:
    spec = demo_spec()
    picture = np.full((50, 200, 3), 230, np.uint8)
    with pytest.raises(CalibrationError, match=r"plates for unknown vehicles \[99\]"):
        SceneRenderer(spec, assets, {99: PlateArt(picture, 0.52)})
    with pytest.raises(CalibrationError, match=r"outside 0\.1-1\.0 m"):
        PlateArt(picture, 5.2)
    with pytest.raises(CalibrationError, match="colour image"):
        PlateArt(np.zeros((50, 200), np.uint8), 0.52)
