"""A case's evidence package for a third party (a court, a lawyer, the vehicle's owner),
and its check: ``roadwatch verify case-123.zip``.

Central exports a case as one ZIP file (``central.case_export``):

- ``event.json``: the violation exactly as its node signed it (canonical JSON, Ed25519);
- ``node.pub``: the public key of that node, as central registered it;
- ``evidence/<role>.<ext>``: each piece of evidence the event lists, by its role;
- ``audit.json``: the case's entries in central's hash-chained audit log;
- ``manifest.json``: what the package holds (the sha256 of every file), who exported it
  and when, and what could not be put in (evidence that never arrived or was damaged in
  the store, disagreements between the stored case and its signed event);
- ``README.txt``: how to check it, in Vietnamese and English.

``verify_package`` checks all of it without central: the event's signature (with a key
the reader trusts, or the package's own, which proves integrity but not origin), that
every piece of evidence is the one the signed event lists (sha256 and size), that each
audit entry hashes to what it says and belongs to the case, and that every file is the
one the manifest lists. Anything wrong, missing or left out is a failure.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from central.audit import entry_hash
from roadwatch.contract import EvidenceRole, MediaType, ViolationEvent
from roadwatch.contract.models import MAX_BLOB_BYTES
from roadwatch.contract.signing import SignatureError, load_public_key_pem, verify
from roadwatch.contract.wire import ContractError, parse_payload
from roadwatch.errors import UserError

FORMAT = "roadwatch-case/1"
EVENT = "event.json"
NODE_KEY = "node.pub"
AUDIT = "audit.json"
MANIFEST = "manifest.json"
README = "README.txt"
EXTENSIONS = {MediaType.JPEG: "jpg", MediaType.PNG: "png", MediaType.MP4: "mp4"}
MAX_SMALL_FILE = 4 << 20  # the event, key, audit trail and manifest are far smaller

README_TEXT = """\
Hồ sơ vi phạm Roadwatch / Roadwatch case package

Kiểm tra hồ sơ (chữ ký của thiết bị, chứng cứ, nhật ký xử lý):
    roadwatch verify {name} --key <khóa công khai của thiết bị, lấy từ nguồn tin cậy>

