"""Lamp state on the real Hanoi clip against hand-labelled phases, also darkened and glared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from edge.rules.lamp_check import PhaseLabels, check_lamps
from edge.rules.scene import load_scene
from edge.rules.signal import lamp_strengths
from roadwatch.cli import main
from tests.media import read_frames

ROOT = Path(__file__).resolve().parents[2]
SCENE = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.scene.yaml"
PHASES = ROOT / "tests" / "data" / "rules_vn_redlight_16h30.phases.yaml"
FPS = 6.017
Image = npt.NDArray[np.uint8]


def night(frame: Image) -> Image:
    # Darker and contrastier, with sensor noise: lamps stay bright, the housing goes black.
    f = 255.0 * (frame / 255.0) ** 2.2 * 0.6
    f += np.random.default_rng(0).normal(0.0, 4.0, f.shape)
    return np.asarray(np.clip(f, 0, 255), dtype=np.uint8)


def veiling_glare(frame: Image) -> Image:
    # Low sun in the lens: the whole picture washes out towards white.
    return np.asarray(np.clip(frame * 0.6 + 255 * 0.4, 0, 255), dtype=np.uint8)


# The picture around the signal head: the only pixels the lamp reading looks at, so the
# variants are applied there alone to keep the test quick.
AROUND_HEAD = (slice(150, 260), slice(500, 620))
_YY, _XX = np.mgrid[150:260, 500:620]
BLOOM = 140.0 * np.exp(-((_XX - 560.0) ** 2 + (_YY - 205.0) ** 2) / (2 * 25.0**2))


def flare_on_head(crop: Image) -> Image:
    # A bright bloom centred on the signal head lifts every lamp region.
    return np.asarray(np.clip(crop + BLOOM[..., None], 0, 255), dtype=np.uint8)


def around_head(change: Callable[[Image], Image]) -> Callable[[Image], Image]:
    def apply(frame: Image) -> Image:
        out = frame.copy()
        out[AROUND_HEAD] = change(frame[AROUND_HEAD])
        return out

    return apply


VARIANTS: dict[str, Callable[[Image], Image]] = {
    "as recorded": lambda f: f,
    "night": around_head(night),
    "veiling glare": around_head(veiling_glare),
    "flare on the head": around_head(flare_on_head),
}


@pytest.fixture(scope="module")
def frames() -> list[Image]:
    labels = PhaseLabels.model_validate(yaml.safe_load(PHASES.read_text("utf-8")))
    got = read_frames(labels.clip, range(labels.frames))
    return [got[i] for i in range(labels.frames)]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lamp_state_matches_the_hand_labels(frames: list[Image], variant: str) -> None:
    scene = load_scene(SCENE)
    labels = PhaseLabels.model_validate(yaml.safe_load(PHASES.read_text("utf-8")))
    head = scene.signal_heads[0]
    strengths = [lamp_strengths(VARIANTS[variant](f), head) for f in frames]
    result = check_lamps(strengths, FPS, labels, scene.lamp)
    print(f"{variant}: {result}")
    # Online, each change is known only after the minimum dwell (2 frames here, 3 changes).
    assert result.online_accuracy >= 0.98
    assert result.history_accuracy == 1.0
    assert result.worst_start_error_frames == 0


def test_scene_lamps_command_scores_the_clip(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.services import require_shared_file

    clip = require_shared_file("vn_redlight_16h30.mp4")
    args = ["scene", "lamps", str(SCENE), "--video", str(clip), "--labels", str(PHASES)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "frame     3     0.50 s  red" in out
    assert "history accuracy 1.000, worst phase-start error 0 frame(s)" in out


def test_scene_lamps_refuses_a_video_of_another_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.services import require_shared_file

    clip = require_shared_file("kraten_cars.mp4")  # 640x360; the scene is drawn for another
    assert main(["scene", "lamps", str(SCENE), "--video", str(clip)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "frame is 640x360 but the scene is drawn for" in err
