"""Speed from exact synthetic trajectories seen through known cameras."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from calibration.camera import PinholeCamera
from calibration.errors import CalibrationError
from calibration.projector import RoadProjector
from calibration.speed import (
    GroundSample,
    SampleWindow,
    SpeedConfig,
    SpeedEstimate,
    estimate_speed,
    estimate_speeds,
    ground_rows,
)

HIGH = PinholeCamera(height_m=9, tilt_deg=18, focal_px=1400, width=1920, height=1080)
LOW = PinholeCamera(height_m=5, tilt_deg=9, focal_px=1000, width=1280, height=720, pan_deg=-6)


@dataclass(frozen=True)
class Drive:
    camera: PinholeCamera
    start: tuple[float, float]
    velocity_kmh: tuple[float, float]  # (across, along) the road
    fps: float = 25.0
    frames: int = 30


def samples(drive: Drive, noise_px: float = 0.0, seed: int = 0) -> list[GroundSample]:
    t = np.arange(drive.frames) / drive.fps
    world = np.array(drive.start) + np.outer(t, np.array(drive.velocity_kmh) / 3.6)
    pixels = drive.camera.project(world)
    pixels += np.random.default_rng(seed).normal(0, noise_px, pixels.shape)
    return [
        GroundSample(t=float(ti), pixel=(float(u), float(v)))
        for ti, (u, v) in zip(t, pixels, strict=True)
    ]


def projector(camera: PinholeCamera, rms_m: float = 0.0) -> RoadProjector:
    return RoadProjector(image_to_world=camera.image_to_world, rms_m=rms_m)


EXACT = [
    pytest.param(Drive(HIGH, (1.75, 20), (0, 30)), 30.0, id="30 km/h away"),
    pytest.param(Drive(HIGH, (-1.75, 70), (0, -130)), 130.0, id="130 km/h towards"),
    pytest.param(Drive(HIGH, (-1.75, 20), (12, 80)), float(np.hypot(12, 80)), id="lane change"),
    pytest.param(Drive(LOW, (0, 12), (0, 90), fps=10, frames=12), 90.0, id="10 fps low camera"),
    pytest.param(Drive(LOW, (3.5, 60), (0, -60), fps=6, frames=6), 60.0, id="6 fps, 5 samples"),
]


@pytest.mark.parametrize(("drive", "true_kmh"), EXACT)
def test_exact_trajectories_give_the_exact_speed(drive: Drive, true_kmh: float) -> None:
    estimate = estimate_speed(samples(drive), projector(drive.camera), SpeedConfig())
    assert estimate is not None
    assert estimate.speed_kmh == pytest.approx(true_kmh, abs=1e-6)
    assert estimate.sigma_jitter_mps == pytest.approx(0, abs=1e-6)
    assert estimate.inliers == estimate.samples
    assert estimate.contains(true_kmh)


@pytest.mark.parametrize(
    ("drive", "noise_px"),
    [
        (Drive(HIGH, (1.75, 20), (0, 60)), 1.0),
        (Drive(HIGH, (-1.75, 80), (0, -110)), 1.0),
        (Drive(LOW, (0, 15), (0, 50), frames=40), 0.5),
    ],
)
def test_noisy_contact_points_stay_inside_the_interval_95_percent_of_the_time(
    drive: Drive, noise_px: float
) -> None:
    true_kmh = float(np.hypot(*drive.velocity_kmh))
    config = SpeedConfig(pixel_sigma_px=noise_px)
    hits, errors = 0, []
    for seed in range(200):
        estimate = estimate_speed(samples(drive, noise_px, seed), projector(drive.camera), config)
        assert estimate is not None
        hits += estimate.contains(true_kmh)
        errors.append(estimate.speed_kmh - true_kmh)
    assert hits / 200 >= 0.95
    assert abs(float(np.mean(errors))) < 0.3  # no bias
    assert float(np.mean(np.abs(errors))) < 1.0


def test_far_samples_carry_a_larger_pixel_footprint() -> None:
    near = estimate_speed(samples(Drive(HIGH, (0, 15), (0, 60))), projector(HIGH), SpeedConfig())
    far = estimate_speed(samples(Drive(HIGH, (0, 60), (0, 60))), projector(HIGH), SpeedConfig())
    assert near is not None and far is not None
    # A fixed edge offset moves far samples more (footprint ~ distance squared).
    assert far.sigma_pixel_mps > 2.5 * near.sigma_pixel_mps


def test_calibration_error_widens_the_interval() -> None:
    drive = Drive(HIGH, (0, 20), (0, 80))
    exact = estimate_speed(samples(drive), projector(HIGH), SpeedConfig())
    rough = estimate_speed(samples(drive), projector(HIGH, rms_m=0.2), SpeedConfig())
    assert exact is not None and rough is not None
    assert rough.sigma_calibration_mps == pytest.approx(np.sqrt(2) * 0.2 / rough.window_s)
    assert rough.uncertainty_kmh > exact.uncertainty_kmh
    assert rough.lower_kmh < exact.lower_kmh


def test_a_box_that_jumps_for_two_frames_is_outvoted() -> None:
    drive = Drive(HIGH, (1.75, 20), (0, 72))
    track = samples(drive)
    for i in (10, 11):  # occlusion: the box bottom jumps 25 px up
        s = track[i]
        track[i] = GroundSample(t=s.t, pixel=(s.pixel[0], s.pixel[1] - 25))
    estimate = estimate_speed(track, projector(HIGH), SpeedConfig())
    assert estimate is not None
    assert estimate.speed_kmh == pytest.approx(72, abs=0.5)
    assert estimate.inliers == len(track) - 2


@pytest.mark.parametrize(
    ("drive", "config"),
    [
        pytest.param(Drive(HIGH, (0, 20), (0, 30), frames=10), SpeedConfig(), id="0.36 s, 3 m"),
        pytest.param(Drive(HIGH, (0, 20), (0, 90), frames=4), SpeedConfig(), id="4 samples"),
        pytest.param(
            Drive(HIGH, (0, 20), (0, 130), frames=10),
            SpeedConfig(min_distance_m=20),
            id="13 m of 20 m",
        ),
    ],
)
def test_too_short_a_window_gives_no_speed(drive: Drive, config: SpeedConfig) -> None:
    assert estimate_speed(samples(drive), projector(drive.camera), config) is None


def test_the_window_keeps_the_latest_seconds() -> None:
    # 40 km/h for 3 s, then 80 km/h for 2 s: a 1.5 s window sees only the latter.
    t1 = np.arange(75) / 25
    t2 = 3 + np.arange(1, 51) / 25
    y = np.concatenate([20 + t1 * 40 / 3.6, 20 + 3 * 40 / 3.6 + (t2 - 3) * 80 / 3.6])
    world = np.column_stack([np.zeros(len(y)), y])
    pixels = HIGH.project(world)
    track = [
        GroundSample(t=float(t), pixel=(float(u), float(v)))
        for t, (u, v) in zip(np.concatenate([t1, t2]), pixels, strict=True)
    ]
    estimate = estimate_speed(track, projector(HIGH), SpeedConfig(max_window_s=1.5))
    assert estimate is not None
    assert estimate.speed_kmh == pytest.approx(80, abs=1e-6)


def test_samples_above_the_horizon_are_ignored() -> None:
    track = samples(Drive(HIGH, (0, 20), (0, 60)))
    track[3] = GroundSample(t=track[3].t, pixel=(960.0, 5.0))
    estimate = estimate_speed(track, projector(HIGH), SpeedConfig())
    assert estimate is not None
    assert estimate.samples == len(track) - 1
    assert estimate.speed_kmh == pytest.approx(60, abs=1e-6)


@pytest.mark.parametrize(
    ("track", "message"),
    [
        ([GroundSample(0.0, (1.0, 2.0)), GroundSample(0.0, (2.0, 3.0))], "strictly increasing"),
        ([GroundSample(1.0, (1.0, 2.0)), GroundSample(0.5, (2.0, 3.0))], "strictly increasing"),
        ([GroundSample(0.0, (float("nan"), 2.0))], "NaN"),
        ([GroundSample(float("nan"), (1.0, 2.0))], "NaN"),
        ([GroundSample(0.0, (1.0, 2.0), box_height_px=float("inf"))], "NaN or infinite"),
    ],
)
def test_malformed_tracks_are_refused(track: list[GroundSample], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        estimate_speed(track, projector(HIGH), SpeedConfig())


def test_empty_track_has_no_speed() -> None:
    assert estimate_speed([], projector(HIGH), SpeedConfig()) is None


def test_box_edge_sigma_grows_the_pixel_footprint_with_box_height() -> None:
    drive = Drive(HIGH, (0, 20), (0, 60))
    track = [GroundSample(t=s.t, pixel=s.pixel, box_height_px=100.0) for s in samples(drive)]
    plain = estimate_speed(track, projector(HIGH), SpeedConfig(pixel_sigma_px=1.0))
    edged = estimate_speed(
        track, projector(HIGH), SpeedConfig(pixel_sigma_px=1.0, box_edge_sigma=0.04)
    )
    assert plain is not None and edged is not None
    # hypot(1, 0.04 * 100) / 1 = sqrt(17)
    assert edged.sigma_pixel_mps == pytest.approx(plain.sigma_pixel_mps * np.sqrt(17), rel=1e-6)
    assert edged.speed_kmh == pytest.approx(plain.speed_kmh)


def _jumps(track: list[GroundSample], at: tuple[int, ...], by_px: float) -> list[GroundSample]:
    return [
        GroundSample(s.t, (s.pixel[0], s.pixel[1] - by_px * (i in at)), s.box_height_px)
        for i, s in enumerate(track)
    ]


def _above_horizon(track: list[GroundSample], i: int) -> list[GroundSample]:
    return [*track[:i], GroundSample(track[i].t, (960.0, 5.0)), *track[i + 1 :]]


# A frame's tracks side by side: different lengths, exact and noisy, outliers that take
# several reweighting steps beside tracks that settle at once, too short, empty.
FRAME = [
    samples(Drive(HIGH, (1.75, 20), (0, 60), fps=30, frames=120)),
    samples(Drive(HIGH, (-1.75, 80), (0, -110), fps=30, frames=45), 1.5, seed=3),
    _jumps(samples(Drive(HIGH, (1.75, 20), (0, 72))), (10, 11), 25.0),
    samples(Drive(HIGH, (0, 20), (0, 90), frames=4)),
    [],
    _above_horizon(samples(Drive(HIGH, (0, 20), (0, 60))), 3),
    samples(Drive(HIGH, (3.5, 30), (8, 50), fps=30, frames=90), 3.0, seed=4),
    samples(Drive(HIGH, (0, 20), (0, 30), frames=10)),
]


def _fields(estimate: SpeedEstimate | None) -> list[float]:
    """The estimate's figures in order; none for no estimate."""
    if estimate is None:
        return []
    return [
        estimate.speed_mps, estimate.sigma_mps, estimate.sigma_calibration_mps,
        estimate.sigma_pixel_mps, estimate.sigma_jitter_mps, *estimate.heading,
        estimate.window_s, estimate.distance_m, estimate.samples, estimate.inliers,
    ]  # fmt: skip


