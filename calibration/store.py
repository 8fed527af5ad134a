"""Reading and writing calibration and survey YAML files (the I/O edge)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from calibration.config import CalibrationFile, PointsFile
from calibration.errors import CalibrationError
from roadwatch.contract.wire import describe
from roadwatch.yaml_load import YamlError, load_yaml

M = TypeVar("M", bound=BaseModel)
MAX_FILE_BYTES = 1024 * 1024


def _load(model: type[M], path: Path) -> M:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise CalibrationError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = load_yaml(raw)
    except YamlError as exc:
        raise CalibrationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CalibrationError(f"{path}: {describe(exc)}") from exc


def load_calibration(path: Path) -> CalibrationFile:
    return _load(CalibrationFile, path)


def load_points(path: Path) -> PointsFile:
    return _load(PointsFile, path)


def dump_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, width=100)


def save_calibration(calibration: CalibrationFile, path: Path) -> None:
    """Write atomically: a failed write leaves any previous file as it was."""
    if path.is_dir():
        raise CalibrationError(f"{path}: is a folder; name the calibration file")
    if not path.parent.is_dir():
        raise CalibrationError(f"{path.parent}: folder does not exist")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(dump_yaml(calibration), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CalibrationError(f"cannot write {path}: {exc.strerror}") from exc
