"""A node started again with its clock set back still sends its statuses after the ones
central holds: its next session begins after the one its outbox kept, not at its clock."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import edge.publisher
from central.status_order import HeldOrder, Placing, place
from edge.delivery_config import DeliveryConfig
from edge.outbox import Outbox
from edge.publisher import Publisher
from roadwatch.contract import NodeState, NodeStatus
from tests.delivery_support import BIG_BUDGET, KEY

T1 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class _Clock(datetime):
    at = T1

    @classmethod
    def now(cls, tz: object = None) -> _Clock:
        return cls.fromtimestamp(cls.at.timestamp(), UTC)


def _status_of_a_run(tmp_path: Path, at: datetime, monkeypatch: pytest.MonkeyPatch) -> NodeStatus:
    """The first status of a run of the node started at ``at`` by its clock."""
    monkeypatch.setattr(_Clock, "at", at)
    monkeypatch.setattr(edge.publisher, "datetime", _Clock)
    config = DeliveryConfig.model_validate(
        {"site": "s", "node": "node-01", "key_path": str(tmp_path / "node.key"),
         "outbox": {"path": str(tmp_path / "outbox")}}
    )  # fmt: skip
    outbox = Outbox(tmp_path / "outbox", budget=BIG_BUDGET)
    try:
        publisher = Publisher(config, outbox, key=KEY)
        publisher._new_session()  # (as at its connection)
        return publisher._status(NodeState.ONLINE)
    finally:
        outbox.close()


def test_a_node_started_again_with_its_clock_set_back_is_not_refused_as_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _status_of_a_run(tmp_path, T1, monkeypatch)
    assert first.session_started_at == T1
    held = HeldOrder(first.session_started_at, first.sequence)
    # The clock was an hour ahead; set right, the node is started again.
    second = _status_of_a_run(tmp_path, T1 - timedelta(hours=1), monkeypatch)
    assert second.session_started_at is not None and second.session_started_at > T1
    assert place(second, held).placing is Placing.TAKEN


def test_a_clock_gone_forward_begins_the_session_at_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _status_of_a_run(tmp_path, T1, monkeypatch)
    later = _status_of_a_run(tmp_path, T1 + timedelta(minutes=5), monkeypatch)
    assert later.session_started_at == T1 + timedelta(minutes=5)


def test_a_session_begun_by_a_clock_a_day_ahead_is_not_followed_once_it_is_put_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Central refused those statuses as from the future: following the session would
    keep refusing them until the clock caught up."""
    _status_of_a_run(tmp_path, T1 + timedelta(days=2), monkeypatch)
    right = _status_of_a_run(tmp_path, T1, monkeypatch)
    assert right.session_started_at == T1


def test_a_session_the_outbox_cannot_keep_still_lets_the_node_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DeliveryConfig.model_validate(
        {"site": "s", "node": "node-01", "key_path": str(tmp_path / "node.key"),
         "outbox": {"path": str(tmp_path / "outbox")}}
    )  # fmt: skip
    with Outbox(tmp_path / "outbox", budget=BIG_BUDGET) as outbox:

        def locked(started_at: datetime) -> None:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(outbox, "record_status_session", locked)
        publisher = Publisher(config, outbox, key=KEY)
        publisher._new_session()
        assert publisher._status(NodeState.ONLINE).sequence == 1
