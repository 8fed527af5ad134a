"""``roadwatch eval plates`` end to end on a small seeded set from the real sample media."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.plates.evaluate import char_accuracy, edit_distance
from edge.plates.synth import Condition, generate, shared_data_dir
from roadwatch.errors import UserError
from tests.plates_support import require_fonts
from tests.services import require_shared_file

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "roadwatch", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=240,
        check=False,
    )


def test_eval_plates_json_on_a_small_seeded_set() -> None:
    require_fonts()
    data = require_shared_file("bangkok_junction.jpg").parent
    require_shared_file("vn_saigon.mp4")
    proc = run_cli("eval", "plates", "--json", "--count", "4", "--seed", "3", "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["samples"] == 8
    for condition in ("day", "night"):
        row = result[condition]
        assert set(row) >= {"exact", "char"}
        assert 0.0 <= row["exact"] <= row["char"] <= 1.0
    assert result["day"]["exact"] >= 0.75  # 3 of 4 clean daylight plates at the least


def test_eval_plates_without_sample_media_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("eval", "plates", "--count", "1", "--data", str(tmp_path / "nowhere"))
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr


def test_shared_data_dir_names_the_missing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROADWATCH_SHARED_DATA", str(tmp_path / "absent"))
    with pytest.raises(UserError, match="absent"):
        shared_data_dir()


def test_same_seed_same_set() -> None:
    require_fonts()
    data = require_shared_file("bangkok_junction.jpg").parent
    require_shared_file("vn_saigon.mp4")
    a = list(generate(2, 9, data, conditions=(Condition.NIGHT,)))
    b = list(generate(2, 9, data, conditions=(Condition.NIGHT,)))
    assert [s.spec for s in a] == [s.spec for s in b]
    assert all((x.image == y.image).all() for x, y in zip(a, b, strict=True))


def test_edit_distance_and_char_accuracy() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert char_accuracy("51F-123.45", "51F-123.45") == 1.0
    assert char_accuracy("51F-128.45", "51F-123.45") == pytest.approx(7 / 8)
    assert char_accuracy("", "51F-123.45") == 0.0
