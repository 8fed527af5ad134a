"""Scene configuration: validated on load, errors name the key path; drawn over a real frame."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
import yaml

from edge.rules.geometry import Point, Polyline
from edge.rules.plane import SceneGeometry
from edge.rules.scene import SceneError, TimeWindow, load_scene, parse_scene
from edge.scene_draw import draw_scene
from roadwatch.cli import main
from roadwatch.contract import VehicleClass
from tests.media import read_frames
from tests.rules_tracks import BASE
from tests.services import require_shared_file

ROOT = Path(__file__).resolve().parents[2]
HANOI_SCENE = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.scene.yaml"
HANOI_PHASES = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.phases.yaml"


def broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()

ERRORS = {
    "unknown key": (
        broken("lanes.0.colour", "red"),
        "lanes.0.colour: Extra inputs are not permitted",
    ),
    "bad class": (
        broken("lanes.0.closures.0.classes.0", "tank"),
        "lanes.0.closures.0.classes.0: Input should be",
    ),
    "point outside the image": (
        broken("lanes.0.stop_line.1", [1200, 500]),
        "lanes.0.stop_line.1: (1200, 500) is outside the 1000x1000 image",
    ),
    "stop line without second line": (
        broken("lanes.0.went_on_line", DELETE),
        "lanes.0: 'stop_line' and 'went_on_line' go together",
    ),
    "unknown signal head": (
        broken("lanes.0.signal_head", "left"),
        "lanes.0.signal_head: 'left' is not one of signal_heads",
    ),
    "duplicate lane": (broken("lanes.1.id", "1"), "lanes.1.id: '1' is used twice"),
    "bad time zone": (
        broken("timezone", "Mars/Olympus"),
        "timezone: unknown time zone 'Mars/Olympus'",
    ),
    # Degenerate geometry passed: a rule then never fires, or fires on nonsense.
    "bow-tie lane": (
        broken("lanes.0.polygon", [[400, 0], [600, 1000], [600, 0], [400, 1000]]),
        "lanes.0.polygon: edges 0-1 and 2-3 cross: list the points in order around the area",
    ),
    "lane on one line": (
        broken("lanes.0.polygon", [[400, 0], [500, 500], [600, 1000]]),
        "lanes.0.polygon: the polygon has no area: its points lie on one line",
    ),
    "lane of one point": (
        broken("lanes.0.polygon", [[500, 500], [500, 500], [500, 500]]),
        "lanes.0.polygon: points 0 and 1 are the same",
    ),
    "zone folding back": (
        broken("no_stopping_zones.0.polygon", [[800, 200], [1000, 200], [900, 200], [900, 800]]),
        "no_stopping_zones.0.polygon: edges 0-1 and 2-3 cross",
    ),
    "bow-tie world polygon": (
        broken("lanes.0.world_polygon", [[0, 0], [3, 50], [3, 0], [0, 50]]),
        "lanes.0.world_polygon: edges 0-1 and 2-3 cross",
    ),
    "turn exemption on one line": (
        broken("lanes.0.turn_exemptions.0.polygon", [[560, 410], [580, 450], [600, 490]]),
        "lanes.0.turn_exemptions.0.polygon: the polygon has no area",
    ),
    "turn exemption off the image": (
        broken("lanes.0.turn_exemptions.0.polygon", [[-500, -500], [600, 410], [600, 490]]),
        "lanes.0.turn_exemptions.0.polygon.0: (-500, -500) is outside the 1000x1000 image",
    ),
    "direction lines the same": (
        broken("lanes.0.direction.lines.second", [[400, 800], [600, 800]]),
        "lanes.0.direction.lines: first and second are the same line",
    ),
    "direction lines the same, reversed": (
        broken("lanes.0.direction.lines.second", [[600, 800], [400, 800]]),
        "lanes.0.direction.lines: first and second are the same line",
    ),
    "second line on the stop line": (
        broken("lanes.0.went_on_line", [[400, 500], [600, 500]]),
        "lanes.0: 'stop_line' and 'went_on_line' are the same line",
    ),
    "speed trap exit on its entry": (
        broken("speed_traps.0.exit", [[400, 900], [600, 900]]),
        "speed_traps.0: entry and exit are the same line",
    ),
    "empty time window": (
        broken("lanes.1.closures.0.windows.0.end", "06:00"),
        "lanes.1.closures.0.windows.0: start and end are the same: the window is empty",
    ),
    "world centreline with a repeated point": (
        broken("lanes.1.world_centreline", [[0, 0], [0, 0], [0, 50]]),
        "lanes.1.world_centreline: points 0 and 1 are the same",
    ),
    "time zone a region": (
        broken("timezone", "Asia"),
        "timezone: 'Asia' is a region, not a time zone (e.g. 'Asia/Ho_Chi_Minh')",
    ),
    "time zone not a zone file": (broken("timezone", "zone.tab"), "unknown time zone 'zone.tab'"),
    "zero direction": (
        broken("lanes.1.direction.vector", [0, 0]),
        "lanes.1.direction: vector: must not be zero",
    ),
    "speed limit too high": (
        broken("lanes.0.speed_limits_kmh.car", 500),
        "lanes.0.speed_limits_kmh.car: Input should be less than or equal to 200",
    ),
    "lamp rectangle upside down": (
        broken("signal_heads.0.red", [20, 20, 10, 10]),
        "signal_heads.0.red: rectangle",
    ),
    "two of three lamps": (
        broken("signal_heads.0.green", DELETE),
        "signal_heads.0: give all three lamp rectangles (red, yellow, green) or none",
    ),
    "lamp off the image": (
        broken("signal_heads.0.green", [10, 30, 20, 1040]),
        "signal_heads.0.green: rectangle leaves the 1000x1000 image",
    ),
    "a line with a repeated point": (
        broken("solid_lines.0.points", [[600, 100], [600, 100], [600, 900]]),
        "solid_lines.0.points: points 0 and 1 are the same",
    ),
    "trap in unknown lane": (
        broken("speed_traps.0.lane", "9"),
        "speed_traps.0.lane: '9' is not one of lanes",
    ),
    "missing version": (broken("version", DELETE), "version: Field required"),
    # A name goes into the explanation a reviewer reads; U+202E would show it reversed,
    # and the event refuses it, so the violation could not be built.
    "name with a direction override": (
        broken("lanes.0.name", "bus \u202elane"),
        "lanes.0.name: control character U+202E is not allowed",
    ),
    "name with a tab": (
        broken("lanes.0.turn_exemptions.0.name", "right\tturn"),
        "lanes.0.turn_exemptions.0.name: control character U+0009 is not allowed",
    ),
    # YAML reads an unquoted 22:00 as 1320 (base 60): it passed as 00:22 UTC, and the node
    # crashed comparing it with the local clock.
    "unquoted time": (
        broken("lanes.1.closures.0.windows.0.start", 1320),
        "lanes.1.closures.0.windows.0.start: 1320 is a number, not a time (YAML reads an"
        " unquoted 22:00 as the number 1320): quote it, '22:00'",
    ),
    "time as a number": (
        broken("lanes.1.closures.0.windows.0.end", 7),
        "lanes.1.closures.0.windows.0.end: 7 is a number, not a time: quote it as 'HH:MM'",
    ),
    "time with an offset": (
        broken("lanes.1.closures.0.windows.0.start", "22:00+07:00"),
        "windows.0.start: '22:00+07:00' is not a local time: write it quoted as 'HH:MM', e.g."
        " '22:00', without a time zone",
    ),
    "time in UTC": (
        broken("lanes.1.closures.0.windows.0.start", "22:00Z"),
        "windows.0.start: '22:00Z' is not a local time",
    ),
}


def test_polygons_that_are_areas_pass() -> None:
    concave = [[400, 0], [600, 0], [600, 1000], [500, 600], [400, 1000]]
    closed_by_hand = [[400, 0], [600, 0], [600, 1000], [400, 1000], [400, 0]]
    clockwise = [[400, 1000], [600, 1000], [600, 0], [400, 0]]
    for polygon in (concave, closed_by_hand, clockwise):
        assert parse_scene(broken("lanes.0.polygon", polygon)).lanes[0].polygon == [
            tuple(p) for p in polygon
        ]


@pytest.mark.parametrize("name", list(ERRORS))
def test_scene_errors_name_the_key_path(name: str) -> None:
    data, message = ERRORS[name]
    with pytest.raises(SceneError) as caught:
        parse_scene(data, "cam.yaml")
    assert str(caught.value).startswith("cam.yaml: ")
    assert message in str(caught.value)


def test_load_scene_reports_files_and_yaml(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match="does not exist"):
        load_scene(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lanes: [\n", encoding="utf-8")
    with pytest.raises(SceneError, match="not valid YAML"):
        load_scene(bad)
    bad.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(SceneError, match="a scene is a mapping"):
        load_scene(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    scene = load_scene(good)
    assert scene.lanes[0].speed_limit(VehicleClass.MOTORCYCLE) == 50
    assert scene.lanes[0].speed_limit(VehicleClass.BUS) == 60


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        ("2026-11-23 22:30", True),  # Monday evening
        ("2026-11-24 05:59", True),  # after midnight, window began Monday
        ("2026-11-24 06:00", False),
        ("2026-11-22 23:00", False),  # Sunday: not a listed day
        ("2026-11-23 01:00", False),  # Monday early: began Sunday, not listed
    ],
)
def test_overnight_time_window(when: str, inside: bool) -> None:
    window = TimeWindow.model_validate({"start": "22:00", "end": "06:00", "days": ["mon", "tue"]})
    local = datetime.fromisoformat(when).replace(tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert window.contains(local) is inside


UNQUOTED_WINDOW = """
no_stopping_zones:
  - id: shoulder
    polygon: [[800, 200], [1000, 200], [1000, 800], [800, 800]]
    windows: [{start: 22:00, end: '06:00'}]
