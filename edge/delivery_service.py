"""The node's delivery service: the outbox, the MQTT publisher and the evidence uploader.

Built from a ``DeliveryConfig`` by ``DeliveryService.from_config``; ``start()`` runs the
publisher and uploader threads, ``stop()`` flushes and stops them within a bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge.delivery_config import DeliveryConfig
from edge.delivery_policy import DiskBudget
from edge.outbox import Outbox
from edge.publisher import CameraHealthSource, Publisher

log = logging.getLogger(__name__)


def open_outbox(config: DeliveryConfig) -> Outbox:
    box = config.outbox
    budget = DiskBudget(
        limit_bytes=box.limit_bytes,
        event_reserve_bytes=box.event_reserve_bytes,
        alarm_fraction=box.alarm_fraction,
    )
    return Outbox(box.path, budget, retry_base_s=box.retry_base_s, retry_cap_s=box.retry_cap_s)


@dataclass
class DeliveryService:
    config: DeliveryConfig
    outbox: Outbox
    publisher: Publisher

    @classmethod
    def from_config(
        cls, config: DeliveryConfig, *, cameras: CameraHealthSource = tuple
    ) -> DeliveryService:
        outbox = open_outbox(config)
        return cls(
            config=config, outbox=outbox, publisher=Publisher(config, outbox, cameras=cameras)
        )

    def start(self) -> None:
        self.publisher.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Flush and stop; True when nothing is left pending. The outbox is closed."""
        flushed = self.publisher.stop(timeout_s)
        self.outbox.close()
        return flushed
