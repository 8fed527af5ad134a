"""The device kit: what a GPU machine lacks, cut into parts one device call can carry,
joined and checked there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench_support import load_bench


@pytest.fixture(scope="module")
def kit() -> ModuleType:
    return load_bench("device_kit")


def test_parts_join_into_the_whole_and_each_fits_one_call(kit: ModuleType, tmp_path: Path) -> None:
    whole = tmp_path / "kit.tar"
    data = os.urandom(10_000)
    whole.write_bytes(data)
    folder = tmp_path / "device-kit"
    (folder / "part-09").mkdir(parents=True)  # (a part of an earlier kit: removed)
    parts = kit.split(whole, folder, part_bytes=3_000)
    assert [p.parent.name for p in parts] == ["part-01", "part-02", "part-03", "part-04"]
    assert all(p.stat().st_size <= 3_000 for p in parts)
    assert not (folder / "part-09").exists()
    out = tmp_path / "joined.tar"
    kit.join(folder, out)
    assert out.read_bytes() == data


def test_a_part_missing_or_damaged_is_said_not_installed(kit: ModuleType, tmp_path: Path) -> None:
    whole = tmp_path / "kit.tar"
    whole.write_bytes(os.urandom(5_000))
    folder = tmp_path / "device-kit"
    parts = kit.split(whole, folder, part_bytes=2_000)
    with pytest.raises(ValueError, match="carry var/device-kit/part-01 first"):
        kit.join(tmp_path / "elsewhere", tmp_path / "out")
    parts[1].unlink()
    with pytest.raises(ValueError, match=r"parts not carried .*part-02"):
        kit.join(folder, tmp_path / "out")
    parts[1].parent.joinpath(kit.PART_NAME).write_bytes(b"\0" * 2_000)
    with pytest.raises(ValueError, match="do not hash to the kit's sha256"):
        kit.join(folder, tmp_path / "out")
    index = json.loads((folder / "part-01" / kit.INDEX).read_text())
    assert index["parts"] == 3 and index["bytes"] == 5_000


def test_only_wheels_the_running_python_lacks_at_that_version_are_installed(
    kit: ModuleType, tmp_path: Path
) -> None:
    import pytest as present

    have = f"pytest-{present.__version__}-py3-none-any.whl"
    other = "pytest-0.0.1-py3-none-any.whl"
    absent = "no_such_distribution-1.0-py3-none-any.whl"
    chosen = [p.name for p in kit._missing([tmp_path / n for n in (have, other, absent)])]
    assert chosen == [other, absent]


def test_the_environment_puts_the_kit_first_and_keeps_what_was_set(
    kit: ModuleType, tmp_path: Path
) -> None:
    lines = kit._environment(tmp_path / "rwlib").splitlines()
    assert (
        lines[0]
        == f"export PYTHONPATH={tmp_path / 'rwlib'}:{kit.ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"
    )
    assert lines[1].startswith("export LD_LIBRARY_PATH=")
    assert lines[1].endswith("${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")


def test_the_wheel_cache_keeps_the_pinned_versions_and_drops_the_rest(
    kit: ModuleType, tmp_path: Path
) -> None:
    """Every pin there already: nothing is downloaded; a wheel of another version (a pin
    changed since) is removed so that the kit never carries two versions of one."""
    for pin in kit.WHEELS:
        name, version = pin.split("==")
        (tmp_path / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").touch()
    stale = tmp_path / "pydantic-1.10.0-py3-none-any.whl"
    stale.touch()
    kit._download(tmp_path, "3.12")  # (would run pip, and fail here, if any were wanted)
    assert not stale.exists()
    assert len(list(tmp_path.glob("*.whl"))) == len(kit.WHEELS)


def test_a_damaged_index_is_said(kit: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "part-01").mkdir()
    (tmp_path / "part-01" / kit.INDEX).write_text('{"parts": "many"}')
    with pytest.raises(ValueError, match="is not the kit's index"):
        kit.join(tmp_path, tmp_path / "out")
