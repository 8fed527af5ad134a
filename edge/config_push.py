"""Configuration pushed by central: the document, and whether a node applies it.

A pushed document is the node's site configuration (``SiteConfig``) without its
``delivery`` section (that holds the node's own secrets and stays in its own file), with
each camera's scene and calibration carried inline as mappings (or naming a file on the
node; relative paths are taken from the node's configuration folder). A node applies a
push live only where it can: a camera's scene, calibration, place and
``persons_as_riders``. Every other field must equal what the node runs; a push that
changes one (a camera added or removed, a stream URL, the detector) is refused with
``NOT_LIVE``: such a field is the node's own file's to change, and a restart's.

``decide`` is pure: the payload, central's keys and what the node runs in, a
``PushDecision`` out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from calibration.config import CalibrationFile
from calibration.errors import CalibrationExpiredError
from edge.config import ConfigError, SiteConfig, parse_site_config
from edge.rules.scene import SceneConfig, SceneError, parse_scene
from roadwatch.contract import ConfigPush, ContractError, parse_payload
from roadwatch.contract.canonical import canonical_bytes
from roadwatch.contract.signing import SignatureError, key_fingerprint, verify
from roadwatch.contract.wire import describe

LIVE_CAMERA_FIELDS = frozenset({"scene", "calibration", "place", "persons_as_riders"})
"""Camera fields a push changes without a restart."""
_LOCAL_FIELDS = frozenset({"delivery", "version"})
MAX_PUSH_BYTES = 512 * 1024


class PushAction(StrEnum):
    APPLY = "apply"
    SAME = "same"  # the version in force, again (a retained message on reconnect)
    REFUSE = "refuse"
    CLEARED = "cleared"  # an empty retained message: the topic was cleared, nothing pushed


@dataclass(frozen=True, slots=True)
class PushDecision:
    action: PushAction
    version: str | None = None
    reason: str = ""  # why it was refused
    advice: str = ""  # what to do about it ("": nothing to add to the reason)
    signed_by: str | None = None  # fingerprint of central's key the push verified under

    @property
    def message(self) -> str:
        """The reason, and the advice after it: what the node's status and log say."""
        return f"{self.reason}; {self.advice}" if self.advice else self.reason


@dataclass(frozen=True, slots=True)
class AppliedConfig:
    """The configuration a node runs: its version, and the push it came from (if any)."""

    version: str
    digest: str | None = None  # sha256 of the pushed document; None: the node's own file
    issued_at: datetime | None = None


@dataclass(frozen=True)
class PushedConfig:
    """A validated pushed document. ``site`` names inline files ``{camera}.scene.yaml``
    and ``{camera}.calib.yaml`` (relative: they are written into the node's store)."""

    version: str
    digest: str
    site: SiteConfig
    scenes: dict[str, SceneConfig] = field(default_factory=dict)
    calibrations: dict[str, CalibrationFile] = field(default_factory=dict)


def document_digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(dict(document))).hexdigest()


def scene_file_name(camera: str) -> str:
    return f"{camera}.scene.yaml"


def calibration_file_name(camera: str) -> str:
    return f"{camera}.calib.yaml"


def parse_config_document(document: Any) -> PushedConfig:
    """Validate a pushed document; ConfigError names the key that is wrong."""
    if not isinstance(document, Mapping):
        raise ConfigError("config: expected a mapping with site, node, version and cameras")
    if "delivery" in document:
        raise ConfigError(
            "config: delivery stays in the node's own file (it holds the node's secrets); "
            "leave it out of a pushed config"
        )
    if "version" not in document:
        raise ConfigError("config: version is required in a pushed config")
    cameras = document.get("cameras")
    scenes: dict[str, SceneConfig] = {}
    calibrations: dict[str, CalibrationFile] = {}
    data = dict(document)
    if isinstance(cameras, list):
        data["cameras"] = [
            _inline_files(i, cam, scenes, calibrations) if isinstance(cam, Mapping) else cam
            for i, cam in enumerate(cameras)
        ]
    site = parse_site_config(data, "config")
    return PushedConfig(site.version, document_digest(document), site, scenes, calibrations)


def _inline_files(
    index: int,
    camera: Mapping[str, Any],
    scenes: dict[str, SceneConfig],
    calibrations: dict[str, CalibrationFile],
) -> dict[str, Any]:
    out = dict(camera)
    cam_id = camera.get("id")
    where = f"config: cameras.{index}"
    if not isinstance(cam_id, str):
        return out  # SiteConfig names the missing id
    scene = camera.get("scene")
    if isinstance(scene, Mapping):
        try:
            parsed = parse_scene(dict(scene), f"{where}.scene")
        except SceneError as exc:
            raise ConfigError(str(exc)) from None
        if parsed.camera != cam_id:
            raise ConfigError(f"{where}.scene: the scene is for camera {parsed.camera!r}")
        scenes[cam_id] = parsed
        out["scene"] = scene_file_name(cam_id)
    calibration = camera.get("calibration")
    if isinstance(calibration, Mapping):
        try:
            calib = CalibrationFile.model_validate(dict(calibration))
        except ValidationError as exc:
            raise ConfigError(f"{where}.calibration: {describe(exc)}") from None
        if calib.camera != cam_id:
            raise ConfigError(
                f"{where}.calibration: the calibration is for camera {calib.camera!r}"
            )
        if cam_id in scenes:
            size = scenes[cam_id].image_size
            if tuple(calib.image_size) != (size.width, size.height):
                # The node would refuse it only when it tries it ("not usable"): central
                # says so before the push.
                raise ConfigError(
                    f"{where}.calibration: the calibration is for"
                    f" {calib.image_size[0]}x{calib.image_size[1]}, the scene for"
                    f" {size.width}x{size.height}"
                )
        calibrations[cam_id] = calib
        out["calibration"] = calibration_file_name(cam_id)
    return out


