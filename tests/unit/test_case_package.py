"""``roadwatch verify`` on packages made here: what passes, and what is refused."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from central.audit import entry_hash
from roadwatch.case_package import (
    AUDIT,
    FORMAT,
    MANIFEST,
    MANIFEST_SIG,
    describe,
    evidence_name,
    verify_package,
)
from roadwatch.contract import EvidenceRole, MediaType, PlateReading
from roadwatch.contract.signing import generate_private_key, public_key_pem
from roadwatch.errors import UserError
from tests.case_packages import make_package
from tests.factories import T0, violation_event


def rewrite(path: Path, out: Path, change: Callable[[str, bytes], bytes]) -> None:
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, change(info.filename, old.read(info)))


def test_a_whole_package_checks_out_with_its_nodes_and_centrals_keys(tmp_path: Path) -> None:
    keys = make_package(tmp_path / "case.zip")
    report = verify_package(tmp_path / "case.zip", keys.node, keys.central)
    assert report.ok, report.checks
    assert [c.what for c in report.checks] == [
        "signature", "evidence frame_at", "audit trail", "manifest", "central's signature"
    ]  # fmt: skip
    assert "checked with the key given" in report.checks[-1].detail
    assert report.origin_proven
    # Central's key alone proves the node's key too: the signed manifest lists it.
    assert verify_package(tmp_path / "case.zip", central_key=keys.central).origin_proven
    own = verify_package(tmp_path / "case.zip")  # the package's own keys: said so
    assert own.ok and not own.origin_proven
    assert "proves integrity, not origin" in own.checks[0].detail
    assert "proves integrity, not origin" in own.checks[-1].detail
    assert "who made it is NOT proven" in describe(own)[-1]
    assert describe(report)[-1] == "the package checks out"


def test_the_verifier_says_who_made_a_package_only_with_centrals_key_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 with central's key given, 3 when whole but checked only with the keys the
    package carries (anyone can re-sign a package with keys of their own), 2 for a key
    that cannot be read."""
    from roadwatch.cli import main

    keys = make_package(tmp_path / "case.zip")
    (tmp_path / "central.pub").write_bytes(keys.central)
    package = str(tmp_path / "case.zip")
    assert main(["verify", package]) == 3
    assert main(["verify", package, "--central-key", str(tmp_path / "central.pub")]) == 0
    assert main(["verify", package, "--central-key", str(tmp_path / "nowhere.pub")]) == 2
    assert "cannot read the key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("member", "data", "said"),
    [
        (MANIFEST, b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (AUDIT, b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ],
)
def test_json_nested_too_deep_is_one_line(
    tmp_path: Path, member: str, data: bytes, said: str
) -> None:
    path = tmp_path / "case.zip"
    if member == MANIFEST:
        with zipfile.ZipFile(path, "w") as package:
            package.writestr(MANIFEST, data, zipfile.ZIP_DEFLATED)
    else:
        make_package(path, change={AUDIT: data})
    with pytest.raises(UserError, match=said):
        verify_package(path)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"detail": {"payload_sha256": "x"}}, "its detail is not text"),
        ({"detail": 7}, "its detail is not text"),
        ({"seq": float("inf")}, "OverflowError"),
        ({"detail": json.dumps({"payload_sha256": 7})}, None),  # (names no event: read as none)
    ],
)
def test_an_audit_entry_of_odd_fields_fails_its_check_not_the_verifier(
    tmp_path: Path, change: dict[str, Any], said: str | None
) -> None:
    """Entries anyone can write (their hashes recomputed): a failed check, no traceback."""
    path = tmp_path / "case.zip"
    make_package(path)
    with zipfile.ZipFile(path) as package:
        [entry] = json.loads(package.read(AUDIT))
    entry.update(change)
    make_package(path, change={AUDIT: json.dumps([entry]).encode()})
    failed = {c.what: c.detail for c in verify_package(path).checks if not c.ok}
    if said is None:
        assert "does not hash to its hash" in failed["audit trail"]
    else:
        assert said in failed["audit trail"]


def test_a_folder_entry_that_holds_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "case.zip"
    make_package(path)
    with zipfile.ZipFile(path, "a") as package:
        package.writestr(zipfile.ZipInfo("evidence/extra.mp4/"), b"hidden bytes")
    with pytest.raises(UserError, match="a folder entry holds data"):
        verify_package(path)


def test_a_trail_rewritten_with_its_hashes_recomputed_fails_centrals_signature(
    tmp_path: Path,
) -> None:
    """Without central's signature anyone could rewrite the audit trail (recomputing each
    entry's hash) and the manifest: a decision added, an actor changed. Signed, it fails;
    so does a package checked with another central's key, or one whose signature is gone."""
    path = tmp_path / "case.zip"
    keys = make_package(path)
    with zipfile.ZipFile(path) as package:
        [entry] = json.loads(package.read(AUDIT))
        manifest = json.loads(package.read(MANIFEST))
    entry["actor"] = "someone.else"
    del entry["entry_hash"]
    entry["entry_hash"] = entry_hash(**{**entry, "at": T0})
    trail = json.dumps([entry]).encode()
    manifest["files"][AUDIT] = hashlib.sha256(trail).hexdigest()

    forged = tmp_path / "forged.zip"
    changed = {AUDIT: trail, MANIFEST: json.dumps(manifest).encode()}
    rewrite(path, forged, lambda n, b: changed.get(n, b))
    failed = {c.what: c.detail for c in verify_package(forged, keys.node).checks if not c.ok}
    assert failed == {
        "central's signature": "signature does not match the document and the signer's key"
        " (checked with the package's own central.pub (proves integrity, not origin))"
    }
    other = public_key_pem(generate_private_key().public_key())
    other_failed = {c.what for c in verify_package(path, keys.node, other).checks if not c.ok}
    assert other_failed == {"central's signature"}
    unsigned = tmp_path / "unsigned.zip"
    _drop(path, unsigned, MANIFEST_SIG)
    failed = {c.what: c.detail for c in verify_package(unsigned, keys.node).checks if not c.ok}
    assert failed == {"central's signature": "no manifest.sig: the manifest is not signed"}


