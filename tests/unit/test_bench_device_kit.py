"""The device kit: what a GPU machine lacks, cut into parts one device call can carry,
joined and checked there."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
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


def test_the_models_folder_follows_the_registrys_rule(
    kit: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models import registry

    monkeypatch.delenv(registry.MODELS_DIR_ENV, raising=False)
    assert kit.models_dir() == registry.models_dir() == kit.ROOT / "var" / "models"
    monkeypatch.setenv(registry.MODELS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert kit.models_dir() == registry.models_dir() == tmp_path / "elsewhere"


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module, ``name.X == 1``."""
    files = {
        f"{name}/__init__.py": b"X = 1\n",
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()}"
        f",{len(d)}\n"
        for n, d in files.items()
    )
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        for n, d in files.items():
            out.writestr(n, d)
        out.writestr(
            f"{name}-{version}.dist-info/RECORD", record + f"{name}-{version}.dist-info/RECORD,,\n"
        )
    return wheel


def test_install_runs_where_pydantic_is_not_installed_yet(kit: ModuleType, tmp_path: Path) -> None:
    """The device image has no pydantic (the kit brings it): ``install``, run as the doc
    says, puts models, clip and wheels in place without importing it."""
    checkout = tmp_path / "checkout"  # bench/device_kit.py there, the project's packages
    (checkout / "bench").mkdir(parents=True)
    shutil.copy(kit.ROOT / "bench" / "device_kit.py", checkout / "bench")
    for package in ("models", "roadwatch"):
        (checkout / package).symlink_to(kit.ROOT / package)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoPydantic:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pydantic', 'pydantic_core'):\n"
        "            raise ImportError(f'{name} is not installed (the device image)')\n"
        "        return None\n"
        "sys.meta_path.insert(0, NoPydantic())\n"
    )
    source = tmp_path / "source"
    source.mkdir()
    wheel = _wheel(source, "rwdummy", "1.0")
    (source / "model.onnx").write_bytes(b"model")
    (source / "clip.mp4").write_bytes(b"clip")
    whole = source / "kit.tar.xz"
    with tarfile.open(whole, "w:xz") as tar:
        tar.add(wheel, arcname=f"wheels/{wheel.name}")
        tar.add(source / "model.onnx", arcname="models/fake.onnx")
        tar.add(source / "clip.mp4", arcname="clip/density.mp4")
    kit.split(whole, checkout / "var" / "device-kit", part_bytes=400)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ROADWATCH_MODELS_DIR")}
    env["PYTHONPATH"] = str(blocker)
    target = tmp_path / "rwlib"
    done = subprocess.run(
        [sys.executable, "bench/device_kit.py", "install", "--target", str(target)],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"installed into {target}: rwdummy" in done.stdout
    assert (target / "rwdummy" / "__init__.py").is_file()
    assert (checkout / "var" / "models" / "fake.onnx").read_bytes() == b"model"
    assert (checkout / "var" / "bench" / "density" / "density.mp4").read_bytes() == b"clip"
    assert str(target) in (checkout / "var" / "device-kit" / "env.sh").read_text()
    blocked = subprocess.run(
        [sys.executable, "-c", "import pydantic"], env=env, capture_output=True, check=False
    )
    assert blocked.returncode != 0  # (the blocker works)


def test_the_kit_carries_what_the_bench_needs_and_the_image_lacks(kit: ModuleType) -> None:
    """Every distribution the bench imports (its lazy imports too) is in the image or in
    the kit, and the kit carries none the image has, but typing-extensions (pydantic-core
    needs a recent one; 45 kB)."""
    script = (
        "import importlib.metadata as md, sys\n"
        "sys.path[:0] = ['bench', '.']\n"
        "import gpu_density, device_kit\n"
        "from calibration.scene_render import load_assets, write_scene\n"
        "from calibration.speed_eval import surveyed_calibration\n"
        "from roadwatch.demo.scene import demo_spec, scene_document\n"
        "import edge.node, edge.workers, edge.evidence.packets, edge.evidence.clip, edge.nvdec\n"
        "import av, imageio_ffmpeg, onnxruntime, tzdata\n"
        "names = md.packages_distributions()\n"
        "print('\\n'.join(sorted({d for m in list(sys.modules) for d in names.get(m, [])})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=kit.ROOT, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    imported = {kit._key(d) for d in done.stdout.split()} - {"roadwatch"}
    carried = {kit._key(w.split("==")[0]) for w in kit.WHEELS}
    image = {kit._key(d) for d in kit.IMAGE_HAS}
    # (onnxruntime-gpu is imported as onnxruntime; PyNvVideoCodec and CuPy need a GPU)
    assert imported - image - carried - {"onnxruntime-gpu"} == set()
    assert carried & image == {"typing-extensions"}
    assert {"onnxruntime-gpu", "pynvvideocodec", "av", "pydantic", "imageio-ffmpeg"} <= carried