def _at(t0: float, track: list[GroundSample]) -> list[GroundSample]:
    return [GroundSample(t0 + s.t, s.pixel, s.box_height_px) for s in track]


@pytest.mark.parametrize(
    ("rms_m", "t0"), [(0.0, 0.0), (0.1, 0.0), (0.1, 1_765_000_000.0)], ids=["exact", "rms", "epoch"]
)
def test_a_frames_tracks_estimated_at_once_match_each_estimated_alone(
    rms_m: float, t0: float
) -> None:
    """Epoch seconds, as the node's frames carry, included: each track's times are taken
    from its newest sample, so the sums keep their digits whatever the clock reads."""
    config = SpeedConfig(pixel_sigma_px=1.0, box_edge_sigma=0.05)
    frame = [_at(t0, track) for track in FRAME]
    alone = [estimate_speed(track, projector(HIGH, rms_m), config) for track in frame]
    together = estimate_speeds([ground_rows(t) for t in frame], projector(HIGH, rms_m), config)
    assert [e is None for e in alone] == [False, False, False, True, True, False, False, True]
    for one, batched in zip(alone, together, strict=True):
        assert _fields(batched) == pytest.approx(_fields(one), rel=1e-9, abs=1e-12)
    # The clock's reading changes nothing but the times' own rounding (about 1e-7 s).
    from_zero = [estimate_speed(track, projector(HIGH, rms_m), config) for track in FRAME]
    for one, zero in zip(alone, from_zero, strict=True):
        assert _fields(one) == pytest.approx(_fields(zero), rel=1e-5, abs=1e-6)
    # Reordered, each track still gets its own estimate.
    backwards = estimate_speeds([ground_rows(t) for t in FRAME[::-1]], projector(HIGH), config)
    forwards = [estimate_speed(track, projector(HIGH), config) for track in FRAME]
    for one, batched in zip(forwards, backwards[::-1], strict=True):
        assert _fields(batched) == pytest.approx(_fields(one), rel=1e-9, abs=1e-12)


