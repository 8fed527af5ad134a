"""File helpers the commands share."""

from __future__ import annotations

import os
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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path`` in one step: written and fsynced under its partial name,
    renamed over any previous file, then the folder fsynced. A failed write (the disk full,
    the process killed) leaves the previous file as it was; an ``OSError`` is raised once
    the partial file is removed."""
    tmp = partial_path(path)
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the names in folder ``path`` durable (a file renamed or made there)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
