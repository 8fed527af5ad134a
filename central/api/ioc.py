"""Audit log, statistics, the live feed and the quarantine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Annotated, Any, Literal

from anyio import CancelScope
from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BeforeValidator, TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Result,
    Row,
    Select,
    case,
    cast,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON
from starlette.types import Receive, Scope, Send

from central.api import feed
from central.api.cases import Ident, Limit, Offset, audit_out, ordered_range
from central.api.csv_out import (
    CSV_MEDIA_TYPE,
    ROWS_PER_CHUNK,
    attachment,
    csv_chunks,
    download_name,
)
from central.api.deps import (
    PROTECTED,
    AnyUser,
    AppState,
    Manager,
    SessionDep,
    StateDep,
    query_refused,
)
from central.api.json_out import JsonEnvelope
from central.api.schemas import (
    NO_NUL,
    AuditOut,
    ChainOut,
    CountOut,
    FlowBucket,
    IsoTime,
    QuarantineOut,
    TrafficFlow,
    ViolationStats,
    offset_plus_as_space,
)
from central.audit_log import check_log
from central.models import (
    AuditEntry,
    Camera,
    Node,
    Quarantine,
    TrafficMinute,
    Violation,
    utcnow,
)
from central.settings import UTC_OFFSET_PATTERN
from roadwatch.contract.models import VehicleClass

router = APIRouter(prefix="/api/v1", responses=PROTECTED)
From = Annotated[IsoTime | None, Query(alias="from", description="Start, inclusive")]
To = Annotated[IsoTime | None, Query(alias="to", description="End, exclusive")]
# A statistics request naming a site or camera central never heard of (see heard_of).
UNKNOWN_NAME: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such site or camera (`site`, `camera`)"}
}
UNKNOWN_FLOW_NAME: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such site, node or camera (`site`, `node`, `camera`)"}
}
# A statistics route's answer as JSON (the default) or CSV. A query parameter rather than
# an Accept header: a download is a link to copy, bookmark or hand to a spreadsheet's
# "from web", and the API refuses a parameter it does not take, so a server without CSV
# says so instead of answering JSON to a request for CSV.
AnswerFormat = Annotated[
    Literal["json", "csv"],
    Query(
        alias="format",
        description="json, or csv: the same buckets as rows of a spreadsheet (text/csv, a"
        " header row naming the JSON's fields, an empty cell for null), downloaded as a"
        " file named for the range; the same limits, refusals (JSON) and permissions",
    ),
]


def _as_csv(example: str) -> dict[int | str, dict[str, Any]]:
    """The CSV form of a statistics route's 200, for its OpenAPI description."""
    return {
        200: {
            "description": "The statistics: JSON, or with `format=csv` CSV",
            "content": {
                CSV_MEDIA_TYPE.split(";")[0]: {"schema": {"type": "string"}, "example": example}
            },
        }
    }


VIOLATION_STATS_CSV = _as_csv("key,count\r\nred_light,12\r\nspeeding,30\r\n")
FLOW_CSV = _as_csv(
    "bucket,site,node,camera,vehicles,mean_speed_kmh,mean_occupancy,minutes,"
    "car,motorcycle,bus,truck,bicycle,unknown\r\n"
    "2026-11-23T14:00:00+07:00,ql13-km22,node-01,cam-01,1840,46.2,0.21,60,"
    "312,1496,6,24,2,0\r\n"
)


@router.get("/audit", tags=["audit"], summary="The audit log, newest first")
def list_audit(
    _: Manager,
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[AuditOut]:
    stmt = select(AuditEntry)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    rows = session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(limit).offset(offset))
    return [audit_out(e) for e in rows]


@router.get("/audit/verify", tags=["audit"], summary="Verify the audit log's hash chain")
def verify_audit(_: Manager, session: SessionDep) -> ChainOut:
    report = check_log(session)
    return ChainOut(
        ok=report.ok,
        entries=report.entries,
        head=report.head,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
    )


UtcOffset = Annotated[
    str | None,
    Query(
        pattern=UTC_OFFSET_PATTERN,
        description="Hours and days are counted at this offset from UTC: +07:00 counts"
        " Vietnam's days (midnight to midnight there); buckets are named with it. Default:"
        " the service's ROADWATCH_STATS_UTC_OFFSET, +07:00 unless set otherwise (send the"
        " '+' as %2B)",
    ),
    BeforeValidator(offset_plus_as_space),  # (after Query: the schema keeps its pattern)
]


