"""Case packages made here, as central writes them, for the verifier's tests and bench."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

from central.audit import GENESIS, entry_hash
from roadwatch.case_package import (
    AUDIT,
    CENTRAL_KEY,
    EVENT,
    FORMAT,
    MANIFEST,
    MANIFEST_SIG,
    NODE_KEY,
    UNSIGNED_FORMAT,
    evidence_name,
)
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType, to_wire
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign, sign_bytes
from tests.factories import T0, violation_event

FRAME = b"\xff\xd8\xff\xe0" + b"frame" * 50


class Keys(NamedTuple):
    node: bytes  # PEM
    central: bytes


def make_package(
    path: Path, *, evidence: bytes = FRAME, role: EvidenceRole = EvidenceRole.FRAME_AT,
    media_type: MediaType = MediaType.JPEG, signed: bool = True,
    change: dict[str, bytes] | None = None,
) -> Keys:  # fmt: skip
    """A package of one signed event with one piece of evidence and one audit entry, its
    manifest signed by a central key (unless not ``signed``: the older format); ``change``
    gives other bytes for any member (before the manifest is written). The evidence is
    stored, not deflated, as central writes it."""
    key, central = generate_private_key(), generate_private_key()
    ref = EvidenceRef(
        role=role, media_type=media_type,
        sha256=hashlib.sha256(evidence).hexdigest(), size=len(evidence),
    )  # fmt: skip
    event = sign(violation_event(evidence=[ref]), key)
    detail = json.dumps({"from": "new", "to": "in_review"})
    entry = {"seq": 7, "at": T0.isoformat(), "actor": "officer.a", "action": "start_review",
             "violation_id": 12, "detail": detail, "prev_hash": GENESIS}  # fmt: skip
    entry["entry_hash"] = entry_hash(**{**entry, "at": T0})  # type: ignore[arg-type]
    keys = Keys(public_key_pem(key.public_key()), public_key_pem(central.public_key()))
    members = {
        EVENT: to_wire(event), NODE_KEY: keys.node, evidence_name(role, media_type): evidence,
        AUDIT: json.dumps([entry]).encode(),
    }  # fmt: skip
    if signed:
        members[CENTRAL_KEY] = keys.central
    members.update(change or {})
    files = {n: hashlib.sha256(b).hexdigest() for n, b in members.items()}
    manifest = {"format": FORMAT if signed else UNSIGNED_FORMAT, "case": 12,
                "event_id": event.event_id, "missing": [], "record_problems": [],
                "files": files}  # fmt: skip
    raw_manifest = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as package:
        for name, data in members.items():
            stored = name.startswith("evidence/")
            package.writestr(name, data, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        package.writestr(MANIFEST, raw_manifest)
        if signed:
            package.writestr(MANIFEST_SIG, sign_bytes(raw_manifest, central) + "\n")
    return keys
