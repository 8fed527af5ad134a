"""Ed25519 signing and verification of the canonical form of contract models."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from roadwatch.contract.canonical import canonical_model_bytes
from roadwatch.contract.models import SignedModel

S = TypeVar("S", bound=SignedModel)


class SignatureError(ValueError):
    """A signature is missing, malformed or does not match the payload and key."""


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key_pem(pem: bytes | str) -> Ed25519PublicKey:
    raw = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise SignatureError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("not an Ed25519 public key")
    return key


def signing_payload(model: SignedModel) -> bytes:
    """The bytes that are signed: the canonical form without the signature field."""
    return canonical_model_bytes(model, exclude=("signature",))


def sign(model: S, key: Ed25519PrivateKey) -> S:
    """Return a copy of ``model`` carrying the node's signature over its canonical form."""
    signature = key.sign(signing_payload(model))
    return model.model_copy(update={"signature": base64.b64encode(signature).decode("ascii")})


def verify(model: SignedModel, key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless ``model`` carries a valid signature by ``key``."""
    if model.signature is None:
        raise SignatureError("payload is not signed")
    try:
        raw = base64.b64decode(model.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("signature is not valid base64") from exc
    try:
        key.verify(raw, signing_payload(model))
    except InvalidSignature as exc:
        raise SignatureError("signature does not match the payload and the node key") from exc
