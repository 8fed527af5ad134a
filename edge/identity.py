"""Node identity: the Ed25519 key pair a node signs its events with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from roadwatch.contract.signing import generate_private_key, private_key_pem, public_key_pem
from roadwatch.errors import UserError


@dataclass(frozen=True)
class KeyPairFiles:
    private: Path
    public: Path


def key_paths(prefix: Path) -> KeyPairFiles:
    return KeyPairFiles(
        private=prefix.with_name(prefix.name + ".key"),
        public=prefix.with_name(prefix.name + ".pub"),
    )


def write_key_pair(prefix: Path, kind: str = "node key") -> KeyPairFiles:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; never overwrite either (``kind``
    names the key in the refusal). Either both files are written or neither is left."""
    paths = key_paths(prefix)
    for path in (paths.private, paths.public):
        if path.exists():
            raise UserError(f"{path} exists; refusing to overwrite a {kind}")
    if not paths.private.parent.is_dir():
        raise UserError(f"folder {paths.private.parent} does not exist")
    key = generate_private_key()
    # O_EXCL closes the race with another writer; the mode is set at creation, never widened.
    try:
        fd = os.open(paths.private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UserError(f"cannot write {paths.private}: {exc.strerror}") from exc
    public_made = False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_key_pem(key))
            fh.flush()
            os.fsync(fh.fileno())
        paths.private.chmod(0o600)  # in case the umask narrowed or widened the bits
        fd = os.open(paths.public, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        public_made = True
        with os.fdopen(fd, "wb") as fh:
            fh.write(public_key_pem(key.public_key()))
    except OSError as exc:
        paths.private.unlink(missing_ok=True)
        if public_made:  # (a half-written one would block the next try)
            paths.public.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise UserError(f"{paths.public} appeared while writing; nothing written") from exc
        raise UserError(f"cannot write the key pair at {prefix}: {exc.strerror}") from exc
    return paths
