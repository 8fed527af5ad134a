"""Configs pushed to edge nodes: validated, recorded with their history, signed with
central's config key, audited, and published retained (QoS 1) on the node's config topic.

The document is validated with the edge's own rules (``edge.config_push``) where the edge
code's dependencies are installed; a central installed without them checks the outline
(site, node, version, unique camera ids, no delivery section) and the node checks the rest
when the push arrives (it refuses an invalid one and reports why in its status). A
document that changes what the node takes only from its own site file (a stream URL,
``plates``, a camera added) is refused against the push the node's status says it runs,
with the node's own rule (``edge.config_push.restart_reasons``).

A push is recorded and published in one step: the row and its audit entry are committed
only after the broker has acknowledged the retained message, so a push that did not reach
the broker leaves nothing behind. Pushing a version again with the same document publishes
the same signed message again; with another document it is refused.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.keys import load_central_key
from central.models import Node, NodeConfig, utcnow
from central.records import append_audit, lock_registry
from central.settings import Settings
from roadwatch.contract import ConfigPush, NodeTopic, node_topic, to_wire
from roadwatch.contract.canonical import canonical_bytes
from roadwatch.contract.models import MAX_CONFIG_BYTES, ShortText
from roadwatch.contract.signing import sign
from roadwatch.errors import UserError, validator_words

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]


class InvalidConfigError(UserError):
    """The document is not a valid config for the node."""


class NotPushableError(InvalidConfigError):
    """The document changes what the node takes only from its own site file."""


class ConfigConflictError(UserError):
    """The version was pushed before with another document."""


class UnknownNodeError(UserError):
    """No such node in the registry."""


class BrokerUnavailableError(UserError):
    """The broker did not take the retained message; nothing was recorded."""


@dataclass(frozen=True, slots=True)
class PushedRecord:
    site: str
    node: str
    version: str
    sha256: str
    issued_at: datetime
    pushed_by: str
    topic: str
    repeated: bool = False  # the same version and document were pushed before
    # Why central could not check it against what the node runs ("": it did); the node
    # then checks it when it arrives (``UNCHECKED_THEN``).
    unchecked: str = ""


def load_config_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.resolved_config_key
    return load_central_key(
        path, kind="config-signing key",
        missing=f"no config-signing key at {path}: run `roadwatch central config keygen` and"
        " give the nodes its .pub file (delivery.config_push.central_key)",
    )  # fmt: skip


def document_sha256(document: Mapping[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(canonical_bytes(dict(document))).hexdigest()


def validate_document(document: Any, *, site: str, node: str) -> str:
    """The document's version; InvalidConfigError says what is wrong."""
    if not isinstance(document, Mapping):
        raise InvalidConfigError("config: expected a mapping with site, node, version and cameras")
    try:
        size = len(canonical_bytes(dict(document)))
    except (TypeError, ValueError) as exc:
        raise InvalidConfigError(f"config is not plain JSON: {exc}") from exc
    if size > MAX_CONFIG_BYTES:
        raise InvalidConfigError(f"config is {size} bytes; at most {MAX_CONFIG_BYTES} allowed")
    version = _validated_version(document)
    if (document.get("site"), document.get("node")) != (site, node):
        raise InvalidConfigError(
            f"config: the document is for {document.get('site')}/{document.get('node')}, "
            f"not {site}/{node}"
        )
    return version


def _validated_version(document: Mapping[str, Any]) -> str:
    try:
        from edge.config_push import check_calibrations_in_force, parse_config_document
    except ImportError:
        return outline_version(document)
    from edge.config import ConfigError

    try:
        pushed = parse_config_document(document)
        check_calibrations_in_force(pushed, utcnow())
    except ConfigError as exc:
        raise InvalidConfigError(str(exc)) from None
    return pushed.version


