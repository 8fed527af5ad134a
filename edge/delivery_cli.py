"""``roadwatch edge deliver``: run the node's delivery service (outbox -> MQTT, uploads)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to flush on stop (default 10)",
    )
    deliver.set_defaults(func=_deliver)


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