def offset_delta(utc_offset: str) -> timedelta:
    """``+07:00`` (``UTC_OFFSET_PATTERN``) as the time it is ahead of UTC."""
    sign = -1 if utc_offset.startswith("-") else 1
    return sign * timedelta(hours=int(utc_offset[1:3]), minutes=int(utc_offset[4:6]))


def time_bucket(session: Session, column: Any, by: str, utc_offset: str) -> ColumnElement[str]:
    """An ISO text bucket of ``column`` by minute, hour or day at ``utc_offset`` (named
    with it, ``Z`` for UTC), on either database."""
    minutes = int(offset_delta(utc_offset).total_seconds()) // 60
    suffix = "Z" if minutes == 0 else utc_offset
    if session.get_bind().dialect.name == "postgresql":
        fmt = {
            "minute": f'YYYY-MM-DD"T"HH24":"MI":00{suffix}"',
            "hour": f'YYYY-MM-DD"T"HH24":00:00{suffix}"',
            "day": f'YYYY-MM-DD"T00:00:00{suffix}"',
        }[by]
        local = func.timezone("UTC", column) + timedelta(minutes=minutes)
        return func.to_char(local, fmt)
    fmt = {
        "minute": f"%Y-%m-%dT%H:%M:00{suffix}",
        "hour": f"%Y-%m-%dT%H:00:00{suffix}",
        "day": f"%Y-%m-%dT00:00:00{suffix}",
    }[by]
    # (whole seconds first: SQLite reads the time in milliseconds, rounded, which would put
    # 23:59:59.9996 in the next day)
    return func.strftime(fmt, func.substr(column, 1, 19), f"{minutes:+d} minutes")


def class_count(session: Session, column: Any, vehicle_class: VehicleClass) -> ColumnElement[int]:
    """The vehicles of ``vehicle_class`` in ``column``, a JSON object of counts by class
    (null where it has none of that class), on either database."""
    if session.get_bind().dialect.name == "postgresql":
        counted = func.json_extract_path_text(cast(column, JSON), vehicle_class.value)
        return cast(counted, Integer)
    return cast(func.json_extract(column, f"$.{vehicle_class.value}"), Integer)


