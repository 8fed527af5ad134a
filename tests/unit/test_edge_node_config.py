"""The site configuration's enforcement and delivery sections."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.config import ConfigError, load_site_config, parse_site_config


def _write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_relative_paths_are_taken_from_the_configuration_folder(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "site": "ql13",
            "node": "node-01",
            "cameras": [
                {
                    "id": "cam-01",
                    "url": "clips/cam01.mp4",
                    "scene": "cam01.scene.yaml",
                    "calibration": "cam01.calib.yaml",
                    "reference_view": "/abs/ref.jpg",
                },
                {"id": "cam-02", "url": "rtsp://10.0.0.2/stream"},
            ],
            "delivery": {"key_path": "keys/node.key", "outbox": {"path": "outbox"}},
        },
    )
    config = load_site_config(path)
    cam, live = config.cameras
    assert cam.url == str(tmp_path / "clips/cam01.mp4")
    assert cam.scene == tmp_path / "cam01.scene.yaml"
    assert cam.calibration == tmp_path / "cam01.calib.yaml"
    assert cam.reference_view == Path("/abs/ref.jpg")
    assert live.url == "rtsp://10.0.0.2/stream"
    assert config.delivery is not None
    assert (config.delivery.site, config.delivery.node) == ("ql13", "node-01")
    assert config.delivery.key_path == tmp_path / "keys/node.key"
    assert config.delivery.outbox.path == tmp_path / "outbox"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"delivery": {"key_path": "k", "site": "other"}}, "must match"),
        ({"delivery": {"key_path": "k", "surprise": 1}}, "delivery.surprise"),
        ({"integrity": {"check_every_s": 0}}, "integrity.check_every_s"),
        ({"cameras": [{"id": "c", "url": "x.mp4", "place": ""}]}, "cameras.0.place"),
    ],
)
def test_bad_sections_are_refused_with_their_path(patch: dict[str, object], message: str) -> None:
    doc: dict[str, object] = {
        "site": "ql13", "node": "node-01", "cameras": [{"id": "c", "url": "x.mp4"}],
    }  # fmt: skip
    doc.update(patch)
    with pytest.raises(ConfigError, match=message):
        parse_site_config(doc, "site.yaml")
