"""The live feed's resume token: from before every id still missing, except the ones a
stream found missing as it started (most never commit)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from central.api.feed import FeedCursor, parse_resume_token

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