def seconds_into_minute(session: Session, column: Any) -> ColumnElement[float]:
    """The seconds (with their fraction) of ``column`` past its whole minute, on either
    database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("second", func.timezone("UTC", column)), Float)
    return cast(func.strftime("%f", column), Float)  # ("SS.SSS": milliseconds are plenty)


@router.get(
    "/stats/violations",
    tags=["statistics"],
    summary="Violation counts",
    response_model=ViolationStats,
    responses={**UNKNOWN_NAME, **VIOLATION_STATS_CSV},
)
def violation_stats(
    _: AnyUser,
    session: SessionDep,
    state: StateDep,
    by: Literal["type", "camera", "hour", "day", "status"] = "type",
    site: Ident = None,
    camera: Ident = None,
    occurred_from: From = None,
    occurred_to: To = None,
    utc_offset: UtcOffset = None,
    answer: AnswerFormat = "json",
) -> ViolationStats | Response:
    """Counts by violation type, camera, status, or hour/day buckets of the violation time.
    By camera, each count also names the camera's site: two sites may each have a camera
    of the same id, and they are counted apart. By hour or day one request spans at most
    31 days by hour, 366 by day: without `to` it ends now, without `from` it starts at the
    first whole hour or day (at the offset) within that span before `to`; by type, camera
    or status the range may be open or as long as asked. `from` must be before `to`; the
    answer gives the `from` and `to` it counted (null for an open end). With `format=csv`
    a row per count: `key`, `count` (and `site` by camera)."""
    key: Any
    offset = utc_offset or state.settings.stats_utc_offset
    if by in ("hour", "day"):
        occurred_from, occurred_to = bounded_range(by, occurred_from, occurred_to, offset)
        key = time_bucket(session, Violation.occurred_at, by, offset)
    else:
        ordered_range(occurred_from, occurred_to)
        key = {"type": Violation.type, "camera": Violation.camera, "status": Violation.status}[by]
    groups: list[Any] = [key.label("k")]
    if by == "camera":
        groups.append(Violation.site.label("s"))
    stmt = select(func.count().label("n"), *groups)
    if site:
        stmt = stmt.where(Violation.site == site)
    if camera:
        stmt = stmt.where(Violation.camera == camera)
    if occurred_from is not None:
        stmt = stmt.where(Violation.occurred_at >= occurred_from)
    if occurred_to is not None:
        stmt = stmt.where(Violation.occurred_at < occurred_to)
    order: list[Any] = [literal_column(g.name) for g in groups]
    rows = session.execute(stmt.group_by(*order).order_by(*order)).all()
    counts = [CountOut(key=str(r.k), count=r.n, site=r.s if by == "camera" else None) for r in rows]
    if not counts:
        heard_of(session, Violation, site, camera)
    if answer == "csv":
        header = ["key", "count", *(["site"] if by == "camera" else [])]
        filename = download_name(
            f"violations_by-{by}", (site, camera), occurred_from, occurred_to, offset_delta(offset)
        )
        return Response(
            b"".join(csv_chunks(header, ([c.key, c.count, c.site][: len(header)] for c in counts))),
            media_type=CSV_MEDIA_TYPE,
            headers=attachment(filename),
        )
    return ViolationStats(
        by=by,
        total=sum(c.count for c in counts),
        counts=counts,
        range_from=occurred_from,
        range_to=occurred_to,
    )


@router.get(
    "/stats/traffic",
    tags=["statistics"],
    summary="Traffic flow from TrafficStats",
    response_model=TrafficFlow,
    responses={**UNKNOWN_FLOW_NAME, **FLOW_CSV},
)
def traffic_flow(
    _: AnyUser,
    session: SessionDep,
    state: StateDep,
    by: Annotated[
        Literal["minute", "hour", "day"],
        Query(description="Bucket length: minute (at most 24 hours a request), hour, day"),
    ] = "hour",
    per: Annotated[
        Literal["camera", "lane"],
        Query(
            description="A bucket per camera, its lanes together, or per lane of each camera"
            " (each bucket then names its `lane`)"
        ),
    ] = "camera",
    site: Ident = None,
    node: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
            description="Only this node's cameras (named within its site: needs `site`)",
        ),
    ] = None,
    camera: Ident = None,
    minute_from: From = None,
    minute_to: To = None,
    utc_offset: UtcOffset = None,
    classes: Annotated[
        bool,
        Query(
            description="Give the vehicles by class too (`counts`; the CSV a column per class):"
            " they cost the database more to add up"
        ),
    ] = False,
    answer: AnswerFormat = "json",
) -> TrafficFlow | Response:
    """Vehicles counted per camera (site, node, camera), or per lane of each camera with
    `per=lane`, and minute, hour or day, in all and, with `classes=true`, by vehicle class
    (`counts`: only the classes counted, summing to `vehicles`), with the vehicle-weighted
    mean speed, the time-weighted mean occupancy of its lanes (a part of a minute weighs
    the seconds it spans) and the minutes the camera (or lane) reported (a bucket with
    fewer minutes than it spans had its camera down part of the time; a period with none
    has no bucket). One request spans at most 24 hours by minute, 31 days by hour, 366 by
    day: without `to` it ends now, without `from` it starts at the first whole minute,
    hour or day (at the offset) within that span before `to`, so that the first bucket is
    whole. `node` names a node within its site (two sites may each have a `node-01`), so
    it needs `site`. With `format=csv` a row per bucket, its fields in the JSON's order
    (`lane` only with `per=lane`), with `classes=true` `counts` written as a column per
    vehicle class, every class in the contract's order (car, motorcycle, bus, truck,
    bicycle, unknown), 0 where none was counted, so that the header is always the same.
    Either is sent as it is read, without a Content-Length: a day by minute per lane of
    every camera is long."""
    if node is not None and site is None:
        raise query_refused("node", "a node is named within its site: give `site` with `node`")
    offset = utc_offset or state.settings.stats_utc_offset
    minute_from, minute_to = bounded_range(by, minute_from, minute_to, offset)
    bucket = time_bucket(session, TrafficMinute.minute_start, by, offset).label("b")
    weighted = func.sum(TrafficMinute.mean_speed_kmh * TrafficMinute.vehicles)
    speed_weight = func.sum(
        case((TrafficMinute.mean_speed_kmh.is_not(None), TrafficMinute.vehicles), else_=0)
    )
    # A lane's occupancy is the fraction of its part's time a vehicle was in it: weighted
    # by the seconds the part spans, from its start to when it ended, or else to the
    # minute's end (a part begun 50 s in weighs 10 s against a whole minute's 60; one that
    # ran from the minute's start until its node stopped 40 s in weighs 40), every lane
    # alike. (A part ends within its minute: its seconds past the minute are its end.)
    # Per lane, the same sums over that lane's parts alone.
    ended = func.coalesce(seconds_into_minute(session, TrafficMinute.part_end), 60.0)
    span = ended - seconds_into_minute(session, TrafficMinute.part_start)
    occupied = func.sum(TrafficMinute.occupancy * span)
    groups: list[Any] = [TrafficMinute.site, TrafficMinute.node, TrafficMinute.camera]
    if per == "lane":
        groups.append(TrafficMinute.lane)
    # Each class is read out of every row's JSON: asked for only, as it costs the
    # database many times the rest of the query.
    by_class = FLOW_CLASSES if classes else ()
    stmt = select(
        bucket,
        *groups,
        func.sum(TrafficMinute.vehicles),
        weighted,
        speed_weight,
        occupied,
        func.sum(span),
        func.count(TrafficMinute.minute_start.distinct()),
        *(func.sum(class_count(session, TrafficMinute.counts_json, c)) for c in by_class),
    ).where(TrafficMinute.minute_start >= minute_from, TrafficMinute.minute_start < minute_to)
    if site:
        stmt = stmt.where(TrafficMinute.site == site)
    if node:
        stmt = stmt.where(TrafficMinute.node == node)
    if camera:
        stmt = stmt.where(TrafficMinute.camera == camera)
    stmt = stmt.group_by(literal_column("b"), *groups).order_by(literal_column("b"), *groups)

    def unknown_names() -> None:
        heard_of(session, TrafficMinute, site, camera, node=node)

    if answer == "csv":
        header = [name for name in FLOW_FIELDS if per == "lane" or name != "lane"]
        header += [c.value for c in by_class]
        filename = download_name(
            f"traffic_by-{by}" + ("_per-lane" if per == "lane" else ""),
            (site, node, camera),
            minute_from,
            minute_to,
            offset_delta(offset),
        )
        return streamed(
            state,
            stmt,
            lambda rows: csv_chunks(
                header, (_flow_cells(row, per == "lane", by_class) for row in rows)
            ),
            unknown_names,
            media_type=CSV_MEDIA_TYPE,
            headers=attachment(filename),
        )
    envelope = JsonEnvelope.of(
        TrafficFlow(by=by, range_from=minute_from, range_to=minute_to, buckets=[])
    )
    return streamed(
        state,
        stmt,
        lambda rows: envelope.chunks(
            (_flow_bucket(row, by_class) for row in rows), FLOW_BUCKETS, ROWS_PER_CHUNK
        ),
        unknown_names,
        media_type=JSON_MEDIA_TYPE,
    )


# A bucket's fields but its counts by class, which CSV writes (when asked for) as a
# column per class of FLOW_CLASSES (the contract's, in its order: every class, so that
# the header is the same whatever the range counted).
FLOW_FIELDS = tuple(name for name in FlowBucket.model_fields if name != "counts")
FLOW_CLASSES = tuple(VehicleClass)
FLOW_BUCKETS = TypeAdapter(list[FlowBucket])
JSON_MEDIA_TYPE = "application/json"


def _flow_bucket(row: Sequence[Any], by_class: Sequence[VehicleClass]) -> FlowBucket:
    """A row of the flow's query as a bucket, with its counts of each class of
    ``by_class`` if any (none: no ``counts``)."""
    cells = _flow_cells(row, True, by_class)
    fields = dict(zip(FLOW_FIELDS, cells[: len(FLOW_FIELDS)], strict=True))
    if not by_class:
        return FlowBucket(**fields)
    counted = zip(by_class, cells[len(FLOW_FIELDS) :], strict=True)
    return FlowBucket(**fields, counts={c: n for c, n in counted if n})


def _flow_cells(
    row: Sequence[Any], with_lane: bool, by_class: Sequence[VehicleClass]
) -> tuple[Any, ...]:
    """A row of the flow's query as a bucket's fields, in ``FlowBucket``'s order (its
    lane left out unless ``with_lane``: None where the flow is per camera), then the
    vehicles of each class of ``by_class`` (0 for a class not seen), the query's last
    columns."""
    classes = len(row) - len(by_class)
    b, site, node, camera, *lane, n, w, sw, occ, seen, m = row[:classes]
    speed = round(float(w) / float(sw), 2) if w is not None and sw else None
    occupancy = round(float(occ) / float(seen), 4) if occ is not None and seen else 0.0
    head = (str(b), site, node, camera)
    lane_cell = (lane[0] if lane else None,) if with_lane else ()
    counted = (int(count or 0) for count in row[classes:])
    return (*head, *lane_cell, int(n or 0), speed, occupancy, int(m), *counted)


def streamed(
    state: AppState,
    stmt: Select[Any],
    chunks: Callable[[Iterable[Row[Any]]], Iterator[bytes]],
    when_empty: Callable[[], None],
    *,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``stmt``'s rows as an answer that ``chunks`` writes, read from the database a chunk
    at a time as they are sent, on a session of their own that the answer holds until its
    end, however it ends (see HeldStream). What can fail is done before the answer starts:
    the query, its first rows and their chunk, so that a failure is an error answer and
    not a cut one. Where there are no rows ``when_empty`` is asked first (it may refuse
    the request, as it would a whole answer), and the answer is ``chunks`` of none."""
    session = state.read_sessions()
    try:
        if session.get_bind().dialect.name == "postgresql":
            # (a cursor read a chunk at a time lives in a transaction, where reading
            # sessions run in autocommit; one snapshot for the whole answer)
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        result = session.execute(stmt.execution_options(yield_per=ROWS_PER_CHUNK))
    except BaseException:
        session.close()
        raise
    let_go = _letting_go(session, result)
    try:
        first = result.fetchmany(ROWS_PER_CHUNK)
        if not first:
            let_go()
            when_empty()
            return Response(b"".join(chunks(())), media_type=media_type, headers=headers)
        written = chunks(chain(first, result))
        opening = next(written)
    except BaseException:
        let_go()
        raise

    def body() -> Iterator[bytes]:
        try:
            yield opening
            yield from written
        finally:
            let_go()

    return HeldStream(body(), let_go, media_type=media_type, headers=headers)


