"""Enforcement on one camera: tracked frames -> road-plane points and speeds -> rules ->
plates and evidence packages, plus per-minute traffic flow and the scene-integrity guard.

``CameraEnforcement.on_frame`` is fed every tracked frame of its camera in order and
returns the evidence packages finished by then (a package waits until the ring holds the
frames after the decisive moment; with a ``build_pool`` it is built beside the pipeline
and returned once done, at a later frame or by ``collect``). Each violation's event is
handed to ``on_fired`` as its rule finds it, so that it can be recorded before its
evidence exists; one whose evidence cannot be built comes back as its event without
evidence, saying why, so that no violation found is ever lost. Plates are read only for vehicles
that broke a rule, from the frames around the decisive moment: reading every vehicle on
every frame would cost far more CPU and add nothing to the evidence.

The places of fined no-stopping stops are handed to ``on_places`` (where set: in a live
run) whenever they change, a new one at once and a later sighting at most every
``PLACES_EVERY_S``, so that the node can keep them across a restart and seed the next
start's rule with them (``restore_places``). Frames of another size than the scene's
pause enforcement; the rules start afresh when they come at its size again, seeded with
the places fined before the pause in the same way.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from calibration.projector import RoadProjector
from calibration.speed import GroundSample, SampleWindow, SpeedConfig, estimate_speeds
from edge.detections import Detections, ObjectClass, vehicle_class
from edge.device_batch import host_image
from edge.evidence.clip import ClipError
from edge.evidence.overlay import Box
from edge.evidence.package import EvidenceBuilder, EvidenceError, EvidencePackage, EvidenceRequest
from edge.evidence.ring import BufferedFrame, EvidenceRing, FrameCodecError
from edge.integrity import IntegrityBounds, IntegrityGuard, ReferenceView, ViewVerdict
from edge.rules.calibrated import image_to_world
from edge.rules.engine import RuleSet
from edge.rules.geometry import Point
from edge.rules.no_stopping import FinedPlace, NoStoppingRule
from edge.rules.plane import SceneGeometry
from edge.rules.scene import SceneConfig
from edge.rules.signal import SignalState, lamp_region, lamp_strengths
from edge.rules.tracks import ImageBox, TrackFrame, Violation, WorldTrackPoint
from edge.scene_overlaps import scene_warnings
from edge.sources import Frame
from edge.traffic_stats import LaneObservation, TrafficAggregator
from roadwatch.contract import (
    CameraState,
    PlateReading,
    SignalPhase,
    TrafficStats,
    VehicleClass,
    ViolationEvent,
    ViolationType,
)

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
PlateRead = Callable[[Sequence[Image]], tuple[PlateReading, Image | None]]
"""Reads a vehicle's plate from crops of several frames: the voted reading and best crop."""

# Speed: a box's bottom edge errs by about 5 % of the box height (measured on generated
# scenes, see calibration.speed_eval); contact points are picked with 1 px error.
SPEED_CONFIG = SpeedConfig(pixel_sigma_px=1.0, box_edge_sigma=0.05)
TRACK_HISTORY_S = 6.0
# A camera with no reference view yet (dark or capped at start) is tried this often: the
# rules run unguarded until then, and each try searches the whole frame for features.
REFERENCE_RETRY_S = 1.0
PLATE_FRAMES = 6
# How long the end of a run waits for the evidence still being built; what is not built
# by then is stored without evidence.
EVIDENCE_WAIT_S = 300.0
# A box this close to the frame's edge is a vehicle cut by it: its plate may be cut too,
# and a cut plate reads as another, valid one (84P-919.01 as 84P-9190).
EDGE_MARGIN_PX = 2.0
# How often the fined no-stopping places are handed on while only their vehicles' last
# sightings change (a new place goes at once): a kill loses at most this much of a
# sighting, against the minutes (``same_stop_gap_s``) a place is kept after it.
PLACES_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class SeenBox:
    mono_s: float
    box: tuple[float, float, float, float]


