"""A process that stores violations in an outbox in a loop and prints each stored id.

Used by the kill -9 test: every id printed was returned by ``put_violation`` and must
still be in the outbox (with its blobs intact) after the process is killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edge.outbox import Outbox
from roadwatch.contract import EvidenceRole, MediaType
from tests.delivery_support import BIG_BUDGET, blob, signed_event


def main() -> None:
    outbox = Outbox(Path(sys.argv[1]), BIG_BUDGET)
    while True:
        # Large enough that a kill often lands in the middle of writing a blob.
        clip = blob(EvidenceRole.CLIP, os.urandom(200_000), MediaType.MP4)
        frame = blob(EvidenceRole.FRAME_AT, os.urandom(50_000))
        event, blobs = signed_event([frame, clip])
        outbox.put_violation(event, blobs)
        sys.stdout.write(event.event_id + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
