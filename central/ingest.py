"""MQTT ingest: a shared MQTT 5 subscription, batches committed before they are acknowledged.

paho's network thread only queues messages. A checker thread takes them in batches and
checks each against the contract and its node's signature; a writer thread stores each
checked batch in one transaction, commits, publishes the end-to-end receipts of the
violations the batch left committed (QoS 1, one ``ReceiptBatch`` per node; re-sent events
included, so a node whose receipt was lost gets it again), and only then sends the
PUBACKs (``manual_ack``). The two overlap: the next batch is checked while the database
commits this one. A message whose batch was not committed is never acknowledged, so the
broker delivers it again after a crash and the unique event id makes that harmless.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from central.db import one_of, session_factory, transaction
from central.ingest_lock import KEEP_S, ClientIdLock
from central.intake import ACCEPT_UNSIGNED_SETTING, Message, Refusal
from central.metrics import IngestMetrics, MetricsServer
from central.models import Violation
from central.partitions import ensure_partitions
from central.receipts import (
    final_refusals,
    held_copies,
    held_events,
    receipt_messages,
    refusal_messages,
)
from central.records import (
    BatchResult,
    Checked,
    KeyCache,
    check_batch,
    prune_stale,
    refresh_completeness,
    store_checked,
)
from central.settings import Settings
from roadwatch.contract import (
    CameraTopic,
    NodeStatus,
    NodeTopic,
    TopicError,
    TrafficStats,
    parse_topic,
    subscription,
)
from roadwatch.errors import UserError
from roadwatch.said_once import SaidOnce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Delivery:
    mid: int
    qos: int
    message: Message


WRITE_ATTEMPTS = 3  # for a batch that fails otherwise than by the database being away


@dataclass(frozen=True)
class _CheckedBatch:
    deliveries: list[_Delivery]
    checked: list[Checked]


def subscriptions(settings: Settings) -> list[tuple[str, int]]:
    """Violations and traffic through the shared group; status directly, because a broker
    does not hand retained messages to shared subscriptions."""
    group = settings.mqtt_share_group
    site = settings.mqtt_site
    return [
        (subscription(CameraTopic.VIOLATION, site=site, share_group=group), 1),
        (subscription(CameraTopic.TRAFFIC, site=site, share_group=group), 1),
        (subscription(NodeTopic.STATUS, site=site), 1),
    ]


def check_broker_tls(settings: Settings) -> None:
    """Load the broker's CA file (ROADWATCH_MQTT_TLS_CA) once, before anything starts, so
    a missing or wrong file is one line naming the variable and the file."""
    ca = settings.mqtt_tls_ca
    if ca is None:
        return
    try:
        ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as exc:
        raise UserError(
            f"ROADWATCH_MQTT_TLS_CA {ca}: not a PEM file of CA certificates ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise UserError(f"ROADWATCH_MQTT_TLS_CA {ca}: {exc.strerror or exc}") from None


def central_client(settings: Settings, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """An MQTT 5 client with central's broker credentials and TLS settings."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.broker_username:
        client.username_pw_set(settings.broker_username, settings.mqtt_password)
    if _uses_tls(settings):
        check_broker_tls(settings)
        client.tls_set(ca_certs=_ca_file(settings), cert_reqs=ssl.CERT_REQUIRED)
    return client


def _uses_tls(settings: Settings) -> bool:
    return settings.mqtt_tls or settings.mqtt_tls_ca is not None


def _ca_file(settings: Settings) -> str | None:
    """The broker's CA file, if one is set (else the system's CAs)."""
    return str(settings.mqtt_tls_ca) if settings.mqtt_tls_ca is not None else None


