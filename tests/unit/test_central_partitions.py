"""Which months the partition command makes (pure date arithmetic)."""

from __future__ import annotations

from datetime import date

import pytest

from central.partitions import PARTITION_RE, month_starts


@pytest.mark.parametrize(
    ("today", "ahead", "expected"),
    [
        (date(2026, 11, 23), 0, [date(2026, 11, 1)]),
        (
            date(2026, 11, 1),
            3,
            [date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)],
        ),
        (date(2026, 12, 31), 1, [date(2026, 12, 1), date(2027, 1, 1)]),
        (date(2027, 1, 31), 2, [date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)]),
    ],
)
def test_month_starts(today: date, ahead: int, expected: list[date]) -> None:
    assert month_starts(today, ahead) == expected


def test_negative_months_are_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        month_starts(date(2026, 1, 1), -1)


@pytest.mark.parametrize(
    ("name", "partition"),
    [
        ("violations_2026_11", True),
        ("violations_default", True),
        ("violations", False),
        ("violations_unpartitioned", False),
        ("violations_2026_1", False),
    ],
)
def test_partition_names(name: str, partition: bool) -> None:
    assert bool(PARTITION_RE.match(name)) is partition
