"""Configuration of evidence delivery: broker, central, outbox and node key.

Loaded from the ``delivery:`` section of a YAML file (or a file holding only that
section). Unknown keys are refused; every field says what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from roadwatch.contract.models import Ident
from roadwatch.contract.wire import describe
from roadwatch.errors import UserError
from roadwatch.yaml_load import YamlError, load_yaml

_PLACEHOLDERS = {"changeme", "change-me", "secret", "token", "xxx", ""}
MAX_CENTRAL_KEYS = 3
"""Central's config keys a node takes at once: the one in use, and the others of a change."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _at_most(first: str, cap: str, section: BaseModel) -> None:
    """A delay that doubles from ``first`` up to ``cap``: a first delay above the cap would
    be cut to the cap at once, which is not what either number says."""
    low, high = getattr(section, first), getattr(section, cap)
    if low > high:
        raise ValueError(f"{first} ({low:g} s) is above {cap} ({high:g} s); raise {cap} too")


class TlsConfig(_Section):
    ca_file: Path = Field(title="CA file", description="PEM bundle that signs the broker's cert")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="client certificate's key")


class BrokerConfig(_Section):
    host: str = Field(default="127.0.0.1", description="MQTT broker host")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=1883, description="broker port")
    username: str | None = Field(default=None, description="per-node MQTT user name")
    password: SecretStr | None = Field(default=None, description="per-node MQTT password")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; none = plain TCP")
    keepalive_s: Annotated[int, Field(ge=2, le=3600)] = Field(
        default=30, description="MQTT keep-alive: a silent uplink is noticed after 1.5 times it"
    )
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.5, description="first reconnect delay; doubles on each failure"
    )
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0, description="longest reconnect delay"
    )
    max_inflight: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=200, description="QoS 1 messages sent and awaiting PUBACK at once"
    )
    ack_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0, description="a message without PUBACK this long is sent again later"
    )

    @model_validator(mode="after")
    def _ordered(self) -> BrokerConfig:
        _at_most("reconnect_min_s", "reconnect_max_s", self)
        return self


class OutboxConfig(_Section):
    path: Path = Field(default=Path("var/outbox"), description="folder of the outbox")
    limit_bytes: Annotated[int, Field(ge=1 << 20)] = Field(
        default=20 << 30, description="disk budget for stored events and evidence"
    )
    event_reserve_bytes: Annotated[int, Field(ge=0)] = Field(
        default=256 << 20,
        description="extra room for events alone once evidence has filled the budget",
    )
    alarm_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.8, description="the node status raises an alarm above this fraction"
    )
    retry_base_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=1.0, description="first retry delay of a failed send; doubles each time"
    )
    retry_cap_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=300.0, description="longest retry delay"
    )
    receipt_timeout_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=60.0,
        description="a published event without central's receipt after this is sent again; "
        "the wait doubles with each re-send",
    )
    receipt_timeout_cap_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=900.0, description="longest wait for a receipt before the next re-send"
    )
    reconcile_after_s: Annotated[float, Field(gt=0, le=30 * 86400)] = Field(
        default=1800.0,
        description="events without a receipt for this long are checked with central over "
        "HTTP (POST /api/v1/events/known): held ones are marked receipted, the rest re-sent",
    )
    receipted_retention_s: Annotated[float, Field(ge=0, le=365 * 86400)] = Field(
        default=86400.0,
        description="receipted events stay this long (for inspection), then are deleted with "
        "their uploaded evidence records",
    )

    @model_validator(mode="after")
    def _ordered(self) -> OutboxConfig:
        _at_most("retry_base_s", "retry_cap_s", self)
        _at_most("receipt_timeout_s", "receipt_timeout_cap_s", self)
        return self


class CentralConfig(_Section):
    url: str = Field(description="central's base URL, e.g. https://central.example/")
    upload_token: SecretStr = Field(description="the node's upload token from central")
    timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0, description="HTTP timeout of one request"
    )

    @model_validator(mode="after")
    def _real_values(self) -> CentralConfig:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.upload_token.get_secret_value().strip().lower() in _PLACEHOLDERS:
            raise ValueError("upload_token is a placeholder; use the token central printed")
        return self


