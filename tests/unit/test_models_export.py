"""`roadwatch models export`: manifest entry and parity check, with a stand-in exporter.

Ultralytics and PyTorch are not needed: the stand-in exports the stock ONNX model and
gives reference outputs from the fixed-batch original.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from models.export import ParityReport, compare_outputs, export_model, onnx_output
from models.manifest import load_manifest
from models.registry import ModelError, model_path
from tests.edge_support import cli, cli_env, require_model


class StandInBackend:
    def __init__(self, onnx_file: Path, names: list[str], skew: float = 0.0) -> None:
        self.onnx_file = onnx_file
        self.names = names
        self.skew = skew

    def export_onnx(self, imgsz: int, folder: Path) -> Path:
        out = folder / "best.onnx"
        shutil.copy(self.onnx_file, out)
        return out

    def reference_output(self, batch: np.ndarray) -> np.ndarray:
        fixed = require_model("yolov8n-coco")
        outs = [onnx_output(fixed, batch[i : i + 1]) for i in range(len(batch))]
        return np.concatenate(outs) + self.skew


@pytest.fixture
def manifest_copy(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.yaml"
    shutil.copy(Path("models/manifest.yaml"), path)
    return path


def test_export_adds_a_verified_manifest_entry(tmp_path: Path, manifest_copy: Path) -> None:
    backend = StandInBackend(require_model("yolov8n-coco-dynamic"), ["car", "motorcycle"])
    art, report = export_model(
        backend, name="my-model", manifest=manifest_copy, folder=tmp_path / "models"
    )
    assert report is not None and report.ok
    entry = load_manifest(manifest_copy).entry("my-model")
    assert entry == art
    assert entry.classes == ["car", "motorcycle"]
    assert entry.input_size == (640, 640)
    # the shipped entries are still there, comments and all
    assert load_manifest(manifest_copy).entry("yolov8n-coco").sha256.startswith("75cc")
    assert "# Models and sample media" in manifest_copy.read_text()
    path = model_path("my-model", manifest=manifest_copy, folder=tmp_path / "models")
    assert path.name == "my-model.onnx"


def test_export_refuses_an_onnx_that_disagrees(tmp_path: Path, manifest_copy: Path) -> None:
    before = manifest_copy.read_text()
    backend = StandInBackend(require_model("yolov8n-coco-dynamic"), ["car"], skew=5.0)
    with pytest.raises(ModelError, match="disagrees with the model: parity MISMATCH"):
        export_model(backend, name="bad", manifest=manifest_copy, folder=tmp_path / "m")
    assert manifest_copy.read_text() == before
    assert not (tmp_path / "m" / "bad.onnx").exists()


def test_export_refuses_a_name_already_in_the_manifest(tmp_path: Path, manifest_copy: Path) -> None:
    backend = StandInBackend(require_model("yolov8n-coco-dynamic"), ["car"])
    with pytest.raises(ModelError, match="already has an entry named 'yolov8n-coco'"):
        export_model(backend, name="yolov8n-coco", manifest=manifest_copy, folder=tmp_path)


@pytest.mark.parametrize(
    ("ref", "cand", "ok"),
    [
        (np.ones((1, 4, 2), np.float32) * 600, np.ones((1, 4, 2), np.float32) * 600.3, True),
        (np.ones((1, 4, 2), np.float32) * 600, np.ones((1, 4, 2), np.float32) * 601.0, False),
        (np.ones((1, 4, 2), np.float32), np.ones((1, 2, 4), np.float32), False),
    ],
)
def test_compare_outputs(ref: np.ndarray, cand: np.ndarray, ok: bool) -> None:
    report = compare_outputs(ref, cand)
    assert isinstance(report, ParityReport) and report.ok is ok


@pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is not None, reason="Ultralytics is installed"
)
def test_cli_export_without_ultralytics_says_what_to_install(tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"\x80\x04")
    proc = subprocess.run(
        cli("models", "export", str(weights)),
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "roadwatch: error: exporting needs Ultralytics: install the export extra"
        " (pip install 'roadwatch[export]')"
    ]
