"""All of a scene's enabled rules, fed one frame at a time."""

from __future__ import annotations

from collections.abc import Callable

from edge.rules.base import RuleUnavailableError, Signals, TrackRule
from edge.rules.forbidden_lane import ForbiddenLaneRule
from edge.rules.no_stopping import NoStoppingRule
from edge.rules.plane import SceneGeometry
from edge.rules.red_light import RedLightRule
from edge.rules.solid_line import SolidLineRule
from edge.rules.speeding import SpeedingRule
from edge.rules.tracks import TrackFrame, Violation
from edge.rules.wrong_way import WrongWayRule
from roadwatch.contract import ViolationType

RuleFactory = Callable[[SceneGeometry], TrackRule[object]]

RULES: dict[ViolationType, type[TrackRule[object]]] = {
    ViolationType.SPEEDING: SpeedingRule,  # type: ignore[dict-item]
    ViolationType.RED_LIGHT: RedLightRule,  # type: ignore[dict-item]
    ViolationType.WRONG_WAY: WrongWayRule,  # type: ignore[dict-item]
    ViolationType.FORBIDDEN_LANE: ForbiddenLaneRule,  # type: ignore[dict-item]
    ViolationType.SOLID_LINE: SolidLineRule,  # type: ignore[dict-item]
    ViolationType.NO_STOPPING: NoStoppingRule,  # type: ignore[dict-item]
}


class RuleSet:
    """The rules a scene enables; those that cannot run say why in ``unavailable``."""

    def __init__(self, scene: SceneGeometry) -> None:
        self.scene = scene
        self.rules: list[TrackRule[object]] = []
        self.unavailable: dict[ViolationType, str] = {}
        settings = scene.config.rules
        enabled = {
            ViolationType.SPEEDING: settings.speeding.enabled,
            ViolationType.RED_LIGHT: settings.red_light.enabled,
            ViolationType.WRONG_WAY: settings.wrong_way.enabled,
            ViolationType.FORBIDDEN_LANE: settings.forbidden_lane.enabled,
            ViolationType.SOLID_LINE: settings.solid_line.enabled,
            ViolationType.NO_STOPPING: settings.no_stopping.enabled,
        }
        for rule_type, factory in RULES.items():
            if not enabled[rule_type]:
                continue
            try:
                self.rules.append(factory(scene))
            except RuleUnavailableError as exc:
                self.unavailable[rule_type] = str(exc)

    def carry_fired(self, old: RuleSet) -> None:
        """Go on from the rules of the scene before: what fired there stays fired."""
        before = {rule.rule: rule for rule in old.rules}
        for rule in self.rules:
            if (same := before.get(rule.rule)) is not None:
                rule.carry_fired(same)

    def update(self, frame: TrackFrame, signals: Signals | None = None) -> list[Violation]:
        found: list[Violation] = []
        for rule in self.rules:
            found.extend(rule.update(frame, signals))
        return found