def outline_version(document: Mapping[str, Any]) -> str:
    """What central checks without the edge's dependencies (the node checks the rest)."""
    if "delivery" in document:
        raise InvalidConfigError("config: delivery stays in the node's own file")
    version = document.get("version")
    if not isinstance(version, str) or not 1 <= len(version) <= 128:
        raise InvalidConfigError("config: version is required (1 to 128 characters)")
    cameras = document.get("cameras")
    if not isinstance(cameras, list) or not cameras:
        raise InvalidConfigError("config: cameras must be a non-empty list")
    ids = [c.get("id") if isinstance(c, Mapping) else None for c in cameras]
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        raise InvalidConfigError("config: every camera needs a unique id")
    return version


_VERSION: TypeAdapter[str] = TypeAdapter(ShortText)


# What the node does with a push central could not check (``check_pushable``).
UNCHECKED_THEN = (
    "the node checks it when it arrives: one that changes what it takes only from its own"
    " site file (a stream URL, plates, a camera added or removed, ...) it refuses, keeps"
    " running what it runs, and its status says why (config_error); see the node's"
    " config_version and config_error in GET /api/v1/nodes"
)


def check_pushable(
    session: Session, *, site: str, node: str, document: Mapping[str, Any], version: str
) -> str:
    """Refuse a document that changes what the node takes only from its own site file
    (the node would refuse it): compared, with the node's own rule
    (``edge.config_push.restart_reasons``), with the push the node reports running.
    Returns "" when it was so checked, else why it could not be: a node that runs its own
    file (or has not reported) has nothing central holds to compare with, and without the
    edge's dependencies installed central cannot compare; the node then checks it when
    the push arrives."""
    try:
        from edge.config_push import NOT_LIVE, parse_config_document, restart_reasons
    except ImportError:
        return (
            "central runs without the edge code, so it could not compare the push with what"
            f" {site}/{node} runs"
        )
    from edge.config import ConfigError

    status = _last_status(session, site=site, node=node)
    if status is None:
        return f"{site}/{node} has sent no status yet: central does not know what it runs"
    running_version = status.get("config_version")
    running = _running_push(session, site=site, node=node, version=running_version)
    if running_version == version:
        if running is not None:
            return ""  # (the push it runs, again: the node takes it as the same)
        # (the node refuses any push under its own file's version, whatever it holds)
        raise NotPushableError(
            f"config {version} is the version of the site file {site}/{node} runs, which"
            " central did not push: the node refuses a push under it; give the push a new"
            " version"
        )
    if running is None:
        cameras = _check_camera_set(
            status, site=site, node=node, document=document, version=version
        )
        runs = (
            f"config {running_version}, which central did not push (its own site file)"
            if isinstance(running_version, str)
            else "its own site file (its status names no version)"
        )
        checked = (
            "only its cameras were checked, against those its last status lists"
            if cameras
            else "nor its cameras: its last status lists none"
        )
        return f"{site}/{node} runs {runs}, and central does not hold that file ({checked})"
    try:
        before = parse_config_document(json.loads(running.document))
        after = parse_config_document(document)
    except (ConfigError, ValueError):  # (validated before; one recorded by an older central)
        return (
            f"the push {site}/{node} runs ({running.version}, recorded by an older central)"
            " does not validate with this central's rules"
        )
    reasons = restart_reasons(before.site, after.site)
    if reasons:
        raise NotPushableError(
            f"config {version} changes what {site}/{node} takes only from its own site"
            f" file, against {running.version} (the push it runs): {'; '.join(reasons)};"
            f" {NOT_LIVE}"
        )
    return ""


