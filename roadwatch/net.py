"""Small network helpers shared by the demo, the benchmarks and the tests."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for a server started next)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
