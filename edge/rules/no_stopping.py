"""No stopping: a vehicle stationary inside a no-stopping zone beyond the dwell time.

Stationary means the ground point stays within a small radius of where it stopped, so box
jitter neither resets nor fakes a stop; moving beyond the radius starts a new stop. A
vehicle that stopped inside a zone and stands on its edge keeps its stop while jitter
carries the ground point over the edge and back, as long as each absence from the zone is
no longer than ``max_gap_s``; one that stands outside is not made to stop inside by a
frame whose box jitters in. A vehicle standing across the border of two adjacent zones
keeps its stop as its point changes zone; it is allowed the longest dwell of the zones
it stood in, and the explanation names them all. A frame whose ground point is off the
road plane (no road position) neither ends nor extends a stop.

A stop is fined once. A vehicle hidden for a while (a bus stopping in front of it) comes
back to the tracker as a new track, which would stand its dwell again and be fined
again, at every such occlusion of a car parked for an hour. So the rule keeps each fined
stop's place (where the vehicle stood when fined) while its vehicle is seen standing
within twice the stationary radius of it (the fined track, or a track first seen near
it), and for ``same_stop_gap_s`` after the last such sighting. A track first seen within
four radii of a kept place (not seen arriving: a box half hidden at first lands a few
metres off), whose stop begins within two radii of it meanwhile, is the fined vehicle
come back: not fined again, and it stands for the place from then on, as do the
tracks taken for it before (a second box on it that comes and goes). A vehicle seen
arriving is never taken for the one fined there, however near and soon it stops (two
motorcycles side by side are each fined), and nothing the fined track's box does (a
passing bus hiding its wheels, or taking its id along) lets the place go.

A zone in force only at some hours: a vehicle fined there that stands on through the
hours the zone is out of force and on into its next hours is one stop, fined once (one
stop, one fine; it never moved away), whether the tracker follows it throughout or it is
hidden meanwhile and comes back under a new id: a track standing on a kept place keeps
it whether or not its zone is in force (``NoStoppingState.rest``), and is taken for the
fined vehicle when its stop begins there once the zone is in force again. A vehicle seen
arriving there meanwhile is another stop, fined in its turn.

Lenient side: a different vehicle that arrives wholly unseen (behind a bus) and is first
seen standing on a kept place is not fined; so is one that took the fined vehicle's
place while the node was down (a restart within ``same_stop_gap_s``, see below). Left as
it was: a fined vehicle seen again only after ``same_stop_gap_s``, or first seen more
than four radii off, is fined again (the reviewer sees the same vehicle on the same
place).

A pushed scene takes the fined places over when its image size is the same, mapped
again from their image points through its own calibration. So does a node started again
(a power cut, an update, a watchdog's restart): the rule gives its places out as plain
values (``fined_places``: image point, image size, last sighting) for the node to keep
on disk, and a new rule is seeded with them (``seed``), mapped again from the image
through its own calibration. A place seeded has no live track ids: a track first seen
near it whose stop begins near it is the vehicle fined there, as for a place whose fined
track was lost. Places of another image size, or last seen longer than
``same_stop_gap_s`` before the seeding, are not taken (a vehicle still there is fined
again, as one seen again that late); one last seen after it (the clock set back across
the restart) is taken as seen at it. Which runs keep and seed them is the node's choice
(live cameras only, whose frames are on its wall clock: see ``edge.node``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from edge.rules import vi
from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry, ZoneGeometry
from edge.rules.tracks import EvidenceTimes, TrackFrame, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType

# A vehicle standing this long on a fined stop's place keeps the place taken.
STANDING_S = 1.0
# How near a fined place (in stationary radii) a vehicle's stop is that place, and how
# near it the track must have been first seen to be taken for the vehicle fined there
# come back (not one seen arriving; a box half hidden at first lands a few metres off).
SAME_PLACE_RADII = 2.0
FIRST_SEEN_RADII = 4.0
# The most fined places kept (a camera's view holds far fewer vehicles standing), and
# the most tracks taken for one of them.
MAX_FINED = 256
MAX_TRACKS_PER_PLACE = 16


@dataclass(slots=True)
class FinedStop:
    """Where a vehicle stood when it was fined (in the rules' plane, and in the image),
    the tracks taken for it (the fined one, and each that came back there), and when it
    was last seen standing there."""

    at: Point
    px: Point
    track_ids: set[int]
    last_t: float


@dataclass(frozen=True, slots=True)
class FinedPlace:
    """A fined stop's place as kept beyond the rule's life (across a node's restart):
    where its vehicle stood in the image, the size of that image, and when (frame time)
    it was last seen standing there."""

    px: Point
    image_size: tuple[int, int]  # (width, height)
    last_t: float


@dataclass(slots=True)
class NoStoppingState:
    zone: ZoneGeometry | None = None  # of the stop under way, where it stood last
    zones: list[ZoneGeometry] = field(default_factory=list)  # every one it stood in
    anchor: Point | None = None
    since: float = 0.0
    last_in: float = 0.0
    first: Point | None = None  # where the track was first seen
    # Where it stands now, in a zone or not, in force or not, and since when: a vehicle
    # standing on a fined place keeps it through the hours its zone is out of force.
    rest: Point | None = None
    rest_since: float = 0.0


class NoStoppingRule(TrackRule[NoStoppingState]):
    rule = ViolationType.NO_STOPPING
    version = "no_stopping/9"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        if not scene.zones:
            raise RuleUnavailableError("no stopping needs at least one no-stopping zone")
        self._settings = scene.config.rules.no_stopping
        self._fined: list[FinedStop] = []
        # How near a fined place a stop is that place, and a track first seen is the
        # vehicle fined there come back (the scene's radius: fixed for the rule's life).
        self._reach = SAME_PLACE_RADII * scene.stationary_radius
        self._born = FIRST_SEEN_RADII * scene.stationary_radius

    def new_state(self) -> NoStoppingState:
        return NoStoppingState()

    def update(self, frame: TrackFrame, signals: Signals | None = None) -> list[Violation]:
        found = super().update(frame, signals)
        self._keep_fined(frame)
        return found

    def carry_fired(self, old: TrackRule[NoStoppingState]) -> None:
        super().carry_fired(old)
        if not isinstance(old, NoStoppingRule):
            return
        if old.scene.config.image_size != self.scene.config.image_size:
            return  # (image points of another picture: nothing to map again)
        for stop in old._fined:
            # (mapped again from the image: a new calibration moves the road plane's axes)
            at = self.scene.place(stop.px)
            if at is not None:
                self._fined.append(FinedStop(at, stop.px, set(stop.track_ids), stop.last_t))

    def fined_places(self) -> tuple[FinedPlace, ...]:
        """The places of fined stops kept now, oldest first as they were fined."""
        size = self.scene.config.image_size
        return tuple(
            FinedPlace(stop.px, (size.width, size.height), stop.last_t) for stop in self._fined
        )

    def seed(self, places: Iterable[FinedPlace], now: float) -> int:
        """Take up the places of stops fined before this rule began (kept across a node's
        restart), at time ``now`` on the frames' clock; how many were taken. Each is
        mapped again from its image point; with no live track ids, it stands for the
        vehicle fined there once a track first seen on it stops there. Not taken: one of
        another image size, off the road plane, or last seen more than
        ``same_stop_gap_s`` before ``now``; one last seen after ``now`` (a clock set back)
        is taken as seen at ``now``."""
        size = self.scene.config.image_size
        gap = self._settings.same_stop_gap_s
        taken = 0
        for place in places:
            if place.image_size != (size.width, size.height) or now - place.last_t > gap:
                continue
            at = self.scene.place(place.px)
            if at is None:
                continue
            self._fined.append(FinedStop(at, place.px, set(), min(place.last_t, now)))
            taken += 1
        if len(self._fined) > MAX_FINED:
            self._fined.sort(key=lambda stop: stop.last_t)
            del self._fined[: len(self._fined) - MAX_FINED]
        return taken

    def _keep_fined(self, frame: TrackFrame) -> None:
        """Each fined stop's place: kept while its vehicle is seen standing on it (the
        track that stands for it, or a track first seen there), let go ``same_stop_gap_s``
        after the last such sighting."""
        if not self._fined:
            return
        reach, born = self._reach, self._born
        owners = {track_id: stop for stop in self._fined for track_id in stop.track_ids}
        standing: list[tuple[Point, Point, float]] = []
        for p in frame.points:
            stop = owners.get(p.track_id)
            if stop is not None:
                pos = self.scene.position(p)
                if pos is not None and pos.distance(stop.at) <= reach:
                    stop.last_t = p.t
                continue
            memory = self._tracks.get(p.track_id)
            if memory is None or memory.fired:
                continue
            st = memory.state
            if st.rest is not None and st.first is not None and p.t - st.rest_since >= STANDING_S:
                standing.append((st.rest, st.first, p.t))
        for anchor, first, t in standing:
            for stop in self._fined:
                if anchor.distance(stop.at) <= reach and first.distance(stop.at) <= born:
                    stop.last_t = max(stop.last_t, t)
        gap = self._settings.same_stop_gap_s
        self._fined = [stop for stop in self._fined if frame.t - stop.last_t <= gap]
        if len(self._fined) > MAX_FINED:
            self._fined.sort(key=lambda stop: stop.last_t)
            del self._fined[: len(self._fined) - MAX_FINED]

    def _fined_here(self, st: NoStoppingState) -> FinedStop | None:
        """The fined stop that this stop goes on: a track first seen on its place, whose
        stop began there within the gap."""
        if st.anchor is None or st.first is None:
            return None
        for stop in self._fined:
            if (
                st.first.distance(stop.at) <= self._born
                and st.anchor.distance(stop.at) <= self._reach
                and st.since - stop.last_t <= self._settings.same_stop_gap_s
            ):
                return stop
        return None

    @staticmethod
    def _in_force(zone: ZoneGeometry, local: datetime) -> bool:
        windows = zone.config.windows
        return not windows or any(w.contains(local) for w in windows)

    def _zone_at(self, p: WorldTrackPoint, local: datetime) -> ZoneGeometry | None:
        for zone in self.scene.zones:
            if zone.area.contains(p.ground_px) and self._in_force(zone, local):
                return zone
        return None

    def _stop_kept(
        self, st: NoStoppingState, t: float, pos: Point, local: datetime
    ) -> ZoneGeometry | None:
        """The zone of the stop under way, when a sample outside every zone still stands at
        it: within the radius of where it stopped, at most ``max_gap_s`` after the last
        sample inside, while that zone is in force."""
        if st.anchor is None or t - st.last_in > self._settings.max_gap_s:
            return None
        if pos.distance(st.anchor) > self.scene.stationary_radius:
            return None
        zone = st.zone
        return zone if zone is not None and self._in_force(zone, local) else None

    def step(
        self, memory: TrackMemory[NoStoppingState], p: WorldTrackPoint, signals: Signals
    ) -> Violation | None:
        st = memory.state
        pos = self.scene.position(p)
        if pos is None:  # off the road plane: the frame neither ends nor extends a stop
            return None
        local = self.local_time(p.t)
        zone = self._zone_at(p, local)
        inside = zone is not None
        if st.first is None:
            st.first = pos
        radius = self.scene.stationary_radius
        if st.rest is None or pos.distance(st.rest) > radius:
            st.rest, st.rest_since = pos, p.t
        if zone is None:
            zone = self._stop_kept(st, p.t, pos, local)
        if zone is None:
            st.zone, st.anchor = None, None
            return None
        if inside:
            st.last_in = p.t
        if st.anchor is None or pos.distance(st.anchor) > radius:
            st.zone, st.zones, st.anchor, st.since = zone, [zone], pos, p.t
            return None
        if st.zone is not zone:  # (standing on the border with an adjacent zone)
            st.zone = zone
            if all(z is not zone for z in st.zones):
                st.zones.append(zone)
        dwell = p.t - st.since
        limit = max(z.config.dwell_s or self._settings.dwell_s for z in st.zones)
        # Standing exactly the time allowed is allowed. Judged on the dwell both as
        # measured and as the explanation and the review page show it (0.1 s, half up): it
        # never reads "30.0 s, more than the 30 s allowed", timestamp rounding cannot tip
        # an exact stop over the limit, nor rounding up a dwell still under a limit such
        # as 30.06 s.
        shown = float(vi.rounded(dwell, 1))
        if dwell <= limit or shown <= limit:
            return None
        if (same := self._fined_here(st)) is not None:
            # (a vehicle fined here, back under a new track id: fined once; this track is
            # taken for it from now on, as is any other already taken for it: a second box
            # on it that comes and goes leaves it still standing for the place)
            memory.fired = True
            if len(same.track_ids) >= MAX_TRACKS_PER_PLACE:
                same.track_ids.clear()  # (the older ids: long gone)
            same.track_ids.add(p.track_id)
            same.last_t = p.t
            return None
        self._fined.append(FinedStop(pos, p.ground_px, {p.track_id}, p.t))
        vehicle = memory.vote.winner
        stood_in = [z for z in self.scene.zones if any(z is y for y in st.zones)]
        zones = " and ".join(z.label for z in stood_in)
        text = (
            f"{vehicle.value} stood still (within {self.scene.distance_text(radius)}) inside "
            f"{zones} from {self.clock(st.since)} to {self.clock(p.t)}: {vi.number_en(shown)} s, "
            f"more than the {limit:g} s allowed"
        )
        text_vi = (
            f"{vi.capitalized(vi.vehicle(vehicle))} dừng, đỗ nơi cấm: đứng yên (trong phạm vi "
            f"{self.scene.distance_text_vi(radius)}) trong "
            f"{' và '.join(z.label_vi for z in stood_in)} từ {self.clock(st.since)} đến "
            f"{self.clock(p.t)}: {vi.seconds(shown)}, quá thời gian cho phép là {vi.seconds(limit)}"
        )
        return self.violation(
            p,
            vehicle,
            self.scene.lane_at(p),
            p.t,
            EvidenceTimes(before=st.since, at=st.since + limit / 2.0, after=p.t),
            Measurement(dwell_s=dwell),
            text,
            text_vi,
        )