def _check_camera_set(
    status: Mapping[str, Any], *, site: str, node: str, document: Mapping[str, Any], version: str
) -> bool:
    """A node that runs its own file still names its cameras in its status (each camera
    it runs, the enabled ones): a push that adds, removes or disables one is refused up
    front, as the node would refuse it (and keep refusing the retained push after its
    restart). False: nothing was compared (its last status lists no camera, as its last
    will does)."""
    from edge.config import ConfigError
    from edge.config_push import NOT_LIVE, parse_config_document

    reported = status.get("cameras")
    try:
        running = {c["camera"] for c in reported} if isinstance(reported, list) else set()
    except (AttributeError, KeyError, TypeError):
        return False
    if not running:
        return False
    try:
        wanted = parse_config_document(document).site.cameras
    except (ConfigError, ValueError):  # (validated before)
        return False
    added = sorted({c.id for c in wanted if c.enabled} - running)
    removed = sorted(running - {c.id for c in wanted})
    # (one it runs, kept but disabled: the node refuses it too, `enabled` not being live)
    disabled = sorted(running & {c.id for c in wanted if not c.enabled})
    if not added and not removed and not disabled:
        return True
    moves = (("added", added), ("removed", removed), ("disabled", disabled))
    parts = "; ".join(f"{word} {', '.join(ids)}" for word, ids in moves if ids)
    raise NotPushableError(
        f"config {version} changes the cameras of {site}/{node}, against those its last"
        f" status reports ({', '.join(sorted(running))}): camera set changed ({parts});"
        f" {NOT_LIVE}"
    )


def _last_status(session: Session, *, site: str, node: str) -> dict[str, Any] | None:
    """The node's last status as central took it (None: none, or one it cannot read)."""
    text = session.scalar(select(Node.status_json).where(Node.site == site, Node.node == node))
    try:
        status = json.loads(text) if text else None
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


def _running_push(session: Session, *, site: str, node: str, version: object) -> NodeConfig | None:
    """The recorded push of ``version`` (the config_version the node's last status names,
    whatever its type), if any."""
    if not isinstance(version, str):
        return None
    return session.scalar(
        select(NodeConfig).where(
            NodeConfig.site == site, NodeConfig.node == node, NodeConfig.version == version
        )
    )


def push_config(
    session: Session,
    *,
    site: str,
    node: str,
    document: Mapping[str, Any],
    actor: str,
    key: Callable[[], Ed25519PrivateKey],
    publish: Publish,
    now: datetime | None = None,
) -> PushedRecord:
    """Validate, sign, publish and record a push (committed by the caller's transaction,
    which must end with a commit only after this returns). ``key`` gives central's
    config-signing key when a new version is signed."""
    # Pushes one at a time: the second of a double click then finds the first's row
    # (repeated, or a conflict), where its insert would have hit the unique key.
    lock_registry(session)
    if session.scalar(select(Node.id).where(Node.site == site, Node.node == node)) is None:
        raise UnknownNodeError(f"no node {site}/{node} in the registry")
    version = validate_document(document, site=site, node=node)
    try:
        _VERSION.validate_python(version)  # (before it is looked up: no NUL reaches SQL)
    except ValidationError as exc:
        why = validator_words(exc.errors()[0]["msg"])
        raise InvalidConfigError(f"config: version: {why}") from None
    unchecked = check_pushable(session, site=site, node=node, document=document, version=version)
    digest = document_sha256(document)
    topic = node_topic(site, node, NodeTopic.CONFIG)
    earlier = session.scalar(
        select(NodeConfig).where(
            NodeConfig.site == site, NodeConfig.node == node, NodeConfig.version == version
        )
    )
    if earlier is not None:
        if earlier.sha256 != digest:
            raise ConfigConflictError(
                f"version {version} was pushed to {site}/{node} with another document; "
                "give the new document a new version"
            )
        publish(topic, earlier.message.encode("utf-8"))
        return PushedRecord(
            site,
            node,
            version,
            digest,
            earlier.issued_at,
            earlier.pushed_by,
            topic,
            repeated=True,
            unchecked=unchecked,
        )
    issued_at = now or utcnow()
    try:
        push = ConfigPush(
            site=site, node=node, config_version=version, issued_at=issued_at, config=dict(document)
        )
    except ValueError as exc:
        raise InvalidConfigError(str(exc)) from exc
    message = to_wire(sign(push, key()))
    session.add(
        NodeConfig(
            site=site,
            node=node,
            version=version,
            sha256=digest,
            document=canonical_bytes(dict(document)).decode("utf-8"),
            message=message.decode("utf-8"),
            issued_at=issued_at,
            pushed_by=actor,
        )
    )
    append_audit(
        session,
        actor=actor,
        action="config_push",
        detail={"site": site, "node": node, "version": version, "sha256": digest},
    )
    session.flush()
    publish(topic, message)
    return PushedRecord(site, node, version, digest, issued_at, actor, topic, unchecked=unchecked)


