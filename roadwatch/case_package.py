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
- ``central.pub`` and ``manifest.sig``: central's case-signing public key, and its Ed25519
  signature (base64) over the bytes of ``manifest.json``. The node's signature proves the
  event and its evidence; central's proves the rest (the audit trail, what is missing),
  which only central can tell;
- ``README.txt``: how to check it, in Vietnamese and English.

``verify_package`` checks all of it without central: the event's signature (with a key
the reader trusts, or the package's own, which proves integrity but not origin), that
every piece of evidence is the one the signed event lists (sha256 and size), that each
audit entry hashes to what it says and belongs to the case, that every file is the one
the manifest lists, and central's signature on the manifest (again with a key the reader
trusts, or the package's own). Anything wrong, missing or left out is a failure.

Central's signature can be checked with OpenSSL alone (3.0 or newer)::

    base64 -d manifest.sig > manifest.sig.bin
    openssl pkeyutl -verify -pubin -inkey central.pub -rawin -in manifest.json \
        -sigfile manifest.sig.bin
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from central.audit import entry_hash
from roadwatch.contract import EvidenceRole, MediaType, ViolationEvent
from roadwatch.contract.models import MAX_BLOB_BYTES
from roadwatch.contract.signing import (
    SignatureError,
    key_fingerprint,
    load_public_key_pem,
    verify,
    verify_bytes,
)
from roadwatch.contract.wire import ContractError, parse_payload
from roadwatch.errors import UserError

FORMAT = "roadwatch-case/2"
UNSIGNED_FORMAT = "roadwatch-case/1"  # exported before central signed its packages
EVENT = "event.json"
NODE_KEY = "node.pub"
AUDIT = "audit.json"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
CENTRAL_KEY = "central.pub"
README = "README.txt"
CHUNK = 1 << 20
EXTENSIONS = {MediaType.JPEG: "jpg", MediaType.PNG: "png", MediaType.MP4: "mp4"}
MAX_SMALL_FILE = 4 << 20  # the event, key, audit trail and manifest are far smaller

README_TEXT = """\
Hồ sơ vi phạm Roadwatch / Roadwatch case package

Kiểm tra hồ sơ (chữ ký của thiết bị, chứng cứ, nhật ký xử lý, chữ ký của trung tâm):
    roadwatch verify {name} --central-key <khóa công khai ký hồ sơ của hệ thống trung tâm,
        lấy từ nguồn tin cậy> [--key <khóa công khai của thiết bị>]

Check this package (the edge node's signature, the evidence, the review trail, central's
signature):
    roadwatch verify {name} --central-key <central's case-signing public key, from a
        source you trust> [--key <the node's public key>]

event.json   the violation as the edge node signed it (canonical JSON, Ed25519)
node.pub     the node's public key as central registered it (the manifest lists it)
evidence/    each piece of evidence the event lists (its sha256 and size are signed)
audit.json   the case's entries in central's hash-chained audit log
manifest.json  the sha256 of every file, who exported the package and when
manifest.sig   central's Ed25519 signature (base64) over manifest.json, by central.pub
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
    # Central's signature was checked with a key the reader gave (and so the node's key,
    # which the manifest lists, is the one central registered): who made it is proven,
    # not only that it is whole.
    origin_proven: bool = False
    # The case as central's manifest describes it (its status, the plate decided on …).
    case: dict[str, Any] | None = None

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
        if any(i.is_dir() and i.file_size for i in self._zip.infolist()):
            self._zip.close()
            raise UserError(f"{path}: a folder entry holds data: not a package central made")
        members = [i for i in self._zip.infolist() if not i.is_dir()]
        self.names = {i.filename: i for i in members}
        self._digests: dict[str, tuple[str, int]] = {}
        if len(self.names) != len(members):
            self._zip.close()
            raise UserError(f"{path}: holds two files of one name: not a package central made")

    def close(self) -> None:
        self._zip.close()

    def read(self, name: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
        info = self._info(name, limit)
        if info is None:
            return None
        with self._reading(name), self._zip.open(info) as member:
            data = member.read(limit + 1)
        if len(data) > limit:
            raise UserError(f"{name}: more than a case package holds")
        return data

    def digest(self, name: str, limit: int) -> tuple[str, int] | None:
        """The member's sha256 and size, read once in chunks (evidence runs to 256 MiB)."""
        if name in self._digests:
            return self._digests[name]
        info = self._info(name, limit)
        if info is None:
            return None
        digest, size = hashlib.sha256(), 0
        with self._reading(name), self._zip.open(info) as member:
            while chunk := member.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UserError(f"{name}: more than a case package holds")
                digest.update(chunk)
        self._digests[name] = (digest.hexdigest(), size)
        return self._digests[name]

    def _info(self, name: str, limit: int) -> zipfile.ZipInfo | None:
        info = self.names.get(name)
        if info is not None and info.file_size > limit:
            raise UserError(f"{name}: {info.file_size} bytes, more than a case package holds")
        return info

    @contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        try:
            yield
        except (OSError, zipfile.BadZipFile, RuntimeError, zlib.error, EOFError,
                NotImplementedError) as exc:  # fmt: skip
            raise UserError(f"{name}: cannot be read from the package ({exc})") from exc


