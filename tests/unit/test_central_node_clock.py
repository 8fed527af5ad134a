"""A node's clock against central's, as the node list gives it: the offset at its last
status, and the flag past the tolerance the node's own log uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central.health import CLOCK_TOLERANCE_S, clock_off, clock_offset_s
from central.models import Node
from edge.uploader import CLOCK_TOLERANCE_S as EDGE_CLOCK_TOLERANCE_S

RECEIVED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def node_sent(sent_after_received_s: float | None) -> Node:
    sent = (
        None
        if sent_after_received_s is None
        else RECEIVED + timedelta(seconds=sent_after_received_s)
    )
    return Node(site="bd", node="node-01", status_sent_at=sent, status_received_at=RECEIVED)


@pytest.mark.parametrize(
    ("sent_after_received_s", "offset", "off"),
    [
        (None, None, False),  # no status yet
        (-0.34, -0.3, False),  # network delay: received a little after sent
        (60.0, 60.0, False),  # at the tolerance: not past it
        (-60.0, -60.0, False),
        (60.04, 60.0, False),  # rounds to the tolerance
        (61.0, 61.0, True),  # ahead
        (-61.0, -61.0, True),  # behind
        (-3600.0, -3600.0, True),
    ],
)
def test_a_nodes_clock_offset_and_its_flag(
    sent_after_received_s: float | None, offset: float | None, off: bool
) -> None:
    got = clock_offset_s(node_sent(sent_after_received_s))
    assert got == offset
    assert clock_off(got) is off


def test_a_node_without_central_s_time_of_receipt_has_no_offset() -> None:
    node = Node(site="bd", node="node-01", status_sent_at=RECEIVED, status_received_at=None)
    assert clock_offset_s(node) is None
    assert clock_off(None) is False


def test_central_flags_a_node_clock_at_the_tolerance_the_node_itself_warns_at() -> None:
    assert CLOCK_TOLERANCE_S == EDGE_CLOCK_TOLERANCE_S