def plate_views(
    boxes: Sequence[SeenBox], decisive_mono_s: float, width: int, height: int
) -> list[SeenBox]:
    """The views of a vehicle to read its plate from, best first: of the frames nearest
    the decisive moment, the largest views of the whole vehicle; none cut by the frame."""
    whole = [
        b
        for b in boxes
        if b.box[0] > EDGE_MARGIN_PX
        and b.box[1] > EDGE_MARGIN_PX
        and b.box[2] < width - EDGE_MARGIN_PX
        and b.box[3] < height - EDGE_MARGIN_PX
    ]
    near = sorted(whole, key=lambda b: abs(b.mono_s - decisive_mono_s))[: PLATE_FRAMES * 2]
    near.sort(key=lambda b: (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
    return list(reversed(near[-PLATE_FRAMES:]))


@dataclass(slots=True)
class _Track:
    samples: SampleWindow = field(default_factory=lambda: SampleWindow(SPEED_CONFIG.max_window_s))
    boxes: deque[SeenBox] = field(default_factory=deque)
    last_t: float = 0.0


@dataclass(frozen=True, slots=True)
class _Pending:
    violation: Violation
    event: ViolationEvent  # unsigned, as recorded when the rule fired (no plate yet)
    decisive_mono_s: float
    ready_mono_s: float
    boxes: tuple[SeenBox, ...]
    lamp_box: Box | None


@dataclass
class EnforcementCounters:
    frames: int = 0
    violations: int = 0
    packages: int = 0
    evidence_failures: int = 0
    paused_frames: int = 0


def _clamped(rect: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = rect
    return max(0, x0), max(0, y0), x1, y1


class CameraEnforcement:
    """One camera's rules, signal state, plates, evidence and traffic statistics."""

    def __init__(
        self,
        *,
        site: str,
        node: str,
        camera: str,
        scene: SceneConfig,
        projector: RoadProjector | None,
        ring: EvidenceRing,
        builder: EvidenceBuilder,
        model_version: str,
        read_plate: PlateRead | None = None,
        guard: IntegrityGuard | None = None,
        guard_bounds: IntegrityBounds | None = None,
        guard_every_s: float = 5.0,
        place: str | None = None,
        persons_as_riders: bool = False,
        frame_offset_s: float = 1.0,
        clip_half_s: float = 3.0,
    ) -> None:
        if scene.camera != camera:
            raise ValueError(f"scene is for camera {scene.camera!r}, not {camera!r}")
        self.site, self.node, self.camera = site, node, camera
        self.scene = scene
        self.projector = projector
        to_world = image_to_world(projector) if projector is not None else None
        self.geometry = SceneGeometry(scene, to_world)
        self._tracks: dict[int, _Track] = {}
        self._start_over()  # the rules and the lamps' states, no tracks yet
        for rule, why in self.rules.unavailable.items():
            log.info("camera %s: rule %s is off: %s", camera, rule.value, why)
        for warning in scene_warnings(self.geometry):
            log.warning("camera %s, scene %s: %s", camera, scene.version, warning)
        self._lamp_heads = [h for h in scene.signal_heads if h.lamps() is not None]
        self._lamp_regions = [(h, _clamped(lamp_region(h))) for h in self._lamp_heads]
        self.ring = ring
        self.builder = builder
        self.model_version = model_version
        self.read_plate = read_plate
        self.guard = guard
        # Without a stored reference view, the first frame that shows enough of the scene
        # becomes the reference.
        self._guard_bounds = guard_bounds if guard is None else None
        self.guard_every_s = guard_every_s
        self._guard_due = -float("inf")
        self._reference_missed = False  # the reference view was tried and not taken yet
        self.place = place
        self.persons_as_riders = persons_as_riders
        self.frame_offset_s = frame_offset_s
        self.clip_half_s = clip_half_s
        self.traffic = TrafficAggregator(
            site=site, node=node, camera=camera, lanes=[lane.id for lane in scene.lanes]
        )
        self._pending: list[_Pending] = []
        # After a stop: frames only complete the evidence of the violations found before
        # it (and count traffic); the rules look for no new one.
        self.closing = False
        # Evidence being built by ``build_pool`` (live runs): the pipeline thread only
        # hands the work over and collects what is done at its next frames.
        self.build_pool: Executor | None = None
        self.on_built: Callable[[Future[EvidencePackage]], None] | None = None  # from a builder
        self._building: list[tuple[Future[EvidencePackage], _Pending]] = []
        self.counters = EnforcementCounters()
        # Set while the camera's frames are not the size its scene was drawn for: every
        # line and zone would be in the wrong place, so nothing is enforced or counted.
        self.size_mismatch: str | None = None
        self._last_t: float | None = None  # the time of the last frame seen
        self.listeners: list[Callable[[Violation], None]] = []
        """Called with each violation as the rules find it (before its evidence exists)."""
        self.on_fired: Callable[[ViolationEvent], None] | None = None
        """Called with each violation's event (unsigned, no evidence) as the rules find it,
        to record it durably: its package, or the event without evidence, follows."""
        self.on_places: Callable[[str, tuple[FinedPlace, ...]], None] | None = None
        """Called with the camera's id and its fined no-stopping places when they change
        (right after a new one's violation is recorded; a later sighting at most every
        ``PLACES_EVERY_S``), to keep them across a restart."""
        self._places_told: tuple[FinedPlace, ...] = ()  # (what ``on_places`` last got)
        self._places_due = -float("inf")

    # -- health -----------------------------------------------------------------------

    @property
    def enforcing(self) -> bool:
        return self.size_mismatch is None and (self.guard is None or self.guard.enforcing)

    def health_override(self) -> tuple[CameraState, str] | None:
        """The state the camera's health should show while enforcement is paused (frames
        of another size than the scene's, or the integrity guard)."""
        if self.size_mismatch is not None:
            return CameraState.PAUSED, f"enforcement paused: {self.size_mismatch}"
        if self.guard is None or self.guard.enforcing:
            return None
        last = self.guard.last
        shifted = last is not None and last.verdict is ViewVerdict.SHIFTED
        state = CameraState.VIEW_SHIFTED if shifted else CameraState.PAUSED
        return state, f"enforcement paused: {self.guard.reason}"

    def health_note(self) -> str | None:
        """What the health of a camera that is up should say (from any thread): the signal
        heads only a controller reports that have no fresh message, where red light is
        not enforced."""
        t = self._last_t
        if t is None:
            return None
        silent = sorted(h for h, s in self.signals.items() if s.silent(t))
        if not silent:
            return None
        return (
            f"no fresh signal controller message for head {', '.join(silent)}: red light "
            "is not enforced at its stop lines"
        )

    # -- a new configuration ----------------------------------------------------------

    def take_over(self, old: CameraEnforcement) -> list[TrafficStats]:
        """Continue from ``old`` (this camera's enforcement under the previous config).

        Kept: the frame ring, the integrity guard while the image size stays, the
        violations waiting for their after-frames (they get their evidence as before), the
        counters, the signal heads whose id and lamp settings are unchanged, the traffic
        minute when the lanes are the same (else, the latest minute sent), and which
        tracks each rule has fined (and the places of fined stops, which go on being
        handed to ``on_places``), so no vehicle in view is fined twice for one act.
        Started afresh: the tracks' road-plane history and the rules' other state, since
        they belong to the old scene and calibration.
        Returns the traffic minute closed early because the lanes changed.
        """
        if old.camera != self.camera:
            raise ValueError(f"camera {self.camera} cannot take over camera {old.camera}")
        self.ring = old.ring
        if old.scene.image_size == self.scene.image_size:
            self.guard, self._guard_bounds, self._guard_due = (
                old.guard, old._guard_bounds, old._guard_due,
            )  # fmt: skip
        # (else the guard starts afresh: a view of another resolution is not comparable)
        self._reference_missed = old._reference_missed
        self._pending = old._pending
        self._building, self.build_pool = old._building, old.build_pool
        self.on_built, self.on_fired = old.on_built, old.on_fired
        self.on_places = old.on_places
        self._places_told, self._places_due = old._places_told, old._places_due
        self.counters = old.counters
        self.rules.carry_fired(old.rules)
        if old.scene.lamp == self.scene.lamp:
            # (a head whose lamp rectangles changed, or were added or taken away, starts
            # afresh: its state was read from, or waited for, what is no longer there)
            before = {h.id: h.lamps() for h in old.scene.signal_heads}
            for head in self.scene.signal_heads:
                if head.id in old.signals and before.get(head.id) == head.lamps():
                    self.signals[head.id] = old.signals[head.id]
        if old.traffic.lanes == self.traffic.lanes:
            self.traffic = old.traffic
            return []
        closed = old.traffic.flush()
        # (the minutes sent under the old lanes, if counted again after a clock set back,
        # are parts: whole, they would take the keys of those sent and be dropped)
        self.traffic.note_sent(old.traffic.sent_up_to)
        return closed

    # -- fined no-stopping places, across a restart ------------------------------------

    def restore_places(self, places: Iterable[FinedPlace], now: float) -> int:
        """Seed the camera's no-stopping rule with the places of stops fined before this
        enforcement began (kept by a process before this one), at ``now`` on the frames'
        clock; how many it took. None where the rule does not run (no zones, turned off);
        those of another image size or too old are left (``NoStoppingRule.seed``)."""
        rule = self._no_stopping
        if rule is None:
            return 0
        taken = rule.seed(places, now)
        self._places_told = rule.fined_places()
        if taken:
            log.info("camera %s: %d fined no-stopping place(s) kept from before the start",
                     self.camera, taken)  # fmt: skip
        return taken

    def _tell_places(self, mono_s: float | None) -> None:
        """Hand the fined no-stopping places to ``on_places`` when they changed: a new one
        at once, later sightings and places let go at most every ``PLACES_EVERY_S`` of
        ``mono_s`` (None: at once). With no such rule (a scene without zones) there are
        none, so a push that takes the zones away lets the places go."""
        if self.on_places is None:
            return
        rule = self._no_stopping
        places = rule.fined_places() if rule is not None else ()
        if places == self._places_told:
            return
        if mono_s is not None and mono_s < self._places_due:
            told = {p.px for p in self._places_told}
            if all(p.px in told for p in places):
                return
        self.on_places(self.camera, places)
        self._places_told = places
        if mono_s is not None:
            self._places_due = mono_s + PLACES_EVERY_S

    # -- signal controller ------------------------------------------------------------

    def on_controller(self, message: SignalPhase, t: float) -> str | None:
        """A signal controller's message for one of this camera's signal heads, taken
        before a frame of time ``t`` (on the pipeline's thread); why not, when it is not."""
        state = self.signals.get(message.head)
        if state is None:
            return "no such signal head in the camera's scene"
        if not state.on_controller(message, t):
            return (
                f"sent more than controller_ttl_s ({self.scene.lamp.controller_ttl_s:g} s) "
                "away from the frames' time (the controller's clock or a late delivery)"
            )
        return None

    # -- per frame --------------------------------------------------------------------

    def on_frame(
        self,
        *,
        index: int,
        mono_s: float,
        captured_at: datetime,
        frame: Frame,
        tracks: Detections,
    ) -> tuple[list[EvidencePackage], list[TrafficStats]]:
        """Account one tracked frame; the packages finished by now and the traffic minutes
        it completed.

        The frame's picture is taken to the host (``frame.image``) only by the parts that
        need it: a JPEG ring and the integrity check every few seconds; the lamp check
        takes only the signal head's rectangle."""
        self.counters.frames += 1
        t = captured_at.timestamp()
        if not self._frame_fits(frame, t):
            self.counters.paused_frames += 1
            return self._build_ready(mono_s), []
        self._last_t = t
        self.ring.push_frame(index, mono_s, captured_at, frame)
        if self.guard is None and self._guard_bounds is not None:
            if mono_s >= self._guard_due:  # (a dark or blank picture: tried again later)
                self._take_reference(frame, mono_s, self._guard_bounds)
        elif self.guard is not None and mono_s >= self._guard_due:
            self._guard_due = mono_s + self.guard_every_s
            was = self.guard.enforcing
            if self.guard.update(frame.image) != was:
                log.warning("camera %s: %s", self.camera, self.guard.reason)
        for head, (x0, y0, x1, y1) in self._lamp_regions:
            # Only the lamps' rectangle leaves the GPU (a frame on the host is only sliced).
            patch = host_image(frame.pixels[y0:y1, x0:x1])
            self.signals[head.id].on_lamp(t, lamp_strengths(patch, head, origin=(x0, y0)))

        points = self._points(t, mono_s, tracks)
        traffic = self.traffic.add_frame(captured_at, self._lane_observations(points))
        if self.enforcing and not self.closing:
            for violation in self.rules.update(TrackFrame(t, tuple(points)), self.signals):
                self._queue(violation, t, mono_s)
            self._tell_places(mono_s)  # (after the violations are recorded)
        elif not self.closing:
            self.counters.paused_frames += 1
        self._forget(t)
        return self._build_ready(mono_s), traffic

    def finish(
        self, wait_s: float = EVIDENCE_WAIT_S
    ) -> tuple[list[EvidencePackage], list[TrafficStats]]:
        """At the end of a stream: the packages that can still be built (waiting up to
        ``wait_s`` for those being built), the last minute. The fined places as they are
        now go to ``on_places``."""
        self._tell_places(None)
        packages = self._build_ready(float("inf"), wait_s=wait_s)
        if self._building:
            self.counters.evidence_failures += len(self._building)
            log.error(
                "camera %s: %d evidence packages were still being built after %g s; the "
                "violations are stored without evidence",
                self.camera, len(self._building), wait_s,
            )  # fmt: skip
            why = f"its evidence was still being built {wait_s:g} s after the camera stopped"
            packages += [self.builder.without_evidence(p.event, why) for _, p in self._building]
            self._building = []
        return packages, self.traffic.flush()

    def retire(self) -> tuple[list[EvidencePackage], list[TrafficStats]]:
        """Enforcement ends on this camera (a new configuration): the packages ready or
        built by now, and the last minute; ``collect`` returns the rest as they finish.
        The fined places as they are now go to ``on_places`` (for a scene given again, or
        the next start)."""
        self._tell_places(None)
        return self._build_ready(float("inf")), self.traffic.flush()

    def collect(self) -> list[EvidencePackage]:
        """The packages that finished being built since the last look."""
        return self._build_ready(float("-inf"))

    @property
    def building(self) -> int:
        """Packages being built beside the pipeline."""
        return len(self._building)

    @property
    def awaiting_frames(self) -> int:
        """Violations whose clip still waits for the frames after them."""
        return len(self._pending)

    # -- internals --------------------------------------------------------------------

    def _frame_fits(self, frame: Frame, t: float) -> bool:
        """Whether the frame (of time ``t``) is the size the scene was drawn for (said once
        per change). Back to that size, the rules start afresh (the gap in what was seen
        ends every stop and track under way), but with the fined no-stopping places, as a
        node started again takes them (``NoStoppingRule.seed``): a car parked through the
        gap is not fined again."""
        height, width = frame.pixels.shape[:2]
        size = self.scene.image_size
        if (width, height) == (size.width, size.height):
            if self.size_mismatch is not None:
                log.warning("camera %s: frames are %dx%d again; enforcing", self.camera,
                            width, height)  # fmt: skip
                self.size_mismatch = None
                rule = self._no_stopping
                places = rule.fined_places() if rule is not None else ()
                self._start_over()
                if self._no_stopping is not None:
                    self._no_stopping.seed(places, t)
            return True
        reason = (
            f"frames are {width}x{height} but the scene is drawn for {size.width}x{size.height}"
        )
        if reason != self.size_mismatch:
            log.error("camera %s: %s; nothing is enforced", self.camera, reason)
            self.size_mismatch = reason
        return False

    def _start_over(self) -> None:
        """No tracks, fresh rule states, lamps unknown until seen: at the start, and after a
        gap in what was seen, so a track's last point or a red phase from before the gap
        cannot decide a case after it."""
        self.rules = RuleSet(self.geometry)
        self._no_stopping: NoStoppingRule | None = next(
            (r for r in self.rules.rules if isinstance(r, NoStoppingRule)), None
        )
        self.signals = {
            h.id: SignalState(h.id, self.scene.lamp, lamps=h.lamps() is not None)
            for h in self.scene.signal_heads
        }
        self._tracks.clear()

    def _take_reference(self, frame: Frame, mono_s: float, bounds: IntegrityBounds) -> None:
        """The guard's reference view from this frame; without enough of the scene in it,
        tried again a second later (said once, not at every frame)."""
        try:
            reference = ReferenceView.from_frame(frame.image)
        except ValueError as exc:
            retry_s = min(self.guard_every_s, REFERENCE_RETRY_S)
            self._guard_due = mono_s + retry_s
            if not self._reference_missed:
                log.warning(
                    "camera %s: no reference view yet: %s; trying again every %g s",
                    self.camera, exc, retry_s,
                )  # fmt: skip
            self._reference_missed = True
            return
        self.guard, self._guard_bounds = IntegrityGuard(reference, bounds), None
        self._guard_due = mono_s + self.guard_every_s
        if self._reference_missed:
            log.info("camera %s: reference view taken", self.camera)

    def _class_of(self, object_class: ObjectClass) -> VehicleClass | None:
        kind = vehicle_class(object_class)
        if kind is None and self.persons_as_riders and object_class is ObjectClass.PERSON:
            # From behind or above, a rider is often all the detector sees of a two-wheeler.
            return VehicleClass.MOTORCYCLE
        return kind

    def _points(self, t: float, mono_s: float, tracks: Detections) -> list[WorldTrackPoint]:
        if tracks.tracker_id is None or len(tracks) == 0:
            return []
        xyxy = np.asarray(tracks.xyxy, dtype=np.float64)
        ground = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2.0, xyxy[:, 3]])
        world = self.projector.to_world(ground) if self.projector is not None else None
        # Off the road plane (on or above the horizon): no world point, no speed sample.
        on_road = (
            np.isfinite(world[:, 0]) & np.isfinite(world[:, 1])
            if world is not None
            else np.zeros(len(xyxy), dtype=bool)
        )
        seen: list[tuple[int, VehicleClass, ImageBox, Point, Point | None]] = []
        samples: list[npt.NDArray[np.float64]] = []  # of the tracks seen on the road
        rows = zip(
            tracks.class_id.tolist(), tracks.tracker_id.tolist(), tracks.low_rows.tolist(),
            strict=True,
        )  # fmt: skip
        for i, (cls, tid, low) in enumerate(rows):
            kind = self._class_of(ObjectClass(cls))
            if kind is None:
                continue
            x0, y0, x1, y1 = (float(v) for v in xyxy[i])
            track = self._tracks.setdefault(tid, _Track())
            track.last_t = t
            track.boxes.append(SeenBox(mono_s, (x0, y0, x1, y1)))
            while track.boxes and track.boxes[0].mono_s < mono_s - TRACK_HISTORY_S:
                track.boxes.popleft()
            ground_px = Point(float(ground[i, 0]), float(ground[i, 1]))
            at_world: Point | None = None
            if world is not None and on_road[i]:
                at_world = Point(float(world[i, 0]), float(world[i, 1]))
                if not low:  # (a low-score box's place is not sure enough to time it)
                    track.samples.add(GroundSample(t, (ground_px.x, ground_px.y), y1 - y0))
                samples.append(track.samples.rows)
            seen.append((tid, kind, ImageBox(x0, y0, x1, y1), ground_px, at_world))
        # All of the frame's tracks in one pass: a busy road costs little more than one.
        speeds = iter(
            estimate_speeds(samples, self.projector, SPEED_CONFIG)
            if samples and self.projector is not None
            else []
        )
        points = []
        for tid, kind, box, ground_px, at_world in seen:
            speed = next(speeds) if at_world is not None else None
            points.append(
                WorldTrackPoint(
                    track_id=tid,
                    t=t,
                    vehicle_class=kind,
                    box=box,
                    ground_px=ground_px,
                    world=at_world,
                    speed_kmh=speed.speed_kmh if speed is not None else None,
                    speed_uncertainty_kmh=speed.uncertainty_kmh if speed is not None else None,
                )
            )
        return points

    def _lane_observations(self, points: list[WorldTrackPoint]) -> list[LaneObservation]:
        out = []
        for p in points:
            lane = self.geometry.lane_at(p)
            if lane is not None:
                out.append(LaneObservation(lane.id, p.track_id, p.vehicle_class, p.speed_kmh))
        return out

    def _queue(self, violation: Violation, t: float, mono_s: float) -> None:
        self.counters.violations += 1
        for listener in self.listeners:
            listener(violation)
        decisive = mono_s - (t - violation.t)
        track = self._tracks.get(violation.track_id)
        boxes = tuple(track.boxes) if track is not None else ()
        lamp_box: Box | None = None
        lane = self.geometry.lane_by_id(violation.lane) if violation.lane else None
        if violation.rule is ViolationType.RED_LIGHT and lane is not None:
            # The whole signal head: the crop shows which lamp was lit.
            head = next((h for h in self._lamp_heads if h.id == lane.config.signal_head), None)
            if head is not None:
                lamp_box = Box(*lamp_region(head))
        ready = decisive + max(self.frame_offset_s, self.clip_half_s)
        event = violation.to_event(
            site=self.site, node=self.node, model_version=self.model_version, place=self.place
        )
        self._pending.append(_Pending(violation, event, decisive, ready, boxes, lamp_box))
        log.info("camera %s: %s", self.camera, violation.explanation)
        if self.on_fired is not None:
            self.on_fired(event)

    def _build_ready(self, mono_s: float, *, wait_s: float = 0.0) -> list[EvidencePackage]:
        """The packages whose after-frames have arrived by ``mono_s``: built here, or, with
        a ``build_pool``, handed to it and returned once built (waiting up to ``wait_s``
        for those still being built)."""
        ready = [p for p in self._pending if p.ready_mono_s <= mono_s]
        self._pending = [p for p in self._pending if p.ready_mono_s > mono_s]
        outcomes: list[tuple[Callable[[], EvidencePackage], _Pending]]
        if self.build_pool is not None:
            for pending in ready:
                future = self.build_pool.submit(self._package, pending)
                if self.on_built is not None:
                    future.add_done_callback(self.on_built)
                self._building.append((future, pending))
            done, _ = futures_wait([f for f, _ in self._building], timeout=wait_s)
            outcomes = [(f.result, p) for f, p in self._building if f in done]
            self._building = [(f, p) for f, p in self._building if f not in done]
        else:
            outcomes = [(functools.partial(self._package, p), p) for p in ready]
        packages = []
        for outcome, pending in outcomes:
            try:
                packages.append(outcome())
                self.counters.packages += 1
                continue
            except (EvidenceError, ClipError, FrameCodecError) as exc:
                why = f"its evidence could not be built: {exc}"
                log.error(
                    "camera %s: no evidence for %s of track %d: %s",
                    self.camera, pending.violation.rule.value, pending.violation.track_id, exc,
                )  # fmt: skip
            except Exception as exc:  # a fault in building one case must not stop the cameras
                why = f"building its evidence failed ({type(exc).__name__})"
                log.exception(
                    "camera %s: building the evidence for %s of track %d failed",
                    self.camera, pending.violation.rule.value, pending.violation.track_id,
                )  # fmt: skip
            # Counted, and stored without evidence: reviewed (and rejected), never lost.
            self.counters.evidence_failures += 1
            packages.append(self.builder.without_evidence(pending.event, why))
        return packages

    def _package(self, pending: _Pending) -> EvidencePackage:
        if not pending.boxes:
            raise EvidenceError("the track's boxes were forgotten before its evidence was built")
        at = min(pending.boxes, key=lambda b: abs(b.mono_s - pending.decisive_mono_s))
        # One look into the ring serves the plate and the package (a ring that keeps the
        # stream decodes once); plate frames outside the clip are fetched on their own.
        t = pending.decisive_mono_s
        frames = self.ring.window(t - self.clip_half_s, t + self.clip_half_s)
        plate, plate_crop = self._plate(pending, frames)
        request = EvidenceRequest(
            event=pending.event.model_copy(update={"plate": plate}),
            decisive_mono_s=pending.decisive_mono_s,
            vehicle_box=Box(*at.box),
            lamp_box=pending.lamp_box,
            plate_crop=plate_crop,
            frame_offset_s=self.frame_offset_s,
            clip_half_s=self.clip_half_s,
        )
        return self.builder.build(self.ring, request, frames=frames)

    def _plate(
        self, pending: _Pending, frames: Sequence[BufferedFrame]
    ) -> tuple[PlateReading | None, Image | None]:
        if self.read_plate is None:
            return None, None
        # The largest views of the vehicle near the decisive moment show the plate best.
        size = self.scene.image_size
        chosen = plate_views(pending.boxes, pending.decisive_mono_s, size.width, size.height)
        crops: list[Image] = []
        held = {f.mono_s: f for f in frames}
        if missing := [b.mono_s for b in chosen if b.mono_s not in held]:
            held.update((f.mono_s, f) for f in self.ring.frames_at(missing))
        for seen in chosen:
            if (buffered := held.get(seen.mono_s)) is None:
                continue
            image = buffered.image()
            h, w = image.shape[:2]
            x0, y0 = max(0, int(seen.box[0])), max(0, int(seen.box[1]))
            x1, y1 = min(w, int(np.ceil(seen.box[2]))), min(h, int(np.ceil(seen.box[3])))
            if x1 - x0 >= 8 and y1 - y0 >= 8:
                crops.append(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if not crops:
            return None, None
        return self.read_plate(crops)

    def _forget(self, t: float) -> None:
        horizon = t - max(TRACK_HISTORY_S, self.scene.rules.forget_after_s)
        waiting = {p.violation.track_id for p in self._pending}
        for tid in [k for k, v in self._tracks.items() if v.last_t < horizon]:
            if tid not in waiting:
                del self._tracks[tid]
