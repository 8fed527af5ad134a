"""The live feed's cursor: what a stream has sent, so that nothing committed is skipped.

Two things make "everything after what I last saw" harder than a comparison:

- **Violation ids are handed out before commit.** With several ingest processes, id 8
  can commit before id 7. The cursor keeps the ids it stepped over (``gaps``) and asks
  for them again on each poll until they turn up or ``GAP_S`` has passed (an id an
  insert gave up, a refused duplicate or a rolled-back batch, never commits).
- **Health changes are stamped before commit.** A camera's ``updated_at`` (and its
  ``health_changes`` row) is set when the ingest records a status, and the batch commits
  a moment later. Each poll therefore looks back ``LOOKBACK`` before its last poll and
  leaves out what it has already sent.

Health is sent as it changed (``health_changes``, in order), not only as it is now: a
stream that resumes after an outage replays a camera down and up again meanwhile, at
most ``REPLAY_MAX`` changes and ``REPLAY_SPAN`` back (a ``health_cut`` event says what
was left out). The rows of ``cameras`` and ``nodes`` add the state now where no change
is stored for it: a node fallen silent, a camera named or placed on central.

A stream's events carry a resume token (``id:``), sent back as ``Last-Event-ID`` when a
client reconnects: it starts from before anything that might still be missing, so a
reconnect may repeat an event (clients skip a violation id they have) but never loses
one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from central.api.admin import camera_places
from central.api.cases import summary
from central.api.schemas import time_text
from central.health import SILENT_AFTER, UNKNOWN, camera_health, node_health
from central.models import Camera, HealthChange, Node, User, Violation, utcnow

LOOKBACK = timedelta(seconds=60)
# A stream replays at most this many health changes, and none older than this, at once:
# a client away longer is told where the replay was cut (a ``health_cut`` event).
REPLAY_MAX = 1000
REPLAY_SPAN = timedelta(hours=24)
NOW_ID = 2**63  # (the state now sorts after a change stored at the same time)
GAP_S = 60.0
MAX_GAPS = 5000
BATCH = 500
# How far below the newest id a stream from now looks for ids not committed yet.
START_WINDOW = 1000
_TOKEN = re.compile(r"^(\d{1,19})-(\d{1,16})$")

FeedEvent = tuple[str, dict[str, Any]]


# A quiet stream sends a comment this often (with its resume token), so that proxies do
# not close it as idle.
KEEPALIVE_S = 15.0

# A stream ends this long before its token runs out: time for the client to renew the
# token (which an expired one cannot do) and reconnect with its resume token.
RENEW_MARGIN_S = 60.0


def stream_seconds(max_seconds: float, token_left_s: float) -> float:
    """How long a stream runs: what was asked, and never past the token it was opened with
    (a copied token is not a day's feed): ``RENEW_MARGIN_S`` before that token runs out,
    or when it does, if it has less than twice that left."""
    if token_left_s > 2 * RENEW_MARGIN_S:
        token_left_s -= RENEW_MARGIN_S
    return max(0.0, min(max_seconds, token_left_s))


class ResumeTokenError(ValueError):
    """A ``Last-Event-ID`` this service did not write."""


@dataclass
class FeedCursor:
    last_violation: int
    since: datetime  # the last poll (or the start): changes after it are new
    floor: datetime  # never send a change from before this (the time asked for)
    gaps: dict[int, datetime] = field(default_factory=dict)
    sent: dict[tuple[str, str, str, str], datetime] = field(default_factory=dict)
    # The health changes (``health_changes`` ids) sent that a look-back could find again.
    sent_changes: dict[int, datetime] = field(default_factory=dict)
    # Where a replay was cut (the oldest change it sent, by time and id): the changes
    # before it are not sent later either, out of their order.
    replay_cut: tuple[datetime, int] | None = None
    # Gaps found below the newest id when a stream started from now: looked for, but kept
    # out of the resume token (most are ids that never commit, and a token below them
    # would send a reconnect what came before the stream).
    start_gaps: frozenset[int] = frozenset()

    def resume_token(self) -> str:
        """``<violation id>-<ms since the epoch>``: a stream resumed from it sends every
        violation after the id and every change after the time."""
        first_gap = min(
            (g for g in self.gaps if g not in self.start_gaps), default=self.last_violation + 1
        )
        after = min(self.last_violation, first_gap - 1)
        at = max(self.floor, self.since - LOOKBACK)
        return f"{after}-{int(at.timestamp() * 1000)}"


def parse_resume_token(token: str) -> tuple[int, datetime]:
    """The violation id and time a resume token stands for."""
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        raise ResumeTokenError(f"Last-Event-ID {token[:40]!r} is not a resume token of this feed")
    ms = int(match.group(2))
    try:
        at = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise ResumeTokenError(f"Last-Event-ID {token[:40]!r} names no time") from None
    return int(match.group(1)), at


def start(
    session: Session, after_id: int | None, since: datetime | None, *, resumed: bool = False
) -> FeedCursor:
    """A cursor from ``after_id`` and ``since``; by default only what happens from now.

    Ids up to the last one the stream skips that are not committed yet (handed out to
    another ingest process) are gaps from the start, as ids stepped over later are:
    committed a moment after, they are still new to this stream. (A stream ``resumed``
    from a resume token needs none: the token is from before anything still missing.)"""
    now = utcnow()
    gaps: dict[int, datetime] = {}
    newest = int(session.scalar(select(func.max(Violation.id))) or 0)
    # An id past the newest committed (a resume token from before central's database was
    # restored from a backup, a mistyped after_id) asks for nothing more than what comes
    # next: kept, it would hide every violation until the ids caught up with it.
    after_id = newest if after_id is None else min(after_id, newest)
    if not resumed:
        low = max(0, after_id - START_WINDOW)
        held = set(
            session.scalars(
                select(Violation.id).where(Violation.id > low, Violation.id <= after_id)
            )
        )
        gaps = {i: now for i in range(low + 1, after_id + 1) if i not in held}
    # A time ahead of central's clock (a workstation's clock ahead) is taken as a minute
    # ago, as the IOC page asks for: kept, it would hide the changes until then, from every
    # resumed stream too; taken as now, it would lose those since the page read the cameras.
    at = now if since is None else since if since <= now else now - LOOKBACK
    return FeedCursor(after_id, since=at, floor=at, gaps=gaps, start_gaps=frozenset(gaps))


def session_live(session: Session, username: str, generation: int) -> bool:
    """The account may still read: the stream of a user disabled, or whose password
    changed, since it started ends at the next poll."""
    user = session.execute(
        select(User.active, User.session_generation).where(User.username == username)
    ).first()
    return user is not None and user.active and user.session_generation == generation


def poll(
    session: Session, cursor: FeedCursor, silent_after: timedelta = SILENT_AFTER
) -> list[FeedEvent]:
    """What has been committed since the last poll (violations, then the health changes
    stored, in order), and the nodes that have fallen silent (``central.health``) since;
    moves ``cursor`` on."""
    now = utcnow()
    out: list[FeedEvent] = []
    _expire_gaps(cursor, now)
    wanted = Violation.id > cursor.last_violation
    if cursor.gaps:
        wanted = or_(wanted, Violation.id.in_(list(cursor.gaps)))
    for v in session.scalars(select(Violation).where(wanted).order_by(Violation.id).limit(BATCH)):
        if cursor.gaps.pop(v.id, None) is None:
            _step_over(cursor, v.id, now)
        out.append(("violation", summary(v).model_dump(mode="json")))
    floor = max(cursor.floor, cursor.since - LOOKBACK)
    changes = _replayed(session, cursor, floor, now)
    # The state now, where it is not a change above: a node fallen silent (no status for
    # silent_after) and its cameras, a camera named or placed on central, or one first
    # heard of by a violation.
    quiet_from, quiet_to = floor - silent_after, now - silent_after
    cameras = select(Camera).where(
        or_(
            Camera.updated_at > floor,
            Camera.edited_at > floor,
            and_(
                Camera.seen_at > quiet_from,
                Camera.seen_at <= quiet_to,
                Camera.state.not_in(["offline", UNKNOWN]),
            ),
        )
    )
    for c in session.scalars(cameras):
        health = camera_health(c, now, silent_after)
        data = _camera_data(c.site, c.node, c.camera, health.state, health.reason, health.since, c)
        key = ("camera", c.site, c.node, c.camera)
        # (an edit sends it again, in its order, still saying since when it is so)
        at = max(health.since, c.edited_at or health.since)
        if at > floor and _new(cursor, key, at):
            changes.append((at, NOW_ID, ("camera", data)))
    nodes = select(Node).where(
        or_(
            Node.updated_at > floor,
            and_(
                Node.status_received_at > quiet_from,
                Node.status_received_at <= quiet_to,
                Node.state == "online",
            ),
        )
    )
    for n in session.scalars(nodes):
        node = node_health(n, now, silent_after)
        data = _node_data(n.site, n.node, node.state, node.since)
        key = ("node", n.site, n.node, "")
        if node.since > floor and _new(cursor, key, node.since):
            changes.append((node.since, NOW_ID, ("node", data)))
    # A cut first, then in time order, a node's after its cameras' at one time.
    changes.sort(key=lambda change: (change[0], change[2][0] == "node", change[1]))
    out.extend(event for _at, _id, event in changes)
    cursor.since = now
    # What is older than the next poll's floor can no longer come back: forget it.
    next_floor = max(cursor.floor, now - LOOKBACK)
    cursor.sent = {k: at for k, at in cursor.sent.items() if at > next_floor}
    cursor.sent_changes = {i: at for i, at in cursor.sent_changes.items() if at > next_floor}
    return out


Change = tuple[datetime, int, FeedEvent]  # (when, its order at that time, the event)


def _replayed(session: Session, cursor: FeedCursor, floor: datetime, now: datetime) -> list[Change]:
    """The health changes stored after ``floor`` not sent yet, each one though the state
    has changed again since (a camera down and up again while a client was away is sent
    down, then up), as far back as a replay reaches; a ``health_cut`` where it is cut."""
    changes: list[Change] = []
    replay_from = max(floor, now - REPLAY_SPAN)
    if replay_from > floor:
        changes.append((floor, -1, _cut(floor, replay_from, "span")))
    history = _history(session, cursor, replay_from)
    if len(history) > REPLAY_MAX:
        history = history[-REPLAY_MAX:]
        oldest = history[0][0]
        cursor.replay_cut = (oldest.at, oldest.id)
        changes.append((floor, -1, _cut(replay_from, oldest.at, "count")))
    for change, cam in history:
        key = (change.kind, change.site, change.node, change.camera)
        if change.kind == "camera":
            data = _camera_data(
                change.site, change.node, change.camera, change.state, change.reason, change.at, cam
            )
        else:
            data = _node_data(change.site, change.node, change.state, change.at)
        cursor.sent_changes[change.id] = change.at
        if cursor.sent.get(key) == change.at:
            continue  # (sent as it happened: a silence, stored once it ended)
        # (the state now, read after, is this change again where it is the latest)
        if cursor.sent.get(key, change.at) <= change.at:
            cursor.sent[key] = change.at
        changes.append((change.at, change.id, (change.kind, data)))
    return changes


def _history(
    session: Session, cursor: FeedCursor, after: datetime
) -> list[tuple[HealthChange, Camera | None]]:
    """The health changes stored after ``after`` not sent yet, oldest first, with their
    camera; at most one more than ``REPLAY_MAX`` (the latest), to tell a cut."""
    wanted = HealthChange.at > after
    if cursor.sent_changes:
        wanted = and_(wanted, HealthChange.id.not_in(list(cursor.sent_changes)))
    if cursor.replay_cut is not None:
        at, first = cursor.replay_cut
        wanted = and_(
            wanted,
            or_(HealthChange.at > at, and_(HealthChange.at == at, HealthChange.id >= first)),
        )
    on_camera = and_(
        HealthChange.kind == "camera",
        Camera.site == HealthChange.site,
        Camera.node == HealthChange.node,
        Camera.camera == HealthChange.camera,
    )
    rows = session.execute(
        select(HealthChange, Camera)
        .outerjoin(Camera, on_camera)
        .where(wanted)
        .order_by(HealthChange.at.desc(), HealthChange.id.desc())
        .limit(REPLAY_MAX + 1)
    ).all()
    return [(change, cam) for change, cam in reversed(rows)]


def _camera_data(
    site: str,
    node: str,
    camera: str,
    state: str,
    reason: str,
    at: datetime,
    cam: Camera | None,
) -> dict[str, Any]:
    """A ``camera`` event's data: its health from ``at``, and where it is (``cam``: its
    row, None when central holds none)."""
    return {
        "site": site,
        "node": node,
        "camera": camera,
        "state": state,
        "reason": reason,
        "updated_at": time_text(at),
        **_where(cam),
    }


def _node_data(site: str, node: str, state: str, at: datetime) -> dict[str, Any]:
    """A ``node`` event's data: its state from ``at``."""
    return {"site": site, "node": node, "state": state, "updated_at": time_text(at)}