"""


def test_an_unquoted_time_is_refused_by_scene_check(tmp_path: Path) -> None:
    data = {k: v for k, v in BASE.items() if k != "no_stopping_zones"}
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(data) + UNQUOTED_WINDOW, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "roadwatch", "scene", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"roadwatch: error: {path}: no_stopping_zones.0.windows.0.start: 1320 is a number, not"
        " a time (YAML reads an unquoted 22:00 as the number 1320): quote it, '22:00'"
    ]
    # Quoted, it loads and means 22:00 local time.
    path.write_text(path.read_text().replace("start: 22:00", "start: '22:00'"), encoding="utf-8")
    window = load_scene(path).no_stopping_zones[0].windows[0]
    local = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert window.contains(local)


def test_scene_draw_over_a_real_frame(tmp_path: Path) -> None:
    clip = require_shared_file("vn_redlight_16h30.mp4")
    frame = read_frames("vn_redlight_16h30.mp4", [0])[0]
    picture = tmp_path / "frame.png"
    cv2.imwrite(str(picture), frame)
    out = tmp_path / "scene.png"
    assert main(["scene", "draw", str(HANOI_SCENE), "--frame", str(picture), "-o", str(out)]) == 0
    drawn = cv2.imread(str(out))
    assert drawn is not None
    assert drawn.shape == frame.shape
    # The stop line is drawn in red over the real stop line; the rest of the frame is intact.
    assert tuple(drawn[392, 360]) == (0, 0, 255)
    assert np.abs(drawn[100:150, 300:350].astype(int) - frame[100:150, 300:350]).max() < 30
    # A frame of the video itself works too.
    out2 = tmp_path / "scene2.png"
    assert (
        main(
            [
                "scene",
                "draw",
                str(HANOI_SCENE),
                "--frame",
                str(clip),
                "--index",
                "40",
                "-o",
                str(out2),
            ]
        )
        == 0
    )


def test_scene_draw_refuses_a_frame_of_another_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "small.png"
    cv2.imwrite(str(picture), np.zeros((100, 100, 3), np.uint8))
    out = tmp_path / "scene.png"
    assert main(["scene", "draw", str(HANOI_SCENE), "--frame", str(picture), "-o", str(out)]) == 2
    assert "frame is 100x100 but the scene is drawn for 640x480" in capsys.readouterr().err
    assert not out.exists()


def test_scene_check_lists_rules_and_why_some_cannot_run() -> None:
    env_path = f"{ROOT}"
    result = subprocess.run(
        [sys.executable, "-m", "roadwatch", "scene", "check", str(HANOI_SCENE)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert "red_light: runs (red_light/4)" in result.stdout
    assert "speeding needs metres: calibrate the camera" in result.stdout
    assert "signal head main: read from its lamps in the picture" in result.stdout


def test_scene_check_says_a_head_without_lamps_waits_for_the_controller(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = yaml.safe_load(HANOI_SCENE.read_text(encoding="utf-8"))
    scene["signal_heads"] = [{"id": "main"}]
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(scene), encoding="utf-8")
    assert main(["scene", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "signal head main: no lamps drawn: known only from a signal controller" in out


def test_scene_check_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cam.yaml"
    bad.write_text(yaml.safe_dump(broken("lanes.0.colour", "red")), encoding="utf-8")
    assert main(["scene", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lanes.0.colour: Extra inputs are not permitted" in err


def test_a_controller_only_head_needs_no_lamp_regions() -> None:
    data = copy.deepcopy(BASE)
    data["signal_heads"] = [{"id": "main"}]
    scene = parse_scene(data)
    assert scene.signal_heads[0].lamps() is None
    drawn = draw_scene(np.zeros((1000, 1000, 3), np.uint8), scene)
    assert drawn.any()


def test_a_line_above_the_calibrations_horizon_is_refused() -> None:
    def horizon_at_450(p: Point) -> Point:
        return Point(p.x / 10, p.y / 10) if p.y > 450 else Point(math.nan, math.nan)

    with pytest.raises(SceneError, match="does not reach the road plane"):
        SceneGeometry(parse_scene(copy.deepcopy(BASE)), horizon_at_450)


def test_a_line_reaching_above_the_calibrations_horizon_is_refused() -> None:
    # Only the solid line's far end (y=100) lies above this horizon (y=150).
    def horizon_at_150(p: Point) -> Point:
        return Point(p.x / 10, p.y / 10) if p.y > 150 else Point(math.nan, math.nan)

    with pytest.raises(SceneError, match=r"\(600.0, 100.0\).* does not reach the road plane"):
        SceneGeometry(parse_scene(copy.deepcopy(BASE)), horizon_at_150)


def test_a_line_the_calibration_puts_on_one_road_point_is_refused() -> None:
    # A degenerate mapping (every image row to one road point) folds each level line.
    with pytest.raises(SceneError, match=r"line \[\(400.0, 500.0\), \(600.0, 500.0\)\]: .*equal"):
        SceneGeometry(parse_scene(copy.deepcopy(BASE)), lambda p: Point(0.0, p.y / 10))


def test_polyline_placement_and_points_along_it() -> None:
    line = Polyline([Point(0, 0), Point(10, 0), Point(10, 10)])
    assert line.length == 20 and line.midpoint() == Point(10, 0)
    assert line.point_at(15) == Point(10, 5) and line.point_at(99) == Point(10, 10)
    left = line.place(Point(5, 2))  # left of travel along +x (y up is left in x-y axes)
    assert (left.signed_distance, left.along, left.within) == (2.0, 5.0, True)
    assert line.place(Point(12, 5)).signed_distance == -2.0
    beyond = line.place(Point(-3, 1))
    assert not beyond.within and beyond.along == -3.0
    with pytest.raises(ValueError, match="two equal"):
        Polyline([Point(1, 1), Point(1, 1)])


def test_scene_check_warns_of_lanes_or_zones_that_overlap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where two lanes (or zones) overlap, a vehicle is taken to be in the first listed
    (its speed limit, its closures, its dwell): the scene check says so. Lanes and a zone
    drawn edge to edge share only their border, which is no overlap."""
    from tests.rules_tracks import BASE

    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    assert main(["scene", "check", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out
    scene = copy.deepcopy(BASE)
    scene["lanes"][1]["polygon"] = [[550, 0], [800, 0], [800, 1000], [550, 1000]]
    scene["no_stopping_zones"].append(
        {"id": "corner", "polygon": [[900, 700], [1000, 700], [1000, 900], [900, 900]]}
    )
    path.write_text(yaml.safe_dump(scene), encoding="utf-8")
    assert main(["scene", "check", str(path)]) == 0
    warned = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warned) == 2, warned
    assert warned[0].startswith("  warning: lane 1 and lane 2 overlap (")
    assert warned[0].endswith(
        "a vehicle there is taken to be in lane 1, listed first among the lanes"
    )
    assert "no-stopping zone shoulder and no-stopping zone corner overlap" in warned[1]


@pytest.mark.parametrize(
    ("polygon", "area"),
    [
        ([[470, 330], [471, 330], [471, 331]], "0.5"),  # a typo: 1 px apart
        ([[20, 20], [29, 20], [29, 29], [20, 29]], "81.0"),
    ],
    ids=["half-a-pixel", "9x9-px"],
)
def test_scene_check_warns_of_a_zone_too_small_to_hold_a_vehicle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], polygon: list[list[int]], area: str
) -> None:
    """A zone of points one pixel apart (not on one line, not repeated) was valid without
    a word, and no vehicle could ever stand in it."""
    from tests.rules_tracks import BASE

    scene = copy.deepcopy(BASE)
    scene["no_stopping_zones"].append({"id": "tiny", "polygon": polygon})
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(scene), encoding="utf-8")
    assert main(["scene", "check", str(path)]) == 0
    warned = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warned == [
        f"  warning: no-stopping zone tiny covers {area} px² of the image, under 100 px²: no"
        " vehicle stands in so small a no-stopping zone; were its points meant to be farther"
        " apart?"
    ]