Check this package (the edge node's signature, the evidence, the review trail):
    roadwatch verify {name} --key <the node's public key, from a source you trust>

event.json   the violation as the edge node signed it (canonical JSON, Ed25519)
node.pub     the node's public key as central registered it
evidence/    each piece of evidence the event lists (its sha256 and size are signed)
audit.json   the case's entries in central's hash-chained audit log
manifest.json  the sha256 of every file, who exported the package and when
"""


def evidence_name(role: EvidenceRole, media_type: MediaType) -> str:
    return f"evidence/{role.value}.{EXTENSIONS[media_type]}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PackageReport:
    event: ViolationEvent | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


class _Package:
    """The package's members, read with bounds (a damaged or hostile ZIP is refused)."""

    def __init__(self, path: Path) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a case package ({exc})") from exc
        members = [i for i in self._zip.infolist() if not i.is_dir()]
        self.names = {i.filename: i for i in members}
        if len(self.names) != len(members):
            self._zip.close()
            raise UserError(f"{path}: holds two files of one name: not a package central made")

    def close(self) -> None:
        self._zip.close()

    def read(self, name: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
        info = self.names.get(name)
        if info is None:
            return None
        if info.file_size > limit:
            raise UserError(f"{name}: {info.file_size} bytes, more than a case package holds")
        try:
            with self._zip.open(info) as member:
                data = member.read(limit + 1)
        except (OSError, zipfile.BadZipFile, RuntimeError, zlib.error, EOFError,
                NotImplementedError) as exc:  # fmt: skip
            raise UserError(f"{name}: cannot be read from the package ({exc})") from exc
        if len(data) > limit:
            raise UserError(f"{name}: more than a case package holds")
        return data


def verify_package(path: Path, trusted_key: bytes | None = None) -> PackageReport:
    """Check the package at ``path`` (see the module's description); ``trusted_key`` is the
    node's public key (PEM) from a source the reader trusts. Raises UserError for a file
    that is not a case package at all."""
    package = _Package(path)
    try:
        return _verify(package, trusted_key)
    finally:
        package.close()


def _verify(package: _Package, trusted_key: bytes | None) -> PackageReport:
    checks: list[Check] = []
    manifest = _json(package, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"not a case package: {MANIFEST} is missing or not {FORMAT}")
    raw_event = package.read(EVENT)
    if raw_event is None:
        raise UserError(f"not a case package: {EVENT} is missing")
    try:
        event = parse_payload(ViolationEvent, raw_event)
    except ContractError as exc:
        return PackageReport(None, (Check("event", False, str(exc)),))

    if manifest.get("event_id") != event.event_id:
        raise UserError(f"{MANIFEST} names another event than {EVENT}: not one package")
    checks.append(_signature(package, event, raw_event, trusted_key))
    checks += _evidence(package, event, manifest)
    checks += _audit(package, manifest, sha256_hex(raw_event))
    checks += _manifest_files(package, manifest)
    for problem in _list(manifest, "record_problems"):
        checks.append(Check("central's record", False, str(problem)))
    return PackageReport(event, tuple(checks))


def _json(package: _Package, name: str) -> Any:
    raw = package.read(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{name}: not JSON ({exc})") from exc


def _signature(
    package: _Package, event: ViolationEvent, raw_event: bytes, trusted_key: bytes | None
) -> Check:
    if trusted_key is not None:
        pem, whose = trusted_key, "the key given"
    else:
        own = package.read(NODE_KEY)
        if own is None:
            return Check("signature", False, f"no {NODE_KEY} in the package and no key given")
        pem, whose = own, f"the package's own {NODE_KEY} (proves integrity, not origin)"
    try:
        key = load_public_key_pem(pem)
        verify(event, key, wire=raw_event.rstrip(b"\n"), exact=True)
    except SignatureError as exc:
        return Check("signature", False, f"{exc} (checked with {whose})")
    return Check(
        "signature", True, f"signed by node {event.site}/{event.node}, checked with {whose}"
    )


def _evidence(package: _Package, event: ViolationEvent, manifest: dict[str, Any]) -> list[Check]:
    checks = []
    left_out = {
        str(m.get("role")): str(m.get("why", ""))
        for m in _list(manifest, "missing")
        if isinstance(m, dict)
    }
    if not event.evidence:
        checks.append(Check("evidence", False, "the signed event lists no evidence"))
    for ref in event.evidence:
        name = evidence_name(ref.role, ref.media_type)
        what = f"evidence {ref.role.value}"
        data = package.read(name, limit=MAX_BLOB_BYTES)
        if data is None:
            why = left_out.get(ref.role.value) or "not in the package"
            checks.append(Check(what, False, f"missing: {why}"))
        elif len(data) != ref.size or sha256_hex(data) != ref.sha256:
            checks.append(Check(what, False, f"{name} is not the file the signed event lists"))
        else:
            checks.append(Check(what, True, f"{name}, sha256 {ref.sha256[:16]}…, {ref.size} bytes"))
    return checks


def _list(manifest: dict[str, Any], name: str) -> list[Any]:
    value = manifest.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"{MANIFEST}: {name} is not a list")
    return value


def _audit(package: _Package, manifest: dict[str, Any], event_sha256: str) -> list[Check]:
    entries = _json(package, AUDIT)
    if not isinstance(entries, list):
        return [Check("audit trail", False, f"{AUDIT} is missing or not a list")]
    case = manifest.get("case")
    for entry in entries:
        try:
            digest = entry_hash(
                prev_hash=str(entry["prev_hash"]),
                seq=int(entry["seq"]),
                at=datetime.fromisoformat(str(entry["at"])),
                actor=str(entry["actor"]),
                action=str(entry["action"]),
                violation_id=entry["violation_id"],
                detail=str(entry["detail"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return [Check("audit trail", False, f"an entry cannot be read: {exc!r}")]
        if digest != entry.get("entry_hash"):
            return [Check("audit trail", False, f"entry {entry['seq']} does not hash to its hash")]
        if entry["violation_id"] != case:
            return [Check("audit trail", False, f"entry {entry['seq']} is of another case")]
        decided_on = _decided_on(entry["detail"])
        if decided_on is not None and decided_on != event_sha256:
            return [Check("audit trail", False, f"entry {entry['seq']} decided on another event")]
    actions = ", ".join(str(e["action"]) for e in entries) or "none"
    said = (
        f"{len(entries)} entries, each hashing to its own hash: {actions} (central's record,"
        " not signed by the node: match the package's sha256 with central's audit log)"
    )
    return [Check("audit trail", True, said)]


def _decided_on(detail: str) -> str | None:
    """The signed event's sha256 a decision names (confirmations and notices do)."""
    try:
        data = json.loads(detail)
    except ValueError:
        return None
    value = data.get("payload_sha256") if isinstance(data, dict) else None
    return str(value) if value is not None else None


def _manifest_files(package: _Package, manifest: dict[str, Any]) -> list[Check]:
    files = manifest.get("files")
    if not isinstance(files, dict):
        return [Check("manifest", False, "it lists no files")]
    wrong = []
    for name, digest in sorted(files.items()):
        limit = MAX_BLOB_BYTES if name.startswith("evidence/") else MAX_SMALL_FILE
        data = package.read(name, limit=limit)
        if data is None or sha256_hex(data) != digest:
            wrong.append(name)
    extra = sorted(set(package.names) - set(files) - {MANIFEST})
    if wrong or extra:
        said = [f"{', '.join(wrong)} differ from the manifest"] if wrong else []
        said += [f"{', '.join(extra)} not in the manifest"] if extra else []
        return [Check("manifest", False, "; ".join(said))]
    return [Check("manifest", True, f"{len(files)} files as listed")]


def describe(report: PackageReport) -> list[str]:
    """The report in lines, for a person."""
    lines = []
    event = report.event
    if event is not None:
        plate = event.plate.text if event.plate is not None else "not read"
        lines += [
            f"violation {event.type.value} at {event.occurred_at.isoformat()}"
            f" on camera {event.camera} ({event.place or event.site})",
            f"plate {plate}; event {event.event_id}",
            f"explanation: {event.explanation}",
        ]
    for check in report.checks:
        lines.append(f"{'OK  ' if check.ok else 'FAIL'} {check.what}: {check.detail}")
    lines.append("the package checks out" if report.ok else "the package does NOT check out")
    return lines
