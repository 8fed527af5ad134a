"""One YAML reader for every file loader: a key given twice is refused, naming the key and
its lines, where PyYAML keeps the last one without a word."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calibration.errors import CalibrationError
from calibration.store import load_calibration, load_points
from central.node_config import read_document
from edge.config import load_site_config
from edge.delivery_config import load_delivery_config
from edge.rules.scene import load_scene
from models.manifest import ManifestError, load_manifest
from roadwatch.errors import UserError
from roadwatch.yaml_load import YamlError, load_yaml


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "line 3, column 1: key 'a' is given twice (first at line 1)"),
        ("x:\n  - {s: 1, s: 2}\n", "line 2, column 12: key 's' is given twice (first at line 2)"),
        ("lanes:\n  - id: a\n    polygon: []\n    id: b\n", "key 'id' is given twice"),
        # Keys YAML reads as the same value are the same key.
        ("on: 1\nyes: 2\n", "key True is given twice"),
        ("1: a\n1.0: b\n", "key 1.0 is given twice"),
        ("a: [oops\n", "line 2, column 1: expected ',' or ']'"),
        ("a: b: c\n", "line 1, column 5: mapping values are not allowed here"),
        ("z: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ],
)
def test_refusals_are_one_line_with_the_place(text: str, message: str) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_what_is_not_a_duplicate_still_loads() -> None:
    assert load_yaml("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}
    # A merge key's values are overridden by keys given beside it: that is YAML, not a slip.
    merged = load_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert merged["d"] == {"x": 3, "y": 2}
    assert load_yaml(b"a: 1\n") == {"a": 1}
    assert load_yaml("") is None


def test_only_safe_tags() -> None:
    with pytest.raises(YamlError, match="could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system ['true']\n")


DUPLICATED = "site: a\nnode: b\nsite: c\n"


def _site(tmp: Path) -> None:
    (tmp / "f.yaml").write_text(DUPLICATED)
    load_site_config(tmp / "f.yaml")


def _scene(tmp: Path) -> None:
    (tmp / "f.yaml").write_text("version: v1\ncamera: cam\ncamera: other\n")
    load_scene(tmp / "f.yaml")


def _calibration(tmp: Path) -> None:
    (tmp / "f.yaml").write_text("camera: cam\nrms_px: 1\nrms_px: 2\n")
    load_calibration(tmp / "f.yaml")


def _points(tmp: Path) -> None:
    (tmp / "f.yaml").write_text("camera: cam\npoints: []\npoints: []\n")
    load_points(tmp / "f.yaml")


def _delivery(tmp: Path) -> None:
    (tmp / "f.yaml").write_text("site: a\nnode: b\ndelivery:\n  key_path: a\n  key_path: b\n")
    load_delivery_config(tmp / "f.yaml")


def _pushed_site(tmp: Path) -> None:
    (tmp / "f.yaml").write_text(DUPLICATED)
    read_document(tmp / "f.yaml")


def _pushed_scene(tmp: Path) -> None:
    (tmp / "s.yaml").write_text("version: v1\ncamera: cam\ncamera: other\n")
    (tmp / "f.yaml").write_text("site: a\nnode: b\ncameras: [{id: c, url: x, scene: s.yaml}]\n")
    read_document(tmp / "f.yaml")


def _manifest(tmp: Path) -> None:
    (tmp / "f.yaml").write_text("models: {}\nsamples: {}\nmodels: {}\n")
    load_manifest(tmp / "f.yaml")


@pytest.mark.parametrize(
    ("load", "error", "message"),
    [
        (_site, UserError, "f.yaml: not valid YAML: line 3, column 1: key 'site' is given twice"),
        (_scene, UserError, "f.yaml: not valid YAML: line 3, column 1: key 'camera' is given"),
        (_calibration, CalibrationError, "f.yaml: not valid YAML: line 3, column 1: key 'rms_px'"),
        (_points, CalibrationError, "f.yaml: not valid YAML: line 3, column 1: key 'points'"),
        (_delivery, UserError, "f.yaml: not valid YAML: line 5, column 3: key 'key_path' is"),
        (_pushed_site, UserError, "f.yaml: not valid YAML: line 3, column 1: key 'site' is"),
        (_pushed_scene, UserError, "scene file "),
        (_manifest, ManifestError, "f.yaml is not valid YAML: line 3, column 1: key 'models'"),
    ],
)
def test_every_loader_refuses_a_key_given_twice(
    tmp_path: Path, load: Callable[[Path], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        load(tmp_path)
    assert message in str(caught.value)
    assert "given twice (first at line" in str(caught.value)
    assert "\n" not in str(caught.value)