def _letting_go(session: Session, result: Result[Any]) -> Callable[[], None]:
    """Lets go of a streamed answer's cursor and then its session, once: a cursor left
    open on PostgreSQL is a server-side one, on the connection the session gives back."""
    done = False

    def let_go() -> None:
        nonlocal done
        if done:
            return
        done = True
        try:
            result.close()
        finally:
            session.close()

    return let_go


class HeldStream(StreamingResponse):
    """A streamed answer that holds what ``let_go`` lets go of (a database session) until
    it ends, however it ends: sent whole, its client gone (a disconnect, or a send that
    fails), or cancelled before its first byte. Its body lets go too when it ends; this
    covers a body left unfinished, which is otherwise closed only when collected."""

    def __init__(
        self,
        content: Iterator[bytes],
        let_go: Callable[[], None],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._let_go = let_go

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with CancelScope(shield=True):  # (a cancelled server still closes it)
                await run_in_threadpool(self._let_go)


def heard_of(
    session: Session,
    recorded: Any,
    site: str | None,
    camera: str | None,
    *,
    node: str | None = None,
) -> None:
    """Refuses (404) a ``site``, ``node`` (at ``site``) or ``camera`` that central has
    never heard of, so that a mistyped name is not read as a quiet road. A site or node is
    known by a registered node; a camera by its node's status (the registry) or by what
    ``recorded`` (the table asked about) holds for it. Asked only when an answer came out
    empty."""
    if site is not None and not session.scalar(select(exists().where(Node.site == site))):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}{_LISTED}")
    if node is not None and not session.scalar(
        select(exists().where(Node.site == site, Node.node == node))
    ):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no node {node!r} at site {site!r}{_LISTED}"
        )
    if camera is None:
        return
    where = (
        [Camera.camera == camera]
        + ([Camera.site == site] if site else [])
        + ([Camera.node == node] if node else [])
    )
    if session.scalar(select(exists().where(*where))):
        return
    where = (
        [recorded.camera == camera]
        + ([recorded.site == site] if site else [])
        + ([recorded.node == node] if node else [])
    )
    if not session.scalar(select(exists().where(*where))):
        at = f" at site {site!r}" if site else ""
        at += f" on node {node!r}" if node else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera!r}{at}{_LISTED}")


