"""Turn a user's own trained Ultralytics model into a verified manifest entry.

The export runs Ultralytics (the ``export`` extra) to write an ONNX file with a dynamic
batch, then checks that onnxruntime gives the same raw outputs as the PyTorch model on
the same input before the entry is written. The Ultralytics side sits behind
``ExportBackend`` so the manifest and parity logic is tested without PyTorch.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.manifest import (
    DEFAULT_MANIFEST,
    Artifact,
    LocalSource,
    ManifestError,
    dump_entry,
    load_manifest,
    parse_manifest,
)
from models.registry import ModelError, models_dir, sha256_file
from roadwatch.yaml_load import YamlError, load_yaml

FloatArray = npt.NDArray[np.float32]


class ExportBackend(Protocol):
    """What the export needs from a trained model."""

    names: list[str]

    def export_onnx(self, imgsz: int, folder: Path) -> Path: ...

    def reference_output(self, batch: FloatArray) -> FloatArray | None:
        """Raw head output of the original model, or None where its runtime is absent."""
        ...


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float
    scale: float
    ok: bool

    def describe(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        diff = f"max |onnx - torch| = {self.max_abs_diff:.3g} (scale {self.scale:.3g})"
        return f"parity {verdict}: {diff}"


def compare_outputs(
    reference: FloatArray, candidate: FloatArray, *, rel_tol: float = 1e-3
) -> ParityReport:
    """Same shape and every value within ``rel_tol`` of the reference's largest magnitude."""
    if reference.shape != candidate.shape:
        return ParityReport(float("inf"), 0.0, ok=False)
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    diff = float(np.max(np.abs(reference - candidate))) if reference.size else 0.0
    return ParityReport(diff, scale, ok=diff <= rel_tol * max(scale, 1.0))


def parity_batch(imgsz: int, batch: int = 2, seed: int = 0) -> FloatArray:
    rng = np.random.default_rng(seed)
    return rng.random((batch, 3, imgsz, imgsz), dtype=np.float32)


def onnx_output(path: Path, batch: FloatArray) -> FloatArray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out: FloatArray = np.asarray(session.run(None, {name: batch})[0], dtype=np.float32)
    return out


def insert_model_entry(manifest_text: str, name: str, art: Artifact) -> str:
    """The manifest text with ``name`` added at the end of its ``models:`` mapping."""
    lines = manifest_text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"^models:\s*$", ln)), None)
    entry = dump_entry(name, art)
    if start is None:
        return manifest_text.rstrip("\n") + "\nmodels:\n" + entry
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()),
        len(lines),
    )
    return "".join([*lines[:end], entry, *lines[end:]])


def export_model(
    backend: ExportBackend,
    *,
    name: str,
    imgsz: int = 640,
    licence: str = "as stated by the model's owner",
    manifest: Path = DEFAULT_MANIFEST,
    folder: Path | None = None,
) -> tuple[Artifact, ParityReport | None]:
    """Export, check parity, copy into the models folder and add the manifest entry."""
    try:
        current = load_manifest(manifest)
    except ManifestError as exc:
        raise ModelError(str(exc)) from exc
    if name in current.all_entries():
        raise ModelError(f"the manifest already has an entry named {name!r}")
    target_dir = folder or models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    staging = target_dir / f".export-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        onnx_file = backend.export_onnx(imgsz, staging)
        batch = parity_batch(imgsz)
        reference = backend.reference_output(batch)
        report = None
        if reference is not None:
            report = compare_outputs(reference, onnx_output(onnx_file, batch))
            if not report.ok:
                raise ModelError(
                    f"{name}: exported ONNX disagrees with the model: {report.describe()}"
                )
        final = target_dir / f"{name}.onnx"
        onnx_file.replace(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    art = Artifact(
        description=f"Exported from {name} (Ultralytics), dynamic batch",
        source=LocalSource(file=final.resolve()),
        file=final.name,
        sha256=sha256_file(final),
        licence=licence,
        input_size=(imgsz, imgsz),
        classes=list(backend.names),
    )
    text = insert_model_entry(manifest.read_text(encoding="utf-8"), name, art)
    try:
        parse_manifest(load_yaml(text))
    except (ManifestError, YamlError) as exc:
        raise ModelError(f"the new manifest entry does not validate: {exc}") from exc
    tmp = manifest.with_name(f".{manifest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(manifest)
    return art, report


class UltralyticsBackend:
    """A ``.pt`` checkpoint loaded by Ultralytics (needs the ``export`` extra)."""

    def __init__(self, weights: Path) -> None:
        if not weights.is_file():
            raise ModelError(f"no such model file: {weights}")
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise ModelError(
                "exporting needs Ultralytics: install the export extra"
                " (pip install 'roadwatch[export]')"
            ) from exc
        self._yolo = YOLO(str(weights))
        names = self._yolo.names
        self.names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)

    def export_onnx(self, imgsz: int, folder: Path) -> Path:
        produced = Path(
            self._yolo.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, nms=False)
        )
        moved = folder / produced.name
        shutil.move(str(produced), moved)
        return moved

    def reference_output(self, batch: FloatArray) -> FloatArray | None:
        try:
            import torch
        except ImportError:
            return None
        module = self._yolo.model.float().eval()
        with torch.no_grad():
            out = module(torch.from_numpy(batch))
        head = out[0] if isinstance(out, list | tuple) else out
        result: FloatArray = head.cpu().numpy().astype(np.float32)
        return result
