"""File helpers the commands share."""

from __future__ import annotations

from pathlib import Path


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once resolved (links, ``..``), or, for
    files that exist, the same file on disk (a hard link)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def partial_path(path: Path) -> Path:
    """Where an output is written before it is renamed into place: beside it, hidden, with the
    same suffix (a video writer picks its container by the suffix)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")
