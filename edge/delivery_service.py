"""The node's delivery service: the outbox, the MQTT publisher and the evidence uploader.

Built from a ``DeliveryConfig`` by ``DeliveryService.from_config``; ``submit()`` stores a
violation's evidence package under the disk policy, ``start()`` runs the publisher and
uploader threads, ``stop()`` flushes and stops them within a bound. ``start()`` first
stores the violations a stopped process found and never stored (``recover_fired``).
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.delivery_config import DeliveryConfig
from edge.delivery_policy import DiskBudget, plan_admission
from edge.evidence.package import EvidencePackage, without_evidence
from edge.outbox import MessageKind, Outbox, OutboxFullError
from edge.publisher import CameraHealthSource, Publisher
from edge.uploader import Uploader
from roadwatch.contract import EvidenceRole, TrafficStats
from roadwatch.contract.signing import load_private_key, sign
from roadwatch.errors import UserError

log = logging.getLogger(__name__)

RECOVERED_WHY = "the node stopped (a power cut or a kill) before its evidence was stored"


def open_outbox(config: DeliveryConfig) -> Outbox:
    box = config.outbox
    budget = DiskBudget(
        limit_bytes=box.limit_bytes,
        event_reserve_bytes=box.event_reserve_bytes,
        alarm_fraction=box.alarm_fraction,
    )
    return Outbox(
        box.path,
        budget,
        retry_base_s=box.retry_base_s,
        retry_cap_s=box.retry_cap_s,
        receipt_timeout_s=box.receipt_timeout_s,
        receipt_timeout_cap_s=box.receipt_timeout_cap_s,
    )


def load_node_key(config: DeliveryConfig) -> Ed25519PrivateKey:
    try:
        return load_private_key(config.key_path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the node key {config.key_path}: {exc}") from exc


def check_tls_files(config: DeliveryConfig) -> None:
    """Load the broker's TLS files once at the start, so a missing or wrong file is one
    line naming it instead of a failed connection retried for ever."""
    tls = config.broker.tls
    if tls is None:
        return
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"broker.tls.ca_file {tls.ca_file}: {_tls_reason(exc)}") from exc
    if tls.cert_file is not None:
        key = tls.key_file or tls.cert_file
        try:
            context.load_cert_chain(str(tls.cert_file), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise UserError(
                f"broker.tls.cert_file {tls.cert_file} / key_file {key}: {_tls_reason(exc)}"
            ) from exc


def _tls_reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"not a usable PEM file ({exc.reason or exc})"
    return exc.strerror or str(exc)


@dataclass(frozen=True, slots=True)
class Submitted:
    """What was stored of a violation; ``refused`` lists evidence left out for lack of disk."""

    event_id: str
    refused: tuple[EvidenceRole, ...]


@dataclass
class DeliveryService:
    config: DeliveryConfig
    outbox: Outbox
    publisher: Publisher
    uploader: Uploader | None
    key: Ed25519PrivateKey
    refused_blobs: int = field(default=0)
    _delivered_at_stop: int | None = field(default=None)
    _lock: IO[bytes] | None = field(default=None)

    @classmethod
    def from_config(
        cls,
        config: DeliveryConfig,
        *,
        cameras: CameraHealthSource = tuple,
        config_version: str | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> DeliveryService:
        """The node's delivery; ``key``: the node key, when the caller loaded it already."""
        key = load_node_key(config) if key is None else key
        check_tls_files(config)
        outbox = open_outbox(config)
        uploader = (
            Uploader.from_config(
                outbox, config.central, reconcile_after_s=config.outbox.reconcile_after_s
            )
            if config.central
            else None
        )
        return cls(
            config=config,
            outbox=outbox,
            publisher=Publisher(
                config, outbox, key=key, cameras=cameras, config_version=config_version
            ),
            uploader=uploader,
            key=key,
        )

    def submit(self, package: EvidencePackage) -> Submitted:
        """Store a violation before anything is sent. When the disk budget is short, the
        clip is refused first, then the other blobs (the event is signed again without
        them); the event itself is stored while the event reserve lasts. Raises
        OutboxFullError (logged) only when not even the bare event fits."""
        sizes = {b.ref.role: b.ref.size for b in package.blobs}
        used = self.outbox.used_bytes()
        plan = plan_admission(
            self.outbox.budget_now(used), used, 4096, sizes
        )  # 4 KiB: a generous bound on an event's payload
        if plan.refused:
            package = package.without(plan.refused, self.key)
        try:
            self.outbox.put_violation(package.event, package.blobs)
        except OutboxFullError as exc:
            log.error("outbox full: violation %s NOT stored (%s)", package.event.event_id, exc)
            raise
        if plan.refused:
            # (said once the event is stored: before, a refused event read as stored too)
            self.refused_blobs += len(plan.refused)
            log.warning(
                "outbox short of disk: event %s stored without %s",
                package.event.event_id,
                ", ".join(r.value for r in plan.refused),
            )
        return Submitted(event_id=package.event.event_id, refused=plan.refused)

    def recover_fired(self) -> int:
        """Store the violations a process that is gone (a power cut, a kill) recorded as
        found and never stored, each as its event without evidence (the frames it was
        built from went with that process); how many were stored. One that does not fit
        the outbox stays recorded for the next start."""
        stored = 0
        for fired in self.outbox.fired():
            if not fired.orphaned:
                continue  # a running process is still building its evidence
            event = fired.event
            package = without_evidence(event, RECOVERED_WHY, self.key)
            try:
                self.outbox.put_violation(package.event, ())
            except OutboxFullError as exc:
                log.error("outbox full: violation %s stays to be stored (%s)", event.event_id, exc)
                continue
            stored += 1
            log.warning(
                "violation %s (%s on %s, found %s) stored without evidence: %s",
                event.event_id, event.type.value, event.camera,
                event.occurred_at.isoformat(timespec="seconds"), RECOVERED_WHY,
            )  # fmt: skip
        return stored

    def submit_traffic(self, stats: TrafficStats) -> bool:
        """Store a minute of traffic statistics, signed with the node key; False (logged)
        when the outbox is full: the minute is dropped, and the room left is kept for
        violations."""
        try:
            self.outbox.put_traffic(sign(stats, self.key))
        except OutboxFullError as exc:
            log.error("outbox full: traffic statistics of %s dropped (%s)", stats.camera, exc)
            return False
        return True

    def claim(self) -> None:
        """Take the outbox's delivery lock now (``start`` takes it where not taken): a run
        refused because another process delivers from the outbox is refused before it
        says it is running."""
        if self._lock is None:
            self._lock = _hold_delivery_lock(self.config.outbox.path)

    def start(self) -> None:
        """Start publishing and uploading. One process delivers from an outbox: a second
        (``edge deliver`` beside ``edge run``) is refused, as the broker would otherwise
        throw the two off in turn (they share the node's client id)."""
        self.claim()
        self.recover_fired()
        # (A node started with a new key: its old one may be revoked once the violations
        # it signed are receipted, and the minutes it signed would then be refused.)
        try:
            signed = self.outbox.sign_pending_traffic(self.key)
        except (OutboxFullError, sqlite3.Error) as exc:  # (sent as they were signed)
            log.warning("traffic minutes not sent yet not signed again: %s", exc)
        else:
            if signed:
                log.info("%d traffic minute(s) not sent yet signed again with the node key", signed)
        self.publisher.start()
        if self.uploader is not None:
            self.uploader.start()

    def drain(self, timeout_s: float) -> bool:
        """Wait (bounded) until nothing is left to publish or upload; True when empty.
        Events awaiting a receipt stay in the outbox; they are not waited for."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = self.outbox.stats()
            if stats.pending == 0 and stats.blobs_pending == 0:
                return True
            if time.monotonic() >= deadline:
                log.warning(
                    "stopping with %d message(s) and %d blob(s) still to send; they stay in "
                    "the outbox for the next start",
                    stats.pending, stats.blobs_pending,
                )  # fmt: skip
                return False
            time.sleep(0.2)

    def delivered_violations(self) -> int:
        """Violations the broker has acknowledged (the count at stop once stopped)."""
        if self._delivered_at_stop is not None:
            return self._delivered_at_stop
        return self.outbox.delivered(MessageKind.VIOLATION)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Flush and stop; True when nothing is left pending. The outbox is closed."""
        uploader_stopped = self.uploader is None or self.uploader.stop(timeout_s / 2)
        flushed = self.publisher.stop(timeout_s / 2)
        if self._lock is not None:
            self._lock.close()  # (the lock goes with the file; a killed process's too)
            self._lock = None
        self._delivered_at_stop = self.outbox.delivered(MessageKind.VIOLATION)
        if uploader_stopped:
            # An upload still blocked in HTTP keeps using the outbox; the process exit
            # ends it, and its blob stays pending (the state is committed per blob).
            self.outbox.close()
        return flushed


def _hold_delivery_lock(outbox: Path) -> IO[bytes]:
    """An exclusive lock on the outbox's delivery, held while the returned file is open."""
    import fcntl

    path = outbox / "delivery.lock"
    handle = path.open("a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(
            f"another process is already delivering from the outbox {outbox} (edge run or"
            " edge deliver for this node): run one of them"
        ) from None
    return handle