def check_calibrations_in_force(pushed: PushedConfig, at: datetime) -> None:
    """Refuse a push whose enforced camera (enabled, with a scene) carries a calibration
    that is not valid at ``at`` (expired, or valid only from a later day): the node
    would refuse it when it builds the camera's enforcement, after central recorded it."""
    for index, cam in enumerate(pushed.site.cameras):
        calib = pushed.calibrations.get(cam.id)
        if calib is None or not cam.enabled or cam.scene is None:
            continue
        try:
            calib.check_valid(at)
        except CalibrationExpiredError as exc:
            raise ConfigError(f"config: cameras.{index}.calibration: {exc}") from None


def restart_reasons(current: SiteConfig, wanted: SiteConfig) -> list[str]:
    """What differs beyond the live fields; each needs a restart of the node."""
    reasons: list[str] = []
    now = {c.id: c for c in current.cameras}
    new = {c.id: c for c in wanted.cameras}
    added, removed = sorted(set(new) - set(now)), sorted(set(now) - set(new))
    if added or removed:
        moves = (("added", added), ("removed", removed))
        parts = [f"{word} {', '.join(ids)}" for word, ids in moves if ids]
        reasons.append(f"camera set changed ({'; '.join(parts)})")
    for cam_id in [c for c in now if c in new]:
        before = now[cam_id].model_dump(exclude=set(LIVE_CAMERA_FIELDS))
        after = new[cam_id].model_dump(exclude=set(LIVE_CAMERA_FIELDS))
        changed = sorted(k for k in before if before[k] != after[k])
        if changed:
            reasons.append(f"camera {cam_id}: {', '.join(changed)} changed")
    skip = {"cameras", *_LOCAL_FIELDS}
    top_before = current.model_dump(exclude=skip)
    top_after = wanted.model_dump(exclude=skip)
    reasons += [f"{k} changed" for k in sorted(top_before) if top_before[k] != top_after[k]]
    return reasons


def decide(
    raw: bytes,
    *,
    site: str,
    node: str,
    central_keys: Sequence[Ed25519PublicKey],
    applied: AppliedConfig,
    current: SiteConfig,
    base: Path,
) -> tuple[PushDecision, PushedConfig | None, ConfigPush | None]:
    """Whether to apply a pushed config (``raw``: the message payload).

    Refused: a malformed or unsigned payload, a signature by none of ``central_keys``
    (central's config key, or the old and the new during a key change), a push
    for another node, a version that is in force with other content, a push issued
    before the one in force, an invalid document, and a change that needs a restart.
    ``current`` is the node's configuration with its paths resolved against ``base``.
    """
    try:
        push = parse_payload(ConfigPush, raw, max_bytes=MAX_PUSH_BYTES)
    except ContractError as exc:
        return _refuse(None, f"malformed: {exc}"), None, None
    version = push.config_version

    def refuse(reason: str) -> tuple[PushDecision, None, ConfigPush]:
        return _refuse(version, reason), None, push

    try:
        signed_by = _signer(push, central_keys)
    except SignatureError as exc:
        return refuse(str(exc))
    if (push.site, push.node) != (site, node):
        return refuse(f"addressed to {push.site}/{push.node}, not {site}/{node}")
    digest = document_digest(push.config)
    if version == applied.version:
        if digest == applied.digest:
            return PushDecision(PushAction.SAME, version, signed_by=signed_by), None, push
        if applied.digest is None:  # (the node's own file, which has no push to compare)
            return refuse(
                "this version is the node's own file in force; give the push a new version"
            )
        return refuse("this version is in force with other content")
    if applied.issued_at is not None and push.issued_at < applied.issued_at:
        return refuse(f"issued before the version in force ({applied.version})")
    try:
        pushed = parse_config_document(push.config)
    except ConfigError as exc:
        return refuse(f"invalid: {exc}")
    if pushed.version != version:
        return refuse(f"the document says version {pushed.version!r}")
    if (pushed.site.site, pushed.site.node) != (site, node):
        return refuse("the document names another site or node")
    reasons = restart_reasons(current, pushed.site.resolved(base))
    if reasons:
        # (it said "restart required", and a restart changed nothing: the node's own file
        # still differs, and the push is refused again from the retained message)
        return _refuse(version, "; ".join(reasons), NOT_LIVE), None, push
    return PushDecision(PushAction.APPLY, version, signed_by=signed_by), pushed, push


def _signer(push: ConfigPush, keys: Sequence[Ed25519PublicKey]) -> str:
    """The fingerprint of the key among ``keys`` that ``push`` verifies under;
    SignatureError says why it verifies under none."""
    problems = []
    for key in keys:
        try:
            verify(push, key)
        except SignatureError as exc:
            problems.append(str(exc))
        else:
            return key_fingerprint(key)
    first = problems[0] if problems else "no key given"
    if len(keys) == 1:
        raise SignatureError(f"not signed by central's config key ({first})")
    raise SignatureError(f"not signed by any of central's {len(keys)} config keys ({first})")


NOT_LIVE = (
    "a push changes only each camera's scene, calibration, place and persons_as_riders:"
    " change the rest in the node's own site file and restart it, or push without it"
)


def _refuse(version: str | None, reason: str, advice: str = "") -> PushDecision:
    return PushDecision(PushAction.REFUSE, version, reason, advice)
