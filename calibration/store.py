"""Reading and writing calibration and survey YAML files (the I/O edge)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from calibration.config import CalibrationFile, PointsFile
from calibration.errors import CalibrationError
from roadwatch.contract.wire import describe
from roadwatch.files import same_file, write_atomic
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


def check_output(
    out: Path, *, what: str, inputs: Sequence[tuple[str, Path]] = (), replace: bool = False
) -> None:
    """Refuse, before any work, an output that is a folder, one of the command's own input
    files, or (without ``replace``) an existing file: a calibration or survey written over
    by mistake is a camera to survey again."""
    if out.is_dir():
        raise CalibrationError(f"{out}: is a folder; name the {what} file")
    for name, path in inputs:
        if same_file(out, path):
            raise CalibrationError(f"{out}: that is the {name}; name the {what} file")
    if out.exists() and not replace:
        raise CalibrationError(f"{out} exists: give --replace to write the new {what} over it")
    if not out.parent.is_dir():
        raise CalibrationError(f"{out.parent}: folder does not exist")


def write_text_atomic(path: Path, text: str, what: str) -> None:
    """Write atomically: a failed write leaves any previous file as it was."""
    if path.is_dir():
        raise CalibrationError(f"{path}: is a folder; name the {what} file")
    if not path.parent.is_dir():
        raise CalibrationError(f"{path.parent}: folder does not exist")
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write atomically and durably (``roadwatch.files.write_atomic``): a failed write
    leaves any previous file as it was, and a CalibrationError says why."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise CalibrationError(f"cannot write {path}: {exc.strerror or exc}") from exc


def save_calibration(calibration: CalibrationFile, path: Path) -> None:
    """Write atomically: a failed write leaves any previous file as it was."""
    write_text_atomic(path, dump_yaml(calibration), "calibration")