def config_history(session: Session, *, site: str, node: str) -> list[NodeConfig]:
    """The node's pushed configs, newest first."""
    return list(
        session.scalars(
            select(NodeConfig)
            .where(NodeConfig.site == site, NodeConfig.node == node)
            .order_by(NodeConfig.issued_at.desc(), NodeConfig.id.desc())
        )
    )


def read_document(path: Path) -> dict[str, Any]:
    """A site configuration file as a pushable document: scene and calibration files it
    names (relative to the file) are carried inline; the delivery section is left out
    (it holds the node's own secrets)."""
    data = _yaml_file(path, "")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with site, node, version and cameras")
    data.pop("delivery", None)
    cameras = data.get("cameras")
    if isinstance(cameras, list):
        data["cameras"] = [_inline(path.parent, c) if isinstance(c, dict) else c for c in cameras]
    # JSON round trip: dates and times in the YAML become the strings the contract carries.
    try:
        result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a site configuration") from None
    return result


def _inline(base: Path, camera: dict[str, Any]) -> dict[str, Any]:
    out = dict(camera)
    for key in ("scene", "calibration"):
        value = camera.get(key)
        if isinstance(value, str):
            file = Path(value) if Path(value).is_absolute() else base / value
            out[key] = _yaml_file(file, f"{key} file ")
    return out


def _yaml_file(path: Path, what: str) -> Any:
    """A YAML file's data; one line naming the file when it cannot be read as YAML."""
    from roadwatch.yaml_load import YamlError, load_yaml

    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {what}{path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise UserError(f"{what}{path}: not UTF-8 text") from None
    except YamlError as exc:
        raise UserError(f"{what}{path}: not valid YAML: {exc}") from None


def publish_retained(settings: Settings, topic: str, payload: bytes) -> None:
    """Publish ``payload`` retained at QoS 1 and wait for the broker's PUBACK."""
    from central.ingest import central_client

    timeout = settings.config_push_timeout_s
    client = central_client(settings, f"roadwatch-central-config-{secrets.token_hex(6)}")
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
        connected.set()

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))

    client.on_connect = on_connect
    client.on_publish = on_publish
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    except OSError as exc:
        raise BrokerUnavailableError(
            f"broker {settings.mqtt_host}:{settings.mqtt_port} unreachable: {exc}"
        ) from exc
    client.loop_start()
    broker = f"broker {settings.mqtt_host}:{settings.mqtt_port}"
    try:
        if not connected.wait(timeout):
            # (It said "refused the connection: no answer" of a broker that never answered.)
            raise BrokerUnavailableError(
                f"{broker} did not answer within {timeout:g} s (ROADWATCH_CONFIG_PUSH_TIMEOUT_S)"
            )
        if refused:
            raise BrokerUnavailableError(f"{broker} refused the connection: {refused[0]}")
        info = client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnavailableError(f"config not sent to the broker: {exc}") from exc
        if not info.is_published():
            raise BrokerUnavailableError(f"no acknowledgement of the config in {timeout} s")
        if refused:
            # MQTT 5: a publish the ACL denies is acknowledged with a failure reason.
            raise BrokerUnavailableError(f"broker refused the config: {refused[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