def test_tracks_at_once_refuse_a_malformed_track_but_not_a_later_track_starting_earlier() -> None:
    later = samples(Drive(HIGH, (0, 20), (0, 60)))
    shifted = [GroundSample(s.t + 100, s.pixel) for s in later]
    estimates = estimate_speeds(
        [ground_rows(shifted), ground_rows(later)], projector(HIGH), SpeedConfig()
    )
    assert [e is not None and e.speed_kmh for e in estimates] == pytest.approx([60, 60])
    backwards = [*later[:5], GroundSample(later[3].t, later[5].pixel), *later[6:]]
    with pytest.raises(CalibrationError, match="strictly increasing"):
        estimate_speeds(
            [ground_rows(later), ground_rows(backwards)], projector(HIGH), SpeedConfig()
        )


def test_no_tracks_and_empty_tracks_have_no_speed() -> None:
    assert estimate_speeds([], projector(HIGH), SpeedConfig()) == []
    assert estimate_speeds([ground_rows([])] * 2, projector(HIGH), SpeedConfig()) == [None, None]


def test_samples_not_given_as_rows_are_refused() -> None:
    one = ground_rows(samples(Drive(HIGH, (0, 20), (0, 60))))
    with pytest.raises(CalibrationError, match="rows of"):
        estimate_speeds([one, one[0]], projector(HIGH), SpeedConfig())