class EvidenceSettings(_Section):
    ring_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=12.0, description="seconds of recent frames each camera's ring buffer keeps"
    )
    ring_max_bytes: Annotated[int, Field(ge=1 << 20)] = Field(
        default=128 << 20, description="memory bound of one camera's ring (JPEG bytes)"
    )
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = Field(
        default=90, description="JPEG quality of buffered frames and evidence images"
    )
    frame_offset_s: Annotated[float, Field(gt=0, le=10)] = Field(
        default=1.0, description="the before and after frames are this far from the moment"
    )
    clip_half_s: Annotated[float, Field(gt=0, le=30)] = Field(
        default=4.0, description="the clip runs this long before and after the moment"
    )

    @model_validator(mode="after")
    def _ring_covers_clip(self) -> EvidenceSettings:
        if self.ring_seconds < 2 * max(self.clip_half_s, self.frame_offset_s):
            raise ValueError("ring_seconds must cover the whole clip (2 x clip_half_s)")
        return self


class ConfigPushSettings(_Section):
    """Configuration pushed by central on the node's retained config topic."""

    central_key: Path | tuple[Path, ...] = Field(
        description="central's config-signing public key (PEM, from "
        "`roadwatch central config keygen`), or a list of 1 to "
        f"{MAX_CENTRAL_KEYS} during a key change (the old and the new); only pushes "
        "signed with one of them are applied"
    )
    store: Path = Field(
        default=Path("var/config"),
        description="folder where the applied push is kept, so a restart runs it too",
    )

    @field_validator("central_key", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Path | tuple[Path, ...]:
        # (checked here, before the union's own errors: those name both branches)
        if isinstance(value, str | Path):
            return Path(value)
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a path or a list of paths, not {value!r}")
        if not 1 <= len(value) <= MAX_CENTRAL_KEYS:
            raise ValueError(
                f"a list of 1 to {MAX_CENTRAL_KEYS} paths (the key central signs with, and"
                f" the other during a key change), not {len(value)}"
            )
        for index, item in enumerate(value):
            if not isinstance(item, str | Path):
                raise ValueError(f"item {index}: expected a path, not {item!r}")
        return tuple(Path(item) for item in value)

    @property
    def central_keys(self) -> tuple[Path, ...]:
        """The files of central's config keys: one, or those of a key change."""
        key = self.central_key
        return (key,) if isinstance(key, Path) else key


class DeliveryConfig(_Section):
    """How a node stores and sends its events and evidence."""

    site: Ident = Field(description="site id (topic level)")
    node: Ident = Field(description="node id (topic level); also the MQTT client id's base")
    key_path: Path = Field(description="the node's Ed25519 private key (roadwatch edge keygen)")
    broker: BrokerConfig = BrokerConfig()
    outbox: OutboxConfig = OutboxConfig()
    central: CentralConfig | None = Field(
        default=None, description="evidence upload target; none = evidence stays queued"
    )
    evidence: EvidenceSettings = EvidenceSettings()
    status_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0, description="how often the retained node status is refreshed"
    )
    config_push: ConfigPushSettings | None = Field(
        default=None, description="accept camera and scene configs pushed by central"
    )

    @property
    def client_id(self) -> str:
        # Fixed per node: the broker keeps the persistent session under this id.
        return f"roadwatch-{self.site}-{self.node}"

    def resolved(self, base: Path) -> DeliveryConfig:
        """The settings with their relative file paths taken from ``base`` (the folder of
        the file they were read from): node key, outbox, TLS files, config push."""

        def at(path: Path) -> Path:
            return path if path.is_absolute() else base / path

        update: dict[str, Any] = {
            "key_path": at(self.key_path),
            "outbox": self.outbox.model_copy(update={"path": at(self.outbox.path)}),
        }
        if (tls := self.broker.tls) is not None:
            files = {"ca_file": at(tls.ca_file)}
            for key in ("cert_file", "key_file"):
                if (path := getattr(tls, key)) is not None:
                    files[key] = at(path)
            update["broker"] = self.broker.model_copy(update={"tls": tls.model_copy(update=files)})
        if (push := self.config_push) is not None:
            given = push.central_key
            keys = at(given) if isinstance(given, Path) else tuple(at(p) for p in given)
            update["config_push"] = push.model_copy(
                update={"central_key": keys, "store": at(push.store)}
            )
        return self.model_copy(update=update)


def load_delivery_config(path: Path) -> DeliveryConfig:
    """Read a DeliveryConfig from YAML: the ``delivery`` section of a site configuration
    (which takes the node's ``site`` and ``node`` from the top, as ``edge run`` does) or a
    file holding only that section. Relative paths are taken from the file's folder. A
    one-line UserError on any problem."""
    try:
        data: Any = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except YamlError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "delivery" in data:
        section = data["delivery"]
        if isinstance(section, dict):
            section = {**{k: data[k] for k in ("site", "node") if k in data}, **section}
        data = section
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with the delivery settings")
    try:
        config = DeliveryConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: {describe(exc)}") from exc
    return config.resolved(path.resolve().parent)