def test_a_node_warns_at_a_cameras_start_of_lanes_that_overlap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The node says it too, where its operator reads: the camera's log at its start (a
    scene pushed from central is never run through ``scene check``)."""
    import logging

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.enforcement import CameraEnforcement
    from edge.evidence.package import EvidenceBuilder
    from edge.evidence.ring import FrameRing
    from tests.rules_tracks import BASE

    def start(document: dict[str, Any]) -> list[str]:
        caplog.clear()
        scene = parse_scene(document)
        with caplog.at_level(logging.WARNING, logger="edge.enforcement"):
            CameraEnforcement(
                site="s", node="n", camera=scene.camera, scene=scene, projector=None,
                ring=FrameRing(scene.camera, seconds=2, max_bytes=1 << 24),
                builder=EvidenceBuilder(Ed25519PrivateKey.generate()), model_version="m@1",
            )  # fmt: skip
        return [r.getMessage() for r in caplog.records]

    assert start(copy.deepcopy(BASE)) == []
    scene = copy.deepcopy(BASE)
    scene["lanes"][1]["polygon"] = [[550, 0], [800, 0], [800, 1000], [550, 1000]]
    [warned] = start(scene)
    assert warned.startswith(f"camera {BASE['camera']}, scene {BASE['version']}: lane 1 and")
    assert warned.endswith("taken to be in lane 1, listed first among the lanes")


def test_scene_check_with_the_cameras_calibration_checks_the_rules_that_need_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without it, speeding and wrong way read as off for a scene that runs them on the
    node; with it, they run, and a calibration the node would refuse is refused here."""
    from datetime import UTC, datetime

    from calibration.store import save_calibration
    from roadwatch.demo.scene import demo_camera, surveyed_calibration, write_scene_file

    scene, calib = tmp_path / "scene.yaml", tmp_path / "cam-01.calib.yaml"
    write_scene_file(scene, demo_camera())
    calibration = surveyed_calibration(demo_camera(), 3, datetime.now(UTC))
    save_calibration(calibration, calib)
    assert main(["scene", "check", str(scene)]) == 0
    out = capsys.readouterr().out
    assert "speeding: does not run without calibration" in out
    assert "scene check SCENE --calibration CALIB.yaml" in out
    assert main(["scene", "check", str(scene), "--calibration", str(calib)]) == 0
    out = capsys.readouterr().out
    assert f"valid with {calib}" in out and "does not run" not in out
    assert "  speeding: runs (" in out and "  wrong_way: runs (" in out
    # Given the calibration, a rule that still cannot run lacks scene, not calibration.
    no_stop_line = yaml.safe_load(scene.read_text())
    no_stop_line["rules"]["red_light"]["enabled"] = True
    scene.write_text(yaml.safe_dump(no_stop_line))
    assert main(["scene", "check", str(scene), "--calibration", str(calib)]) == 0
    out = capsys.readouterr().out
    assert "  red_light: does not run without more scene: red light needs a lane" in out, out
    assert "without calibration" not in out
    write_scene_file(scene, demo_camera())
    width, height = calibration.image_size
    other = calibration.model_copy(update={"image_size": (width // 2, height // 2)})
    save_calibration(other, calib)
    assert main(["scene", "check", str(scene), "--calibration", str(calib)]) == 2
    err = capsys.readouterr().err
    assert f"the calibration is for {width // 2}x{height // 2}, the scene scene.yaml" in err


def test_a_calibration_of_another_camera_or_out_of_its_dates_names_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node of several cameras refused "calibration is for camera cam-09, not cam-01":
    which of its files was wrong, the technician had to guess."""
    from datetime import UTC, date, datetime

    from calibration.store import save_calibration
    from roadwatch.demo.scene import demo_camera, surveyed_calibration, write_scene_file

    scene, calib = tmp_path / "scene.yaml", tmp_path / "cam-09.calib.yaml"
    write_scene_file(scene, demo_camera())
    calibration = surveyed_calibration(demo_camera(), 3, datetime.now(UTC))
    save_calibration(calibration.model_copy(update={"camera": "cam-09"}), calib)
    assert main(["scene", "check", str(scene), "--calibration", str(calib)]) == 2
    err = capsys.readouterr().err
    assert f"{calib}: calibration is for camera cam-09, not {calibration.camera}" in err
    old = calibration.model_copy(
        update={"valid_from": date(2020, 1, 1), "valid_until": date(2020, 12, 31)}
    )
    save_calibration(old, calib)
    assert main(["scene", "check", str(scene), "--calibration", str(calib)]) == 2
    assert f"{calib}: calibration of camera {calibration.camera} expired on 2020-12-31" in (
        capsys.readouterr().err
    )
