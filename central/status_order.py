"""The order of a node's statuses: an old status published again is refused, not applied.

A signature shows who sent a status, not when. So each status carries its place: the
session (when the node's connection to the broker began, by its clock) and its sequence
in it. The last will is signed when the node connects, before any status of the session,
so it is sequence 0 and older than every status sent after it: it is taken once per
session all the same, as the broker publishes it only when that connection is lost.

So the broker's will is the last word of its session: a status of the session after a
will taken shows that will was published by someone else while the connection lived
(captured from the node's CONNECT, on a broker link without TLS), and that the node's
own will is still to come. Such a will cannot be told from the broker's when it comes,
only by the status after it: that status is taken (the node online again), the will is
said to be replayed, and the session's will is taken once more, so that one replay
cannot keep the node's real will, when its connection is lost, from showing it offline.
After two wills shown replayed the session's will is no longer taken: a node whose will
is published again and again is shown offline at most twice a session, its real loss
then shown by its silence (``central.health``).
Pure: the caller reads the order it holds for the node and stores the one this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from roadwatch.contract import NodeStatus

# Wills of a session shown published again after which its will is no longer taken.
WILLS_REPLAYED_KEPT = 2


@dataclass(frozen=True, slots=True)
class HeldOrder:
    """The newest place central took a node's status at (all None: no ordered status yet)."""

    session_started_at: datetime | None = None
    sequence: int | None = None
    will_taken: bool = False  # a last will of this session was taken after the status held
    wills_replayed: int = 0  # wills of this session shown published again (at most 2)


class Placing(StrEnum):
    TAKEN = "taken"  # newer than what is held: applied, and its place held from now
    REPEATED = "repeated"  # the place held, again (a broker's retained copy, another
    # ingest's delivery): nothing new, not applied
    REPLAYED = "replayed"  # older than what is held: an old status sent again, refused


@dataclass(frozen=True, slots=True)
class Placed:
    placing: Placing
    order: HeldOrder  # what to hold from now
    reason: str = ""  # why it is refused (REPLAYED)
    # (TAKEN, a status after a will of its session: why that will was published again)
    will_replayed: str = ""


def place(status: NodeStatus, held: HeldOrder) -> Placed:
    """Where ``status`` falls against the order ``held`` for its node."""
    session, sequence = status.session_started_at, status.sequence
    if status.signature is None or session is None or sequence is None:
        # (Only from a node not yet upgraded, while central takes such ones: its place, if
        # it gives one, is no one's word. Once the node sent an ordered status, one without
        # is an old one sent again, or a forgery.)
        if held.session_started_at is not None:
            return Placed(
                Placing.REPLAYED,
                held,
                "the status carries no signed position (session and sequence), but the node has"
                f" sent ordered ones since {_at(held.session_started_at)}: an old status sent"
                " again",
            )
        return Placed(Placing.TAKEN, held)
    will = status.is_last_will
    if (
        held.session_started_at is None
        or held.sequence is None
        or session > held.session_started_at
    ):
        return Placed(Placing.TAKEN, HeldOrder(session, sequence, will_taken=will))
    if session < held.session_started_at:
        return Placed(
            Placing.REPLAYED,
            held,
            f"its session began {_at(session)}, before the node's session of"
            f" {_at(held.session_started_at)} central holds: an old status sent again",
        )
    if sequence > held.sequence:
        if not held.will_taken:
            return Placed(
                Placing.TAKEN, HeldOrder(session, sequence, wills_replayed=held.wills_replayed)
            )
        # The connection lived on after the will taken: that will was published again.
        return Placed(
            Placing.TAKEN,
            HeldOrder(session, sequence, wills_replayed=held.wills_replayed + 1),
            will_replayed=(
                f"the last will of the session begun {_at(session)} was published while its"
                f" connection lived: central took status {sequence} of it after the will"
                " (an old status sent again)"
            ),
        )
    if will:
        # (Taken once since the status held, and twice a session at most.)
        if held.will_taken or held.wills_replayed >= WILLS_REPLAYED_KEPT:
            return Placed(Placing.REPEATED, held)
        return Placed(Placing.TAKEN, HeldOrder(session, held.sequence, True, held.wills_replayed))
    if sequence == held.sequence:
        return Placed(Placing.REPEATED, held)
    return Placed(
        Placing.REPLAYED,
        held,
        f"status {sequence} of the session begun {_at(session)}, after central took"
        f" status {held.sequence} of it: an old status sent again",
    )


def _at(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")
