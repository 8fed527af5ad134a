"""MQTT publisher: drains the outbox to the broker at QoS 1 over a persistent session.

One thread owns the paho client (no callbacks race with the publishing code): it
connects with a fixed client id and ``clean_session=False``, reconnects by itself with
an exponential back-off, publishes due outbox messages while connected (at most
``max_inflight`` awaiting PUBACK), and marks a message published only when its PUBACK
arrives. The node's retained status topic carries a ``NodeStatus`` signed with the node
key: ``online`` on connect and every ``status_interval_s``, ``offline`` as the last will
(signed when it is set, at connect) and on a clean stop. Each carries its position (the
connection's start and its sequence in it; the last will is 0), so that central refuses
an old status published again. ``stop()`` flushes what it can within its timeout, then
disconnects.

Pushed configs: with ``on_config`` set, the publisher also subscribes to the node's
retained config topic and hands each payload to it (``edge.config_apply``).

Signal controllers: with ``on_signal`` set, the publisher also subscribes (QoS 0: a phase
is news only while fresh, and a backlog kept for the node while it was away is not) to
the ``signal`` topics of the node's cameras and hands each ``SignalPhase`` that names the
node and camera of its topic to it; anything else is logged and dropped.

End-to-end receipts: the publisher subscribes (QoS 1) to the node's receipt topic, where
central confirms the events it has committed; those are marked receipted in the outbox
and deleted after ``receipted_retention_s``. A PUBACK only means the broker took the
message (a broker may still drop it, e.g. beyond its queue limit), so a violation with
no receipt after ``receipt_timeout_s`` is published again, with a doubling wait; central
drops the duplicates by event id. A violation central refused for good (signed with a
key revoked since, forged, ...) comes back on the same topic as a ``RefusalBatch``: it is
kept in the outbox as refused, for the record, and not sent again (the node's technician
exports, re-queues or drops it: ``roadwatch edge outbox refused``). One refused as forged
that verifies under the node key is genuine (central lacks the key): it is kept awaiting
the key's registration and sent again by itself once central receipts a violation signed
with it (``Outbox.mark_refused``). While some await the node's key and no such receipt
comes (a node that files nothing more after its key changed), the oldest of them is sent
again every ``KEY_PROBE_S`` while connected (``Outbox.key_probe``): central's receipt of it
is the proof that sends the others, and a refusal as forged again leaves it awaiting.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.delivery_config import BrokerConfig, DeliveryConfig
from edge.delivery_policy import backoff_delay
from edge.outbox import Outbox, is_disk_full
from roadwatch import __version__
from roadwatch.contract import (
    CameraHealth,
    CameraTopic,
    ContractError,
    NodeState,
    NodeStatus,
    NodeTopic,
    SignalPhase,
    SignalSource,
    TopicError,
    node_topic,
    parse_payload,
    parse_topic,
    subscription,
    to_wire,
)
from roadwatch.contract.models import EventRefusal, ReceiptBatch, RefusalBatch, RefusalCode
from roadwatch.contract.signing import sign
from roadwatch.said_once import SaidOnce

log = logging.getLogger(__name__)

# A status session that began at most this far ahead of the clock (a clock set back since
# the node connected: an NTP correction, a clock restored at boot) is followed, the next
# begun after it; one farther ahead is a clock that was wrong (central refuses a session
# more than 10 minutes ahead of its own clock) and is not.
SESSION_AHEAD_KEPT = timedelta(days=1)

# How often the oldest violation awaiting the node's key (refused as forged, genuine) is
# sent again to learn whether central holds the key yet (``_maybe_probe_key``): one message
# a period, the first a period after the publisher starts.
KEY_PROBE_S = 600.0

CameraHealthSource = Callable[[], Sequence[CameraHealth]]


@dataclass(frozen=True, slots=True)
class _InFlight:
    message_id: str
    sent_at: float
    resend: bool = False
    probe: bool = False  # sent to learn whether central holds the node's key (still refused)


@dataclass(frozen=True, slots=True)
class PublisherCounters:
    connects: int
    disconnects: int
    published: int
    republished: int
    resent: int = 0
    receipted: int = 0
    refused: int = 0  # violations central refused for good, kept and not sent again
    signals: int = 0  # signal controller messages handed on
    signals_refused: int = 0  # malformed, or for another node or camera
    key_probes: int = 0  # violations awaiting the node's key sent again to check central


def make_client(config: DeliveryConfig) -> mqtt.Client:
    """A paho 2 client for the node: fixed id, persistent session, TLS and credentials."""
    broker: BrokerConfig = config.broker
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        reconnect_on_failure=False,  # the publisher runs its own reconnect loop
    )
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.tls is not None:
        client.tls_set(
            ca_certs=str(broker.tls.ca_file),
            certfile=str(broker.tls.cert_file) if broker.tls.cert_file else None,
            keyfile=str(broker.tls.key_file) if broker.tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    # Room above the publisher's own window for the status messages, so that paho never
    # holds a message back in its queue.
    client.max_inflight_messages_set(broker.max_inflight + 16)
    client.max_queued_messages_set(0)
    return client


@contextlib.contextmanager
def _unless_disk_full(what: str) -> Iterator[None]:
    """An outbox write the full disk refuses is logged (``what``) and left for a later
    turn, on the same connection; any other fault goes on up (the turn starts over)."""
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        log.warning("%s: %s", what, exc)


class Publisher:
    """Publishes the outbox over MQTT from its own thread; ``start()`` then ``stop()``."""

    def __init__(
        self,
        config: DeliveryConfig,
        outbox: Outbox,
        *,
        key: Ed25519PrivateKey,
        cameras: CameraHealthSource = tuple,
        software_version: str = __version__,
        config_version: str | None = None,
    ) -> None:
        """``key``: the node key, which signs each status (central refuses an unsigned one)."""
        self.config = config
        self.outbox = outbox
        self._key = key
        self._cameras = cameras
        self._software_version = software_version
        self._config_version = config_version
        self._status_topic = node_topic(config.site, config.node, NodeTopic.STATUS)
        self._receipt_topic = node_topic(config.site, config.node, NodeTopic.RECEIPT)
        self._config_topic = node_topic(config.site, config.node, NodeTopic.CONFIG)
        self._config_error: str | None = None
        self.on_config: Callable[[bytes], object] | None = None
        """Called on the publisher's thread with each payload of the config topic; set
        before ``start()`` to subscribe to it."""
        self.on_signal: Callable[[SignalPhase], object] | None = None
        """Called on the publisher's thread with each signal controller's message for one
        of the node's cameras; set before ``start()`` to subscribe to them."""
        self._signal_filter = subscription(CameraTopic.SIGNAL, site=config.site, node=config.node)
        self._signals = 0
        self._signals_refused = 0
        self._signals_said = SaidOnce()
        self._receipts: list[str] = []
        self._refusals: list[EventRefusal] = []
        self._resent_acked: list[str] = []
        self._resent = 0
        self._receipted = 0
        self._refused = 0
        self._next_prune = 0.0
        # The next check whether central holds the node's key (a run's first comes a whole
        # period after its start), and the violation sent for the last, until answered.
        self._next_probe = time.monotonic() + KEY_PROBE_S
        self._probe: str | None = None
        self._key_probes = 0
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._acked: list[str] = []
        self._unrecorded = False  # acknowledgements the outbox could not record yet
        self._accepted = False  # the broker accepted the current connection
        self._unreachable_said = False  # "cannot reach the broker" logged for this outage
        # When the broker was last said to be lost or out of reach (0: it was not), so
        # that the connection that ends the outage is said at the same level.
        self._outage_since = 0.0
        self._refused_said = ""  # the refusal logged for this outage ("": none)
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._next_status = 0.0
        # Each status's position, signed with it (central refuses an older one, replayed):
        # the connection's start, and the count of statuses since (the last will is 0).
        self._session_at: datetime | None = None
        self._sequence = 0
        self._connects = 0
        self._disconnects = 0
        self._published = 0
        self._republished = 0

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Flush pending messages for up to most of ``timeout_s``, publish the offline
        status and disconnect. Returns True when everything stored was published."""
        if self._thread is None:
            return self.outbox.stats().pending == 0
        self._stop_deadline = time.monotonic() + timeout_s * 0.8
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("publisher did not stop within %.1f s", timeout_s)
            return False
        self._thread = None
        return self.outbox.stats().pending == 0

    def set_config_state(self, version: str, error: str | None) -> None:
        """The config version in force and why the last push was refused (None: it was
        not); the next status says so, at once when connected."""
        self._config_version, self._config_error = version, error
        self._next_status = 0.0

    @property
    def connected(self) -> threading.Event:
        return self._connected

    def counters(self) -> PublisherCounters:
        return PublisherCounters(
            connects=self._connects,
            disconnects=self._disconnects,
            published=self._published,
            republished=self._republished,
            resent=self._resent,
            receipted=self._receipted,
            refused=self._refused,
            signals=self._signals,
            signals_refused=self._signals_refused,
            key_probes=self._key_probes,
        )

    # ---------------------------------------------------------------- the thread
    def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stop.is_set()
            try:
                if stopping and (time.monotonic() >= self._stop_deadline or self._flushed()):
                    break
                if self._client is None and not self._try_connect():
                    failures += 1
                    if stopping:
                        break
                    self._back_off(failures, "broker unreachable")
                    continue
                self._turn()
                if self._connected.is_set():
                    failures = 0
                elif self._client is None and not self._accepted:
                    # Ended before the broker accepted it (a refused login, a revoked
                    # node): wait as for a broker out of reach, not at once again.
                    failures += 1
                    if stopping:
                        break
                    self._back_off(failures, "broker refused the connection")
            except Exception:
                # The outbox keeps every message; a failed turn (disk, database) must not
                # end publishing: start over on a fresh connection after a pause.
                log.exception("publishing failed; starting over")
                self._drop_client()
                if stopping:
                    break
                self._stop.wait(1.0)
        try:
            self._shutdown()
        except Exception:
            log.exception("clean disconnect failed")
            self._drop_client()

    def _back_off(self, failures: int, why: str) -> None:
        delay = backoff_delay(
            failures,
            base_s=self.config.broker.reconnect_min_s,
            cap_s=self.config.broker.reconnect_max_s,
            jitter=random.random() * 0.5,
        )
        log.info("%s; next try in %.1f s", why, delay)
        self._stop.wait(delay)

    def _turn(self) -> None:
        """One turn of the loop: network I/O, acknowledgements, publishing, status."""
        client = self._client
        assert client is not None
        client.loop(timeout=0.02 if self._inflight else 0.1)
        self._record_acks()
        if client.socket() is None:
            # The connection is gone (or never completed; paho may still say
            # "connected" then): start afresh with a new client next turn.
            self._drop_client()
            return
        if self._connected.is_set():
            self._expire_inflight()
            self._publish_due()
            self._maybe_probe_key()
            self._maybe_publish_status()
        self._maybe_prune()

    def _try_connect(self) -> bool:
        """Connect with a fresh paho client on the node's fixed id.

        A fresh client per connection keeps no stale in-flight state from the last one
        (paho would re-send it, but can stall behind its own queue): every message not
        acknowledged stays pending in the outbox and is published again instead. The
        broker-side session persists across clients (clean_session=False).
        """
        broker = self.config.broker
        client = make_client(self.config)
        self._new_session()
        client.will_set(
            self._status_topic,
            to_wire(self._status(NodeState.OFFLINE, will=True)),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        try:
            client.connect(broker.host, broker.port, keepalive=broker.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            if self._unreachable_said:
                log.debug("connect to %s:%d failed: %s", broker.host, broker.port, exc)
            else:  # once for the outage: said again only after a connection
                self._unreachable_said = True
                self._outage_since = self._outage_since or time.monotonic()
                log.warning(
                    "cannot reach the broker at %s:%d: %s; trying again (events wait in the"
                    " outbox)",
                    broker.host,
                    broker.port,
                    exc,
                )
            return False
        self._client = client
        self._accepted = False
        return True

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.on_publish = None
            self._client.on_disconnect = None
            self._client.on_connect = None
            self._client.on_message = None
            self._client = None
        self._inflight.clear()
        self._connected.clear()

    def _flushed(self) -> bool:
        self._record_acks()
        return not self._inflight and not self.outbox.due_messages(1)

    def _publish_due(self) -> None:
        window = self.config.broker.max_inflight
        room = window - len(self._inflight)
        # Refill in chunks, not one message per PUBACK: each refill is a query.
        if room <= 0 or (self._inflight and room < max(1, window // 4)):
            return
        # (acknowledged ones the outbox has not recorded yet are not sent again either)
        busy = {f.message_id for f in self._inflight.values()}
        busy.update(self._acked, self._resent_acked, self._receipts)
        busy.update(r.event_id for r in self._refusals)
        due = self.outbox.due_messages(room, exclude=busy)
        resends = []
        if len(due) < room:
            # Pending messages first; then violations whose receipt is overdue.
            resends = self.outbox.due_resends(room - len(due), exclude=busy)
        for message, resend in [(m, False) for m in due] + [(m, True) for m in resends]:
            assert self._client is not None
            info = self._client.publish(message.topic, message.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # The connection just went: the message stays in the outbox and goes again
                # on the next connection.
                log.debug("publish of %s not sent: %s", message.id, info.rc)
            if resend:
                self._resent += 1
            elif message.attempts:
                self._republished += 1
            self._inflight[info.mid] = _InFlight(message.id, time.monotonic(), resend)
        if resends:
            log.info("%d event(s) without a receipt published again", len(resends))

    def _expire_inflight(self) -> None:
        limit = self.config.broker.ack_timeout_s
        now = time.monotonic()
        expired = [mid for mid, f in self._inflight.items() if now - f.sent_at > limit]
        if not expired:
            return
        flights = [self._inflight.pop(mid) for mid in expired]
        # (a key probe's message stays refused: the next period sends one again)
        ids = [f.message_id for f in flights if not (f.resend or f.probe)]
        log.warning("%d message(s) without PUBACK for %.0f s; will send again", len(flights), limit)
        # (unrecorded for a full disk, they are simply due again on the next turns)
        with _unless_disk_full("PUBACK time-outs not recorded"):
            self.outbox.record_publish_failure(ids, f"no PUBACK within {limit:.0f} s")
            self.outbox.mark_resent([f.message_id for f in flights if f.resend])

    def _maybe_probe_key(self) -> None:
        """Once a ``KEY_PROBE_S`` period, send the oldest violation awaiting the node's key
        again, as it is (``Outbox.key_probe``), to learn whether central holds the key: a
        receipt for it proves so and sends the others again (``Outbox.mark_receipted``);
        refused as forged again, it stays awaiting (``_on_message`` says so once). Called
        while connected only: a probe is never lost to a broker that is away."""
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + KEY_PROBE_S
        message = self.outbox.key_probe(self._key.public_key())
        if message is None:
            return
        assert self._client is not None
        info = self._client.publish(message.topic, message.payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.debug("key probe %s not sent: %s", message.id, info.rc)
            return
        self._inflight[info.mid] = _InFlight(message.id, now, probe=True)
        self._probe = message.id
        self._key_probes += 1
        log.debug("violation %s, awaiting this node's key, sent again to check", message.id)

    def _record_acks(self) -> None:
        """Record the broker's and central's acknowledgements. Those the outbox cannot
        take yet (its disk full) are kept for a later turn, on the same connection: they
        are known, so nothing is published again for want of writing them down."""
        try:
            if self._acked:
                self.outbox.mark_published(self._acked)
                self._published += len(self._acked)
                self._acked = []
            if self._resent_acked:
                self.outbox.mark_resent(self._resent_acked)
                self._resent_acked = []
            # Refusals before receipts: one refused as forged, signed with the node's key,
            # is kept awaiting that key, and a receipt taken in the same turn for a newer
            # one signed with it then sends it again (recorded after, it would wait for
            # the next such receipt). A receipt still outweighs a refusal of the same event.
            if self._refusals:
                # (one forged but signed with the node's key is kept awaiting that key)
                self._refused += self.outbox.mark_refused(
                    self._refusals, own_keys=[self._key.public_key()]
                )
                self._refusals = []
            if self._receipts:
                self._receipted += self.outbox.mark_receipted(self._receipts)
                self._receipts = []
        except Exception as exc:
            if not is_disk_full(exc):
                raise  # (any other fault: the turn starts over on a new connection)
            if not self._unrecorded:
                log.warning("acknowledgements kept in memory until the outbox takes them: %s", exc)
            self._unrecorded = True
            return
        if self._unrecorded:
            log.info("acknowledgements recorded again")
            self._unrecorded = False

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        retention = self.config.outbox.receipted_retention_s
        self._next_prune = now + min(60.0, max(1.0, retention))
        events = blobs = 0
        with _unless_disk_full("receipted events not pruned this time"):
            events, blobs = self.outbox.prune_receipted(retention)
        if events or blobs:
            log.info("pruned %d receipted event(s) and %d blob record(s)", events, blobs)

    def _new_session(self) -> None:
        """A new position in the order of the node's statuses, after every earlier one, also
        one of an earlier run of the node (kept in the outbox) when the clock was set back
        since: a session begun before the one central holds would have every status of the
        connection refused as replayed, the node shown silent while it works. One more
        than ``SESSION_AHEAD_KEPT`` ahead of the clock is not followed: the clock was that
        far ahead and has been put right (central refused those statuses as from the
        future, so holds none of that session), and following it would leave the node's
        statuses refused so until the clock caught up."""
        now = datetime.now(UTC)
        last = self._session_at if self._session_at is not None else self._stored_session()
        if last is not None and last - now > SESSION_AHEAD_KEPT:
            log.warning(
                "the last status session began %s, ahead of the clock (%s): the clock was"
                " put right since; the next begins now",
                last.isoformat(), now.isoformat(),
            )  # fmt: skip
            last = None
        self._session_at = now if last is None or now > last else last + timedelta(microseconds=1)
        self._sequence = 0
        try:  # (not kept: this run still orders its statuses; the connection goes ahead)
            self.outbox.record_status_session(self._session_at)
        except sqlite3.Error as exc:
            log.warning("the status session not kept in the outbox: %s", exc)

    def _stored_session(self) -> datetime | None:
        try:
            return self.outbox.status_session()
        except (sqlite3.Error, ValueError) as exc:  # (the clock alone, then)
            log.warning("the last status session in the outbox cannot be read: %s", exc)
            return None

    def _status(self, state: NodeState, *, will: bool = False) -> NodeStatus:
        """The node's status now, signed with the node key, at its position in the session
        (``will``: the last will, which comes first)."""
        if self._session_at is None:
            self._new_session()
        if not will:
            self._sequence += 1
        stats = self.outbox.stats() if state is NodeState.ONLINE else None
        oldest = stats.oldest_unreceipted_created_at if stats else None
        status = NodeStatus(
            site=self.config.site,
            node=self.config.node,
            state=state,
            sent_at=datetime.now(UTC),
            software_version=self._software_version,
            config_version=self._config_version,
            config_error=self._config_error,
            cameras=list(self._cameras()) if stats else [],
            disk_free_bytes=self.outbox.disk_free_bytes() if stats else None,
            disk_used_fraction=stats.used_fraction if stats else None,
            outbox_depth=stats.pending if stats else 0,
            awaiting_receipt=stats.awaiting_receipt if stats else 0,
            awaiting_key=stats.refused_awaiting_key if stats else 0,
            oldest_unacked_age_s=max(0.0, time.time() - oldest) if oldest else None,
            session_started_at=self._session_at,
            sequence=0 if will else self._sequence,
        )
        return sign(status, self._key)

    def _publish_status(self, state: NodeState) -> mqtt.MQTTMessageInfo | None:
        self._next_status = time.monotonic() + self.config.status_interval_s
        if self._client is None:
            return None
        payload = to_wire(self._status(state))
        return self._client.publish(self._status_topic, payload, qos=1, retain=True)

    def _maybe_publish_status(self) -> None:
        if time.monotonic() >= self._next_status:
            self._publish_status(NodeState.ONLINE)

    def _shutdown(self) -> None:
        client = self._client
        if client is not None and self._connected.is_set() and client.socket() is not None:
            info = self._publish_status(NodeState.OFFLINE)
            deadline = time.monotonic() + 2.0
            while (
                info is not None
                and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
                and client.socket() is not None
                and not info.is_published()
                and time.monotonic() < deadline
            ):
                client.loop(timeout=0.05)
            self._record_acks()
            client.disconnect()
            client.loop(timeout=0.05)
        self._drop_client()
        pending = self.outbox.stats().pending
        if pending:
            log.warning("stopped with %d message(s) still pending in the outbox", pending)

    # ------------------------------------------------------- paho callbacks
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            if self._refused_said == str(reason):
                log.debug("broker refused the connection: %s", reason)
                return
            # Once for the refusal, with what to check: a wrong password is the site file
            # or the broker's files, which only the technician can put right.
            self._refused_said = str(reason)
            self._outage_since = self._outage_since or time.monotonic()
            broker = self.config.broker
            log.error(
                "broker %s:%d refused the connection of %s: %s; check delivery.broker's"
                " username and password (as `central node add` gave them) and that the"
                " broker's passwd and acl are those `central broker-files` wrote since the"
                " node was added; trying again (events wait in the outbox)",
                broker.host, broker.port, broker.username or "(no user name)", reason,
            )  # fmt: skip
            return
        self._connects += 1
        self._accepted = True
        self._unreachable_said = False
        self._refused_said = ""
        if self._outage_since:
            # (at the outage's level: else its warning stayed the log's last word on it)
            log.warning(
                "connected to the broker again after %.0f s; what waited in the outbox is sent now",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = 0.0
        else:
            log.info("connected to the broker (session present: %s)", flags.session_present)
        self._connected.set()
        client.subscribe(self._receipt_topic, qos=1)
        if self.on_config is not None:
            # Retained: the config in force arrives on every (re)connect; the same version
            # again changes nothing.
            client.subscribe(self._config_topic, qos=1)
        if self.on_signal is not None:
            client.subscribe(self._signal_filter, qos=0)
        self._publish_status(NodeState.ONLINE)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            self._disconnects += 1
            self._outage_since = self._outage_since or time.monotonic()
            log.warning("disconnected from the broker: %s", reason)
        # Messages without PUBACK stay pending in the outbox and go again on reconnect.
        self._inflight.clear()
        self._connected.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        flight = self._inflight.pop(mid, None)
        if flight is None or flight.probe:  # (a probe's row stays as it is: refused)
            return
        (self._resent_acked if flight.resend else self._acked).append(flight.message_id)

    def _take_signal(self, topic: str, payload: bytes) -> None:
        """A signal controller's message: to ``on_signal`` when it is for this node and
        the camera its topic names."""
        if self.on_signal is None:
            return
        try:
            where = parse_topic(topic)
            phase = parse_payload(SignalPhase, payload)
            # (the subscription takes only this node's topics)
            if (phase.site, phase.node, phase.camera) != (where.site, where.node, where.camera):
                raise ContractError(f"it names {phase.site}/{phase.node}/{phase.camera}")
            if phase.source is not SignalSource.CONTROLLER:
                raise ContractError(f"its source is {phase.source.value}, not a controller")
        except (ContractError, TopicError) as exc:
            self._signals_refused += 1
            if self._signals_said.due(topic):  # (a controller sends every second)
                log.warning("ignored a signal message on %s: %s", topic, exc)
            return
        self._signals += 1
        try:
            self.on_signal(phase)
        except Exception:
            log.exception("handling a signal message on %s failed", topic)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._config_topic and self.on_config is not None:
            try:
                self.on_config(bytes(message.payload))
            except Exception:
                log.exception("handling a pushed config failed; the config in force stays")
            return
        if message.topic.endswith("/" + CameraTopic.SIGNAL.value):
            self._take_signal(message.topic, bytes(message.payload))
            return
        if message.topic != self._receipt_topic:
            return
        payload = bytes(message.payload)
        batch: ReceiptBatch | RefusalBatch
        try:
            batch = parse_payload(ReceiptBatch, payload)
        except ContractError as exc:
            try:  # (central's final refusals come on the same topic)
                batch = parse_payload(RefusalBatch, payload)
            except ContractError:
                log.warning("ignored a malformed receipt batch: %s", exc)
                return
        if (batch.site, batch.node) != (self.config.site, self.config.node):
            log.warning("ignored receipts addressed to %s/%s", batch.site, batch.node)
            return
        if isinstance(batch, ReceiptBatch):
            self._receipts.extend(r.event_id for r in batch.receipts)
            if self._probe in self._receipts:
                self._probe = None  # (the proof: the outbox sends the others again)
            return
        for refusal in batch.refused:
            if refusal.event_id == self._probe and refusal.code is RefusalCode.FORGED:
                # Once a period, and no cause for alarm: the key is not registered yet.
                self._probe = None
                log.info(
                    "central still lacks this node's key: violation %s, awaiting it and sent"
                    " again to check, was refused as forged again; the violations awaiting"
                    " the key wait for its registration on central (next check in %.0f s;"
                    " see `roadwatch edge outbox`)",
                    refusal.event_id, max(0.0, self._next_probe - time.monotonic()),
                )  # fmt: skip
                continue
            log.warning(
                "central refused event %s (%s: %s): kept in the outbox as refused, not sent"
                " again, unless it is signed with this node's own key central lacks, when it"
                " awaits that key's registration (see `roadwatch edge outbox`)",
                refusal.event_id, refusal.code.value, refusal.reason,
            )  # fmt: skip
        self._refusals.extend(batch.refused)
