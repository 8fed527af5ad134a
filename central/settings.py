"""Central's settings, read from the environment (prefix ``ROADWATCH_``) by a factory.

Nothing here runs at import time: ``load_settings()`` builds a ``Settings`` when a
command or a test asks for one. Outside development a placeholder or missing secret is
refused, so a production deployment cannot start with a guessable token key.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "changeme", "secret", "dev"})
MIN_SECRET_LENGTH = 32
# Also the default secrets of local object stores and AWS's documentation example.
S3_PLACEHOLDERS = PLACEHOLDER_SECRETS | {
    "minioadmin",
    "minio123",
    "testing",
    "test",
    "wjalrxutnfemi/k7mdeng/bpxrficyexamplekey",
}

# An offset from UTC as statistics take it: +07:00, -05:30 (-14:59 to +14:59).
UTC_OFFSET_PATTERN = r"^[+-](0\d|1[0-4]):[0-5]\d$"


# ROADWATCH_ variables that are not central settings, which an environment shared with the
# edge, the model tools or the tests (a container, CI) may hold beside central's.
OTHER_VARIABLES = frozenset(
    {
        "ROADWATCH_MODELS_DIR",  # models/registry.py: the models folder (edge)
        "ROADWATCH_PARITY_PROVIDERS",  # models parity: the providers compared
        "ROADWATCH_SHARED_DATA",  # the sample media (eval)
        "ROADWATCH_NEW_PASSWORD",  # central create-user: the new user's password
        "ROADWATCH_REQUIRE_SERVICES",  # tests: a missing service fails (CI)
        "ROADWATCH_TEST_MQTT",  # tests: the broker's address
        "ROADWATCH_TEST_POSTGRES",  # tests: the database's URL
        "ROADWATCH_TEST_WORKERS",  # scripts/test: test processes (0: one, in-process)
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class EvidenceStoreKind(StrEnum):
    FILESYSTEM = "filesystem"
    S3 = "s3"


class S3AddressingStyle(StrEnum):
    PATH = "path"
    VIRTUAL = "virtual"
    AUTO = "auto"


class Settings(BaseSettings):
    """Every knob of the central service; each maps to ``ROADWATCH_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="ROADWATCH_", extra="ignore", frozen=True, validate_default=True
    )

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="'production' refuses placeholder or short secrets",
    )
    data_dir: Path = Field(
        default=Path("var/central"),
        description="Folder for the embedded SQLite database and the evidence store",
    )
    database_url: str | None = Field(
        default=None,
        repr=False,  # (it may hold the database password)
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; "
        "default: SQLite in data_dir",
    )
    migrate_on_start: bool = Field(default=True, description="Apply migrations on start")
    secret_key: str = Field(
        default="",
        description="Key that signs access tokens (at least 32 characters)",
        repr=False,
    )
    access_token_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    session_max_hours: Annotated[float, Field(gt=0, le=7 * 24)] = Field(
        default=12.0,
        description="Longest a log-in lasts however often its token is renewed (a shift)",
    )
    evidence_store: EvidenceStoreKind = Field(
        default=EvidenceStoreKind.FILESYSTEM,
        description="Where evidence blobs live: 'filesystem' (evidence_dir) or 's3'",
    )
    evidence_dir: Path | None = Field(
        default=None,
        description="Content-addressed evidence folder (its tmp/ also spools uploads for "
        "the S3 store); default data_dir/evidence",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Endpoint of an S3-compatible store, e.g. http://minio:9000 "
        "(default: AWS S3 of s3_region)",
    )
    s3_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket of the evidence blobs (it must exist)",
    )
    s3_region: str | None = Field(default=None, description="Region of the bucket")
    s3_access_key_id: str | None = Field(
        default=None, description="Access key; unset: the AWS default chain (env, profile, role)"
    )
    s3_secret_access_key: str | None = Field(
        default=None, description="Secret of the access key", repr=False
    )
    s3_prefix: Annotated[str, Field(pattern=r"^([A-Za-z0-9!_.*'()-]+/)*$")] = Field(
        default="", description="Key prefix of the blobs inside the bucket, e.g. 'evidence/'"
    )
    s3_addressing_style: S3AddressingStyle = Field(
        default=S3AddressingStyle.PATH,
        description="'path' (most S3-compatible stores), 'virtual' or 'auto'",
    )
    max_evidence_bytes: Annotated[int, Field(ge=1, le=256 * 1024 * 1024)] = 64 * 1024 * 1024
    two_person_rule: bool = Field(
        default=True,
        description="The officer who confirms a case may not issue its notice",
    )
    notice_days: Annotated[int, Field(ge=1, le=365)] = 10
    escalation_days: Annotated[int, Field(ge=1, le=365)] = 20
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token a Prometheus scraper presents at /metrics",
        repr=False,
    )
    feed_poll_s: Annotated[float, Field(gt=0.0, le=60.0)] = 1.0
    status_silent_s: Annotated[float, Field(gt=0.0, le=86_400.0)] = Field(
        default=120.0,
        description="A node that has sent no status for this long is shown silent and its"
        " cameras unknown (nodes send one every 30 s by default: keep a few of their"
        " intervals)",
    )
    stats_utc_offset: str = Field(
        default="+07:00",
        description="Offset from UTC at which statistics count hours and days when a request"
        " names none (its utc_offset): +07:00 counts Vietnam's days, midnight to midnight"
        " there",
    )
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = Field(default=None, repr=False)
    mqtt_tls: bool = False
    mqtt_tls_ca: Path | None = Field(
        default=None, description="CA file of the broker's certificate (default: system CAs)"
    )
    mqtt_client_id: str | None = Field(
        default=None, description="Stable MQTT client id of this ingest replica (session kept)"
    )
    mqtt_share_group: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "central"
    mqtt_site: Annotated[str, Field(pattern=r"^(\+|[a-z0-9][a-z0-9_-]{0,63})$")] = Field(
        default="+", description="Site to ingest ('+' = all sites)"
    )
    mqtt_session_expiry_s: Annotated[int, Field(ge=0, le=30 * 86400)] = 7 * 86400
    ingest_batch: Annotated[int, Field(ge=1, le=5000)] = 500
    ingest_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 1000
    config_key: Path | None = Field(
        default=None,
        description="Ed25519 private key that signs configs pushed to nodes "
        "(`roadwatch central config keygen`); default data_dir/config-signing.key",
    )
    case_key: Path | None = Field(
        default=None,
        description="Ed25519 private key that signs exported case packages and audit checkpoints "
        "(`roadwatch central case keygen`); default data_dir/case-signing.key",
    )
    config_push_timeout_s: Annotated[float, Field(gt=0.0, le=120.0)] = Field(
        default=10.0, description="How long a config push waits for the broker"
    )
    receipts: bool = Field(
        default=True,
        description="Publish end-to-end receipts to each node's receipt topic after commit",
    )
    accept_unsigned_traffic_status: bool = Field(
        default=False,
        description="Take traffic minutes and statuses that carry no signature, and signed"
        " statuses without their position in the node's order, from nodes not yet upgraded,"
        " while nodes are upgraded (a bad signature is refused all the same; violations are"
        " always signed); off: they are quarantined as unsigned and unsequenced",
    )

    @field_validator("data_dir", "evidence_dir")
    @classmethod
    def _a_folder(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # Made on first use: a file where it or a folder above it should be would stop
        # each command with a traceback from deep inside (FileExistsError, NotADirectoryError).
        if value is None:
            return None
        name = f"ROADWATCH_{(info.field_name or '').upper()}"
        for folder in (value, *value.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    what = value if folder == value else f"{value}: {folder}"
                    raise ValueError(f"{name} {what} is a file, not a folder")
                break
        return value

    @field_validator("database_url")
    @classmethod
    def _a_database_central_runs_on(cls, value: str | None) -> str | None:
        # Any other URL would fail later with its driver's import error (No module named
        # 'MySQLdb').
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            return value  # (not a URL at all: opening the database says so)
        if url.drivername in ("postgresql", "postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
            return value
        raise ValueError(
            f"ROADWATCH_DATABASE_URL names {url.drivername}: central runs on PostgreSQL"
            " (postgresql+psycopg://user@host/db) or SQLite (sqlite:///path/central.db)"
        )

    @field_validator("stats_utc_offset")
    @classmethod
    def _an_offset(cls, value: str) -> str:
        if not re.fullmatch(UTC_OFFSET_PATTERN, value):
            raise ValueError(
                f"ROADWATCH_STATS_UTC_OFFSET {value!r} is not an offset from UTC:"
                " give a sign, hours and minutes, e.g. +07:00 (Vietnam) or -05:30"
            )
        return value

    @field_validator(
        "s3_endpoint_url",
        "s3_bucket",
        "s3_region",
        "s3_access_key_id",
        "s3_secret_access_key",
        "mqtt_tls_ca",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A compose file passes an unset variable on as an empty string.
        return None if value == "" else value

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.evidence_store is not EvidenceStoreKind.S3:
            return self
        if not self.s3_bucket:
            raise ValueError("ROADWATCH_S3_BUCKET is needed when ROADWATCH_EVIDENCE_STORE=s3")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError(
                "set both ROADWATCH_S3_ACCESS_KEY_ID and ROADWATCH_S3_SECRET_ACCESS_KEY, "
                "or neither (the AWS default credential chain)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment is Environment.DEVELOPMENT:
            return self
        if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "ROADWATCH_SECRET_KEY is missing or a placeholder; "
                "set a random value of at least 32 characters outside development"
            )
        if len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"ROADWATCH_SECRET_KEY has {len(self.secret_key)} characters; "
                f"at least {MIN_SECRET_LENGTH} are needed outside development"
            )
        metrics = self.metrics_token
        if metrics is not None and (
            metrics.strip().lower() in PLACEHOLDER_SECRETS or len(metrics) < MIN_SECRET_LENGTH
        ):
            raise ValueError(
                "ROADWATCH_METRICS_TOKEN is a placeholder or shorter than "
                f"{MIN_SECRET_LENGTH} characters; set a random one (or leave it unset)"
            )
        if self.mqtt_password is not None and self.mqtt_password.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("ROADWATCH_MQTT_PASSWORD is a placeholder")
        s3_secret = self.s3_secret_access_key
        if s3_secret is not None and s3_secret.strip().lower() in S3_PLACEHOLDERS:
            raise ValueError("ROADWATCH_S3_SECRET_ACCESS_KEY is a placeholder")
        return self

    @property
    def silent_after(self) -> timedelta:
        return timedelta(seconds=self.status_silent_s)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'central.db').as_posix()}"

    @property
    def broker_username(self) -> str | None:
        """Central's broker login: ROADWATCH_MQTT_USERNAME, else "central" (the account
        `central broker-files` writes) once a password is set; none for an open broker."""
        return self.mqtt_username or ("central" if self.mqtt_password else None)

    @property
    def resolved_evidence_dir(self) -> Path:
        return self.evidence_dir or self.data_dir / "evidence"

    @property
    def evidence_location(self) -> str:
        """Where the evidence blobs go, for people to read."""
        if self.evidence_store is EvidenceStoreKind.S3:
            endpoint = f" at {self.s3_endpoint_url}" if self.s3_endpoint_url else ""
            return f"s3://{self.s3_bucket}/{self.s3_prefix}{endpoint}"
        return str(self.resolved_evidence_dir)

    @property
    def resolved_config_key(self) -> Path:
        return self.config_key or self.data_dir / "config-signing.key"

    @property
    def resolved_case_key(self) -> Path:
        return self.case_key or self.data_dir / "case-signing.key"

    def token_key(self) -> str:
        """The key that signs access tokens; a fresh random one in development when unset."""
        return self.secret_key or _DEV_KEY.value


class _DevKey:
    """A per-process random key, so an unconfigured development server has no known key."""

    def __init__(self) -> None:
        self._value: str | None = None

    @property
    def value(self) -> str:
        if self._value is None:
            self._value = secrets.token_urlsafe(48)
        return self._value


_DEV_KEY = _DevKey()


def unknown_variable(environ: Mapping[str, str]) -> str | None:
    """The first ROADWATCH_ variable of ``environ`` that is neither a setting nor one of
    ``OTHER_VARIABLES``, said as a refusal with the setting it most looks like; None when
    there is none. (A mistyped name was ignored: central ran on SQLite for a mistyped
    database URL.)"""
    settings = sorted(name.upper() for name in Settings.model_fields)
    for name, value in sorted(environ.items()):
        upper = name.upper()
        if not upper.startswith("ROADWATCH_") or not value:  # (empty: as if unset)
            continue
        rest = upper.removeprefix("ROADWATCH_")
        if rest in settings or upper in OTHER_VARIABLES:
            continue
        close = difflib.get_close_matches(rest, settings, n=1, cutoff=0.6)
        hint = f"did you mean ROADWATCH_{close[0]}?" if close else "see docs/central.md"
        return f"{name} is not a central setting ({hint})"
    return None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with keyword overrides (tests, CLI flags). A
    ROADWATCH_ variable that is no setting is refused (see ``unknown_variable``)."""
    from pydantic import ValidationError

    from roadwatch.errors import UserError, validator_words

    if (unknown := unknown_variable(os.environ)) is not None:
        raise UserError(unknown)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        where = f"setting '{loc}': " if loc else ""
        message = validator_words(first["msg"])
        raise UserError(f"invalid central settings: {where}{message}") from exc
