"""No stopping: a vehicle stationary inside a no-stopping zone beyond the dwell time.

Stationary means the ground point stays within a small radius of where it stopped, so box
jitter neither resets nor fakes a stop; moving beyond the radius starts a new stop. A
vehicle that stopped inside a zone and stands on its edge keeps its stop while jitter
carries the ground point over the edge and back, as long as each absence from the zone is
no longer than ``max_gap_s``; one that stands outside is not made to stop inside by a
frame whose box jitters in. A vehicle standing across the border of two adjacent zones
keeps its stop as its point changes zone; it is allowed the longest dwell of the zones
it stood in, and the explanation names them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge.rules.base import RuleUnavailableError, Signals, TrackMemory, TrackRule
from edge.rules.geometry import Point
from edge.rules.plane import SceneGeometry, ZoneGeometry
from edge.rules.tracks import EvidenceTimes, Violation, WorldTrackPoint
from roadwatch.contract import Measurement, ViolationType


@dataclass(slots=True)
class NoStoppingState:
    zone: ZoneGeometry | None = None  # of the stop under way, where it stood last
    zones: list[ZoneGeometry] = field(default_factory=list)  # every one it stood in
    anchor: Point | None = None
    since: float = 0.0
    last_in: float = 0.0


class NoStoppingRule(TrackRule[NoStoppingState]):
    rule = ViolationType.NO_STOPPING
    version = "no_stopping/4"

    def __init__(self, scene: SceneGeometry) -> None:
        super().__init__(scene)
        if not scene.zones:
            raise RuleUnavailableError("no stopping needs at least one no-stopping zone")
        self._settings = scene.config.rules.no_stopping

    def new_state(self) -> NoStoppingState:
        return NoStoppingState()

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
