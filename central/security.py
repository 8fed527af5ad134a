"""Passwords (argon2 via pwdlib), access tokens (JWT) and node upload tokens."""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import jwt
from pwdlib import PasswordHash

from central.workflow import Role

ALGORITHM = "HS256"
NODE_TOKEN_PREFIX = "rwn_"
HUMAN_ROLES = frozenset({Role.OFFICER, Role.SUPERVISOR, Role.ADMIN, Role.IOC})
MIN_PASSWORD = 10


@cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _hasher().verify(password, hashed)


def dummy_verify() -> None:
    """Spend the same time as a real check, so a wrong user name cannot be timed."""
    _hasher().verify("x", _dummy_hash())


@cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_hex(8))


@dataclass(frozen=True)
class TokenClaims:
    username: str
    role: Role
    signed_in_at: float = 0.0  # when the user logged in (a renewed token keeps it)
    generation: int = 0  # the user's session generation when it was issued
    expires_at: float = math.inf  # epoch seconds


def issue_access_token(
    username: str,
    role: Role,
    key: str,
    minutes: int,
    *,
    signed_in_at: float | None = None,
    generation: int = 0,
) -> str:
    """A signed access token; ``signed_in_at`` (epoch seconds, default now) is carried by
    every renewal, so a session can be held to a longest length however often renewed.
    ``generation`` is the user's session generation (``User.session_generation``): once
    the user's moves on, the token is refused."""
    now = datetime.now(UTC)
    claims = {
        "sub": username,
        "role": role.value,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "auth_time": int(now.timestamp() if signed_in_at is None else signed_in_at),
        "typ": "access",
        "gen": generation,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


MAX_TOKEN_CHARS = 4096  # ours are about 200; a longer one is refused before any check


def decode_access_token(token: str, key: str, *, now: float | None = None) -> TokenClaims | None:
    """The claims of a valid, unexpired access token signed with ``key``; None otherwise.

    A valid token is checked once and remembered with its expiry (a client sends the same
    one with every request); the expiry is compared with ``now`` (default: the clock) each
    time. Refused tokens are not remembered: they cannot fill the memory, and a token
    refused for a moment (issued by a replica whose clock runs ahead) is checked again.
    """
    if len(token) > MAX_TOKEN_CHARS:
        return None
    checked = _checked_tokens.get((token, key))
    if checked is None:
        try:
            data = jwt.decode(
                token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
            signed_in = float(data.get("auth_time", data.get("iat", 0)))
            generation = data.get("gen", 0)
            if type(generation) is not int:
                return None
            expires = float(data["exp"])
            claims_in = TokenClaims(
                str(data["sub"]), Role(data["role"]), signed_in, generation, expires
            )
            checked = claims_in, expires
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            return None
        with _checked_tokens_lock:  # request threads add at the same time
            _checked_tokens[(token, key)] = checked
            while len(_checked_tokens) > _CHECKED_TOKENS_KEPT:
                del _checked_tokens[next(iter(_checked_tokens))]  # the oldest
    claims, expires = checked
    return claims if (time.time() if now is None else now) < expires else None


def expired_access_token(token: str, key: str, *, now: float | None = None) -> bool:
    """Whether a refused ``token`` is one of ours (signed with ``key``) that has run out,
    so that its client can be told to log in again rather than that it is not valid.
    Asked only of tokens ``decode_access_token`` refused."""
    if len(token) > MAX_TOKEN_CHARS:
        return False
    try:
        data = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"], "verify_exp": False},
        )
        return float(data["exp"]) <= (time.time() if now is None else now)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return False


_CHECKED_TOKENS_KEPT = 4096
_checked_tokens: dict[tuple[str, str], tuple[TokenClaims, float]] = {}
_checked_tokens_lock = threading.Lock()


def new_node_token() -> str:
    return NODE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored of an upload token: its sha256 (the token has 256 random bits)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
