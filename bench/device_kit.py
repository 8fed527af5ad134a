"""What a lent GPU machine lacks for ``bench/gpu_density.py``, carried to it in parts
small enough for one device call each, and installed there.

The device image has CUDA, cuDNN, NumPy, CuPy, OpenCV, SciPy, Pillow, PyYAML and onnx, but
not onnxruntime-gpu (a 255 MB wheel), PyNvVideoCodec, PyAV nor this project's other
dependencies (pydantic, cryptography, PyNaCl, paho-mqtt, imageio-ffmpeg); one device call
carries at most 64 MiB. So:

here     ``.venv/bin/python bench/device_kit.py pack``: downloads the wheels for the
         device's Python (cp312, manylinux) into ``var/device-kit/wheels`` once, renders
         the density clip once, and packs the wheels, the model files and the clip into
         one xz tar split into ``var/device-kit/part-NN/`` folders of at most 60 MB; it
         prints the device calls to make;
there    each call carries one part folder (the machine keeps earlier ones while warm,
         about 30 s after a call: the calls follow one another at once, each listing
         ``var/device-kit``), and the last runs ``python3 bench/device_kit.py install``,
         which joins the parts, checks the whole against its sha256, puts the models and
         the clip in place and installs each wheel whose version the image lacks, then
         the bench with ``PYTHONPATH=/tmp/rwlib:.``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "var" / "device-kit"
PART_BYTES = 60_000_000  # (with the checkout, under one call's 64 MiB)
PART_NAME = "kit.tar.xz.part"
INDEX = "kit.json"
CHUNK = 1 << 20
CLIP_DIR = ROOT / "var" / "bench" / "density"  # (bench/gpu_density.py's --workdir default)

# What bench/gpu_density.py imports that the device image lacks (its package list:
# /work/.library/device/KINDS.md, "Python packages already there"): onnxruntime-gpu and
# PyNvVideoCodec at the versions, the rest at versions published for cp312. The
# image's own NumPy, CuPy, OpenCV, SciPy, Pillow, PyYAML, onnx (with ml-dtypes and
# protobuf), flatbuffers and packaging serve as they are; typing-extensions is carried
# all the same (45 kB) because pydantic-core needs a recent one.
IMAGE_HAS = (  # of what the bench imports (KINDS.md as read on 2026-11-17)
    "numpy", "cupy-cuda13x", "opencv-python-headless", "scipy", "pillow", "pyyaml", "onnx",
    "onnxruntime", "ml-dtypes", "protobuf", "flatbuffers", "packaging", "sympy",
    "typing-extensions", "charset-normalizer", "setuptools",
)  # fmt: skip
WHEELS = (
    "onnxruntime-gpu==1.31.1",
    "pynvvideocodec==2.2.4",
    "av==18.1.0",
    "pydantic==2.14.3",
    "pydantic-core==2.50.4",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "typing-extensions==4.16.0",
    "cryptography==50.0.2",
    "cffi==2.1.1",
    "pycparser==3.12",
    "pynacl==1.6.2",
    "paho-mqtt==2.2.0",
    "tzdata==2026.6",
    "imageio-ffmpeg==0.8.1",
)


def split(source: Path, folder: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """``source`` cut into ``folder/part-NN/kit.tar.part`` files of at most ``part_bytes``
    (earlier parts there are removed first), with an index in the first part folder."""
    for old in folder.glob("part-*"):
        shutil.rmtree(old)
    parts: list[Path] = []
    digest = hashlib.sha256()
    with source.open("rb") as whole:
        while block := whole.read(part_bytes):
            digest.update(block)
            part = folder / f"part-{len(parts) + 1:02d}" / PART_NAME
            part.parent.mkdir(parents=True)
            part.write_bytes(block)
            parts.append(part)
    index = {"parts": len(parts), "bytes": source.stat().st_size, "sha256": digest.hexdigest()}
    (folder / "part-01" / INDEX).write_text(json.dumps(index))
    return parts


def join(folder: Path, out: Path) -> None:
    """The parts in ``folder`` joined into ``out``; ValueError unless all are there and
    the whole hashes to what the index says."""
    index_file = folder / "part-01" / INDEX
    if not index_file.is_file():
        raise ValueError(f"{index_file} is missing: carry var/device-kit/part-01 first")
    try:
        index = json.loads(index_file.read_text())
        count, expected = int(index["parts"]), str(index["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{index_file} is not the kit's index: carry part-01 again") from exc
    parts = [folder / f"part-{n:02d}" / PART_NAME for n in range(1, count + 1)]
    absent = [str(p.parent.name) for p in parts if not p.is_file()]
    if absent:
        raise ValueError(f"parts not carried (or gone with a machine that went cold): {absent}")
    digest = hashlib.sha256()
    with out.open("wb") as whole:
        for part in parts:
            with part.open("rb") as piece:
                while block := piece.read(CHUNK):
                    digest.update(block)
                    whole.write(block)
    if digest.hexdigest() != expected:
        raise ValueError("the joined parts do not hash to the kit's sha256: carry them again")


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


def _download(wheels: Path, python: str) -> None:
    """The pinned wheels in ``wheels`` (one folder per Python): those there already at the
    pinned version are kept, any other is removed (a pin changed), the rest downloaded."""
    pins = {_key(w.split("==")[0]): w.split("==")[1] for w in WHEELS}
    have = set()
    for wheel in wheels.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if pins.get(_key(name)) == version:
            have.add(_key(name))
        else:
            wheel.unlink()
    wanted = [w for w in WHEELS if _key(w.split("==")[0]) not in have]
    if not wanted:
        return
    tag = python.replace(".", "")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--python-version", python, "--implementation", "cp",
        "--abi", f"cp{tag}", "--abi", "abi3", "--abi", "none",
        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
        "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(wheels), *wanted,
    ]  # fmt: skip
    print(f"downloading {len(wanted)} wheels for Python {python}...", file=sys.stderr)
    subprocess.run(cmd, check=True)


def models_dir() -> Path:
    """The models folder, by ``models.registry.models_dir``'s rule, without importing it:
    ``install`` runs before the kit's wheels are, and the registry needs pydantic, which
    the device image lacks."""
    env = os.environ.get("ROADWATCH_MODELS_DIR")
    return Path(env) if env else ROOT / "var" / "models"


def _model_files(model: str) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    from models.registry import model_path

    path = model_path(model)  # (verified against the manifest's sha256)
    return sorted(path.parent.glob(f"{path.stem}*.onnx"))


def _stored(wheel: Path, out: Path) -> Path:
    """``wheel`` with its members stored rather than deflated (still a valid wheel: its
    RECORD hashes the members' contents)."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)
    return out


def pack(args: argparse.Namespace) -> int:
    wheels = KIT / "wheels" / args.python
    wheels.mkdir(parents=True, exist_ok=True)
    _download(wheels, args.python)
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_density import prepare

    clip_dir = CLIP_DIR
    prepare(clip_dir, args.data)
    # (in the tar: wheels/NAME.whl, models/NAME.onnx and clip/…)
    members = {f"wheels/{p.name}": p for p in sorted(wheels.glob("*.whl"))}
    members |= {f"models/{p.name}": p for p in _model_files(args.model)}
    members |= {
        f"clip/{p.relative_to(clip_dir)}": p for p in sorted(clip_dir.rglob("*")) if p.is_file()
    }
    print(f"packing {len(members)} files (xz: a few minutes)...", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=KIT) as tmp:
        tar = Path(tmp) / "kit.tar.xz"
        # The wheels go in stored, not deflated, so that xz gets at their contents: the
        # CUDA provider's library shrinks about tenfold (deflate: by a fifth).
        with tarfile.open(tar, "w:xz", preset=6) as out:
            for name, path in members.items():
                if name.startswith("wheels/"):
                    path = _stored(path, Path(tmp) / path.name)
                out.add(path, arcname=name)
                if path.parent == Path(tmp):
                    path.unlink()
        parts = split(tar, KIT)
    total = sum(p.stat().st_size for p in parts)
    print(f"{len(members)} files, {total / 1e6:.0f} MB in {len(parts)} parts under {KIT}")
    # One call right after the other: a machine stays warm about 30 s, and one that went
    # cold comes back without the parts carried (the listing shows which it holds).
    for n, part in enumerate(parts, start=1):
        last = "the install and the bench (docs/edge-perception.md)"
        then = last if n == len(parts) else "ls var/device-kit"
        print(f"device call {n}: carry {part.parent.relative_to(ROOT)}, command: {then}")
    return 0


def install(args: argparse.Namespace) -> int:
    target: Path = args.target
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "kit.tar.xz"
        join(KIT, tar)
        with tarfile.open(tar, "r:xz") as kit:
            kit.extractall(tmp, filter="data")
        for part, home in (("models", models_dir()), ("clip", CLIP_DIR)):
            for path in (Path(tmp) / part).rglob("*"):
                if path.is_file():
                    dest = home / path.relative_to(Path(tmp) / part)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest)
        chosen = list(_missing(sorted((Path(tmp) / "wheels").glob("*.whl"))))
        if chosen:
            cmd = [
                sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--upgrade",
                "--disable-pip-version-check", "-q", "--target", str(target), *map(str, chosen),
            ]  # fmt: skip
            subprocess.run(cmd, check=True)
    names = ", ".join(p.name.split("-")[0] for p in chosen) or "none needed"
    print(f"installed into {target}: {names}")
    env = KIT / "env.sh"
    env.write_text(_environment(target))
    print(f"then: . {env.relative_to(ROOT)} && python3 bench/gpu_density.py ...")
    return 0


