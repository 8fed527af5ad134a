"""Configs pushed by central, applied on a running node: the store on disk and the applier.

The applier runs on the MQTT publisher's thread when a message arrives on the node's
config topic: ``edge.config_push.decide`` says apply, same or refuse; an applied config's
scene and calibration files are written into the store, every camera's enforcement is
built (a scene or calibration that cannot be used refuses the push and changes nothing),
the signed message is saved atomically as ``applied.json``, and only then does each camera
switch over at its next frame. The node's status reports the version in force, and why
the last push was refused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from calibration.store import dump_yaml
from edge.config import SiteConfig
from edge.config_push import (
    NOT_LIVE,
    AppliedConfig,
    PushAction,
    PushDecision,
    PushedConfig,
    calibration_file_name,
    decide,
    scene_file_name,
)
from edge.delivery_config import ConfigPushSettings
from roadwatch.contract.signing import SignatureError, key_fingerprint, load_public_key_pem
from roadwatch.errors import UserError
from roadwatch.files import write_atomic

if TYPE_CHECKING:
    from edge.node import EdgeNode

log = logging.getLogger(__name__)

APPLIED_FILE = "applied.json"
ConfigReport = Callable[[str, "str | None"], None]
"""Tells the node's status the version in force and the last refusal (None: none)."""