def test_a_sample_window_keeps_the_newest_seconds_as_rows() -> None:
    track = samples(Drive(HIGH, (0, 20), (0, 60), fps=30, frames=300), 1.0)
    track = [GroundSample(s.t, s.pixel, 40.0 + i) for i, s in enumerate(track)]
    window = SampleWindow(seconds=2.0, capacity=4)
    for i, sample in enumerate(track):
        assert window.add(sample)
        assert not window.add(GroundSample(sample.t, (1.0, 1.0)))  # not newer: left out
        kept = [s for s in track[: i + 1] if s.t >= sample.t - 2.0]
        np.testing.assert_array_equal(window.rows, ground_rows(kept))
    assert len(window) == 61  # 2 s at 30 fps, both ends included
    estimate = estimate_speeds([window.rows], projector(HIGH), SpeedConfig())[0]
    assert estimate is not None
    assert _fields(estimate) == pytest.approx(
        _fields(estimate_speed(track[-61:], projector(HIGH), SpeedConfig())), rel=1e-12
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"min_distance_m": -0.1},
        {"min_duration_s": -0.1},
        {"max_window_s": 0.0},
        {"min_samples": 2},
        {"pixel_sigma_px": -0.1},
        {"box_edge_sigma": -0.1},
        {"z": 0.0},
    ],
)
def test_a_speed_config_out_of_range_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(CalibrationError):
        SpeedConfig(**fields)  # type: ignore[arg-type]


def test_a_speed_config_takes_the_edges_of_its_ranges() -> None:
    config = SpeedConfig(
        min_distance_m=0, min_duration_s=0, min_samples=3, pixel_sigma_px=0, box_edge_sigma=0,
        z=0.5,
    )  # fmt: skip
    assert (config.min_distance_m, config.min_samples, config.z) == (0, 3, 0.5)