def _environment(target: Path) -> str:
    """Shell lines that put the installed wheels first on Python's path and the CUDA
    libraries the image has (its CUDA toolkit, and the nvidia-* wheels PyTorch brought)
    on the loader's path, where onnxruntime's CUDA provider looks for libcublasLt.so.13
    and libcudnn.so.9."""
    libs = [Path("/usr/local/cuda/lib64")]
    for entry in map(Path, sys.path):
        libs += sorted(entry.glob("nvidia/*/lib")) if entry.is_dir() else []
    found = ":".join(str(d) for d in libs if d.is_dir())
    lines = [f"export PYTHONPATH={shlex.quote(f'{target}:{ROOT}')}${{PYTHONPATH:+:$PYTHONPATH}}"]
    if found:
        lines.append(
            f"export LD_LIBRARY_PATH={shlex.quote(found)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
        )
    return "\n".join(lines) + "\n"


def _missing(wheels: list[Path]) -> Iterator[Path]:
    """The wheels whose distribution (at that version) the running Python lacks."""
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        try:
            if importlib.metadata.version(name) == version:
                continue
        except importlib.metadata.PackageNotFoundError:
            pass
        yield wheel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: download, render and split the kit")
    p.add_argument("--python", default="3.12", help="the device's Python (its wheels' tag)")
    p.add_argument("--model", default="yolov8n-coco-dynamic")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.set_defaults(func=pack)
    i = sub.add_parser("install", help="there: join the carried parts and install them")
    i.add_argument("--target", type=Path, default=Path("/tmp/rwlib"))
    i.set_defaults(func=install)
    args = parser.parse_args()
    try:
        return int(args.func(args))
    except (ValueError, subprocess.CalledProcessError) as exc:
        print(f"device_kit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