def load_central_key(path: Path) -> Ed25519PublicKey:
    try:
        return load_public_key_pem(path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read central's config key {path}: {exc.strerror}") from exc
    except SignatureError as exc:
        raise UserError(f"central's config key {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CentralKeys:
    """Central's config keys a node takes (one, or the old and the new during a key
    change), each with the file it was read from."""

    paths: tuple[Path, ...]
    keys: tuple[Ed25519PublicKey, ...]

    @classmethod
    def load(cls, paths: Sequence[Path]) -> CentralKeys:
        """Every file read and checked; UserError names the first that cannot be used."""
        return cls(tuple(paths), tuple(load_central_key(path) for path in paths))

    def name(self, fingerprint: str | None) -> str:
        """The key of ``fingerprint`` as the log names it: its file and fingerprint."""
        for path, key in zip(self.paths, self.keys, strict=True):
            if (known := key_fingerprint(key)) == fingerprint:
                return f"{path} (sha256 {known[:16]})"
        return f"sha256 {fingerprint}"


class ConfigStore:
    """``applied.json`` (the signed push as received) and, per applied document, its scene
    and calibration files under ``v-{digest}/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self) -> bytes | None:
        try:
            return (self.folder / APPLIED_FILE).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"cannot read {self.folder / APPLIED_FILE}: {exc.strerror}") from exc

    def files(self, pushed: PushedConfig) -> Path:
        """Write the inline scenes and calibrations; the folder they are in."""
        folder = self.folder / f"v-{pushed.digest[:24]}"
        folder.mkdir(parents=True, exist_ok=True)
        for camera, scene in pushed.scenes.items():
            text = yaml.safe_dump(scene.model_dump(mode="json"), sort_keys=False)
            write_atomic(folder / scene_file_name(camera), text.encode("utf-8"))
        for camera, calibration in pushed.calibrations.items():
            write_atomic(folder / calibration_file_name(camera), dump_yaml(calibration).encode())
        return folder

    def discard(self, pushed: PushedConfig, applied: AppliedConfig) -> None:
        """Drop the files written for a push that was then refused (never the applied's)."""
        if pushed.digest != applied.digest:
            shutil.rmtree(self.folder / f"v-{pushed.digest[:24]}", ignore_errors=True)

    def save(self, raw: bytes, pushed: PushedConfig) -> None:
        """Keep ``raw`` as the applied push; drop the files of earlier ones."""
        write_atomic(self.folder / APPLIED_FILE, raw)
        keep = f"v-{pushed.digest[:24]}"
        for old in self.folder.glob("v-*"):
            if old.is_dir() and old.name != keep:
                shutil.rmtree(old, ignore_errors=True)


def effective_config(
    local: SiteConfig, pushed: PushedConfig, files: Path, base: Path
) -> SiteConfig:
    """The pushed document as the node runs it: inline files from ``files``, other
    relative paths from ``base`` (the node's configuration folder), its own delivery."""
    cameras = []
    for cam in pushed.site.cameras:
        update: dict[str, object] = {}
        if cam.id in pushed.scenes:
            update["scene"] = files / scene_file_name(cam.id)
        if cam.id in pushed.calibrations:
            update["calibration"] = files / calibration_file_name(cam.id)
        cameras.append(cam.model_copy(update=update))
    site = pushed.site.model_copy(update={"cameras": cameras}).resolved(base)
    return site.model_copy(update={"delivery": local.delivery})


def startup_config(local: SiteConfig, base: Path) -> tuple[SiteConfig, AppliedConfig, str | None]:
    """What a node starts with: its own file, or the push it last applied when that push
    still fits the file (nothing but live fields differ). The third value says why a
    stored push was not used."""
    applied = AppliedConfig(local.version)
    settings = local.delivery.config_push if local.delivery is not None else None
    if settings is None:
        return local, applied, None
    store = ConfigStore(settings.store)
    raw = store.load()
    if raw is None:
        return local, applied, None
    keys = CentralKeys.load(settings.central_keys)
    decision, pushed, push = decide(
        raw,
        site=local.site,
        node=local.node,
        central_keys=keys.keys,
        applied=applied,
        current=local,
        base=base,
    )
    if decision.action is not PushAction.APPLY or pushed is None or push is None:
        stored = decision.version or f"in {store.folder / APPLIED_FILE} (unreadable)"
        reason = decision.reason or "same version"
        if decision.advice == NOT_LIVE:
            # (the file was changed since the push: the advice to change it is no news)
            reason += " (in the node's own file since that push; the file runs)"
        why = f"stored config {stored} not used: {reason}"
        log.warning("%s", why)
        return local, applied, why if decision.action is PushAction.REFUSE else None
    log.info("stored config %s is signed with central's config key %s",
             pushed.version, keys.name(decision.signed_by))  # fmt: skip
    config = effective_config(local, pushed, store.files(pushed), base)
    # (said at the default level: a scene fixed in the node's own file and a restart then
    # ran the pushed scene without a word)
    log.warning(
        "running config %s pushed by central (stored in %s) over the file's %s: each"
        " camera's scene, calibration, place and persons_as_riders are the push's",
        pushed.version, store.folder, local.version,
    )  # fmt: skip
    return config, AppliedConfig(pushed.version, pushed.digest, push.issued_at), None


class ConfigApplier:
    """Handles the payloads of the node's config topic (one thread at a time)."""

    def __init__(
        self,
        node: EdgeNode,
        settings: ConfigPushSettings,
        *,
        base: Path,
        applied: AppliedConfig,
        report: ConfigReport,
        central_keys: CentralKeys | None = None,
    ) -> None:
        self.node = node
        self.store = ConfigStore(settings.store)
        self.keys = central_keys or CentralKeys.load(settings.central_keys)
        self.base = base
        self.applied = applied
        self.report = report
        self.last: PushDecision | None = None

    def handle(self, raw: bytes) -> PushDecision:
        config = self.node.config
        if not raw:  # the retained config was cleared: nothing is pushed, nothing refused
            log.info("the config topic was cleared; %s stays in force", self.applied.version)
            self.last = PushDecision(PushAction.CLEARED, None, "the config topic was cleared")
            return self.last
        decision, pushed, push = decide(
            raw,
            site=config.site,
            node=config.node,
            central_keys=self.keys.keys,
            applied=self.applied,
            current=config,
            base=self.base,
        )
        if decision.action is PushAction.APPLY and pushed is not None and push is not None:
            log.info("config %s is signed with central's config key %s",
                     pushed.version, self.keys.name(decision.signed_by))  # fmt: skip
            try:
                wanted = effective_config(config, pushed, self.store.files(pushed), self.base)
                built = self.node.prepare(wanted)
                self.store.save(raw, pushed)
            except (UserError, OSError, ValueError) as exc:
                self.store.discard(pushed, self.applied)
                decision = PushDecision(PushAction.REFUSE, decision.version, f"not usable: {exc}")
            else:
                self.node.reconfigure(wanted, built)
                before = self.applied.version
                self.applied = AppliedConfig(pushed.version, pushed.digest, push.issued_at)
                # (at the level of a refusal: else the log's last word on the config in
                # force was a refused push's "… stays in force")
                log.warning(
                    "applied config %s pushed by central in place of %s", pushed.version, before
                )
                self.report(pushed.version, None)
        if decision.action is PushAction.REFUSE:
            why = f"config {decision.version or '(unreadable)'} refused: {decision.message}"
            log.warning("%s; %s stays in force", why, self.applied.version)
            self.report(self.applied.version, why[:2000])
        self.last = decision
        return decision