_LISTED = ": the sites and cameras central knows are listed by GET /api/v1/cameras"


# The longest span one request by hour or day may cover (violation counts and traffic
# flow: a bucket per hour, per camera for the flow: 744 a camera by hour; by minute, the
# flow alone, 1,440 a camera, or a lane); a longer one is asked for in parts.
MAX_BUCKETED_SPAN = {
    "minute": timedelta(hours=24),
    "hour": timedelta(days=31),
    "day": timedelta(days=366),
}


def bounded_range(
    by: str, start: datetime | None, end: datetime | None, utc_offset: str
) -> tuple[datetime, datetime]:
    """The range one request by hour or day reads: without ``end`` it ends now (or the
    longest span after ``start``), without ``start`` it starts at the first whole hour or
    day (at ``utc_offset``) within the longest span before ``end``, so that its first
    bucket is whole; a reversed or too long one is refused (422)."""
    span = MAX_BUCKETED_SPAN[by]
    if end is None:
        end = utcnow() if start is None else _shifted(start, span)
    if start is None:
        earliest = _shifted(end, -span)
        start = _bucket_ceil(earliest, by, utc_offset)
        if start >= end:  # (no whole bucket before: the first day of the calendar)
            start = earliest
    ordered_range(start, end)
    if end - start > span:
        raise query_refused("to", f"at most {_span_words(span)} by {by} in one request")
    return start, end


