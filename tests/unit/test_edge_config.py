"""Site configuration: validation errors that name the key, and defaults."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge.config import ConfigError, SiteConfig, load_site_config, parse_site_config
from edge.detections import ObjectClass
from tests.edge_support import cli, cli_env

GOOD = """
site: binh-duong
node: ql13-km21
detector:
  providers: [CUDAExecutionProvider, CPUExecutionProvider]
  class_confidence: {motorcycle: 0.2}
tracker:
  lost_buffer_s: 3
cameras:
  - id: cam-north
    url: rtsp://10.0.0.5/stream1
    target_fps: 10
    thresholds: {car: 0.4}
  - id: cam-south
    url: /data/south.mp4
    loop: true
"""


def test_a_valid_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD)
    config = load_site_config(path)
    assert [c.id for c in config.cameras] == ["cam-north", "cam-south"]
    north = config.detector_for(config.cameras[0])
    assert north.threshold(ObjectClass.CAR) == 0.4
    assert north.threshold(ObjectClass.MOTORCYCLE) == 0.2
    assert north.threshold(ObjectClass.BUS) == 0.25
    assert config.tracker.lost_buffer_s == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("target_fps: 10", "target_fps: -1"), "site.yaml: cameras.0.target_fps: Input should be"),
        (("    loop: true", "    loop: true\n    colour: red"), "cameras.1.colour: Extra inputs"),
        (("cam-south", "cam-north"), "camera id 'cam-north' appears twice"),
        (("{car: 0.4}", "{tram: 0.4}"), "cameras.0.thresholds: Value error, unknown class 'tram'"),
        (("lost_buffer_s: 3", "lost_bufer_s: 3"), "tracker.lost_bufer_s: Extra inputs"),
        (("site: binh-duong\n", ""), "site.yaml: site: Field required"),
        (("url: /data/south.mp4", "url: [oops"), "site.yaml: not valid YAML at line"),
        (("rtsp://10.0.0.5", "rstp://10.0.0.5"), "cameras.0.url: Value error, unsupported source"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_site_config(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_for_a_single_source() -> None:
    config = SiteConfig.for_source("/tmp/clip.mp4")
    assert config.cameras[0].url == "/tmp/clip.mp4"
    assert config.detector.model == "yolov8n-coco-dynamic"
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_site_config(["not", "a", "mapping"])


def test_cli_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD.replace("node: ql13-km21", "node: QL 13"))
    proc = subprocess.run(
        cli("edge", "run", "--config", str(path)),
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadwatch: error: site.yaml: node: String")
