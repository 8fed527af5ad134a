"""``roadwatch edge deliver``: run the node's delivery service (outbox -> MQTT, uploads)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from roadwatch import cli_args


def register(edge_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deliver = edge_sub.add_parser(
        "deliver",
        help="send the outbox's events over MQTT and upload their evidence, until stopped",
        description=(
            "Publish stored events at QoS 1 over a persistent MQTT session, keep the retained "
            "node status, and upload evidence blobs to central. Stops cleanly on SIGTERM or "
            "Ctrl-C, flushing what it can within --stop-timeout."
        ),
    )
    deliver.add_argument(
        "--config", type=Path, required=True, help="YAML file with a delivery: section"
    )
    deliver.add_argument(
        "--stop-timeout",
        type=cli_args.seconds,
        default=10.0,
        metavar="S",
        help="seconds to flush on stop (default 10)",
    )
    deliver.set_defaults(func=_deliver)

    status = edge_sub.add_parser(
        "outbox",
        help="show the outbox: pending, published, disk use, broken evidence",
        description="Print the outbox's counts and every evidence blob that cannot be "
        "delivered (missing or changed on disk), with the events it leaves incomplete. "
        "Exits 1 when there is broken evidence or the disk alarm is on.",
    )
    status.add_argument(
        "--config", type=Path, required=True, help="YAML file with a delivery: section"
    )
    status.set_defaults(func=_outbox_status)


def _deliver(args: argparse.Namespace) -> int:
    import signal
    import threading

    from edge.delivery_config import load_delivery_config
    from edge.delivery_service import DeliveryService

    config = load_delivery_config(args.config)
    service = DeliveryService.from_config(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    print(f"delivering from {config.outbox.path} to {config.broker.host}:{config.broker.port}")
    while not stop.wait(1.0):
        pass
    flushed = service.stop(args.stop_timeout)
    print("stopped" if flushed else "stopped with events still pending (kept in the outbox)")
    return 0


def _outbox_status(args: argparse.Namespace) -> int:
    import shutil

    from edge.delivery_config import load_delivery_config
    from edge.delivery_policy import DISK_HEADROOM_BYTES
    from edge.delivery_service import open_outbox
    from edge.outbox import DATABASE_NAME
    from roadwatch.errors import UserError

    config = load_delivery_config(args.config)
    # Only an outbox that is there: opening one creates it, and a mistyped path then showed
    # an empty outbox with nothing pending.
    if not (config.outbox.path / DATABASE_NAME).is_file():
        raise UserError(f"no outbox at {config.outbox.path} (outbox.path in {args.config})")
    with open_outbox(config) as outbox:
        stats = outbox.stats()
        broken = outbox.broken_blobs()
        fired = outbox.fired()
        refused = outbox.refused_events()
    print(f"outbox {config.outbox.path}")
    print(
        f"  violations pending {stats.violations_pending}, awaiting a receipt"
        f" {stats.awaiting_receipt}, receipted {stats.receipted}, refused by central"
        f" {stats.refused} (kept, not sent again)"
    )
    print(
        f"  traffic minutes pending {stats.traffic_pending}, sent {stats.traffic_sent}"
        " (no receipt: the broker's acknowledgement is their delivery)"
    )
    if stats.oldest_unreceipted_created_at is not None:
        age = max(0.0, time.time() - stats.oldest_unreceipted_created_at)
        print(f"  oldest message central has not receipted: {age:.0f} s")
    print(f"  evidence pending {stats.blobs_pending}, broken {stats.blobs_broken}")
    if fired:
        left = sum(f.orphaned for f in fired)
        print(
            f"  violations found, evidence being built {len(fired) - left}, left by a stopped"
            f" node {left} (stored without evidence when delivery next starts)"
        )
    print(
        f"  disk {stats.used_bytes} of {stats.limit_bytes} bytes "
        f"({stats.used_fraction:.0%}){' ALARM: nearly full' if stats.alarm else ''}"
    )
    # The budget counts the outbox's own files; the disk may fill with others.
    free = shutil.disk_usage(config.outbox.path).free
    disk_low = free < 2 * DISK_HEADROOM_BYTES
    alarm = " ALARM: the disk is nearly full (evidence is refused, clips first)"
    print(f"  filesystem {free} bytes free{alarm if disk_low else ''}")
    for blob in broken:
        print(f"  broken {blob.sha256}: {blob.reason}; incomplete: {' '.join(blob.event_ids)}")
    for event in refused:
        when = datetime.fromtimestamp(event.refused_at, UTC).isoformat(timespec="seconds")
        print(f"  refused {event.event_id} at {when}: {event.code}: {event.reason}")
    return 1 if broken or stats.alarm or disk_low else 0
