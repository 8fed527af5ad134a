"""Reconciliation for nodes: which of its events central holds (after a long outage)."""

from __future__ import annotations

from fastapi import APIRouter

from central.api.deps import PROTECTED, NodeDep, SessionDep
from central.api.schemas import KnownEvents, KnownEventsQuery
from central.receipts import known_event_ids

router = APIRouter(prefix="/api/v1", tags=["events"], responses=PROTECTED)


@router.post(
    "/events/known",
    summary="Which of these event ids central holds (node token)",
    responses={
        401: {"description": "No or invalid upload token"},
        403: {"description": "Caller is not a node"},
        422: {"description": "No ids, more than 1,000, or not a list of ids"},
    },
)
def known_events(node: NodeDep, session: SessionDep, query: KnownEventsQuery) -> KnownEvents:
    """Answers only for the calling node's own events: another node's ids are never held."""
    return KnownEvents(known=known_event_ids(session, node.site, node.node, query.event_ids))