def why_unreachable(settings: Settings) -> str:
    """Why a connection to the broker fails, found by trying one as the client does (paho
    tells its callback only that it failed): refused, timed out, or its TLS certificate
    (expired, of another host, of another CA), which the log named as no more than "cannot
    reach the broker"."""
    host, port = settings.mqtt_host, settings.mqtt_port
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            if _uses_tls(settings):
                context = ssl.create_default_context(cafile=_ca_file(settings))
                with context.wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLCertVerificationError as exc:
        return f"its TLS certificate: {exc.verify_message}"
    except ssl.SSLError as exc:
        return f"TLS: {exc.reason or exc}"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return "its connection failed"


def client_id_of(settings: Settings) -> str:
    """The ingest's MQTT client id: ROADWATCH_MQTT_CLIENT_ID, else one of this host."""
    return settings.mqtt_client_id or f"roadwatch-central-{socket.gethostname()}"


class IngestService:
    """Runs the MQTT client and the batch worker until ``stop()``.

    ``start()`` first takes the lock on its client id (``lock``, when the caller took it
    already): a second ingest with the same id is refused there, with a UserError.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        metrics: IngestMetrics | None = None,
        *,
        lock: ClientIdLock | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._sessions: sessionmaker[Session] = session_factory(engine)
        self._partitions = _Daily()
        self._pruning = _Daily()
        self.metrics = metrics or IngestMetrics()
        self._queue: queue.Queue[_Delivery] = queue.Queue()
        # Two checked batches at most wait for the writer: the checker keeps ahead of the
        # database without holding more than it must in memory.
        self._checked: queue.Queue[_CheckedBatch] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._keys = KeyCache()
        # What the ingest refused (or took unsigned), said once per node, kind and reason
        # every 10 minutes: a node sends its status and traffic again and again.
        self._said = SaidOnce()
        self._threads: list[threading.Thread] = []
        self.receipts_sent = 0
        self.refusals_sent = 0
        # A stable id keeps the broker session (and the messages queued for it) across restarts.
        self.client_id = client_id_of(settings)
        self._lock = lock or ClientIdLock(settings.resolved_database_url, self.client_id)
        # Why the ingest stopped by itself (another ingest took its client id's lock while
        # its connection was lost); None while it runs.
        self.failure: str | None = None
        self.client = central_client(settings, self.client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self._unreachable_said = False  # "cannot reach the broker" logged for this outage
        self._refused_said = False  # the broker's refusal of the login, likewise
        self._refused = False  # the connection being closed is one the broker refused
        # When the broker was last said to be lost or out of reach (0: it was not), so
        # that the connection that ends the outage is said at the same level.
        self._outage_since = 0.0
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    # -- paho callbacks (network thread) ---------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        if getattr(rc, "is_failure", False):
            # (the socket closes next: no "lost the broker", it was never had; said once
            # until a connection, as paho tries again up to every 30 s)
            self._refused = True
            if not self._refused_said and not self._stop.is_set():
                self._refused_said = True
                self._outage_since = self._outage_since or time.monotonic()
                log.error(
                    "the broker at %s:%s refused central's connection as %s: %s (see"
                    " ROADWATCH_MQTT_USERNAME and ROADWATCH_MQTT_PASSWORD); trying again",
                    self.settings.mqtt_host,
                    self.settings.mqtt_port,
                    self.settings.broker_username or "an anonymous client",
                    rc,
                )
            return
        self._refused_said = False
        opts = SubscribeOptions(qos=1)
        client.subscribe([(topic, opts) for topic, _qos in subscriptions(self.settings)])
        self._unreachable_said = False
        self._connected.set()
        if self._outage_since:
            # (at the outage's level: else its warning stayed the log's last word on it)
            log.warning(
                "ingest connected to %s:%s again after %.0f s",
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = 0.0
        else:
            log.info("ingest connected to %s:%s", self.settings.mqtt_host, self.settings.mqtt_port)

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        # (paho tries again by itself, up to every 30 s; said once until a connection)
        if not self._unreachable_said and not self._stop.is_set():
            self._unreachable_said = True
            self._outage_since = self._outage_since or time.monotonic()
            log.warning(
                "ingest cannot reach the broker at %s:%s (%s); trying again",
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                why_unreachable(self.settings),
            )

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[Any], _p: object
    ) -> None:
        failed = [c for c in codes if getattr(c, "is_failure", False)]
        if failed:
            log.error("broker refused the subscriptions: %s", failed)
            return
        self.metrics.connected.set(1)  # (before: wait_ready() may return at the next line)
        self._subscribed.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        self._connected.clear()
        self._subscribed.clear()
        self.metrics.connected.set(0)
        if self._refused:  # (the connection the broker refused, said above)
            self._refused = False
            return
        if not self._stop.is_set():
            self._outage_since = self._outage_since or time.monotonic()
            log.warning("ingest lost the broker (%s); reconnecting", rc)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(_Delivery(msg.mid, msg.qos, Message(msg.topic, bytes(msg.payload))))

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        if not self._lock.held:
            self._lock.take()  # (UserError: another ingest has this client id)
        try:
            if self.settings.accept_unsigned_traffic_status:
                log.warning(
                    "ingest takes unsigned traffic minutes and statuses (%s): turn it off once"
                    " every node is upgraded to sign them",
                    ACCEPT_UNSIGNED_SETTING,
                )
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
            props.ReceiveMaximum = self.settings.ingest_receive_maximum
            self.client.connect_async(
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                keepalive=30,
                clean_start=False,
                properties=props,
            )
            self.client.loop_start()
            self._threads = [
                threading.Thread(target=self._check_loop, name="central-ingest-check", daemon=True),
                threading.Thread(target=self._run, name="central-ingest", daemon=True),
                threading.Thread(target=self._keep_lock, name="central-ingest-lock", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
        except BaseException:
            self._lock.release()
            raise

    @property
    def state(self) -> str:
        """``connected`` (subscribed), ``connecting`` (to the broker, as after an outage),
        or ``stopped: why`` when it ended by itself (another ingest took its client id, a
        thread of its own ended)."""
        if self.failure is not None:
            return f"stopped: {self.failure}"
        if not self._stop.is_set():
            ended = [t.name for t in self._threads if not t.is_alive()]
            if ended:
                return f"stopped: its thread {', '.join(ended)} ended"
        return "connected" if self._subscribed.is_set() else "connecting"

    def wait_ready(self, timeout: float) -> bool:
        """True once connected and the broker has acknowledged the subscriptions."""
        return self._subscribed.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, disconnect, and join every thread within ``timeout``."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        self._lock.release()

    def _keep_lock(self) -> None:
        """Every few seconds, check the client id's lock is held (taken again if its
        connection was lost); stop the ingest if another one took it meanwhile."""
        while not self._stop.wait(KEEP_S):
            reason = self._lock.keep()
            if reason is not None:
                self.failure = reason
                log.error("ingest stopped: %s", reason)
                self._stop.set()
                self.client.disconnect()
                return

    def __enter__(self) -> IngestService:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- checker and writer -----------------------------------------------------
    def _check_loop(self) -> None:
        """Check batches against the contract and the node keys, ahead of the writer."""
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            checked = self._check(batch)
            if checked is None:
                return  # stopping: unacknowledged, the broker sends it again after restart
            item = _CheckedBatch(batch, checked)
            while not self._stop.is_set():
                try:
                    self._checked.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _check(self, batch: list[_Delivery]) -> list[Checked] | None:
        """The batch checked, trying again until it can be (None once stopping). A batch is
        never dropped unacknowledged while connected: the broker sends a message again only
        after a reconnect, and until then it holds a place of the Receive Maximum, so a few
        dropped batches would stop delivery to this ingest altogether."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                with self._sessions() as session:  # used only for a key not cached
                    return check_batch(
                        session,
                        [d.message for d in batch],
                        self._keys,
                        accept_unsigned=self.settings.accept_unsigned_traffic_status,
                    )
            except DBAPIError as exc:
                log.warning(
                    "ingest batch of %d not checked (%s); again in %.1f s",
                    len(batch),
                    exc.orig,
                    delay,
                )
            except Exception:  # (the thread must live on)
                log.exception("ingest batch of %d not checked; again in %.1f s", len(batch), delay)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 10.0)
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._keep_partitions()
            self._prune_stale()
            try:
                batch = self._checked.get(timeout=0.2)
            except queue.Empty:
                continue
            # The database away is waited out inside (the batch is never dropped). Any other
            # fault is tried a few times, then the batch is left unacknowledged (the broker
            # sends it again after a reconnect): one that fails the same way every time
            # must not hold back every batch behind it.
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    self._commit_then_ack(batch)
                    break
                except Exception:
                    last = attempt == WRITE_ATTEMPTS
                    log.exception(
                        "ingest batch of %d failed (%s)",
                        len(batch.deliveries),
                        "left unacknowledged" if last else "trying again",
                    )
                    if last or self._stop.wait(attempt):
                        break

    def _keep_partitions(self) -> None:
        """Once a UTC day, make the coming months' partitions of violations (PostgreSQL),
        so a long-running ingest never leaves a month to the default partition."""
        today = datetime.now(UTC).date()
        if not self._partitions.due(today):
            return
        try:
            made = ensure_partitions(self._engine)
        except DBAPIError as exc:
            log.warning("partitions of the coming months not made (%s); retry in 60 s", exc.orig)
            self._partitions.failed()
            return
        self._partitions.done(today)
        if made:
            log.info("ingest: made partitions %s", ", ".join(made))

    def _prune_stale(self) -> None:
        """Once a UTC day, let go the rows no one reads again (``prune_stale``): the order
        of statuses received of ingests whose broker session is gone (never this one's),
        and health changes past those kept, so neither table grows for good."""
        today = datetime.now(UTC).date()
        if not self._pruning.due(today):
            return
        try:
            with transaction(self._sessions) as session:
                pruned = prune_stale(
                    session,
                    ingest=self.client_id,
                    session_expiry=timedelta(seconds=self.settings.mqtt_session_expiry_s),
                )
        except DBAPIError as exc:
            log.warning("stale rows not let go (%s); retry in 60 s", exc.orig)
            self._pruning.failed()
            return
        except Exception:  # (the writer must live on: the rows wait for the next try)
            log.exception("stale rows not let go; retry in 60 s")
            self._pruning.failed()
            return
        self._pruning.done(today)
        if pruned.received or pruned.health_changes:
            log.info(
                "ingest: let go the status order received of ingests gone (%d rows) and"
                " %d health changes past those kept",
                pruned.received,
                pruned.health_changes,
            )

    def _next_batch(self) -> list[_Delivery]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.settings.ingest_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit_then_ack(self, batch: _CheckedBatch) -> None:
        checked = batch.checked
        delay = 0.5
        while True:
            try:
                try:
                    result = self._store(checked)
                except OperationalError:
                    raise
                except Exception:
                    # One message the database refuses must not hold back the others.
                    log.exception("batch failed; storing one message at a time")
                    result = self._store_singly(checked)
                break
            except OperationalError as exc:
                # The database is away: keep the batch unacknowledged and try again.
                log.warning("database unavailable (%s); retrying in %.1f s", exc.orig, delay)
                if self._stop.wait(delay):
                    return  # not acknowledged: the broker re-delivers after restart
                delay = min(delay * 2, 10.0)
        # Committed: what follows is told in the log when it fails, and the PUBACKs go out
        # whatever happens to it (a node without its receipt sends the event again).
        if result.incomplete_ids:
            # After commit, so a blob committed while this batch was open is seen too (and
            # the receipts below carry the evidence completeness as it now stands).
            try:
                with transaction(self._sessions) as session:
                    refresh_completeness(session, result.incomplete_ids)
            except Exception:
                log.exception(
                    "evidence completeness of %d cases not refreshed", len(result.incomplete_ids)
                )
        try:
            self._send_receipts(result.held_event_ids)
        except Exception:
            log.exception("receipts of %d events not sent", len(result.held_event_ids))
        try:
            self._send_refusals(checked, result.late_refusals)
        except Exception:
            log.exception("final refusals not sent")
        for d in batch.deliveries:
            if d.qos > 0:
                self.client.ack(d.mid, d.qos)
        try:
            self.metrics.observe(result, len(batch.deliveries))
        except Exception:
            log.exception("ingest metrics not counted")
        self._say_refused(checked, result)
        if result.duplicates:
            log.info("ingest: %d duplicate event(s) dropped (already held)", result.duplicates)

    def _say_refused(self, checked: list[Checked], result: BatchResult) -> None:
        """Say in the log what the batch quarantined, and the traffic minutes and statuses
        it took unsigned or unsequenced (each counted in the metrics all the same)."""
        for will, refusal in result.replayed_wills:
            if self._said.due((_sender(will.topic), "replayed_will")):
                log.warning(
                    "ingest quarantined the last will it took on %s as %s: %s",
                    _printable(will.topic), refusal.code.value, _printable(refusal.reason),
                )  # fmt: skip
        # (refused on storing: a status older than the one held)
        late = {id(message): refusal for message, refusal in result.late_refusals}
        for item in checked:
            outcome, topic = item.outcome, item.message.topic
            outcome = late.get(id(item.message), outcome)
            if isinstance(outcome, Refusal):
                if self._said.due((_sender(topic), outcome.code)):
                    log.warning(
                        "ingest quarantined a message on %s as %s: %s",
                        _printable(topic), outcome.code.value, _printable(outcome.reason),
                    )  # fmt: skip
            elif (
                isinstance(outcome, NodeStatus)
                and outcome.signature is not None
                and outcome.session_started_at is None
                and self._said.due((_sender(topic), "unsequenced"))
            ):
                log.info(
                    "ingest took a status without its position in the node's order from node"
                    " %s/%s (%s): the node is not upgraded yet",
                    outcome.site, outcome.node, ACCEPT_UNSIGNED_SETTING,
                )  # fmt: skip
            elif (
                isinstance(outcome, TrafficStats | NodeStatus)
                and outcome.signature is None
                and self._said.due((_sender(topic), "unsigned"))
            ):
                log.info(
                    "ingest took an unsigned %s from node %s/%s (%s): the node is not"
                    " upgraded yet",
                    "traffic minute" if isinstance(outcome, TrafficStats) else "status",
                    outcome.site, outcome.node, ACCEPT_UNSIGNED_SETTING,
                )  # fmt: skip

    def send_completion_receipts(self, violation_ids: list[int]) -> None:
        """Receipts again for violations whose evidence just became complete, so that a
        node learns it (called by the evidence upload when the API runs the ingest)."""
        if not violation_ids:
            return
        with self._sessions() as session:
            event_ids = list(
                session.scalars(
                    select(Violation.event_id).where(one_of(session, Violation.id, violation_ids))
                )
            )
        self._send_receipts(event_ids)

    def _send_receipts(self, event_ids: list[str]) -> None:
        """Queue the receipts (QoS 1) before the PUBACKs: paho sends them in that order."""
        if not event_ids or not self.settings.receipts:
            return
        try:
            with self._sessions() as session:
                held = held_events(session, event_ids)
        except DBAPIError as exc:
            # The events are committed; a node without its receipt sends them again and
            # gets the receipt then.
            log.warning("receipts of %d events not sent: %s", len(event_ids), exc.orig)
            return
        sent = 0
        for message in receipt_messages(held, datetime.now(UTC)):
            self.client.publish(message.topic, message.payload, qos=1)
            sent += message.count
        self.receipts_sent += sent

    def _send_refusals(
        self, checked: list[Checked], late: Sequence[tuple[Message, Refusal]]
    ) -> None:
        """Tell the nodes of the violations refused for good (``FINALITY``: a revoked key's,
        a forged one, ...) that they will never be receipted, so that they stop sending them
        (QoS 1, with the receipts). ``late``: those refused on storing (an event id reused)."""
        if not self.settings.receipts:
            return
        refused = [(c.message, c.outcome) for c in checked if isinstance(c.outcome, Refusal)]
        refusals = final_refusals([*refused, *late])
        if not refusals:
            return
        # A copy of one central holds (taken before its key was revoked, its receipt lost,
        # sent again; or sent in another JSON form) gets its receipt again, not a refusal.
        with self._sessions() as session:
            held = held_copies(session, refusals)
        self._send_receipts(sorted({event_id for event_id, _sha in held}))
        final = [r for r in refusals if (r.refusal.event_id, r.refusal.payload_sha256) not in held]
        for message in refusal_messages(final, datetime.now(UTC)):
            self.client.publish(message.topic, message.payload, qos=1)
            self.refusals_sent += message.count

    def _store(self, checked: list[Checked]) -> BatchResult:
        # (The order of statuses this ingest received is kept by its client id, with the
        # batch: one not committed is delivered again, in the same order.)
        with transaction(self._sessions) as session:
            return store_checked(
                session,
                checked,
                completeness=False,
                silent_after=self.settings.silent_after,
                ingest=self.client_id,
            )

    def _store_singly(self, checked: list[Checked]) -> BatchResult:
        from central.intake import Refusal, RefusalCode
        from central.records import quarantine

        total = BatchResult()
        for item in checked:
            try:
                one = self._store([item])
            except OperationalError:
                raise  # the database is away: the batch stays unacknowledged
            except Exception as exc:
                reason = str(exc.orig) if isinstance(exc, DBAPIError) else repr(exc)
                with transaction(self._sessions) as session:
                    quarantine(
                        session,
                        item.message,
                        Refusal(RefusalCode.MALFORMED, f"could not be stored: {reason[:500]}"),
                    )
                total.refuse(RefusalCode.MALFORMED)
                continue
            total.add(one)
        return total