def _span_words(span: timedelta) -> str:
    """``31 days``, or ``24 hours`` for a span under two days."""
    if span >= timedelta(days=2):
        return f"{span.days} days"
    return f"{int(span.total_seconds()) // 3600} hours"


def _bucket_ceil(at: datetime, by: str, utc_offset: str) -> datetime:
    """The first start of a minute, hour or day (at ``utc_offset``) at or after ``at``;
    ``at`` itself at the ends of the calendar."""
    offset = offset_delta(utc_offset)
    try:
        local = at + offset  # (the wall time there, for the arithmetic)
        start = local.replace(second=0, microsecond=0)
        if by != "minute":
            start = start.replace(minute=0)
        if by == "day":
            start = start.replace(hour=0)
        if start < local:
            start += {
                "minute": timedelta(minutes=1),
                "hour": timedelta(hours=1),
                "day": timedelta(days=1),
            }[by]
        return start - offset
    except OverflowError:
        return at


def _shifted(at: datetime, by: timedelta) -> datetime:
    """``at`` + ``by``, held within the years datetime holds."""
    try:
        return at + by
    except OverflowError:
        return (
            datetime.max.replace(tzinfo=UTC)
            if by > timedelta(0)
            else datetime.min.replace(tzinfo=UTC)
        )


