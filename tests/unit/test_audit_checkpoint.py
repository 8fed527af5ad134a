"""A signed checkpoint of the audit log's head, held against the log as stored (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from central.audit import CHECKPOINT_FORMAT, checkpoint_body, hold_checkpoint

AT = "2026-12-06T01:00:00+00:00"


@pytest.mark.parametrize(
    ("stored", "entries", "problem"),
    [
        ("a" * 64, 9, None),  # the log agrees
        ("b" * 64, 9, "entry 7 is not the entry it was on " + AT),  # rewritten
        (None, 5, "the log holds 5 entries, but on " + AT + " it held entry 7"),  # cut short
    ],
)
def test_a_checkpoint_against_the_log(
    stored: str | None, entries: int, problem: str | None
) -> None:
    finding = hold_checkpoint(7, "a" * 64, AT, stored, entries)
    assert finding.seq == 7
    if problem is None:
        assert finding.problem is None
    else:
        assert finding.problem is not None and finding.problem.startswith(problem)


def test_what_a_checkpoint_signs_is_the_entry_its_hash_and_the_time_in_utc() -> None:
    at = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    assert checkpoint_body(7, "a" * 64, at) == {
        "format": CHECKPOINT_FORMAT,
        "seq": 7,
        "entry_hash": "a" * 64,
        "at": "2026-12-06T08:00:00+00:00",
    }