def _where(cam: Camera | None) -> dict[str, Any]:
    """Where a camera is, as the camera list says it: the place shown, and both sources."""
    if cam is None:
        return {"place": "", "registered_place": "", "node_place": None}
    return camera_places(cam)


def _cut(left_from: datetime, left_to: datetime, why: str) -> FeedEvent:
    """A ``health_cut`` event: the health changes stored from ``left_from`` to ``left_to``
    are not replayed (``why``: ``span``, older than ``REPLAY_SPAN``; ``count``, more than
    ``REPLAY_MAX``); the changes after it, and the state now, follow."""
    return (
        "health_cut",
        {"from": time_text(left_from), "to": time_text(left_to), "why": why},
    )


def _step_over(cursor: FeedCursor, violation_id: int, now: datetime) -> None:
    """Move past ``violation_id``, keeping the ids between as gaps (the latest ones, when
    there are more than ``MAX_GAPS``)."""
    if violation_id <= cursor.last_violation:
        return
    first = max(cursor.last_violation + 1, violation_id - MAX_GAPS)
    for missing in range(first, violation_id):
        cursor.gaps[missing] = now
    cursor.last_violation = violation_id
    if len(cursor.gaps) > MAX_GAPS:
        for old in sorted(cursor.gaps)[: len(cursor.gaps) - MAX_GAPS]:
            del cursor.gaps[old]


def _expire_gaps(cursor: FeedCursor, now: datetime) -> None:
    limit = now - timedelta(seconds=GAP_S)
    cursor.gaps = {i: at for i, at in cursor.gaps.items() if at > limit}


def _new(cursor: FeedCursor, key: tuple[str, str, str, str], at: datetime) -> bool:
    if cursor.sent.get(key) == at:
        return False
    cursor.sent[key] = at
    return True
