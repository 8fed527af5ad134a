"""An HTTP GET as an ASGI server hands it to the app: for tests and benches that drive
the app's streamed answers chunk by chunk, as no test client does."""

from __future__ import annotations

from typing import Any


def get_scope(
    path: str, query: str, headers: dict[str, str], *, spec_version: str = "2.3"
) -> dict[str, Any]:
    """The scope of ``GET path?query`` with ``headers`` (``spec_version`` 2.4: a send to a
    client that left fails, as ASGI 2.4 servers do; 2.3: the server says it left)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
