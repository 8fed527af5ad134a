"""Statistics as CSV for a spreadsheet: a header row, then a row per bucket, written as
they are read so that a long answer is never held whole."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# Rows written into one chunk of the body: a few tens of kB each.
ROWS_PER_CHUNK = 500

# No cell is guarded against a spreadsheet reading it as a formula (a leading =, +, - or
# @): the only text the statistics hold is a site, node, camera or lane id (the
# contract's Ident, [a-z0-9][a-z0-9_-]*), a violation type or status (an enum) or a
# bucket's time, none of which can begin so; the numbers are counts, speeds and shares,
# never negative.


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """``header`` and then ``rows`` as CSV (RFC 4180: comma, CRLF; None an empty cell), in
    UTF-8 chunks of ``ROWS_PER_CHUNK`` rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % ROWS_PER_CHUNK == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def download_name(
    what: str,
    names: Iterable[str | None],
    start: datetime | None,
    end: datetime | None,
    offset: timedelta,
) -> str:
    """A CSV file's name: what it counts, the site, node or camera asked for (ids, safe in
    a name) and the range at ``offset`` from UTC (the offset the buckets are named with):
    ``traffic_by-hour_ql13-km22_2026-11-23T1400+0700_2026-11-24T1400+0700.csv``; seconds
    only where a time has them, ``open`` for an open end."""
    parts = [what, *(n for n in names if n), _time_name(start, offset), _time_name(end, offset)]
    return "_".join(parts) + ".csv"


def _time_name(at: datetime | None, offset: timedelta) -> str:
    if at is None:
        return "open"
    try:
        local = at + offset
    except OverflowError:
        local = at
        offset = timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    zone = "Z" if minutes == 0 else f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}"
    if minutes:
        zone += f"{abs(minutes) % 60:02d}"
    clock = "%H%M%S" if local.second or local.microsecond else "%H%M"
    return local.strftime(f"%Y-%m-%dT{clock}") + zone


def attachment(filename: str) -> dict[str, str]:
    """The headers of a CSV download named ``filename`` (of ids, digits, ``-``, ``_``,
    ``+`` and ``.`` alone: no quoting within the quotes needed)."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
