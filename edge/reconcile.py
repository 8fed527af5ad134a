"""Reconciliation after a long outage: ask central which unreceipted events it holds.

Receipts travel over MQTT and can be lost like anything else (a broker restarted without
its queue, a node offline for days). For events published long ago and still without a
receipt, the node asks central over HTTP (``POST /api/v1/events/known``, at most 1,000
ids a call): the ones central holds are marked receipted; the rest are made due for
publishing again at once.
"""

from __future__ import annotations

import http.client
import json
import logging
from dataclasses import dataclass
from typing import Protocol

from edge.outbox import Outbox

log = logging.getLogger(__name__)

MAX_IDS_PER_CALL = 1000


class _Answer(Protocol):
    status: int
    body: bytes


class KnownEventsClient(Protocol):
    def known(self, event_ids: list[str]) -> _Answer: ...


@dataclass(frozen=True, slots=True)
class Reconciled:
    asked: int
    held: int
    resent: int


def reconcile(
    outbox: Outbox, client: KnownEventsClient, *, older_than_s: float, limit: int = 10_000
) -> Reconciled:
    """One pass over at most ``limit`` long-unreceipted events; raises nothing on a network
    failure (the events simply wait for the next pass)."""
    ids = outbox.unreceipted(older_than_s, limit)
    asked = held = resent = 0
    for start in range(0, len(ids), MAX_IDS_PER_CALL):
        chunk = ids[start : start + MAX_IDS_PER_CALL]
        try:
            answer = client.known(chunk)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            log.warning("reconciliation: central unreachable (%s)", exc)
            break
        if answer.status != 200:
            log.warning("reconciliation refused: HTTP %d", answer.status)
            break
        try:
            known = set(json.loads(answer.body)["known"]) & set(chunk)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            log.warning("reconciliation: unreadable answer from central (%s)", exc)
            break
        asked += len(chunk)
        held += outbox.mark_receipted(sorted(known))
        resent += outbox.resend_now([i for i in chunk if i not in known])
    if asked:
        log.info(
            "reconciliation: %d event(s) asked, %d held by central, %d to send again",
            asked,
            held,
            resent,
        )
    return Reconciled(asked=asked, held=held, resent=resent)
