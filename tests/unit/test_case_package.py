"""``roadwatch verify`` on packages made here: what passes, and what is refused."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from central.audit import GENESIS, entry_hash
from roadwatch.case_package import (
    AUDIT,
    EVENT,
    FORMAT,
    MANIFEST,
    NODE_KEY,
    evidence_name,
    verify_package,
)
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType, to_wire
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign
from roadwatch.errors import UserError
from tests.factories import T0, violation_event


def make_package(path: Path, **change: bytes) -> bytes:
    """A package of one signed event with one frame and one audit entry; ``change`` gives
    other bytes for any member (before the manifest is written). Returns the node key."""
    key = generate_private_key()
    frame = b"\xff\xd8\xff\xe0" + b"frame" * 50
    ref = EvidenceRef(
        role=EvidenceRole.FRAME_AT, media_type=MediaType.JPEG,
        sha256=hashlib.sha256(frame).hexdigest(), size=len(frame),
    )  # fmt: skip
    event = sign(violation_event(evidence=[ref]), key)
    detail = json.dumps({"from": "new", "to": "in_review"})
    entry = {"seq": 7, "at": T0.isoformat(), "actor": "officer.a", "action": "start_review",
             "violation_id": 12, "detail": detail, "prev_hash": GENESIS}  # fmt: skip
    entry["entry_hash"] = entry_hash(**{**entry, "at": T0})  # type: ignore[arg-type]
    pem = public_key_pem(key.public_key())
    members = {
        EVENT: to_wire(event), NODE_KEY: pem, evidence_name(ref.role, ref.media_type): frame,
        AUDIT: json.dumps([entry]).encode(),
    }  # fmt: skip
    members.update(change)
    files = {n: hashlib.sha256(b).hexdigest() for n, b in members.items()}
    manifest = {"format": FORMAT, "case": 12, "event_id": event.event_id, "missing": [],
                "record_problems": [], "files": files}  # fmt: skip
    with zipfile.ZipFile(path, "w") as package:
        for name, data in members.items():
            package.writestr(name, data)
        package.writestr(MANIFEST, json.dumps(manifest))
    return pem


def test_a_whole_package_checks_out_with_its_nodes_key(tmp_path: Path) -> None:
    pem = make_package(tmp_path / "case.zip")
    report = verify_package(tmp_path / "case.zip", pem)
    assert report.ok, report.checks
    assert [c.what for c in report.checks] == [
        "signature", "evidence frame_at", "audit trail", "manifest"
    ]  # fmt: skip
    own = verify_package(tmp_path / "case.zip")  # the package's own key: said so
    assert own.ok and "proves integrity, not origin" in own.checks[0].detail


def test_an_audit_entry_altered_before_the_manifest_was_written_fails(tmp_path: Path) -> None:
    """The manifest alone proves nothing: an entry whose hash is not its own fails."""
    path = tmp_path / "case.zip"
    make_package(path)
    with zipfile.ZipFile(path) as package:
        [entry] = json.loads(package.read(AUDIT))
    entry["actor"] = "someone.else"
    make_package(path, **{AUDIT: json.dumps([entry]).encode()})
    failed = {c.what: c.detail for c in verify_package(path).checks if not c.ok}
    assert failed == {"audit trail": "entry 7 does not hash to its hash"}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 not really"), "not a case package"),
        (lambda p: zipfile.ZipFile(p, "w").close(), "manifest.json is missing"),
    ],
)
def test_what_is_not_a_case_package_is_one_line(
    tmp_path: Path, build: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "case.zip"
    build(path)
    with pytest.raises(UserError, match=message):
        verify_package(path)


def test_a_second_member_of_one_name_or_a_broken_one_is_refused_not_a_traceback(
    tmp_path: Path,
) -> None:
    """A doctored frame added under the genuine one's name (tools show the first), a
    damaged deflate stream, a manifest whose fields are not what central writes, and a
    manifest of another event: each one line, none a crash."""
    path = tmp_path / "case.zip"
    make_package(path)
    with zipfile.ZipFile(path) as package:
        frame = next(n for n in package.namelist() if n.startswith("evidence/"))
    twice = tmp_path / "twice.zip"
    with (
        zipfile.ZipFile(path) as old,
        zipfile.ZipFile(twice, "w") as new,
        pytest.warns(UserWarning, match="Duplicate name"),
    ):
        new.writestr(frame, b"\xff\xd8 doctored")
        for info in old.infolist():
            new.writestr(info, old.read(info))
    with pytest.raises(UserError, match="two files of one name"):
        verify_package(twice)

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as package:
        package.writestr(MANIFEST, json.dumps({"format": FORMAT}) * 50, zipfile.ZIP_DEFLATED)
    raw = bytearray(broken.read_bytes())
    at = raw.index(b"PK\x01\x02")  # (the central directory: the data before it is damaged)
    raw[60 : min(at, 90)] = b"\x00" * (min(at, 90) - 60)
    broken.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"cannot be read from the package|not JSON"):
        verify_package(broken)

    for manifest_change, said in (
        ({"missing": "x"}, "missing is not a list"),
        ({"event_id": "01890000-0000-7000-8000-000000000000"}, "names another event"),
    ):
        odd = tmp_path / "odd.zip"
        with zipfile.ZipFile(path) as old, zipfile.ZipFile(odd, "w") as new:
            for info in old.infolist():
                data = old.read(info)
                if info.filename == MANIFEST:
                    data = json.dumps({**json.loads(data), **manifest_change}).encode()
                new.writestr(info, data)
        with pytest.raises(UserError, match=said):
            verify_package(odd)


def test_a_member_larger_than_a_package_holds_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "case.zip"
    make_package(path, **{AUDIT: b"[" + b" " * (5 << 20) + b"]"})
    with pytest.raises(UserError, match=r"audit\.json: .* more than a case package holds"):
        verify_package(path)
