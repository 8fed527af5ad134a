"""Statistics as CSV: the rows written in chunks, and a download's name for its range."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from central.api.csv_out import ROWS_PER_CHUNK, csv_chunks, download_name

AT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


VN, HOUR = timedelta(hours=7), timedelta(hours=1)
END = datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "offset", "name"),
    [
        (AT, AT + 24 * HOUR, VN, "2026-11-23T1400+0700_2026-11-24T1400+0700"),
        (AT, AT + timedelta(seconds=210), timedelta(0), "2026-11-23T0700Z_2026-11-23T070330Z"),
        (AT, AT + HOUR, -3.5 * HOUR, "2026-11-23T0330-0330_2026-11-23T0430-0330"),
        (None, None, VN, "open_open"),
        # (a range ending at the calendar's end, written as it is, in UTC)
        (AT, END, VN, "2026-11-23T1400+0700_9999-12-31T235959Z"),
    ],
)
def test_a_download_is_named_for_its_range_at_the_offset_asked_for(
    start: datetime | None, end: datetime | None, offset: timedelta, name: str
) -> None:
    got = download_name("traffic_by-hour", ("ql13-km22", None, "cam-01"), start, end, offset)
    assert got == f"traffic_by-hour_ql13-km22_cam-01_{name}.csv"


@pytest.mark.parametrize("n", [0, 1, ROWS_PER_CHUNK, ROWS_PER_CHUNK + 1, 3 * ROWS_PER_CHUNK])
def test_rows_are_written_a_chunk_at_a_time_and_read_back_as_written(n: int) -> None:
    rows = [(f"cam-{i}", i, None, 0.25) for i in range(n)]
    chunks = list(csv_chunks(["camera", "vehicles", "mean_speed_kmh", "share"], iter(rows)))
    assert len(chunks) == n // ROWS_PER_CHUNK + 1
    text = b"".join(chunks).decode("utf-8")
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert back[0] == ["camera", "vehicles", "mean_speed_kmh", "share"]
    assert back[1:] == [[c, str(i), "", "0.25"] for c, i, _, _ in rows]
    assert text.endswith("\r\n")