@dataclass
class _Daily:
    """Upkeep done once a UTC day, tried again 60 s after a try that failed."""

    day: date | None = None  # the day it was last done
    retry_at: float = 0.0  # (time.monotonic)

    def due(self, today: date) -> bool:
        return today != self.day and time.monotonic() >= self.retry_at

    def failed(self) -> None:
        self.retry_at = time.monotonic() + 60.0

    def done(self, today: date) -> None:
        self.day = today


def _sender(topic: str) -> tuple[str, ...]:
    """Who sent on ``topic`` and what: site, node and kind (one subject for any topic
    that is no node's)."""
    try:
        where = parse_topic(topic)
    except TopicError:
        return ("-",)
    return (where.site, where.node, where.kind.value)


def _printable(text: str) -> str:
    """``text`` as one line of the log: escaped where it holds what is not printable."""
    return text if text.isprintable() else ascii(text)


def run_ingest(
    settings: Settings,
    engine: Engine,
    stop: threading.Event,
    *,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Run the ingest until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT); with
    ``metrics_at`` (host, port), its Prometheus counters are served there meanwhile."""
    service = IngestService(settings, engine)
    server = None
    if metrics_at is not None:
        host, port = metrics_at
        try:
            server = MetricsServer(service.metrics.registry, host, port)
        except OSError as exc:
            raise UserError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        print(f"central: ingest metrics on http://{host}:{server.port}/metrics", flush=True)
    try:
        _run(service, stop)
    finally:
        if server is not None:
            server.close()


def _run(service: IngestService, stop: threading.Event) -> None:
    service.start()
    try:
        while not stop.is_set() and service.failure is None:
            if service.wait_ready(0.5):
                print("central: ingest subscribed", flush=True)
                break
        while not stop.wait(0.5):
            if service.failure is not None:
                break
    finally:
        service.stop()
    if service.failure is not None:
        raise UserError(service.failure)