def verify_package(
    path: Path, trusted_key: bytes | None = None, central_key: bytes | None = None
) -> PackageReport:
    """Check the package at ``path`` (see the module's description); ``trusted_key`` is the
    node's public key (PEM) and ``central_key`` central's case-signing public key, each
    from a source the reader trusts. Raises UserError for a file that is not a case
    package at all."""
    package = _Package(path)
    try:
        return _verify(package, trusted_key, central_key)
    finally:
        package.close()


def _verify(
    package: _Package, trusted_key: bytes | None, central_key: bytes | None
) -> PackageReport:
    checks: list[Check] = []
    raw_manifest = package.read(MANIFEST)
    manifest = _parsed(MANIFEST, raw_manifest)
    if not isinstance(manifest, dict) or manifest.get("format") not in (FORMAT, UNSIGNED_FORMAT):
        raise UserError(f"not a case package: {MANIFEST} is missing or not {FORMAT}")
    assert raw_manifest is not None
    raw_event = package.read(EVENT)
    if raw_event is None:
        raise UserError(f"not a case package: {EVENT} is missing")
    try:
        event = parse_payload(ViolationEvent, raw_event)
    except ContractError as exc:
        return PackageReport(None, (Check("event", False, str(exc)),))

    if manifest.get("event_id") != event.event_id:
        raise UserError(f"{MANIFEST} names another event than {EVENT}: not one package")
    central = _central_signature(package, manifest, raw_manifest, central_key)
    checks.append(_signature(package, event, raw_event, trusted_key))
    checks += _evidence(package, event, manifest)
    checks += _audit(package, manifest, sha256_hex(raw_event), central)
    checks += _manifest_files(package, manifest)
    checks.append(central)
    for problem in _list(manifest, "record_problems"):
        checks.append(Check("central's record", False, str(problem)))
    return PackageReport(event, tuple(checks), central.ok and central_key is not None, manifest)


