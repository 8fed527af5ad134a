"""Content-addressed evidence store on the filesystem.

A blob lands in a temporary file while its hash is computed, is flushed to disk, and is
renamed to ``ab/cd/<sha256>`` only when the hash matches, so a reader never sees a
partial or wrong blob and a crash leaves at most a temporary file behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class EvidenceError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HashMismatchError(EvidenceError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(400, f"body hashes to {actual}, not {expected}")


class TooLargeError(EvidenceError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"blob is larger than the {limit} bytes allowed")


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise EvidenceError(400, "not a sha256 (64 lower-case hex digits)")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def put(self, sha256: str, chunks: AsyncIterator[bytes], limit: int) -> StoredBlob:
        """Store the streamed body under ``sha256`` if it hashes to it and fits ``limit``."""
        final = self.path(sha256)
        if final.is_file():
            return StoredBlob(sha256, final.stat().st_size, created=False)
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLargeError(limit)
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            actual = digest.hexdigest()
            if actual != sha256:
                raise HashMismatchError(sha256, actual)
            if size == 0:
                raise EvidenceError(400, "empty body")
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)
            _fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredBlob(sha256, size, created=True)

    def read(self, sha256: str) -> Iterator[bytes]:
        with self.path(sha256).open("rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
