"""The live feed's resume token: from before every id still missing, except the ones a
stream found missing as it started (most never commit)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from central.api.feed import FeedCursor, parse_resume_token, stream_seconds

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("gaps", "start_gaps", "after"),
    [
        ({}, set(), 10),
        ({8: NOW}, set(), 7),
        ({5: NOW}, {5}, 10),  # (found missing at the start: not a reason to go back)
        ({5: NOW, 8: NOW}, {5}, 7),
    ],
)
def test_resume_token(gaps: dict[int, datetime], start_gaps: set[int], after: int) -> None:
    cursor = FeedCursor(10, since=NOW, floor=NOW, gaps=gaps, start_gaps=frozenset(start_gaps))
    assert parse_resume_token(cursor.resume_token())[0] == after


@pytest.mark.parametrize(
    ("max_seconds", "token_left_s", "runs"),
    [
        (3600.0, 900.0, 840.0),  # a minute before a 15-minute token runs out
        (300.0, 900.0, 300.0),  # what was asked, when that comes first
        (3600.0, 121.0, 61.0),
        (3600.0, 120.0, 120.0),  # under two minutes left: until it runs out
        (3600.0, 3.0, 3.0),
        (3600.0, -5.0, 0.0),
        (86_400.0, math.inf, 86_400.0),
    ],
)
def test_a_stream_runs_no_longer_than_its_token(
    max_seconds: float, token_left_s: float, runs: float
) -> None:
    assert stream_seconds(max_seconds, token_left_s) == runs