@router.get("/quarantine", tags=["ingest"], summary="Messages the ingest refused, with reasons")
def list_quarantine(
    _: Manager,
    session: SessionDep,
    reason_code: Annotated[str | None, Query(max_length=32, pattern=NO_NUL)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[QuarantineOut]:
    stmt = select(
        Quarantine.id,
        Quarantine.received_at,
        Quarantine.topic,
        Quarantine.reason_code,
        Quarantine.reason,
        func.length(Quarantine.payload),
        Quarantine.times,
        func.coalesce(Quarantine.last_received_at, Quarantine.received_at),
    )
    if reason_code:
        stmt = stmt.where(Quarantine.reason_code == reason_code)
    rows = session.execute(stmt.order_by(Quarantine.id.desc()).limit(limit).offset(offset)).all()
    return [
        QuarantineOut(
            id=i,
            received_at=at,
            topic=t,
            reason_code=c,
            reason=r,
            size=int(n or 0),
            times=times,
            last_received_at=last,
        )
        for i, at, t, c, r, n, times, last in rows
    ]


# ---------------------------------------------------------------- live feed


@router.get(
    "/feed",
    tags=["live"],
    summary="Live feed (server-sent events) of new violations and camera/node health changes",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "example": ": roadwatch live feed\nretry: 2000\nid: 1041-1796630400000\n\n"
                    'event: violation\ndata: {"id": 1042, "type": "speeding", "site":'
                    ' "ql13-km22", "camera": "cam-01", …}\n\n'
                    'id: 1042-1796630415000\nevent: camera\ndata: {"site": "ql13-km22",'
                    ' "node": "node-01", "camera": "cam-01", "state": "stalled", "reason":'
                    ' "no frame within the stall timeout", "updated_at":'
                    ' "2026-12-07T05:00:10Z", "place": "QL13 Km 22+300, Thuận An",'
                    ' "registered_place": "QL13 Km 22+300, Thuận An", "node_place":'
                    ' "QL13 Km 22+300"}\n\n'
                    ": keep-alive\nid: 1042-1796630430000\n\n"
                }
            }
        }
    },
)
async def live_feed(
    caller: AnyUser,
    state: StateDep,
    request: Request,
    max_events: Annotated[int, Query(ge=1, le=1_000_000)] = 1_000_000,
    max_seconds: Annotated[float, Query(gt=0, le=86_400)] = 3600.0,
    after_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="Replay violations after this id (default: only new ones)",
        ),
    ] = None,
    since: Annotated[
        IsoTime | None,
        Query(description="Replay camera and node changes after this time (default: now)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="Resume after the event with this id, as EventSource sends it on a"
            " reconnect (it comes before after_id and since: a reconnecting EventSource"
            " repeats the query it started with)",
        ),
    ] = None,
) -> StreamingResponse:
    """Events: `violation` (a new case), `camera` and `node` (a health change; a camera's
    names its `place` as the camera list does, the place shown, with `registered_place`
    and `node_place` beside it). Health changes come as they happened, in order: a
    resumed stream (`Last-Event-ID`, or `since`) replays each one it missed (a camera
    down, then up again), at most 1,000 and none older than 24 h; where a replay leaves
    some out, a `health_cut` event (`from`, `to`, `why`: `count` or `span`) says which,
    and the state now of what was left out follows. A comment
    line every 15 s keeps proxies from closing an idle stream; reconnect after it ends,
    sending the last `id:` seen as `Last-Event-ID` (EventSource does): nothing committed
    meanwhile is lost, though a violation may come twice. The stream's opening lines and
    each keep-alive carry an `id:` too, so a stream that ended or dropped before sending
    any event still says where to resume. A stream ends a minute before
    the token it was opened with runs out (renew the token, then reconnect); one of a
    disabled account, or of a session ended by log-out or a password change, ends at
    once."""
    sessions = state.read_sessions
    poll_s = state.settings.feed_poll_s
    silent_after = state.settings.silent_after
    if last_event_id:
        try:
            after_id, since = feed.parse_resume_token(last_event_id)
        except feed.ResumeTokenError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None

    def start() -> feed.FeedCursor:
        with sessions() as s:
            return feed.start(s, after_id, since, resumed=bool(last_event_id))

    def poll(cursor: feed.FeedCursor) -> list[feed.FeedEvent] | None:
        with sessions() as s:
            if not feed.session_live(s, caller.username, caller.generation):
                return None
            return feed.poll(s, cursor, silent_after)

    cursor = await run_in_threadpool(start)

    async def stream() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        end = loop.time() + feed.stream_seconds(max_seconds, caller.token_expires_at - time.time())
        sent = 0
        idle = 0.0
        # The resume token comes first, before any event: a stream that ends (or drops)
        # before sending one still leaves its client where to resume from, instead of a
        # reconnect that starts from its own "now" and loses what came in between.
        yield f": roadwatch live feed\nretry: 2000\nid: {cursor.resume_token()}\n\n".encode()
        while loop.time() < end and sent < max_events:
            if await request.is_disconnected():
                return
            before = cursor.resume_token()
            events = await run_in_threadpool(poll, cursor)
            if events is None:
                return  # (the account was disabled)
            token = cursor.resume_token()
            for n, (kind, data) in enumerate(events):
                sent += 1
                # The resume token goes on the last event of a poll; a stream that ends
                # inside a poll (max_events) gives the token from before it on its last
                # event, so a reconnect repeats some of the poll and loses none of it.
                last = n == len(events) - 1
                cut = sent >= max_events and not last
                head = f"id: {token if last else before}\n" if last or cut else ""
                body = json.dumps(data, ensure_ascii=False)
                yield f"{head}event: {kind}\ndata: {body}\n\n".encode()
                if sent >= max_events:
                    return
            idle = 0.0 if events else idle + poll_s
            if idle >= feed.KEEPALIVE_S:
                idle = 0.0
                # (with the token as it stands: a reconnect after a quiet hour repeats
                # nothing from that hour)
                yield f": keep-alive\nid: {cursor.resume_token()}\n\n".encode()
            await asyncio.sleep(min(poll_s, max(0.0, end - loop.time())))

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
