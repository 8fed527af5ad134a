"""No stopping: a vehicle stationary inside a no-stopping zone beyond the dwell time.

Stationary means the ground point stays within a small radius of where it stopped, so box
jitter neither resets nor fakes a stop; moving beyond the radius starts a new stop. A
vehicle that stopped inside a zone and stands on its edge keeps its stop while jitter
carries the ground point over the edge and back, as long as each absence from the zone is
no longer than ``max_gap_s``; one that stands outside is not made to stop inside by a
frame whose box jitters in. A vehicle standing across the border of two adjacent zones
keeps its stop as its point changes zone; it is allowed the longest dwell of the zones
it stood in, and the explanation names them all.

A stop is fined once. A vehicle hidden for a while (a bus stopping in front of it) comes
back to the tracker as a new track, which would stand its dwell again and be fined
again, at every such occlusion of a car parked for an hour. So the rule keeps each fined
stop's place for as long as a vehicle is seen standing there (the fined track, or a
later one standing on that place, within the stationary radius, for ``STANDING_S``),
and ``same_stop_gap_s`` after the last such sighting; a new track whose stop begins
there meanwhile is that vehicle, and is not fined again. The place is let go at once
when the fined track is seen driving off (twice the radius away). A different vehicle
that stops on the very place soon after a fined one left unseen is not fined: the
lenient side of a case that cannot be told from the pictures' tracks alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry, ZoneGeometry
from edge.rules.tracks import EvidenceTimes, TrackFrame, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType

# A vehicle standing this long on a fined stop's place keeps the place taken.
STANDING_S = 1.0


@dataclass(slots=True)
class FinedStop:
    """Where a vehicle stood when it was fined, and who was last seen standing there."""

    at: Point
    track_id: int
    last_t: float


@dataclass(slots=True)
class NoStoppingState:
    zone: ZoneGeometry | None = None  # of the stop under way, where it stood last
    zones: list[ZoneGeometry] = field(default_factory=list)  # every one it stood in
    anchor: Point | None = None
    since: float = 0.0
    last_in: float = 0.0


class NoStoppingRule(TrackRule[NoStoppingState]):
    rule = ViolationType.NO_STOPPING
    version = "no_stopping/5"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        if not scene.zones:
            raise RuleUnavailableError("no stopping needs at least one no-stopping zone")
        self._settings = scene.config.rules.no_stopping
        self._fined: list[FinedStop] = []

    def new_state(self) -> NoStoppingState:
        return NoStoppingState()

    def update(self, frame: TrackFrame, signals: Signals | None = None) -> list[Violation]:
        found = super().update(frame, signals)
        self._keep_fined(frame)
        return found

    def carry_fired(self, old: TrackRule[NoStoppingState]) -> None:
        super().carry_fired(old)
        if isinstance(old, NoStoppingRule) and old.scene.metric == self.scene.metric:
            # (places in the same units: metres on the road, or pixels)
            self._fined = old._fined

    def _keep_fined(self, frame: TrackFrame) -> None:
        """Each fined stop's place: still taken while a vehicle is seen standing on it,
        let go when the fined track drives off or nobody stood there for the gap."""
        if not self._fined:
            return
        radius = self.scene.stationary_radius
        kept = []
        for stop in self._fined:
            left = False
            for p in frame.points:
                pos = self.scene.position(p)
                if pos is None:
                    continue
                if p.track_id == stop.track_id:
                    left = pos.distance(stop.at) > 2.0 * radius
                    stop.last_t = p.t
                    continue
                memory = self._tracks.get(p.track_id)
                st = memory.state if memory is not None else None
                if (
                    st is not None
                    and st.anchor is not None
                    and st.anchor.distance(stop.at) <= radius
                    and p.t - st.since >= STANDING_S
                ):
                    stop.last_t = max(stop.last_t, p.t)
            if not left and frame.t - stop.last_t <= self._settings.same_stop_gap_s:
                kept.append(stop)
        self._fined = kept

    def _fined_here(self, st: NoStoppingState) -> FinedStop | None:
        """The fined stop that this stop goes on: begun on its place within the gap."""
        if st.anchor is None:
            return None
        for stop in self._fined:
            if (
                st.anchor.distance(stop.at) <= self.scene.stationary_radius
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
        local = self.scene.config.local_time(p.t)
        zone = self._zone_at(p, local)
        inside = zone is not None
        pos = self.scene.position(p)
        if zone is None and pos is not None:
            zone = self._stop_kept(st, p.t, pos, local)
        if zone is None or pos is None:
            st.zone, st.anchor = None, None
            return None
        if inside:
            st.last_in = p.t
        radius = self.scene.stationary_radius
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
        # measured and as the explanation shows it (0.1 s): it never reads "30.0 s, more
        # than the 30 s allowed", timestamp rounding cannot tip an exact stop over the
        # limit, nor rounding up a dwell still under a limit such as 30.06 s.
        shown = round(dwell, 1)
        if dwell <= limit or shown <= limit:
            return None
        if (same := self._fined_here(st)) is not None:
            # (a vehicle fined here, back under a new track id: fined once; this track is
            # now the one whose driving off lets the place go)
            memory.fired = True
            same.track_id, same.last_t = p.track_id, p.t
            return None
        self._fined.append(FinedStop(st.anchor, p.track_id, p.t))
        vehicle = memory.vote.winner
        zones = " and ".join(z.label for z in self.scene.zones if any(z is y for y in st.zones))
        text = (
            f"{vehicle.value} stood still (within {self.scene.distance_text(radius)}) inside "
            f"{zones} from {self.clock(st.since)} to {self.clock(p.t)}: {shown:.1f} s, "
            f"more than the {limit:g} s allowed"
        )
        return self.violation(
            p,
            vehicle,
            self.scene.lane_at(p),
            p.t,
            EvidenceTimes(before=st.since, at=st.since + limit / 2.0, after=p.t),
            Measurement(dwell_s=dwell),
            text,
        )