def _parsed(name: str, raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{name}: not JSON ({exc})") from exc
    except RecursionError:
        raise UserError(f"{name}: nested deeper than a case package's JSON is") from None


def _key(package: _Package, given: bytes | None, own: str) -> tuple[bytes | None, str]:
    """The public key to check with: the one given (trusted), else the package's own."""
    if given is not None:
        return given, "the key given"
    return package.read(own), f"the package's own {own} (proves integrity, not origin)"


def _signature(
    package: _Package, event: ViolationEvent, raw_event: bytes, trusted_key: bytes | None
) -> Check:
    pem, whose = _key(package, trusted_key, NODE_KEY)
    if pem is None:
        return Check("signature", False, f"no {NODE_KEY} in the package and no key given")
    try:
        key = load_public_key_pem(pem)
        verify(event, key, wire=raw_event.rstrip(b"\n"), exact=True)
    except SignatureError as exc:
        return Check("signature", False, f"{exc} (checked with {whose})")
    return Check(
        "signature", True, f"signed by node {event.site}/{event.node}, checked with {whose}"
    )


def _central_signature(
    package: _Package, manifest: dict[str, Any], raw_manifest: bytes, central_key: bytes | None
) -> Check:
    what = "central's signature"
    if manifest.get("format") == UNSIGNED_FORMAT:
        return Check(
            what, False, f"exported before central signed its packages ({UNSIGNED_FORMAT}):"
            " the audit trail and what is missing are unproven; export the case again",
        )  # fmt: skip
    signature = package.read(MANIFEST_SIG)
    if signature is None:
        return Check(what, False, f"no {MANIFEST_SIG}: the manifest is not signed")
    pem, whose = _key(package, central_key, CENTRAL_KEY)
    if pem is None:
        return Check(what, False, f"no {CENTRAL_KEY} in the package and no central key given")
    try:
        key = load_public_key_pem(pem)
        verify_bytes(raw_manifest, signature.decode("ascii", "replace").strip(), key)
    except SignatureError as exc:
        return Check(what, False, f"{exc} (checked with {whose})")
    return Check(
        what, True, f"the manifest, and through it the audit trail and what is missing, is"
        f" signed by central's key {key_fingerprint(key)[:16]}…, checked with {whose}",
    )  # fmt: skip


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
        got = package.digest(name, MAX_BLOB_BYTES)
        if got is None:
            why = left_out.get(ref.role.value) or "not in the package"
            checks.append(Check(what, False, f"missing: {why}"))
        elif got != (ref.sha256, ref.size):
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


def _audit(
    package: _Package, manifest: dict[str, Any], event_sha256: str, central: Check
) -> list[Check]:
    entries = _parsed(AUDIT, package.read(AUDIT))
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return [Check("audit trail", False, f"{AUDIT} is missing or not a list of entries")]
    case = manifest.get("case")
    for entry in entries:
        try:
            if not isinstance(entry["detail"], str):
                raise TypeError("its detail is not text")
            digest = entry_hash(
                prev_hash=str(entry["prev_hash"]),
                seq=int(entry["seq"]),
                at=datetime.fromisoformat(str(entry["at"])),
                actor=str(entry["actor"]),
                action=str(entry["action"]),
                violation_id=entry["violation_id"],
                detail=entry["detail"],
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            return [Check("audit trail", False, f"an entry cannot be read: {exc!r}")]
        if digest != entry.get("entry_hash"):
            return [Check("audit trail", False, f"entry {entry['seq']} does not hash to its hash")]
        if entry["violation_id"] != case:
            return [Check("audit trail", False, f"entry {entry['seq']} is of another case")]
        decided_on = _decided_on(entry["detail"])
        if decided_on is not None and decided_on != event_sha256:
            return [Check("audit trail", False, f"entry {entry['seq']} decided on another event")]
    actions = ", ".join(str(e["action"]) for e in entries) or "none"
    proof = (
        "proven by central's signature on the manifest" if central.ok
        else "unproven: central's signature on the manifest fails"
    )  # fmt: skip
    said = (
        f"{len(entries)} entries, each hashing to its own hash: {actions} (central's record,"
        f" {proof})"
    )
    return [Check("audit trail", True, said)]


def _decided_on(detail: str) -> str | None:
    """The signed event's sha256 a decision names (confirmations and notices do)."""
    try:
        data = json.loads(detail)
    except (ValueError, RecursionError):
        return None
    value = data.get("payload_sha256") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _manifest_files(package: _Package, manifest: dict[str, Any]) -> list[Check]:
    files = manifest.get("files")
    if not isinstance(files, dict):
        return [Check("manifest", False, "it lists no files")]
    wrong = []
    for name, digest in sorted(files.items()):
        limit = MAX_BLOB_BYTES if name.startswith("evidence/") else MAX_SMALL_FILE
        got = package.digest(name, limit)
        if got is None or got[0] != digest:
            wrong.append(name)
    extra = sorted(set(package.names) - set(files) - {MANIFEST, MANIFEST_SIG})
    if wrong or extra:
        said = [f"{', '.join(wrong)} differ from the manifest"] if wrong else []
        said += [f"{', '.join(extra)} not in the manifest"] if extra else []
        return [Check("manifest", False, "; ".join(said))]
    return [Check("manifest", True, f"{len(files)} files as listed")]


# The statuses of a case an officer confirmed as a violation.
DECIDED = frozenset({"confirmed", "notice_issued", "closed", "escalated"})


def _central_ok(report: PackageReport) -> bool:
    return any(c.what == "central's signature" and c.ok for c in report.checks)


def _decision(case: dict[str, Any], proven: bool) -> list[str]:
    """What central decided, from the manifest: the case's status and the plate it stands
    on; a case not confirmed is said to be no finding of a violation. Said unproven where
    central's signature on the manifest does not check out."""
    status = case.get("status")
    if not isinstance(status, str):
        return []
    unproven = "" if proven else " (UNPROVEN: central's signature on the manifest fails)"
    lines = [f"case {case.get('case')} at central: {status}{unproven}"]
    if status in DECIDED:
        if "plate" not in case:  # (a package from before the manifest named it)
            return lines
        by, at = case.get("confirmed_by"), case.get("decided_at")
        lines.append(f"confirmed by {by} at {at}; plate decided on: {case.get('plate')}")
        if case.get("plate_corrected"):
            lines.append(
                f"(the plate was corrected at review; the roadside reading was"
                f" {case.get('plate_read') or 'none'})"
            )
    else:
        lines.append(
            f"NOTE: this case is {status}, not confirmed by an officer: the package is no"
            " finding of a violation"
        )
    return lines


def describe(report: PackageReport) -> list[str]:
    """The report in lines, for a person."""
    lines = []
    event = report.event
    if event is not None:
        # (an unreadable plate is an empty reading: said as none, not as a blank plate)
        read = event.plate.text if event.plate is not None else ""
        plate = (
            f"plate {read} (as read at the roadside)" if read else "plate not read at the roadside"
        )
        lines += [
            f"violation {event.type.value} at {event.occurred_at.isoformat()}"
            f" on camera {event.camera} ({event.place or event.site})",
            f"{plate}; event {event.event_id}",
            f"explanation: {event.explanation}",
        ]
    lines += _decision(report.case or {}, proven=_central_ok(report))
    for check in report.checks:
        lines.append(f"{'OK  ' if check.ok else 'FAIL'} {check.what}: {check.detail}")
    if not report.ok:
        lines.append("the package does NOT check out")
    elif report.origin_proven:
        lines.append("the package checks out")
    else:
        lines.append(
            "the package is whole, but who made it is NOT proven: check it again with"
            " --central-key (central's case-signing key) from a source you trust"
        )
    return lines
