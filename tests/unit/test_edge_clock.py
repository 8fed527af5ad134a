"""A node's clock against central's: the Date of central's HTTP answers shows a node
whose clock is wrong, which the technician at the cabinet must hear of in the node's log
(central holds violations stamped more than 10 minutes ahead in quarantine)."""

from __future__ import annotations

import email.utils
import http.server
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from edge.delivery_config import CentralConfig
from edge.uploader import CentralClient, ClockWatch, clock_offset_s

NOW = datetime(2026, 12, 7, 15, 0, 0, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "offset"),
    [
        ("Mon, 07 Dec 2026 15:00:00 GMT", 0.5),  # (whole seconds: agreement reads ahead)
        ("Mon, 07 Dec 2026 14:00:00 GMT", 3600.5),  # the node an hour ahead
        ("Mon, 07 Dec 2026 15:10:00 GMT", -599.5),  # behind
        (None, None),
        ("", None),
        ("yesterday", None),
        ("Mon, 07 Dec 2026 15:00:00", None),  # (no zone: not an HTTP date)
    ],
)
def test_clock_offset_from_a_date_header(header: str | None, offset: float | None) -> None:
    assert clock_offset_s(header, NOW) == offset


def test_a_clock_off_and_set_right_again_is_said_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.uploader")
    watch = ClockWatch(tolerance_s=60)
    for offset in (0.5, None, 3600.5, 3601.0, None, 3599.0, 1.0, 0.0, -120.0):
        watch.observe(offset)
    assert caplog.messages == [
        "this node's clock is 3600 s ahead of central's (the Date of central's answers):"
        " every event carries a wrong time, and central holds violations stamped more than"
        " 10 minutes ahead in quarantine; set the clock (NTP)",
        "this node's clock agrees with central's again (within 1 s)",
        "this node's clock is 120 s behind central's (the Date of central's answers):"
        " every event carries a wrong time, and central holds violations stamped more than"
        " 10 minutes ahead in quarantine; set the clock (NTP)",
    ]


@pytest.fixture
def central_an_hour_behind() -> Iterator[str]:
    """An HTTP server that answers every HEAD with 404 and a Date an hour behind this
    machine's clock (so this node's clock reads an hour ahead)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def date_time_string(self, timestamp: float | None = None) -> str:
            then = datetime.now(UTC) - timedelta(hours=1)
            return email.utils.format_datetime(then, usegmt=True)

        def do_HEAD(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="central-behind")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_uploader_says_when_the_node_clock_is_off_centrals(
    central_an_hour_behind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.uploader")
    client = CentralClient(CentralConfig(url=central_an_hour_behind, upload_token=SecretStr("t")))
    for _ in range(3):
        assert client.head("0" * 64).status == 404
    [said] = caplog.messages  # (once, not at every answer)
    assert re.match(r"this node's clock is 360[01] s ahead of central's", said), said
