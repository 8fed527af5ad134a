"""A case exported as one ZIP file a third party can check without central
(the format and its check: ``roadwatch.case_package``).

Each piece of evidence is read from the store once, hashed as it is copied, and put in
only when it is the blob the signed event lists; one that never arrived, or that the
store no longer holds as listed, is named in the manifest with the reason. Central signs
the manifest with its case-signing key, so that what only central can tell (the audit
trail, what is missing) is proven as the node's signature proves the event. The export
is written to the case's audit trail with the package's sha256, so that the copy handed
to a court can be matched with the record.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.case_record import record_problems
from central.evidence import EvidenceStore
from central.keys import load_central_key
from central.models import AuditEntry, Blob, Node, NodeKey, Violation
from central.records import append_audit
from central.settings import Settings
from central.workflow import Case, Status, plate_to_act_on
from roadwatch.case_package import (
    AUDIT,
    CENTRAL_KEY,
    EVENT,
    FORMAT,
    MANIFEST,
    MANIFEST_SIG,
    NODE_KEY,
    README,
    README_TEXT,
    evidence_name,
)
from roadwatch.contract import EvidenceRef, ViolationEvent, parse_payload
from roadwatch.contract.signing import (
    SignatureError,
    key_fingerprint,
    load_public_key_pem,
    public_key_pem,
    sign_bytes,
    verify,
)
from roadwatch.errors import UserError

COPY_CHUNK = 1 << 20


class NoCaseKeyError(UserError):
    """Central has no case-signing key (or cannot load it): nothing can be exported."""


def load_case_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.resolved_case_key
    return load_central_key(
        path, kind="case-signing key", error=NoCaseKeyError,
        missing=f"central has no case-signing key at {path}: an administrator runs"
        " `roadwatch central case keygen` once, and publishes its .pub file for whoever"
        " checks exported cases",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExportedCase:
    file: IO[bytes]  # the ZIP, positioned at its start
    name: str
    size: int
    sha256: str
    manifest: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CaseOnRecord:
    """What a package is made of from the database, read in one short transaction (the
    evidence is read from the store afterwards, holding no database lock)."""

    case: int
    payload: str
    payload_sha256: str  # as central recorded it
    event: ViolationEvent
    facts: dict[str, Any]  # the manifest's description of the case
    node_pem: str | None
    node_key: dict[str, Any] | None
    audit: list[dict[str, Any]]
    arrived: frozenset[str]  # the sha256 of the listed blobs that have arrived


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def case_on_record(session: Session, v: Violation) -> CaseOnRecord:
    event = parse_payload(ViolationEvent, v.payload.encode("utf-8"))
    signer = _signing_key(session, v, event)
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.violation_id == v.id).order_by(AuditEntry.seq)
    ).all()
    listed = {ref.sha256 for ref in event.evidence}
    arrived = (
        frozenset(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(listed))))
        if listed
        else frozenset()
    )
    case = Case(
        status=Status(v.status), occurred_at=v.occurred_at, plate_text=v.plate_text,
        plate_corrected=v.plate_corrected, plate_valid=v.plate_valid,
    )  # fmt: skip
    facts = {
        "case": v.id, "event_id": v.event_id, "site": v.site, "node": v.node,
        "status": v.status, "record_problems": record_problems(session, v),
        # The plate as the case was decided on (an officer's correction, else the roadside
        # reading that passed the format check), beside the roadside reading the event holds.
        "plate": plate_to_act_on(case), "plate_read": v.plate_text,
        "plate_corrected": v.plate_corrected, "confirmed_by": v.confirmed_by,
        "decided_at": _iso(v.decided_at), "notice_issued_at": _iso(v.notice_issued_at),
    }  # fmt: skip
    node_key = None if signer is None else {
        "fingerprint": signer.fingerprint,
        "added_at": signer.added_at.isoformat(),
        "revoked_at": signer.revoked_at.isoformat() if signer.revoked_at else None,
        "revoke_reason": signer.revoke_reason,
    }  # fmt: skip
    return CaseOnRecord(
        v.id, v.payload, v.payload_sha256, event, facts,
        signer.public_key_pem if signer else None, node_key, [_entry(e) for e in entries],
        arrived,
    )  # fmt: skip


def export_case(
    record: CaseOnRecord,
    store: EvidenceStore,
    *,
    key: Ed25519PrivateKey,
    actor: str,
    at: datetime,
) -> ExportedCase:
    """The case as a package (see the module's description), signed with ``key``, in a
    temporary file."""
    files: dict[str, str] = {}
    missing: list[dict[str, str]] = []
    out = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 (returned open)
    try:
        with zipfile.ZipFile(out, "w") as package:

            def put(name: str, data: bytes) -> None:
                package.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
                files[name] = hashlib.sha256(data).hexdigest()

            put(EVENT, record.payload.encode("utf-8"))
            if record.node_pem is not None:
                put(NODE_KEY, record.node_pem.encode("ascii"))
            for ref in record.event.evidence:
                if ref.sha256 not in record.arrived:
                    why: str | None = "it has not arrived at central"
                else:
                    why = _copy_evidence(store, package, ref)
                if why is None:
                    files[evidence_name(ref.role, ref.media_type)] = ref.sha256
                else:
                    missing.append({"role": ref.role.value, "sha256": ref.sha256, "why": why})
            put(AUDIT, _json(record.audit))
            name = f"case-{record.case}.zip"
            put(README, README_TEXT.format(name=name).encode("utf-8"))
            put(CENTRAL_KEY, public_key_pem(key.public_key()))
            manifest = {
                "format": FORMAT,
                **record.facts,
                "exported_at": at.isoformat(),
                "exported_by": actor,
                "files": files,
                "missing": missing,
                "node_key": record.node_key,
                "central_key": key_fingerprint(key.public_key()),
            }
            signed = _json(manifest)
            package.writestr(MANIFEST, signed, compress_type=zipfile.ZIP_DEFLATED)
            package.writestr(MANIFEST_SIG, sign_bytes(signed, key) + "\n")
        size = out.tell()
        out.seek(0)
        digest = hashlib.sha256()
        while chunk := out.read(COPY_CHUNK):
            digest.update(chunk)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return ExportedCase(out, name, size, digest.hexdigest(), manifest)


def record_export(
    session: Session, record: CaseOnRecord, exported: ExportedCase, *, actor: str
) -> None:
    """The export in the case's audit trail, with the package's sha256 (not committed)."""
    append_audit(
        session,
        actor=actor,
        action="export",
        violation_id=record.case,
        detail={
            "package_sha256": exported.sha256,
            "payload_sha256": record.payload_sha256,
            "missing": [m["role"] for m in exported.manifest["missing"]],
        },
    )


def _signing_key(session: Session, v: Violation, event: ViolationEvent) -> NodeKey | None:
    """The node's key the event verifies with (its newest key where none does)."""
    keys = session.scalars(
        select(NodeKey)
        .join(Node, Node.id == NodeKey.node_id)
        .where(Node.site == v.site, Node.node == v.node)
        .order_by(NodeKey.added_at.desc(), NodeKey.id.desc())
    ).all()
    wire = v.payload.encode("utf-8")
    for key in keys:
        try:
            verify(event, load_public_key_pem(key.public_key_pem), wire=wire, exact=True)
        except SignatureError:
            continue
        return key
    return keys[0] if keys else None


def _copy_evidence(store: EvidenceStore, package: zipfile.ZipFile, ref: EvidenceRef) -> str | None:
    """Put the blob ``ref`` lists into the package; why not, where it cannot be."""
    name = evidence_name(ref.role, ref.media_type)
    digest, size = hashlib.sha256(), 0
    # (stored, not compressed: JPEG and MP4 do not compress; hashed as it is copied)
    with tempfile.TemporaryFile() as copy:
        try:
            for chunk in store.read(ref.sha256):
                digest.update(chunk)
                size += len(chunk)
                copy.write(chunk)
        except FileNotFoundError:
            return "the evidence store no longer holds it"
        if digest.hexdigest() != ref.sha256 or size != ref.size:
            return "the stored copy no longer hashes to its sha256 (damaged or altered)"
        copy.seek(0)
        with package.open(zipfile.ZipInfo(name), "w", force_zip64=True) as member:
            while chunk := copy.read(COPY_CHUNK):
                member.write(chunk)
    return None


def _entry(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "violation_id": e.violation_id,
        "detail": e.detail,
        "prev_hash": e.prev_hash,
        "entry_hash": e.entry_hash,
    }


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
