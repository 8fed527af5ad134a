"""A whole edge node: cameras -> perception -> enforcement -> delivery.

``EdgeNode.from_config`` builds every part from the site configuration: one
``CameraEnforcement`` per camera that has a scene, the delivery service when the
configuration has a ``delivery`` section, the plate reader when plates are on. The
perception pipeline calls ``on_tracked`` for every tracked frame; violations become signed
evidence packages stored in the outbox before anything is sent.

A violation is recorded in the outbox the moment its rule finds it, before the frames
that follow it (its evidence) have come: a power cut or a kill while its evidence is
built leaves that record, and the next start stores it as an event without evidence.

Each camera's traffic counting begins after the latest minute the outbox holds of it
(``traffic_sent``): a node that ran with its clock fast and is started with it set back
counts the minutes it comes back to as parts, which the outbox stores beside those it
holds (counted whole, they would take their keys and be dropped).

In a live run each camera's no-stopping rule starts with the places of the stops fined
before the start (``stored_places``), so that a car parked through a restart (a power
cut, an update, a watchdog) is not fined again a dwell after it: the outbox keeps each
camera's places, written right after a new one's violation is recorded and at most every
few seconds as its vehicle is seen standing on (``CameraEnforcement.on_places``), and the
next start maps them through the camera's calibration as it is then. Only live runs keep
and take them: their frames are on the node's clock (UTC wall time), as the places'
times are. A recording (``run_file``) runs on a clock of its own (from its start time,
or now) and shows other vehicles than the street does now: it neither takes the places
nor keeps its own.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from calibration.config import CalibrationFile
from calibration.errors import CalibrationError
from calibration.projector import RoadProjector, require_calibration
from calibration.store import load_calibration
from edge.config import CameraConfig, SiteConfig
from edge.config_apply import CentralKeys, ConfigApplier, startup_config
from edge.config_push import AppliedConfig
from edge.delivery_config import EvidenceSettings
from edge.delivery_service import DeliveryService, check_tls_files, load_node_key
from edge.enforcement import EVIDENCE_WAIT_S, CameraEnforcement, Image, PlateRead
from edge.evidence.package import EvidenceBuilder, EvidencePackage, without_evidence
from edge.evidence.packets import PacketRing
from edge.evidence.ring import FrameRing
from edge.integrity import IntegrityBounds, IntegrityGuard, ReferenceView
from edge.nvdec import PacketSink
from edge.outbox import OutboxFullError
from edge.pipeline import (
    DetectorPool,
    LivePipeline,
    RunSummary,
    StopSignal,
    TrackedFrame,
    check_sources,
    end_hung_process,
    process_file,
)
from edge.rules.no_stopping import FinedPlace
from edge.rules.scene import SceneConfig, load_scene
from edge.sources import probe_file
from roadwatch.contract import (
    CameraHealth,
    PlateReading,
    SignalPhase,
    TrafficStats,
    ViolationEvent,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key
from roadwatch.errors import UserError
from roadwatch.said_once import SaidOnce

if TYPE_CHECKING:
    from edge.workers import Workers

log = logging.getLogger(__name__)

EVIDENCE_BUILDERS = 2  # threads that build evidence packages during a live run
# Signal controller messages waiting for their cameras' next frames: a controller sends a
# few a second per head, so this holds seconds of them; the oldest go first when full.
MAX_SIGNALS = 1024
# How far ahead of the node's clock a controller's message may be stamped (the two clocks
# keep NTP time; a message further ahead comes from a clock that is wrong).
SIGNAL_AHEAD_S = 2.0
# At a stop, the cameras run on this long past the clip's after half, at most, for the
# frames after the violations found just before it (a camera's latency, a slow frame).
AFTER_FRAMES_GRACE_S = 2.0

Forward = Callable[[list[EvidencePackage], list[TrafficStats]], None]
FiredTo = Callable[[ViolationEvent], None]
PlacesTo = Callable[[str, tuple[FinedPlace, ...]], None]


def packaged_plate_reader() -> PlateRead:
    """Plate reading with the OCR models that ship in the rapidocr wheel, voted over crops."""
    from edge.plates.reader import PlateReader
    from edge.plates.vote import PlateVote

    reader = PlateReader.from_packaged_models()

    def read(crops: Sequence[Image]) -> tuple[PlateReading, Image | None]:
        vote = PlateVote()
        for crop in crops:
            vote.add(reader.read(crop))
        result = vote.result()
        return result.reading, result.crop

    return read


@dataclass(frozen=True)
class CameraFiles:
    """What a camera's enforcement takes from its files, read and checked once: its
    scene, the projector of its calibration (checked valid when the node read it) and its
    reference view. Worker processes build from these, never from the files or the clock,
    so every process runs exactly what the node checked, even if a file changes or a
    calibration expires meanwhile (as a camera in the node's own process runs on)."""

    scene: SceneConfig
    projector: RoadProjector | None = None
    reference: ReferenceView | None = None


def read_camera_files(config: SiteConfig, at: datetime) -> dict[str, CameraFiles]:
    """The files of every enabled camera with a scene, calibrations checked valid at
    ``at`` (UserError names one that cannot be used)."""
    out: dict[str, CameraFiles] = {}
    for cam in _enforced(config):
        assert cam.scene is not None
        scene = load_scene(cam.scene)
        if scene.camera != cam.id:
            raise UserError(
                f"{cam.scene}: the scene is for camera {scene.camera!r}, not {cam.id!r}"
            )
        projector = None
        if cam.calibration is not None:
            projector = scene_projector(scene, cam.scene, cam.calibration, at)
        reference = None
        if config.integrity.enabled and cam.reference_view is not None:
            reference = _reference_view(cam.reference_view)
            height, width = reference.shape
            if (width, height) != (scene.image_size.width, scene.image_size.height):
                raise UserError(
                    f"{cam.reference_view}: the reference view is {width}x{height}, the scene"
                    f" {cam.scene.name} for {scene.image_size.width}x{scene.image_size.height}"
                )
        out[cam.id] = CameraFiles(scene, projector, reference)
    for cam in config.cameras:
        if cam.enabled and cam.scene is None:
            _warn_unused_files(cam, at)
    return out


def check_site_files(config: SiteConfig, at: datetime) -> list[str]:
    """Check, as a start does before it opens the outbox, the files the node's own file
    names (central's config key, the node key, the TLS files, each camera's scene,
    calibration and reference view, and the scene as its calibration places it on the
    road); UserError names the first that cannot be used. The
    ids of the cameras whose rules would run."""
    push_settings = config.delivery.config_push if config.delivery else None
    if push_settings is not None:
        CentralKeys.load(push_settings.central_keys)
    if config.delivery is not None:
        load_node_key(config.delivery)
        check_tls_files(config.delivery)
    files = read_camera_files(config, at)
    # The scene placed on the road by the calibration, as the start places it (a line
    # drawn above the calibration's horizon is refused there).
    from edge.rules.calibrated import image_to_world
    from edge.rules.plane import SceneGeometry
    from edge.rules.scene import SceneError

    scenes = {cam.id: cam.scene for cam in config.cameras}
    for camera, read in files.items():
        to_world = image_to_world(read.projector) if read.projector is not None else None
        try:
            SceneGeometry(read.scene, to_world)
        except SceneError as exc:  # (one of several cameras' files: name it)
            raise SceneError(f"{scenes[camera]}: {exc}") from None
    return list(files)


def scene_projector(
    scene: SceneConfig, scene_path: Path, calibration_path: Path, at: datetime
) -> RoadProjector:
    """The road projector of a camera's calibration file, refused (``UserError``) when it is
    for another camera or picture size than the scene, or not valid at ``at``."""
    calibration: CalibrationFile = load_calibration(calibration_path)
    size = (scene.image_size.width, scene.image_size.height)
    if tuple(calibration.image_size) != size:
        raise UserError(
            f"{calibration_path}: the calibration is for"
            f" {calibration.image_size[0]}x{calibration.image_size[1]}, the scene"
            f" {scene_path.name} for {size[0]}x{size[1]}"
        )
    try:
        return require_calibration(calibration, scene.camera, at)
    except CalibrationError as exc:  # (one of several cameras' files: name it)
        raise type(exc)(f"{calibration_path}: {exc}") from None


def _warn_unused_files(cam: CameraConfig, at: datetime) -> None:
    """Say that a camera without a scene ignores its calibration and reference view (only
    the scene's rules use them), and what is wrong with the calibration, so that a broken
    file is known before a scene is added."""
    if cam.calibration is not None:
        try:
            require_calibration(load_calibration(cam.calibration), cam.id, at)
            problem = ""
        except UserError as exc:
            problem = f"; it cannot be used as it is: {exc}"
        log.warning(
            "camera %s has a calibration (%s) but no scene: no rules run, so it is not used%s",
            cam.id,
            cam.calibration,
            problem,
        )
    if cam.reference_view is not None:
        log.warning(
            "camera %s has a reference view (%s) but no scene: the integrity guard watches"
            " only cameras whose rules run",
            cam.id,
            cam.reference_view,
        )


def _enforced(config: SiteConfig) -> list[CameraConfig]:
    """The cameras whose rules run: enabled, with a scene."""
    return [cam for cam in config.cameras if cam.scene is not None and cam.enabled]


@dataclass(frozen=True)
class Prepared:
    """A configuration's enforcement per camera, built and checked, and the files it was
    built from (see ``EdgeNode.prepare``)."""

    enforcement: dict[str, CameraEnforcement]
    files: dict[str, CameraFiles]


@dataclass
class NodeCounters:
    stored: int = 0  # evidence packages stored in the outbox
    not_stored: int = 0  # violations the full outbox could not take (each logged)
    traffic_minutes: int = 0
    traffic_dropped: int = 0  # minutes the full outbox could not take


@dataclass
class EdgeNode:
    config: SiteConfig
    enforcement: dict[str, CameraEnforcement]
    delivery: DeliveryService | None
    violations_out: TextIO | None = None
    counters: NodeCounters = field(default_factory=NodeCounters)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _readers: Callable[[], Sequence[CameraHealth]] = tuple
    _parts: _NodeParts | None = None
    # Enforcement of a new configuration, per camera, waiting for that camera's next frame
    # (None: the camera's enforcement ends).
    _next: dict[str, CameraEnforcement | None] = field(default_factory=dict)
    config_applier: ConfigApplier | None = None
    # Live runs: where evidence is built, and cameras whose enforcement ended while some
    # of their evidence was still being built.
    _build_pool: Executor | None = None
    _retiring: list[CameraEnforcement] = field(default_factory=list)
    _built: threading.Event = field(default_factory=threading.Event)
    # A worker process's node hands what it delivers to this (see ``for_worker``), and
    # each violation as its rule finds it to ``forward_fired``.
    forward: Forward | None = None
    forward_fired: FiredTo | None = None
    # ... and each camera's fined no-stopping places, as they change, to this.
    forward_places: PlacesTo | None = None
    # The worker processes that run the cameras, when ``processes`` is above 1.
    _workers: Workers | None = None
    # On NVDEC: where each camera's capture hands its packets (the rings that keep them).
    _streams: dict[str, PacketSink] | None = None
    # The files the configuration in force was built from (what workers build from).
    files: dict[str, CameraFiles] = field(default_factory=dict)
    # Per camera, the latest traffic minute sent before its counting began (by a process
    # before this one, read from the outbox at the start; by the camera's enforcement
    # before a push ended it): its minutes up to it are counted as parts, so that a clock
    # set back (across a restart) does not count whole minutes the outbox already holds.
    traffic_sent: dict[str, datetime] = field(default_factory=dict)
    # A worker's: per camera, the fined no-stopping places the node's outbox held at the
    # worker's start (a worker opens no outbox).
    places_told: dict[str, list[FinedPlace]] = field(default_factory=dict)
    # Set in a live run: each camera's fined places are taken as it starts and kept.
    _keeping_places: bool = False
    # Set at a live run's stop: its cameras' frames only complete the evidence of the
    # violations found before it (a camera's enforcement replaced meanwhile too).
    _closing: bool = False
    _places_unkept: SaidOnce = field(default_factory=SaidOnce)  # (written every few seconds)
    # Told when a live run's loop has been stuck for ``PIPELINE_HUNG_S``: ends the process.
    on_hung: Callable[[float], None] = end_hung_process
    # Signal controllers' messages, from the publisher's thread, for the cameras' next frames.
    _signals: deque[SignalPhase] = field(default_factory=lambda: deque(maxlen=MAX_SIGNALS))
    _signals_refused: SaidOnce = field(default_factory=SaidOnce)  # (a controller sends often)
    _signals_ahead: SaidOnce = field(default_factory=SaidOnce)  # (on the publisher's thread)

    @classmethod
    def from_config(
        cls,
        config: SiteConfig,
        *,
        model_version: str,
        now: datetime | None = None,
        violations_out: TextIO | None = None,
        read_plate: PlateRead | None = None,
        config_dir: Path | None = None,
    ) -> EdgeNode:
        """Everything the node needs, checked before any camera is opened.

        With ``config_dir`` (the folder of the node's configuration file) and a
        ``delivery.config_push`` section, the node runs the config central last pushed
        (when it still fits the file) and applies new pushes while it runs."""
        at = now or datetime.now(UTC)
        push_settings = config.delivery.config_push if config.delivery else None
        applied: AppliedConfig | None = None
        stored_error: str | None = None
        local = config
        central_keys: CentralKeys | None = None
        if push_settings is not None and config_dir is not None:
            central_keys = CentralKeys.load(push_settings.central_keys)
            config, applied, stored_error = startup_config(config, config_dir)
        # Everything that can refuse the start is checked before the outbox is opened (it
        # is created on first open): a start refused for a missing scene or key leaves no
        # outbox folder and database behind.
        if config.delivery is not None:
            key = load_node_key(config.delivery)
            check_tls_files(config.delivery)
        else:
            key = generate_private_key()

        def parts_for(config: SiteConfig) -> _NodeParts:
            # (with workers, each reads its own cameras' plates)
            plate = _plate_reader(config, read_plate) if config.processes == 1 else read_plate
            return _NodeParts(key=key, model_version=model_version, read_plate=plate)

        parts = parts_for(config)
        try:
            built = parts.enforcement(config, at)
        except (UserError, OSError) as exc:
            if config is local:
                raise
            # The stored push no longer builds (a calibration it carried has expired since,
            # say): the node's own file runs, and its status says why, as for a stored push
            # that does not fit. Central cannot push a fix to a node that does not start.
            stored_error = f"stored config {config.version} not used: {exc}"
            log.warning("%s", stored_error)
            config, applied = local, AppliedConfig(local.version)
            parts = parts_for(config)
            built = parts.enforcement(config, at)
        health = _HealthSource()
        delivery = (
            DeliveryService.from_config(
                config.delivery, cameras=health, config_version=config.version, key=key
            )
            if config.delivery
            else None
        )
        if delivery is None and built.enforcement:
            log.warning("no delivery section: violations are logged and kept local only")
        node = cls(
            config, built.enforcement, delivery, violations_out, _parts=parts, files=built.files
        )
        for camera in node.enforcement.values():
            camera.on_fired = node._record_fired
        node._count_traffic_after(node.stored_traffic(c.id for c in config.cameras if c.enabled))
        health.node = node
        if delivery is not None and push_settings is not None and config_dir is not None:
            assert applied is not None and central_keys is not None
            publisher = delivery.publisher
            publisher.set_config_state(applied.version, stored_error)
            applier = ConfigApplier(
                node,
                push_settings,
                base=config_dir,
                applied=applied,
                report=publisher.set_config_state,
                central_keys=central_keys,
            )
            publisher.on_config = applier.handle
            node.config_applier = applier
        if delivery is not None:
            delivery.publisher.on_signal = node.on_signal
        return node

    @classmethod
    def for_worker(
        cls,
        config: SiteConfig,
        *,
        key: Ed25519PrivateKey,
        model_version: str,
        forward: Forward,
        forward_fired: FiredTo,
        files: dict[str, CameraFiles],
        read_plate: PlateRead | None = None,
        now: datetime | None = None,
        traffic_sent: Mapping[str, datetime] | None = None,
        forward_places: PlacesTo | None = None,
        fined_places: Mapping[str, Sequence[FinedPlace]] | None = None,
    ) -> EdgeNode:
        """The cameras of one worker process (``config`` holds only them; see
        ``edge.workers``): enforcement as in the node, built from the ``files`` the node
        read, evidence signed with the node's ``key``, and what it would deliver handed to
        ``forward`` instead (each violation, as its rule finds it, to ``forward_fired``).
        ``traffic_sent``: the latest traffic minute per camera the node's outbox held when
        the worker started (the outbox is the node's: a worker opens none); likewise
        ``fined_places``, its no-stopping places, which the cameras start with in a live
        run and hand, as they change, to ``forward_places``."""
        parts = _NodeParts(key, model_version, _plate_reader(config, read_plate))
        built = parts.enforcement(config, now or datetime.now(UTC), files)
        node = cls(
            config, built.enforcement, None, _parts=parts, forward=forward,
            forward_fired=forward_fired, files=built.files, forward_places=forward_places,
            places_told={c: list(p) for c, p in (fined_places or {}).items()},
        )  # fmt: skip
        for camera in node.enforcement.values():
            camera.on_fired = node._record_fired
        node._count_traffic_after(traffic_sent or {})
        return node

    # -- traffic minutes sent before ----------------------------------------------------

    def stored_traffic(self, cameras: Iterable[str]) -> dict[str, datetime]:
        """The latest traffic minute the outbox holds of each of ``cameras`` (those it
        holds any of); none without delivery (nothing is stored)."""
        if self.delivery is None:
            return {}
        outbox, site, node = self.delivery.outbox, self.config.site, self.config.node
        found = {c: outbox.latest_traffic_minute(site, node, c) for c in cameras}
        return {c: minute for c, minute in found.items() if minute is not None}

    def _count_traffic_after(self, sent: Mapping[str, datetime]) -> None:
        """Each camera's counting begins after the minutes ``sent`` before this process."""
        self.traffic_sent = dict(sent)
        for cam_id, camera in self.enforcement.items():
            camera.traffic.note_sent(self.traffic_sent.get(cam_id))

    # -- fined no-stopping places kept before -------------------------------------------

    def stored_places(self, cameras: Iterable[str]) -> dict[str, list[FinedPlace]]:
        """The fined no-stopping places the outbox holds of each of ``cameras`` (those it
        holds any of); none without delivery (nothing is kept)."""
        if self.delivery is None:
            return {}
        outbox, site, node = self.delivery.outbox, self.config.site, self.config.node
        found = {c: outbox.fined_places(site, node, c) for c in cameras}
        return {c: places for c, places in found.items() if places}

    def _places_before(self, cameras: Iterable[str]) -> dict[str, list[FinedPlace]]:
        """Per camera, the places kept before this process: in the outbox, or as the node
        told this worker at its start."""
        if self.forward is not None:  # a worker's
            return {c: self.places_told[c] for c in cameras if c in self.places_told}
        return self.stored_places(cameras)

    def _prune_places(self) -> None:
        """At a live start: the outbox lets go the fined places of the cameras this node
        no longer has (a camera is removed by a restart: a push cannot remove one). One
        the disk refuses is logged; the node starts."""
        if self.delivery is None:
            return
        cameras = [cam.id for cam in self.config.cameras]
        try:
            gone = self.delivery.outbox.prune_fined_places(
                self.config.site, self.config.node, cameras
            )
        except (sqlite3.Error, OSError) as exc:
            log.error("the fined no-stopping places of removed cameras not let go: %s", exc)
            return
        if gone:
            log.info("%d fined no-stopping place(s) of cameras no longer configured let go", gone)

    def _keep_places(self, camera: str, enforcement: CameraEnforcement) -> None:
        """A live run's camera: its rule starts with the places kept before, and hands on
        its own as they change."""
        places = self._places_before([camera]).get(camera, [])
        enforcement.restore_places(places, time.time())  # (the frames' clock: UTC wall time)
        enforcement.on_places = self._record_places

    def _record_places(self, camera: str, places: tuple[FinedPlace, ...]) -> None:
        """A camera's fined places as they are now, kept in the outbox for the next start
        (a worker's go to the node's process). One the disk refuses is logged; the
        cameras go on."""
        if self.forward_places is not None:
            self.places_told[camera] = list(places)  # (for its scene given again by a push)
            self.forward_places(camera, places)
            return
        if self.delivery is None:
            return
        try:
            self.delivery.outbox.put_fined_places(
                self.config.site, self.config.node, camera, places
            )
        except (OutboxFullError, sqlite3.Error, OSError) as exc:
            if self._places_unkept.due(camera):
                log.error(
                    "camera %s: its fined no-stopping places not kept (%s): after a restart "
                    "a vehicle still standing there would be fined again", camera, exc,
                )  # fmt: skip

    # -- a new configuration ------------------------------------------------------------

    def prepare(
        self,
        config: SiteConfig,
        *,
        now: datetime | None = None,
        files: dict[str, CameraFiles] | None = None,
    ) -> Prepared:
        """Each camera's enforcement under ``config``, built and checked from its files (or
        from ``files`` already read); a scene or calibration that cannot be used raises
        UserError, and nothing changes."""
        if self._parts is None:
            raise RuntimeError("this node was not built by from_config")
        if config.processes == 1:
            self._parts.read_plate = _plate_reader(config, self._parts.read_plate)
        return self._parts.enforcement(config, now or datetime.now(UTC), files)

    def reconfigure(self, config: SiteConfig, built: Prepared) -> None:
        """Take ``config`` without a restart (``built`` from ``prepare``): each camera
        switches to its new enforcement at its next frame. Only the live fields may
        differ from the running configuration (see ``edge.config_push``)."""
        with self._lock:
            self.config, self.files = config, built.files
            if self._workers is not None:  # each worker builds and switches its own
                self._workers.reconfigure(config, built.files)
            else:
                for cam in config.cameras:
                    self._next[cam.id] = built.enforcement.get(cam.id)
        log.info("config %s taken; each camera switches at its next frame", config.version)

    def _switch(self, camera: str) -> None:
        """At a frame boundary of ``camera``: hand over to the enforcement of a new config."""
        with self._lock:
            if camera not in self._next:
                return
            new = self._next.pop(camera)
        old = self.enforcement.get(camera)
        traffic: list[TrafficStats] = []
        packages: list[EvidencePackage] = []
        if new is not None and old is not None:
            traffic = new.take_over(old)
        elif old is not None:
            # Enforcement off: what is ready now; the rest as it is built, at later frames.
            packages, traffic = old.retire()
            if old.building:
                self._retiring.append(old)
            if (sent := old.traffic.sent_up_to) is not None:  # (for a scene given again)
                self.traffic_sent[camera] = sent
        if new is not None and old is None:  # a camera that gained a scene
            new.build_pool, new.on_built = self._build_pool, self._note_built
            new.on_fired = self._record_fired
            new.traffic.note_sent(self.traffic_sent.get(camera))
            if self._keeping_places:  # (those it kept before it lost its scene, say)
                self._keep_places(camera, new)
            if self._streams is not None:  # its ring keeps the stream, as at a start
                self._keep_stream(camera, new)
        if new is None:
            self.enforcement.pop(camera, None)
            if self._streams is not None:
                self._streams.pop(camera, None)  # its packets are no longer kept
        else:
            new.closing = self._closing
            self.enforcement[camera] = new
        self._deliver(packages, traffic)

    # -- frames -----------------------------------------------------------------------

    def on_signal(self, message: SignalPhase, now: datetime | None = None) -> None:
        """A signal controller's message (from any thread): its camera's enforcement takes
        it before that camera's next frame. One stamped ahead of this node's clock by more
        than ``SIGNAL_AHEAD_S`` is refused: it would stand as fresh, and every message
        after it as older, until the node's clock caught up."""
        ahead = (message.sent_at - (now or datetime.now(UTC))).total_seconds()
        if ahead > SIGNAL_AHEAD_S:
            if self._signals_ahead.due((message.camera, message.head)):
                log.warning(
                    "signal %s/%s: refused a message stamped %.1f s ahead of this node's "
                    "clock (is the controller's clock right?)", message.camera, message.head,
                    ahead,
                )  # fmt: skip
            return
        if self._workers is not None:
            self._workers.signal(message)
            return
        self._signals.append(message)

    def _take_signals(self, at: datetime) -> None:
        """The controllers' messages, before a frame of time ``at``."""
        while self._signals:
            message = self._signals.popleft()
            camera = self.enforcement.get(message.camera)
            why = (
                "no camera of that id is enforced"
                if camera is None
                else camera.on_controller(message, at.timestamp())
            )
            if why is None:
                continue
            said = (message.camera, message.head, why)
            if self._signals_refused.due(said):
                log.warning("signal messages for camera %s, head %s: %s; ignored", *said)

    def on_tracked(
        self, item: TrackedFrame, *, mono_s: float | None = None, at: datetime | None = None
    ) -> None:
        """One tracked frame of a camera (times default to the frame's own)."""
        if self._next:
            self._switch(item.frame.camera)
        if self._signals:
            self._take_signals(item.frame.captured_at if at is None else at)
        if self._built.is_set():  # evidence finished beside the pipeline: deliver it now
            self._built.clear()
            for other in [*self.enforcement.values(), *self._retiring]:
                if other.building:
                    self._deliver(other.collect(), [])
            self._retiring = [r for r in self._retiring if r.building]
        camera = self.enforcement.get(item.frame.camera)
        if camera is None:
            return
        packages, traffic = camera.on_frame(
            index=item.frame.index,
            mono_s=item.frame.monotonic if mono_s is None else mono_s,
            captured_at=item.frame.captured_at if at is None else at,
            frame=item.frame,
            tracks=item.tracks,
        )
        self._deliver(packages, traffic)

    def finish(self, wait_s: float = EVIDENCE_WAIT_S) -> None:
        """End of the streams: build what evidence can still be built (evidence still being
        built is waited for up to ``wait_s`` in all, then given up), close the minutes."""
        deadline = time.monotonic() + wait_s
        for camera in [*self.enforcement.values(), *self._retiring]:
            packages, traffic = camera.finish(max(0.0, deadline - time.monotonic()))
            self._deliver(packages, traffic)
        self._retiring.clear()

    def _record_fired(self, event: ViolationEvent) -> None:
        """A violation as its rule finds it, recorded in the outbox before its evidence is
        built (see ``edge.outbox``). A record the disk refuses is logged; the violation
        goes on being built and stored as usual."""
        if self.forward_fired is not None:  # a worker's: the node's process records it
            self.forward_fired(event)
            return
        if self.delivery is None:
            return
        try:
            self.delivery.outbox.put_fired(event)
        except (OutboxFullError, sqlite3.Error, OSError) as exc:
            log.error("violation %s: not recorded before its evidence: %s", event.event_id, exc)

    def _lost_in_worker(self, events: list[ViolationEvent]) -> None:
        """Violations a worker found and did not deliver before it ended (killed, or
        crashed): stored without evidence, which was lost with the worker."""
        if self._parts is None:
            raise RuntimeError("this node was not built by from_config")
        why = "the worker process building its evidence ended before it was stored"
        log.error("%d violation(s) stored without evidence: %s", len(events), why)
        self._deliver([without_evidence(e, why, self._parts.key) for e in events], [])

    def _deliver(self, packages: list[EvidencePackage], traffic: list[TrafficStats]) -> None:
        if self.forward is not None:  # a worker's: the node's process delivers
            if packages or traffic:
                self.forward(packages, traffic)
            return
        with self._lock:
            for package in packages:
                # Stored first: the outbox keeps it, the --violations file is a copy. A full
                # outbox is counted (logged with the event id) and the cameras go on, as the
                # next violation may fit once delivery has freed room; any other fault of
                # the outbox ends the run, so that the next start stores what was found.
                if self.delivery is not None:
                    try:
                        self.delivery.submit(package)
                    except OutboxFullError:
                        self.counters.not_stored += 1
                    else:
                        self.counters.stored += 1
                if self.violations_out is not None:
                    try:
                        self.violations_out.write(to_wire(package.event).decode("utf-8") + "\n")
                        self.violations_out.flush()
                    except OSError as exc:
                        log.error(
                            "violation %s: not written to --violations (%s)",
                            package.event.event_id,
                            exc,
                        )
            for stats in traffic:
                self.counters.traffic_minutes += 1
                if self.delivery is not None and not self.delivery.submit_traffic(stats):
                    self.counters.traffic_dropped += 1

    @property
    def workers(self) -> Workers | None:
        """The worker processes that run the cameras (during and after a run with them)."""
        return self._workers

    @property
    def violations(self) -> int:
        """Violations the rules found on every camera."""
        # A copy of the cameras: a push may switch one meanwhile (on the pipeline thread).
        found = sum(c.counters.violations for c in list(self.enforcement.values()))
        return found + (self._workers.violations if self._workers is not None else 0)

    @property
    def packages(self) -> int:
        """Evidence packages built (a violation without frames has none)."""
        built = sum(c.counters.packages for c in list(self.enforcement.values()))
        return built + (self._workers.packages if self._workers is not None else 0)

    # -- health -----------------------------------------------------------------------

    def health(self) -> list[CameraHealth]:
        """Camera health from the readers, with the integrity guard's pauses applied and
        each camera's place (as the configuration in force has it: a push may change it)."""
        places = {cam.id: cam.place for cam in self.config.cameras if cam.place}
        out = []
        for health in self._readers():
            if (place := places.get(health.camera)) is not None:
                health = health.model_copy(update={"place": place})
            camera = self.enforcement.get(health.camera)
            override = camera.health_override() if camera is not None else None
            if override is not None and health.state.value == "up":
                state, reason = override
                health = health.model_copy(update={"state": state, "reason": reason})
            elif health.state.value == "up" and not health.reason:
                note = camera.health_note() if camera is not None else None
                if note is not None:  # (up, and said why red light is not enforced)
                    health = health.model_copy(update={"reason": note})
            out.append(health)
        return out

    # -- runs -------------------------------------------------------------------------

    def run_live(
        self,
        stop: threading.Event,
        detectors: DetectorPool | None = None,
        *,
        pipeline: LivePipeline | None = None,
        drain_s: float = 10.0,
        sinks: Sequence[Callable[[TrackedFrame], None]] = (),
        evidence_wait_s: float = EVIDENCE_WAIT_S,
    ) -> RunSummary:
        """All cameras until ``stop`` is set; delivery runs beside them. At the end, the
        evidence being built gets up to ``evidence_wait_s`` (what is not built by then is
        stored without evidence, as ``finish`` says) and the outbox up to ``drain_s`` to
        empty itself. ``sinks`` also see every tracked frame, after the node.

        With ``processes`` above 1 (and no ``pipeline`` given) the cameras run in worker
        processes (``edge.workers``) and this process delivers what they send."""
        self._prune_places()
        if self.config.processes > 1:
            if pipeline is not None or detectors is not None or sinks:
                raise ValueError("cameras in worker processes take no pipeline, detectors or sinks")
            return self._run_workers(stop, drain_s, evidence_wait_s)
        pipeline = pipeline or LivePipeline(self.config, detectors)
        self._keeping_places = True
        for cam_id, camera in self.enforcement.items():
            self._keep_places(cam_id, camera)
        self._readers = pipeline.health
        if pipeline.decoder == "nvdec":
            self.keep_streams(pipeline)
        # Evidence (plate reading, decoding from a stream ring, the clip) is built beside
        # the pipeline thread, which goes on with every camera's frames meanwhile.
        builders = ThreadPoolExecutor(EVIDENCE_BUILDERS, thread_name_prefix="evidence")
        self._build_pool = builders
        for camera in self.enforcement.values():
            camera.build_pool, camera.on_built = builders, self._note_built
        # A violation found just before the stop gets the frames after it: the cameras
        # run on until it has them (or the wait is up), not stored without evidence.
        after = AfterFrames(
            stop, self._awaiting_frames, after_frames_wait_s(self.config), self._close_cameras
        )
        with self._delivering(drain_s):
            try:
                # A loop stuck for minutes (a driver, the device) ends the process for
                # its service manager, or its node, to start it again.
                return pipeline.run(after, [self.on_tracked, *sinks], on_hung=self.on_hung)
            finally:
                try:
                    self.finish(evidence_wait_s)  # waits for the evidence being built
                finally:
                    # What is still being built was given up by finish (counted, logged).
                    builders.shutdown(wait=False, cancel_futures=True)
                    self._build_pool, self._streams = None, None
                    for camera in self.enforcement.values():
                        camera.build_pool = None

    def _awaiting_frames(self) -> int:
        return sum(c.awaiting_frames for c in self.enforcement.values())

    def _close_cameras(self) -> None:
        self._closing = True
        for camera in self.enforcement.values():
            camera.closing = True

    def _run_workers(
        self, stop: threading.Event, drain_s: float, evidence_wait_s: float
    ) -> RunSummary:
        from edge.workers import STOP_MARGIN_S, Workers

        if self._parts is None:
            raise RuntimeError("this node was not built by from_config")
        check_sources(self.config.cameras)
        with self._lock:  # a push now reaches the workers, never the configuration before
            workers = Workers(
                self.config, self._parts.key, self._parts.model_version, self._deliver,
                self.files, refused=self._worker_refused, fired=self._record_fired,
                lost=self._lost_in_worker, evidence_wait_s=evidence_wait_s,
                stop_wait_s=after_frames_wait_s(self.config) + evidence_wait_s + STOP_MARGIN_S,
                traffic_sent=self.stored_traffic,
                fined_places=self.stored_places, places=self._record_places,
            )  # fmt: skip
            # The workers enforce (this process built each camera's only to check them).
            self.enforcement, self._next, self._workers = {}, {}, workers
        self._readers = workers.health
        with self._delivering(drain_s):
            return workers.run(stop)

    def _worker_refused(self, version: str, why: str) -> None:
        """A worker runs on without config ``version``: central hears it in the node's
        status, beside the version the node took."""
        if self.config_applier is not None:
            in_force = self.config_applier.applied.version
            self.config_applier.report(in_force, f"config {version}: {why}"[:2000])

    @contextlib.contextmanager
    def _delivering(self, drain_s: float) -> Iterator[None]:
        """Delivery runs during a live run; after it, the outbox gets up to ``drain_s`` to
        empty itself."""
        if self.delivery is None:
            yield
            return
        self.delivery.start()
        try:
            yield
        finally:
            self.delivery.drain(drain_s)
            self.delivery.stop()

    def _note_built(self, _: object) -> None:
        self._built.set()  # from an evidence thread; the pipeline thread delivers

    def keep_streams(self, pipeline: LivePipeline) -> None:
        """Each enforced camera's ring keeps its compressed stream (packets from the NVDEC
        capture) instead of a JPEG of every frame; before the cameras start."""
        self._streams = pipeline.packet_sinks
        for cam_id, camera in self.enforcement.items():
            self._keep_stream(cam_id, camera)
        log.info("evidence rings keep the cameras' streams (%d cameras)", len(self.enforcement))

    def _keep_stream(self, cam_id: str, camera: CameraEnforcement) -> None:
        assert self._streams is not None
        camera.ring = camera_ring(PacketRing, cam_id, evidence_settings(self.config))
        self._streams[cam_id] = camera.ring

    def run_file(
        self,
        path: Path,
        *,
        sinks: Sequence[Callable[[TrackedFrame], None]] = (),
        stop: threading.Event | None = None,
        start: datetime | None = None,
        progress: Callable[[int, int, RunSummary], None] | None = None,
        detectors: DetectorPool | None = None,
    ) -> RunSummary:
        """A recording, every frame in order, on its own clock (``start`` + index / fps)."""
        if self.config.processes > 1:  # its plate reader was left to the workers
            raise ValueError("a recording runs in one process: build the node with processes 1")
        fps = probe_file(path).fps or 25.0
        t0 = start or datetime.now(UTC)

        def enforce(item: TrackedFrame) -> None:
            offset = item.frame.index / fps
            self.on_tracked(item, mono_s=offset, at=t0 + timedelta(seconds=offset))

        try:
            summary = process_file(
                path, self.config, [*sinks, enforce], detectors=detectors, stop=stop,
                progress=progress,
            )  # fmt: skip
        finally:
            self.finish()
        return summary


def _plate_reader(config: SiteConfig, loaded: PlateRead | None) -> PlateRead | None:
    """``loaded``, or the packaged reader where ``config`` reads plates and none is loaded."""
    if loaded is None and config.plates and any(c.scene for c in config.cameras):
        return packaged_plate_reader()
    return loaded


@dataclass
class _NodeParts:
    """What a camera's enforcement is built from besides the configuration."""

    key: Ed25519PrivateKey
    model_version: str
    read_plate: PlateRead | None

    def enforcement(
        self, config: SiteConfig, at: datetime, files: dict[str, CameraFiles] | None = None
    ) -> Prepared:
        """Enforcement for every enabled camera with a scene, checked before any is used;
        built from ``files`` where given, else from the files the configuration names."""
        settings = evidence_settings(config)
        if files is None:
            files = read_camera_files(config, at)
        out: dict[str, CameraEnforcement] = {}
        for cam in _enforced(config):
            read = files[cam.id]
            ring = camera_ring(FrameRing, cam.id, settings)
            builder = EvidenceBuilder(self.key, jpeg_quality=ring.jpeg_quality)
            bounds = IntegrityBounds(
                max_shift_px=config.integrity.max_shift_px, inertia=config.integrity.inertia
            )
            guard = None
            if config.integrity.enabled and read.reference is not None:
                guard = IntegrityGuard(read.reference, bounds)
            out[cam.id] = CameraEnforcement(
                site=config.site,
                node=config.node,
                camera=cam.id,
                scene=read.scene,
                projector=read.projector,
                ring=ring,
                builder=builder,
                model_version=self.model_version,
                read_plate=self.read_plate if config.plates else None,
                guard=guard,
                guard_bounds=bounds if config.integrity.enabled else None,
                guard_every_s=config.integrity.check_every_s,
                place=cam.place,
                persons_as_riders=cam.persons_as_riders,
                frame_offset_s=settings.frame_offset_s,
                clip_half_s=settings.clip_half_s,
            )
        return Prepared(out, {c: files[c] for c in out})


Ring = TypeVar("Ring", FrameRing, PacketRing)


def evidence_settings(config: SiteConfig) -> EvidenceSettings:
    """The evidence settings of ``config``'s delivery section, or their defaults (one set
    of defaults, whether or not the node delivers)."""
    return config.delivery.evidence if config.delivery else EvidenceSettings()


def after_frames_wait_s(config: SiteConfig) -> float:
    """How long a live run goes on past its stop, at most, for the frames after the
    violations found just before it."""
    settings = evidence_settings(config)
    return max(settings.frame_offset_s, settings.clip_half_s) + AFTER_FRAMES_GRACE_S


@dataclass
class AfterFrames:
    """A live run's stop: ``stop``, once no violation waits for the frames after it
    (``awaiting`` counts them), or ``wait_s`` after ``stop`` was set. ``closing`` is
    called when the stop is first seen: from then on the cameras' frames only complete
    the evidence of the violations found before it. One whose frames have not come within
    ``wait_s`` is built from those that did, or stored without evidence where none did.
    Asked by the pipeline's thread only."""

    stop: StopSignal
    awaiting: Callable[[], int]
    wait_s: float
    closing: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.monotonic
    _since: float | None = field(default=None, init=False)

    def is_set(self) -> bool:
        if not self.stop.is_set():
            return False
        if self._since is None:
            self.closing()
        waiting = self.awaiting()
        now = self.clock()
        if self._since is None:
            self._since = now
            if waiting:
                log.info(
                    "stopping: %d violations wait for the frames after them (up to %g s)",
                    waiting, self.wait_s,
                )  # fmt: skip
        if waiting and now - self._since >= self.wait_s:
            log.warning(
                "stopping: %d violations still lack the frames after them after %g s; they"
                " are stored with what the cameras gave", waiting, self.wait_s,
            )  # fmt: skip
            return True
        return not waiting


def camera_ring(kind: type[Ring], camera: str, settings: EvidenceSettings) -> Ring:
    """A camera's evidence ring of ``kind`` (JPEGs of its frames, or its compressed
    stream) with the configured limits."""
    return kind(
        camera,
        seconds=settings.ring_seconds,
        max_bytes=settings.ring_max_bytes,
        jpeg_quality=settings.jpeg_quality,
    )


class _HealthSource:
    """Camera health for the status messages, once the node and its cameras exist."""

    node: EdgeNode | None = None

    def __call__(self) -> Sequence[CameraHealth]:
        return self.node.health() if self.node is not None else ()


def _reference_view(path: Path) -> ReferenceView:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read the reference view {path}")
    try:
        return ReferenceView.from_frame(np.asarray(image, np.uint8))
    except ValueError as exc:
        raise UserError(f"reference view {path}: {exc}") from exc
