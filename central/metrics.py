"""Prometheus metrics, in a registry owned by each app or ingest service (not global)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

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
            "Ingest outcomes: accepted, duplicate, traffic, status, or a quarantine reason",
            ["outcome"],
            registry=self.registry,
        )

    def observe(self, result: BatchResult, messages: int) -> None:
        self.messages.inc(messages)
        self.outcomes.labels("accepted").inc(result.accepted)
        self.outcomes.labels("duplicate").inc(result.duplicates)
        self.outcomes.labels("traffic").inc(result.traffic)
        self.outcomes.labels("status").inc(result.statuses)
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