def _drop(path: Path, out: Path, name: str) -> None:
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            if info.filename != name:
                new.writestr(info.filename, old.read(info))


def test_a_package_from_before_central_signed_them_is_read_and_said_unproven(
    tmp_path: Path,
) -> None:
    keys = make_package(tmp_path / "old.zip", signed=False)
    report = verify_package(tmp_path / "old.zip", keys.node)
    failed = {c.what: c.detail for c in report.checks if not c.ok}
    assert list(failed) == ["central's signature"]
    assert "exported before central signed its packages" in failed["central's signature"]
    assert not report.ok


def test_each_piece_of_evidence_is_read_once_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evidence check and the manifest check share one read of each member."""
    path = tmp_path / "case.zip"
    keys = make_package(path, evidence=b"\xff\xd8" + bytes(range(256)) * 12_000)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def counting(self: zipfile.ZipFile, name: Any, *args: Any, **kw: Any) -> Any:
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kw)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting)
    assert verify_package(path, keys.node, keys.central).ok
    assert opened.count(evidence_name(EvidenceRole.FRAME_AT, MediaType.JPEG)) == 1


def test_an_audit_entry_altered_before_the_manifest_was_written_fails(tmp_path: Path) -> None:
    """An entry whose hash is not its own fails, though central signed the manifest."""
    path = tmp_path / "case.zip"
    make_package(path)
    with zipfile.ZipFile(path) as package:
        [entry] = json.loads(package.read(AUDIT))
    entry["actor"] = "someone.else"
    make_package(path, change={AUDIT: json.dumps([entry]).encode()})
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
    make_package(path, change={AUDIT: b"[" + b" " * (5 << 20) + b"]"})
    with pytest.raises(UserError, match=r"audit\.json: .* more than a case package holds"):
        verify_package(path)


@pytest.mark.parametrize(
    ("case", "said"),
    [
        (
            {"case": 12, "status": "notice_issued", "confirmed_by": "binh",
             "decided_at": "2026-11-23T09:00:00+00:00", "plate": "51F-128.46",
             "plate_read": "51F-123.45", "plate_corrected": "51F-128.46"},
            ["case 12 at central: notice_issued",
             "confirmed by binh at 2026-11-23T09:00:00+00:00; plate decided on: 51F-128.46",
             "(the plate was corrected at review; the roadside reading was 51F-123.45)"],
        ),
        (
            {"case": 12, "status": "confirmed", "confirmed_by": "binh", "decided_at": "t",
             "plate": "51F-123.45", "plate_read": "51F-123.45", "plate_corrected": None},
            ["case 12 at central: confirmed",
             "confirmed by binh at t; plate decided on: 51F-123.45"],
        ),
        (
            {"case": 12, "status": "rejected", "plate": None},
            ["case 12 at central: rejected",
             "NOTE: this case is rejected, not confirmed by an officer: the package is no"
             " finding of a violation"],
        ),
        ({"case": 12}, []),  # (a package from before the manifest gave the status)
    ],
)  # fmt: skip
def test_the_verifier_says_what_central_decided_and_on_which_plate(
    case: dict[str, object], said: list[str]
) -> None:
    """The event holds the roadside reading; a reader of the package is also told the
    case's status and the plate it was decided on, and when it is no finding at all."""
    from roadwatch.case_package import Check, PackageReport

    checks = (Check("signature", True), Check("central's signature", True))
    lines = describe(PackageReport(violation_event(), checks, True, case))
    assert lines[1].startswith("plate 51F-123.45 (as read at the roadside)")
    assert lines[3 : 3 + len(said)] == said
    assert lines[-1] == "the package checks out"
    # Without central's signature holding, what the manifest says is said unproven.
    failed = (Check("signature", True), Check("central's signature", False))
    lines = describe(PackageReport(violation_event(), failed, False, case))
    assert not said or lines[3].endswith("(UNPROVEN: central's signature on the manifest fails)")


@pytest.mark.parametrize(
    "reading",
    [None, PlateReading(text="", confidence=0.0, valid=False)],
    ids=["no reading", "unreadable"],
)
def test_the_verifier_says_when_no_plate_was_read_at_the_roadside(
    reading: PlateReading | None,
) -> None:
    """An event without a plate, or with the empty reading of one that could not be read,
    is said to have none, not shown as a blank plate ("plate  (as read at the roadside)")."""
    from roadwatch.case_package import Check, PackageReport

    checks = (Check("signature", True), Check("central's signature", True))
    lines = describe(PackageReport(violation_event(plate=reading), checks, True, {}))
    assert lines[1].startswith("plate not read at the roadside; event ")


def test_a_package_from_before_it_named_the_plate_says_only_the_status() -> None:
    from roadwatch.case_package import Check, PackageReport

    checks = (Check("signature", True), Check("central's signature", True))
    case = {"case": 12, "status": "confirmed", "record_problems": []}
    lines = describe(PackageReport(violation_event(), checks, True, case))
    assert lines[3:-1] == ["case 12 at central: confirmed", "OK   signature: ",
                           "OK   central's signature: "]  # fmt: skip
