"""Fixtures and helpers for the plate tests."""

from __future__ import annotations

from pathlib import Path

from edge.plates.synth import FONT_FILES
from tests.services import missing


def require_fonts() -> None:
    """The Debian plate fonts that scripts/setup installs."""
    absent = [f for f in FONT_FILES if not Path(f).is_file()]
    if absent:
        missing(f"plate fonts not installed: {', '.join(absent)}")
