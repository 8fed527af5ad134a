"""Small network helpers shared by the node, the calibration tools, the demo, the benchmarks
and the tests."""

from __future__ import annotations

import re
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for a server started next)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_SECRET_PARAM = re.compile(
    r"([?&;](?:password|passwd|pwd|pass|token|key|auth)=)[^&;#]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """The URL as it may be logged or reported: a password in its user part (up to the
    last ``@``, as FFmpeg reads it) or in its query is replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(cut, default=len(rest))
    authority, tail = rest[:end], rest[end:]
    user_part, at, host = authority.rpartition("@")
    if at:
        user, colon, _ = user_part.partition(":")
        authority = f"{user}{':***' if colon else ''}@{host}"
    return f"{scheme}://{authority}{_SECRET_PARAM.sub(lambda m: m.group(1) + '***', tail)}"
