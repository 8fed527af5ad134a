"""Content-addressed evidence stores: a local folder, or an S3-compatible object store.

Every upload is first spooled to a temporary file while its sha256 is computed; only a
body that hashes to its name and fits the size limit is then published under its final
name (a rename on the filesystem, one ``PutObject`` with ``Content-MD5`` on S3). A reader
therefore never sees a partial or wrong blob, and a crash leaves at most a temporary
file behind. What is stored is checked again before it is used (``intact``): a copy
altered or damaged in the store is not served, not reported as stored to a node, and is
replaced when its node sends the blob again. Both stores lay blobs out as
``ab/cd/<sha256>``, so a folder can be copied into a bucket (or back) as it is.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import anyio

from roadwatch.files import fsync_dir

if TYPE_CHECKING:
    from central.settings import Settings

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 << 20  # a blob read back from S3 is kept in memory up to this size


log = logging.getLogger(__name__)


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


class StoreUnavailableError(EvidenceError):
    """The store could not be reached or refused the operation; the uploader retries."""

    def __init__(self, message: str) -> None:
        super().__init__(503, f"evidence store unavailable: {message}")


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool


class EvidenceStore(Protocol):
    """Where evidence blobs live, named by their sha256."""

    @property
    def spool_dir(self) -> Path:
        """Folder of uploads in progress (empty when none is)."""
        ...

    def check(self) -> None:
        """Raise ``UserError`` with the reason when the store cannot be used."""
        ...

    def exists(self, sha256: str) -> bool: ...

    async def put(self, sha256: str, chunks: AsyncIterator[bytes], limit: int) -> StoredBlob:
        """Store the streamed body under ``sha256`` if it hashes to it and fits ``limit``."""
        ...

    def read(self, sha256: str) -> Iterator[bytes]:
        """The blob's bytes in chunks, read as they are consumed."""
        ...

    def open_checked(self, sha256: str) -> IO[bytes] | None:
        """The blob read from the store once and checked against its sha256, as a file
        at its start whose bytes are the ones checked; None where the stored copy no
        longer hashes to its name. Raises FileNotFoundError where it is not stored."""
        ...


def intact(store: EvidenceStore, sha256: str) -> bool:
    """The stored blob is there and still hashes to its name (read in full: a copy
    altered or damaged in the store is never served as evidence)."""
    if not store.exists(sha256):
        return False
    try:
        checked = store.open_checked(sha256)
    except FileNotFoundError:
        return False
    if checked is None:
        return False
    checked.close()
    return True


def checked_file(file: IO[bytes], sha256: str) -> IO[bytes] | None:
    """``file`` (at its start) when its bytes hash to ``sha256``, rewound; else closed."""
    digest = hashlib.sha256()
    try:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
        if digest.hexdigest() == sha256:
            file.seek(0)
            return file
    except BaseException:
        file.close()
        raise
    file.close()
    return None


def file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    """``file``'s bytes in chunks; the file is closed at the end (or when dropped)."""
    with file:
        while chunk := file.read(CHUNK):
            yield chunk


# What the first bytes of each media type are (a JPEG's start-of-image marker, PNG's
# signature, an MP4's leading "ftyp" box): a body is stored under a type only if it is
# one, so the first upload of a blob cannot give it a type its signed event does not list.
def _is_mp4(head: bytes) -> bool:
    return head[4:8] == b"ftyp"


MEDIA_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda head: head.startswith(b"\xff\xd8"),
    "image/png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "video/mp4": _is_mp4,
}
_SNIFF = 12


async def of_media_type(chunks: AsyncIterator[bytes], media_type: str) -> AsyncIterator[bytes]:
    """``chunks`` as they come, once their first bytes show they are ``media_type``
    (EvidenceError 415 when not)."""
    head = b""
    checked = False
    async for chunk in chunks:
        if not checked:
            head += chunk
            if len(head) < _SNIFF:
                continue
            if not MEDIA_SIGNATURES[media_type](head):
                raise EvidenceError(415, f"the body is not {media_type}")
            checked, chunk = True, head
        yield chunk
    if not checked:
        if head and not MEDIA_SIGNATURES[media_type](head):
            raise EvidenceError(415, f"the body is not {media_type}")
        if head:
            yield head


def blob_name(sha256: str) -> str:
    """``ab/cd/<sha256>``, the blob's name relative to the store's root."""
    if not SHA256_RE.fullmatch(sha256):
        raise EvidenceError(400, "not a sha256 (64 lower-case hex digits)")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


@dataclass(frozen=True)
class Spooled:
    """A verified upload waiting in a temporary file to be published."""

    path: Path
    sha256: str
    size: int
    md5: bytes


async def spool(sha256: str, chunks: AsyncIterator[bytes], limit: int, spool_dir: Path) -> Spooled:
    """Write the body to a temporary file, checking size and hash as it streams in.

    The file is flushed to disk. On any refusal it is removed and the error raised; on
    success the caller publishes it and removes it.
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)  # Content-MD5 for an object store
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(limit)
                digest.update(chunk)
                md5.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise HashMismatchError(sha256, actual)
        if size == 0:
            raise EvidenceError(400, "empty body")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # A full disk is the store's state, not the upload's fault: the node keeps the
            # blob and sends it again (503), and the log names the folder to make room in.
            log.error("no room for an evidence upload in %s: %s", spool_dir, exc.strerror)
            raise StoreUnavailableError(f"no room left ({exc.strerror})") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Spooled(tmp, sha256, size, md5.digest())


class FilesystemStore:
    """Blobs under ``root/ab/cd/<sha256>``; uploads spool in ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    @property
    def spool_dir(self) -> Path:
        return self._tmp

    def path(self, sha256: str) -> Path:
        return self.root / blob_name(sha256)

    def check(self) -> None:
        from roadwatch.errors import UserError

        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"evidence folder {self.root} is not a folder")
        if self.root.is_dir() and not os.access(self.root, os.W_OK | os.X_OK):
            raise UserError(f"evidence folder {self.root} is not writable")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def put(self, sha256: str, chunks: AsyncIterator[bytes], limit: int) -> StoredBlob:
        # The body is checked even when the blob is stored: a wrong body is refused, and
        # a stored copy that no longer hashes to its name is replaced by the sound one.
        final = self.path(sha256)
        spooled = await spool(sha256, chunks, limit, self._tmp)
        try:
            if await anyio.to_thread.run_sync(intact, self, sha256):
                return StoredBlob(sha256, spooled.size, created=False)
            final.parent.mkdir(parents=True, exist_ok=True)
            spooled.path.replace(final)
            fsync_dir(final.parent)
        finally:
            spooled.path.unlink(missing_ok=True)
        return StoredBlob(sha256, spooled.size, created=True)

    def read(self, sha256: str) -> Iterator[bytes]:
        with self.path(sha256).open("rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def open_checked(self, sha256: str) -> IO[bytes] | None:
        # One open file, hashed then served: a blob replaced meanwhile (by a rename) is
        # not what this file reads.
        return checked_file(self.path(sha256).open("rb"), sha256)


def open_store(settings: Settings) -> EvidenceStore:
    """The store the settings select (``ROADWATCH_EVIDENCE_STORE``); nothing is contacted."""
    from central.settings import EvidenceStoreKind

    if settings.evidence_store is EvidenceStoreKind.S3:
        from central.evidence_s3 import S3Store

        return S3Store.from_settings(settings)
    return FilesystemStore(settings.resolved_evidence_dir)