def _estimate(speed_mps: float, sigma_mps: float, z: float) -> SpeedEstimate:
    return SpeedEstimate(
        speed_mps=speed_mps, sigma_mps=sigma_mps, z=z, sigma_calibration_mps=0.0,
        sigma_pixel_mps=0.0, sigma_jitter_mps=sigma_mps, heading=(0.0, 1.0), window_s=1.0,
        distance_m=speed_mps, samples=10, inliers=10,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("speed_mps", "sigma_mps", "z", "lower", "upper"),
    [
        (10.0, 1.0, 2.0, 36.0 - 7.2, 36.0 + 7.2),
        (1.0, 1.0, 2.0, 0.0, 3.6 + 7.2),  # a speed is never below zero
        (10.0, 0.0, 1.96, 36.0, 36.0),
    ],
)
def test_the_interval_is_speed_plus_minus_z_sigma_and_holds_its_ends(
    speed_mps: float, sigma_mps: float, z: float, lower: float, upper: float
) -> None:
    estimate = _estimate(speed_mps, sigma_mps, z)
    assert estimate.lower_kmh == pytest.approx(lower) and estimate.upper_kmh == pytest.approx(upper)
    assert estimate.contains(estimate.lower_kmh) and estimate.contains(estimate.upper_kmh)
    assert not estimate.contains(estimate.upper_kmh + 1e-6)
    assert not estimate.contains(estimate.lower_kmh - 1e-6)


def test_the_sources_of_uncertainty_add_in_quadrature() -> None:
    drive = Drive(HIGH, (1.75, 30), (0, 70))
    config = SpeedConfig(box_edge_sigma=0.02)
    estimate = estimate_speed(samples(drive, noise_px=1.0), projector(HIGH, rms_m=0.1), config)
    assert estimate is not None
    parts = (estimate.sigma_jitter_mps, estimate.sigma_pixel_mps, estimate.sigma_calibration_mps)
    assert all(p > 0 for p in parts)
    assert estimate.sigma_mps == pytest.approx(float(np.sqrt(sum(p * p for p in parts))))
    assert estimate.uncertainty_kmh == pytest.approx(1.96 * estimate.sigma_mps * 3.6)


def test_window_distance_and_heading_are_those_of_the_fitted_stretch() -> None:
    drive = Drive(HIGH, (1.75, 20), (0, 72), frames=26)  # 1.0 s at 20 m/s
    estimate = estimate_speed(samples(drive), projector(HIGH), SpeedConfig(max_window_s=1.0))
    assert estimate is not None
    assert estimate.samples == 26  # the sample exactly max_window_s old is still in
    assert estimate.window_s == pytest.approx(1.0)
    assert estimate.distance_m == pytest.approx(20.0, abs=1e-6)
    assert estimate.heading == pytest.approx((0.0, 1.0), abs=1e-9)
    longer = samples(Drive(HIGH, (1.75, 20), (0, 72), frames=30))  # 1.16 s
    latest = estimate_speed(longer, projector(HIGH), SpeedConfig(max_window_s=0.98))
    assert latest is not None and latest.samples == 25  # counted back from the newest
    towards = estimate_speed(
        samples(Drive(HIGH, (-1.75, 60), (0, -72))), projector(HIGH), SpeedConfig()
    )
    assert towards is not None and towards.heading == pytest.approx((0.0, -1.0), abs=1e-9)


def test_exactly_the_minimum_of_samples_gives_a_speed() -> None:
    config = SpeedConfig(min_distance_m=0, min_duration_s=0, min_samples=5)
    five = estimate_speed(samples(Drive(HIGH, (0, 20), (0, 90), frames=5)), projector(HIGH), config)
    assert five is not None and five.samples == 5
    assert five.speed_kmh == pytest.approx(90, abs=1e-6)


def test_a_standing_vehicle_has_no_speed_and_the_default_heading() -> None:
    config = SpeedConfig(min_distance_m=0)
    estimate = estimate_speed(samples(Drive(HIGH, (0, 20), (0, 0))), projector(HIGH), config)
    assert estimate is not None
    assert estimate.speed_kmh == pytest.approx(0.0, abs=1e-6)
    assert estimate.heading == (0.0, 1.0) and estimate.lower_kmh == 0.0
