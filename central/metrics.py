"""Prometheus metrics, in a registry owned by each app or ingest service (not global).

A server with several HTTP workers (``central serve --workers N``) gives its workers one
folder to write their metrics to (``PROMETHEUS_MULTIPROC_DIR``, set before they start),
and ``/metrics`` on any of them serves the sum over every worker (``metrics_text``). An
ingest run as its own process serves its counters on a port of its own
(``central ingest --metrics-port``; see ``serve_metrics``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

if TYPE_CHECKING:
    from central.records import BatchResult


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages = Counter(
            "roadwatch_ingest_messages",
            "MQTT messages handled by the ingest",
            registry=self.registry,
        )
        self.outcomes = Counter(
            "roadwatch_ingest_outcomes",
            "Ingest outcomes: accepted, duplicate, traffic, status, status_repeated (the"
            " status held, again, or one an ingest behind another receives after it: not"
            " applied), unsigned (traffic or status taken without a"
            " signature while nodes are upgraded), unsequenced (a status taken without its"
            " position in the node's order, likewise), or a quarantine reason",
            ["outcome"],
            registry=self.registry,
        )
        self.connected = Gauge(
            "roadwatch_ingest_broker_connected",
            "1 while the ingest is connected to the broker and subscribed, 0 while it is not"
            " (out of reach, its login refused, its session taken over): alert on 0",
            registry=self.registry,
            multiprocess_mode="max",
        )

    def observe(self, result: BatchResult, messages: int) -> None:
        self.messages.inc(messages)
        self.outcomes.labels("accepted").inc(result.accepted)
        self.outcomes.labels("duplicate").inc(result.duplicates)
        self.outcomes.labels("traffic").inc(result.traffic)
        self.outcomes.labels("status").inc(result.statuses)
        self.outcomes.labels("status_repeated").inc(result.repeated_statuses)
        self.outcomes.labels("unsigned").inc(result.unsigned)
        self.outcomes.labels("unsequenced").inc(result.unsequenced)
        for code, n in result.quarantined.items():
            self.outcomes.labels(f"quarantined_{code}").inc(n)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Histogram(
            "roadwatch_http_request_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            registry=registry,
        )
        self.evidence = Counter(
            "roadwatch_evidence_uploads",
            "Evidence uploads by outcome",
            ["outcome"],
            registry=registry,
        )
        self.damaged = Counter(
            "roadwatch_evidence_damaged",
            "Stored evidence read back that no longer hashes to its name (not served)",
            registry=registry,
        )


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The exposition of ``registry``; in a worker of a server whose workers share a
    metrics folder, the sum over every worker it has run, live or ended."""
    folder = os.environ.get(MULTIPROCESS_ENV)
    if folder:
        summed = CollectorRegistry()
        MultiProcessCollector(summed, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(summed)
    return generate_latest(registry)


class MetricsServer:
    """``registry`` served over plain HTTP at ``host``:``port`` (``/metrics``) on a
    thread of its own, until ``close``."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
