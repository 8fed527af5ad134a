"""Site configuration: one YAML file per edge node, validated before anything starts.

Unknown keys are refused and every error names the key's path
(``site.yaml: cameras.1.target_fps: Input should be greater than 0``). Other
capabilities add their own sections as separate models in their own modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.delivery_config import DeliveryConfig
from edge.detections import ObjectClass
from edge.detector import DetectorConfig, class_probabilities
from edge.tracking import TrackerConfig
from roadwatch.contract.models import ShortText
from roadwatch.errors import UserError, validator_words
from roadwatch.net import redact_url
from roadwatch.yaml_load import YamlError, load_yaml

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "file"})


class ConfigError(UserError):
    """The site configuration file is missing, not YAML, or invalid."""


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Ident = Field(description="camera id, unique within the node; used in topics")
    url: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="rtsp://... stream or a video file path"
    )
    target_fps: Annotated[float, Field(gt=0.0, le=120.0)] | None = Field(
        None, description="process at most this many frames per second (default: all)"
    )
    model: str | None = Field(None, description="manifest name of the detector (default: node's)")
    thresholds: dict[ObjectClass, Probability] = Field(
        default_factory=dict, description="per-class minimum confidence for this camera"
    )
    enabled: bool = True
    loop: bool = Field(False, description="restart a file source at its end")
    stall_timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = Field(
        10.0, description="no frame for this long -> reconnect (reported as stalled)"
    )
    scene: Path | None = Field(
        None, description="scene file (lanes, lines, zones, lamps); enables enforcement"
    )
    calibration: Path | None = Field(
        None, description="calibration file (road-plane homography); needed for metres and speed"
    )
    place: ShortText | None = Field(
        None,
        description="place and Km marker printed on the evidence and named in the node's status"
        " (central's camera list shows it), e.g. 'QL13 Km 22+300'",
    )
    persons_as_riders: bool = Field(
        False,
        description="count a person box on the carriageway as a two-wheeler with its rider "
        "(cameras that see motorcycles from behind or above)",
    )
    reference_view: Path | None = Field(
        None,
        description="image of the calibrated view for the integrity guard "
        "(default: the first frame after start)",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if sep and (scheme.lower() not in STREAM_SCHEMES or not rest):
            known = ", ".join(sorted(STREAM_SCHEMES))
            shown = redact_url(value)
            raise ValueError(f"unsupported source {shown!r} (use a file path or {known} URL)")
        return value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return class_probabilities(value)


class IntegrityConfig(BaseModel):
    """The scene-integrity guard: enforcement pauses while a camera's view has moved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    check_every_s: Annotated[float, Field(gt=0.0, le=3600.0)] = Field(
        5.0, description="seconds between checks of a camera's view"
    )
    max_shift_px: Annotated[float, Field(gt=0.0, le=500.0)] = Field(
        8.0, description="view shift (pixels) beyond which enforcement pauses"
    )
    inertia: Annotated[int, Field(ge=1, le=100)] = Field(
        3, description="checks in a row before enforcement pauses or resumes"
    )


class DecodeConfig(BaseModel):
    """Where the node's camera streams are decoded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decoder: Literal["auto", "opencv", "nvdec"] = Field(
        "auto",
        description="nvdec: the GPU's video decoder (PyNvVideoCodec; frames stay in GPU"
        " memory for the detector); opencv: FFmpeg on the CPU; auto: nvdec where"
        " PyNvVideoCodec, CuPy and a GPU are usable, else opencv (decoding and detection"
        " share GPU 0)",
    )


class SiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: Ident
    node: Ident
    cameras: Annotated[list[CameraConfig], Field(min_length=1, max_length=256)]
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    delivery: DeliveryConfig | None = Field(
        None, description="broker, central, outbox and node key; none: violations stay local"
    )
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    processes: Annotated[int, Field(ge=1, le=64)] = Field(
        1,
        description="worker processes that share the cameras, each running its cameras"
        " end to end (readers, detector session, tracking, rules, evidence); the node's"
        " own process keeps delivery. 1: everything in one process. More for nodes whose"
        " cameras outrun one pipeline thread (about 30 streams at 30 fps on the GPU path)",
    )
    plates: bool = Field(True, description="read the plates of vehicles that broke a rule")
    version: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        "local", description="configuration version, reported in the node's status"
    )

    @model_validator(mode="before")
    @classmethod
    def _delivery_identity(cls, data: Any) -> Any:
        # The delivery section shares the node's identity; it need not repeat it.
        if isinstance(data, dict) and isinstance(data.get("delivery"), dict):
            delivery = dict(data["delivery"])
            for key in ("site", "node"):
                if key in data:
                    delivery.setdefault(key, data[key])
            data = {**data, "delivery": delivery}
        return data

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        # (A check of the whole model was named "(top level)" in the error.)
        seen: dict[str, int] = {}
        for index, cam in enumerate(cameras):
            if cam.id in seen:
                raise ValueError(
                    f"camera id {cam.id!r} appears twice (cameras.{seen[cam.id]} and"
                    f" cameras.{index})"
                )
            seen[cam.id] = index
        return cameras

    @model_validator(mode="after")
    def _delivery_matches(self) -> SiteConfig:
        if self.delivery is not None and (self.delivery.site, self.delivery.node) != (
            self.site,
            self.node,
        ):
            raise ValueError("delivery.site and delivery.node must match site and node")
        return self

    def resolved(self, base: Path) -> SiteConfig:
        """The configuration with its relative file paths taken from ``base``."""

        def at(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else base / path

        cameras = []
        for cam in self.cameras:
            update: dict[str, object] = {}
            for key in ("scene", "calibration", "reference_view"):
                if (moved := at(getattr(cam, key))) is not None:
                    update[key] = moved
            if "://" not in cam.url and not Path(cam.url).is_absolute():
                update["url"] = str(base / cam.url)
            cameras.append(cam.model_copy(update=update))
        update_site: dict[str, Any] = {"cameras": cameras}
        if self.delivery is not None:
            update_site["delivery"] = self.delivery.resolved(base)
        return self.model_copy(update=update_site)

    def detector_for(self, camera: CameraConfig) -> DetectorConfig:
        overrides = {**self.detector.class_confidence, **camera.thresholds}
        return self.detector.model_copy(
            update={"model": camera.model or self.detector.model, "class_confidence": overrides}
        )

    @classmethod
    def for_source(cls, url: str, camera: str = "source") -> SiteConfig:
        """The defaults used when a run names a source and no configuration."""
        return cls(site="local", node="local", cameras=[CameraConfig(id=camera, url=url)])


def error_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {validator_words(first['msg'])}{more}"


def parse_site_config(data: Any, origin: str = "config") -> SiteConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with site, node and cameras")
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {error_line(exc)}") from exc


def load_site_config(path: Path) -> SiteConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}: not UTF-8 text") from None
    try:
        data = load_yaml(text)
    except YamlError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {exc}") from None
    return parse_site_config(data, path.name).resolved(path.resolve().parent)
