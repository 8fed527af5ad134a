"""Central's own private keys (config signing, case signing), loaded with one-line errors."""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from roadwatch.contract.signing import load_private_key
from roadwatch.errors import UserError


def load_central_key(
    path: Path, *, kind: str, missing: str, error: type[UserError] = UserError
) -> Ed25519PrivateKey:
    """The Ed25519 key at ``path``; ``error`` with ``missing`` (how to make it) where there
    is none, or saying why the file there cannot be used."""
    if not path.exists():
        raise error(missing)
    try:
        return load_private_key(path)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # (TypeError: a key with a passphrase; UnsupportedAlgorithm: not a key we read)
        raise error(f"cannot load the {kind} {path}: {exc}") from exc
