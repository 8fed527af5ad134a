"""The order of a node's statuses: an old status sent again is refused, the last will
of the current session is taken once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from central.status_order import HeldOrder, Placing, place
from roadwatch.contract import NodeState, NodeStatus
from roadwatch.contract.signing import generate_private_key, sign
from tests.factories import T0

KEY = generate_private_key()
S1, S2 = T0, T0 + timedelta(minutes=5)  # two sessions of the node, S2 the later


def status(
    session: object = S1, sequence: int | None = 1, state: NodeState = NodeState.ONLINE
) -> NodeStatus:
    place_of = {"session_started_at": session, "sequence": sequence} if sequence is not None else {}
    return sign(NodeStatus(site="site-a", node="node-01", state=state, sent_at=T0, **place_of), KEY)


WILL = NodeState.OFFLINE
NOTHING = HeldOrder()


@pytest.mark.parametrize(
    ("held", "incoming", "placing", "now_held"),
    [
        pytest.param(NOTHING, status(S1, 1), Placing.TAKEN, HeldOrder(S1, 1), id="first"),
        pytest.param(HeldOrder(S1, 3), status(S1, 4), Placing.TAKEN, HeldOrder(S1, 4), id="next"),
        pytest.param(
            HeldOrder(S1, 3), status(S2, 1), Placing.TAKEN, HeldOrder(S2, 1), id="new session"
        ),
        pytest.param(
            HeldOrder(S1, 3), status(S1, 3), Placing.REPEATED, HeldOrder(S1, 3), id="held again"
        ),
        pytest.param(
            HeldOrder(S1, 3), status(S1, 2), Placing.REPLAYED, HeldOrder(S1, 3), id="older one"
        ),
        pytest.param(
            HeldOrder(S2, 1), status(S1, 9), Placing.REPLAYED, HeldOrder(S2, 1),
            id="older session",
        ),
        # The last will, signed at connect (sequence 0), is taken once in its session ...
        pytest.param(
            HeldOrder(S1, 3), status(S1, 0, WILL), Placing.TAKEN, HeldOrder(S1, 3, True),
            id="the will of the session",
        ),
        pytest.param(
            HeldOrder(S1, 3, True), status(S1, 0, WILL), Placing.REPEATED,
            HeldOrder(S1, 3, True), id="the will again",
        ),
        # ... and a status after it (the will was sent again by another) is taken too:
        # the node's own will is still to come, taken once more ...
        pytest.param(
            HeldOrder(S1, 3, True), status(S1, 4), Placing.TAKEN,
            HeldOrder(S1, 4, will_taken=False, wills_replayed=1), id="after the will",
        ),
        pytest.param(
            HeldOrder(S1, 4, False, 1), status(S1, 0, WILL), Placing.TAKEN,
            HeldOrder(S1, 4, True, 1), id="the will once more",
        ),
        pytest.param(
            HeldOrder(S1, 4, False, 1), status(S1, 5), Placing.TAKEN,
            HeldOrder(S1, 5, False, 1), id="the next after a will replayed",
        ),
        pytest.param(
            HeldOrder(S1, 5, True, 1), status(S1, 6), Placing.TAKEN,
            HeldOrder(S1, 6, False, 2), id="after the second will",
        ),
        # ... but not after two wills shown replayed.
        pytest.param(
            HeldOrder(S1, 6, False, 2), status(S1, 0, WILL), Placing.REPEATED,
            HeldOrder(S1, 6, False, 2), id="a will after two replayed",
        ),
        pytest.param(
            HeldOrder(S1, 6, False, 2), status(S1, 7), Placing.TAKEN,
            HeldOrder(S1, 7, False, 2), id="the next after two replayed",
        ),
        pytest.param(
            HeldOrder(S1, 7, False, 2), status(S2, 1), Placing.TAKEN, HeldOrder(S2, 1),
            id="a new session after wills replayed",
        ),
        pytest.param(
            HeldOrder(S1, 3, True), status(S1, 3), Placing.REPEATED, HeldOrder(S1, 3, True),
            id="the one before the will again",
        ),
        pytest.param(
            HeldOrder(S2, 1), status(S1, 0, WILL), Placing.REPLAYED, HeldOrder(S2, 1),
            id="an old session's will",
        ),
        pytest.param(
            HeldOrder(S1, 3), status(S2, 0, WILL), Placing.TAKEN, HeldOrder(S2, 0, True),
            id="a new session lost at once",
        ),
        # A clean stop's offline status is one more of the session.
        pytest.param(
            HeldOrder(S1, 3), status(S1, 4, WILL), Placing.TAKEN, HeldOrder(S1, 4),
            id="a clean stop",
        ),
        # Without a place: taken only from a node that never sent one (not upgraded yet).
        pytest.param(NOTHING, status(sequence=None), Placing.TAKEN, NOTHING, id="no place"),
        pytest.param(
            HeldOrder(S1, 3), status(sequence=None), Placing.REPLAYED, HeldOrder(S1, 3),
            id="no place, once placed",
        ),
        pytest.param(
            NOTHING, status(S2, 5).model_copy(update={"signature": None}), Placing.TAKEN,
            NOTHING, id="unsigned: its place held by no one",
        ),
        pytest.param(
            HeldOrder(S1, 3), status(S2, 5).model_copy(update={"signature": None}),
            Placing.REPLAYED, HeldOrder(S1, 3), id="unsigned, once placed",
        ),
    ],
)  # fmt: skip
def test_a_status_is_placed_against_the_order_held(
    held: HeldOrder, incoming: NodeStatus, placing: Placing, now_held: HeldOrder
) -> None:
    placed = place(incoming, held)
    assert (placed.placing, placed.order) == (placing, now_held)
    assert bool(placed.reason) == (placing is Placing.REPLAYED)
    # (said of the status that shows the will before it was published again)
    shows = held.will_taken and held.session_started_at == incoming.session_started_at
    assert bool(placed.will_replayed) == (
        shows and placing is Placing.TAKEN and not incoming.is_last_will
    )


def test_a_status_after_the_will_says_the_will_was_published_again() -> None:
    placed = place(status(S1, 4), HeldOrder(S1, 3, True))
    assert placed.will_replayed == (
        "the last will of the session begun 2026-11-23T07:03:05.120+00:00 was published"
        " while its connection lived: central took status 4 of it after the will (an old"
        " status sent again)"
    )


def test_the_refusal_says_which_place_was_held() -> None:
    placed = place(status(S1, 2), HeldOrder(S1, 7))
    assert "status 2 of the session begun 2026-11-23T07:03:05.120+00:00" in placed.reason
    assert "after central took status 7 of it" in placed.reason
