from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.delivery_config import DeliveryConfig, load_delivery_config
from edge.delivery_service import DeliveryService
from edge.evidence.package import EvidencePackage
from edge.identity import write_key_pair
from edge.outbox import MessageState, OutboxFullError
from roadwatch.contract import EvidenceRole, MediaType, ViolationEvent, parse_payload
from roadwatch.contract.signing import verify
from roadwatch.errors import UserError
from tests.delivery_support import blob, signed_event


def write_config(tmp_path: Path, extra: str = "") -> Path:
    write_key_pair(tmp_path / "node")
    path = tmp_path / "site.yaml"
    path.write_text(
        "delivery:\n"
        "  site: ql13-km22\n"
        "  node: node-01\n"
        f"  key_path: {tmp_path / 'node.key'}\n"
        "  outbox:\n"
        f"    path: {tmp_path / 'outbox'}\n"
        "    limit_bytes: 1048576\n"
        "    event_reserve_bytes: 65536\n"
        "  central:\n"
        "    url: http://127.0.0.1:9/\n"
        "    upload_token: tok-8f3a1c\n" + extra,
        encoding="utf-8",
    )
    return path


def test_config_loads_and_names_the_client(tmp_path: Path) -> None:
    config = load_delivery_config(write_config(tmp_path))
    assert config.client_id == "roadwatch-ql13-km22-node-01"
    assert config.broker.port == 1883
    assert "tok-8f3a1c" not in repr(config)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  colour: blue\n", "field 'colour': Extra inputs are not permitted"),
        ("  broker:\n    port: 0\n", "field 'broker.port'"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_delivery_config(write_config(tmp_path, extra))


@pytest.mark.parametrize(
    ("section", "lines", "message"),
    [
        (
            "broker",
            ["reconnect_min_s: 60", "reconnect_max_s: 1"],
            "field 'broker': reconnect_min_s (60 s) is above reconnect_max_s (1 s)",
        ),
        (
            "outbox",
            ["retry_base_s: 600"],
            "field 'outbox': retry_base_s (600 s) is above retry_cap_s (300 s);"
            " raise retry_cap_s too",
        ),
        (
            "outbox",
            ["receipt_timeout_s: 1200"],
            "receipt_timeout_s (1200 s) is above receipt_timeout_cap_s (900 s)",
        ),
    ],
)
def test_a_delay_above_its_cap_is_refused(
    tmp_path: Path, section: str, lines: list[str], message: str
) -> None:
    # Accepted before: the doubling delays then started at the cap, or above it.
    path = write_config(tmp_path, "  broker:\n    host: 127.0.0.1\n")
    body = "".join(f"    {line}\n" for line in lines)
    path.write_text(path.read_text().replace(f"  {section}:\n", f"  {section}:\n{body}"))
    with pytest.raises(UserError) as caught:
        load_delivery_config(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_placeholder_token_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("tok-8f3a1c", "changeme"))
    with pytest.raises(UserError, match="placeholder"):
        load_delivery_config(path)


def package(clip_bytes: int) -> EvidencePackage:
    blobs = [
        blob(EvidenceRole.FRAME_AT, b"f" * 100_000),
        blob(EvidenceRole.CLIP, b"c" * clip_bytes, MediaType.MP4),
    ]
    event, blobs = signed_event(blobs)
    return EvidencePackage(event=event, blobs=tuple(blobs))


def test_submit_refuses_the_clip_before_the_event(tmp_path: Path) -> None:
    config: DeliveryConfig = load_delivery_config(write_config(tmp_path))
    service = DeliveryService.from_config(config)
    try:
        assert service.submit(package(500_000)).refused == ()
        # 600 KB used of 1 MiB: the next clip does not fit, the frame does.
        second = service.submit(package(500_001))
        assert second.refused == (EvidenceRole.CLIP,)
        [message] = [m for m in service.outbox.due_messages(10) if m.id == second.event_id]
        stored = parse_payload(ViolationEvent, message.payload)
        assert [e.role for e in stored.evidence] == [EvidenceRole.FRAME_AT]
        verify(stored, service.key.public_key())  # signed again without the clip
        # Evidence fills the budget; events still go into the reserve, never silently lost.
        for _ in range(3):
            service.submit(package(10))
        bare, _ = signed_event([])
        service.outbox.put_violation(bare, [])
        assert service.outbox.message_state(bare.event_id) is MessageState.PENDING
        tiny, _ = signed_event([])
        service.outbox.budget = type(service.outbox.budget)(limit_bytes=1000, event_reserve_bytes=0)
        with pytest.raises(OutboxFullError):
            service.submit(EvidencePackage(event=tiny, blobs=()))
        assert service.outbox.message_state(tiny.event_id) is None
    finally:
        service.stop(timeout_s=1)


def test_a_traffic_minute_is_stored_signed_with_the_node_key(tmp_path: Path) -> None:
    """What the outbox publishes for a minute is the minute signed by the node, as central
    verifies it (parts of a minute too)."""
    from datetime import timedelta

    from roadwatch.contract import LaneFlow, TrafficStats, VehicleClass
    from tests.factories import T0

    minute = T0.replace(second=0, microsecond=0)
    stats = [
        TrafficStats(site="ql13-km22", node="node-01", camera="cam-01", minute_start=minute,
                     lanes=[LaneFlow(lane="lane-1", counts={VehicleClass.MOTORCYCLE: 37})]),
        TrafficStats(site="ql13-km22", node="node-01", camera="cam-01",
                     minute_start=minute + timedelta(minutes=1),
                     counted_from=minute + timedelta(minutes=1, seconds=20)),
    ]  # fmt: skip
    service = DeliveryService.from_config(load_delivery_config(write_config(tmp_path)))
    try:
        for minute_stats in stats:
            assert service.submit_traffic(minute_stats) is True
        stored = [parse_payload(TrafficStats, m.payload) for m in service.outbox.due_messages(10)]
        assert [s.model_copy(update={"signature": None}) for s in stored] == stats
        for one, message in zip(stored, service.outbox.due_messages(10), strict=True):
            verify(one, service.key.public_key(), wire=message.payload, exact=True)
    finally:
        service.stop(timeout_s=1)


def test_a_disk_other_files_fill_refuses_the_clip_first_then_drops_not_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox's budget is 1 MiB, but the disk itself has only 300 KB left: the clip is
    refused as if the budget were short; with no room beyond the 64 MiB headroom a violation
    is stored without its evidence and a traffic minute dropped; with none beyond the
    events' 8 MiB a violation is refused (and said, naming the disk), and a write the disk
    refuses is the outbox being full."""
    import errno
    from collections import namedtuple
    from datetime import timedelta

    from edge.delivery_policy import DISK_HEADROOM_BYTES, EVENT_HEADROOM_BYTES
    from roadwatch.contract import TrafficStats
    from tests.factories import T0

    def traffic_stats(minute: int) -> TrafficStats:
        start = T0.replace(second=0, microsecond=0) + timedelta(minutes=minute)
        return TrafficStats(site="ql13-km22", node="node-01", camera="c", minute_start=start)

    usage = namedtuple("usage", "total used free")
    free = {"bytes": DISK_HEADROOM_BYTES + 300_000}
    monkeypatch.setattr(
        "edge.outbox.shutil.disk_usage", lambda _p: usage(1 << 40, 0, free["bytes"])
    )
    service = DeliveryService.from_config(load_delivery_config(write_config(tmp_path)))
    try:
        first = service.submit(package(500_000))
        assert first.refused == (EvidenceRole.CLIP,)
        free["bytes"] = DISK_HEADROOM_BYTES  # nothing left beyond the headroom
        bare = service.submit(package(10))  # (no evidence, but the violation is kept)
        assert set(bare.refused) == {b.ref.role for b in package(10).blobs}
        assert service.outbox.message_state(bare.event_id) is MessageState.PENDING
        assert service.submit_traffic(traffic_stats(0)) is False
        said = "\n".join(r.getMessage() for r in caplog.records)
        # (the disk is short, not the outbox's 1 MiB: the log sends one to the disk)
        assert "disk nearly full: 67108864 bytes free on " in said
        assert "dropped (traffic statistics" in said and "the disk is nearly full" in said
        assert "the outbox is full" not in said and "outbox nearly full" not in said
        free["bytes"] = EVENT_HEADROOM_BYTES  # not even the events' share of it
        refused = package(10)
        with pytest.raises(OutboxFullError, match="the disk is full even for events: 8388608"):
            service.submit(refused)
        about = [r.getMessage() for r in caplog.records if refused.event.event_id in r.getMessage()]
        assert len(about) == 1 and "NOT stored" in about[0]  # (not "stored without" it first)
        free["bytes"] = 1 << 30
        assert service.submit_traffic(traffic_stats(1)) is True

        def no_space(*_a: object) -> bool:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(service.outbox, "_write_blob", no_space)
        with pytest.raises(OutboxFullError, match="the disk is full"):
            service.submit(package(10))
    finally:
        service.stop(timeout_s=1)


def test_evidence_that_fits_the_free_disk_is_stored_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk's free space shrinks as the outbox writes: a package that fits what was
    free before it was written is stored whole (the room is not counted twice)."""
    from collections import namedtuple

    from edge.delivery_policy import DISK_HEADROOM_BYTES

    usage = namedtuple("usage", "total used free")
    service = DeliveryService.from_config(load_delivery_config(write_config(tmp_path)))
    outbox_dir = service.outbox.directory
    room = DISK_HEADROOM_BYTES + 900_000

    def disk_usage(_path: object) -> object:
        written = sum(p.stat().st_size for p in outbox_dir.rglob("*") if p.is_file())
        return usage(1 << 40, written, room - written)

    monkeypatch.setattr("edge.outbox.shutil.disk_usage", disk_usage)
    try:
        stored = service.submit(package(500_000))  # (600 KB of about 800 KB free)
        assert stored.refused == ()
        assert service.outbox.message_state(stored.event_id) is MessageState.PENDING
    finally:
        service.stop(timeout_s=1)


def test_a_full_outbox_does_not_stop_the_node(tmp_path: Path) -> None:
    """A violation or a traffic minute the outbox refuses is counted (and logged); the
    next one is still offered, and the cameras go on."""
    import io

    from edge.config import SiteConfig
    from edge.node import EdgeNode

    class Full:
        def __init__(self) -> None:
            self.offered = 0

        def submit(self, _package: EvidencePackage) -> None:
            self.offered += 1
            raise OutboxFullError("the outbox is full even for events")

        def submit_traffic(self, _stats: object) -> bool:
            return False

    out = io.StringIO()
    full = Full()
    node = EdgeNode(SiteConfig.for_source("/data/a.mp4"), {}, None, violations_out=out)
    node.delivery = full  # type: ignore[assignment]
    node._deliver([package(10), package(10)], [object(), object()])  # type: ignore[list-item]
    assert full.offered == 2
    assert (node.counters.stored, node.counters.not_stored) == (0, 2)
    assert (node.counters.traffic_minutes, node.counters.traffic_dropped) == (2, 2)
    assert len(out.getvalue().splitlines()) == 2  # (the violations file still has them)


def test_one_process_delivers_from_an_outbox(tmp_path: Path) -> None:
    """edge deliver beside edge run for the same node: the second is refused in one line
    (the broker would throw the two off in turn); once the first stops, it may start."""
    config = load_delivery_config(write_config(tmp_path))
    first, second = DeliveryService.from_config(config), DeliveryService.from_config(config)
    first.start()
    try:
        with pytest.raises(UserError, match="another process is already delivering"):
            second.start()
    finally:
        first.stop(timeout_s=1)
    second.start()
    second.stop(timeout_s=1)


def test_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    config = load_delivery_config(write_config(tmp_path))
    (tmp_path / "node.key").unlink()
    with pytest.raises(UserError, match="cannot load the node key"):
        DeliveryService.from_config(config)


def test_outbox_command_reports_broken_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from roadwatch.cli import main

    path = write_config(tmp_path)
    config = load_delivery_config(path)
    service = DeliveryService.from_config(config)
    try:
        submitted = service.submit(package(1000))
        clip = next(e for e in service.outbox.due_blobs(10) if e.size == 1000)
        service.outbox.mark_blob_broken(clip.sha256, "evidence file changed on disk")
    finally:
        service.stop(timeout_s=1)
    assert main(["edge", "outbox", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "violations pending 1, awaiting a receipt 0, receipted 0" in out
    # ("not yet delivered" read as not yet at the broker, for an event that had long
    # reached it and waited for central's receipt)
    assert re.search(r"\n  oldest message central has not receipted: \d+ s\n", out), out
    assert f"broken {clip.sha256}: evidence file changed on disk" in out
    assert "bytes free" in out and "ALARM: the disk" not in out
    assert submitted.event_id in out


def test_a_violation_a_gone_process_found_is_stored_without_evidence_at_the_next_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process records a violation as its rule finds it and dies (a power cut, a kill)
    before the evidence is built: the next start stores it, signed, with no evidence and
    saying why. A violation whose package was stored leaves no record; one a running
    process is still building is left to it."""
    import subprocess
    import sys

    from roadwatch.cli import main
    from tests.delivery_support import subprocess_env
    from tests.factories import violation_event

    path = write_config(tmp_path)
    config = load_delivery_config(path)
    found = violation_event(plate=None, evidence=[])
    script = (
        "import sys\n"
        "from edge.delivery_policy import DiskBudget\n"
        "from edge.outbox import Outbox\n"
        "from roadwatch.contract import ViolationEvent\n"
        "box = Outbox(__import__('pathlib').Path(sys.argv[1]), DiskBudget(1 << 20, 1 << 16))\n"
        "box.put_fired(ViolationEvent.model_validate_json(sys.argv[2]))\n"
        "__import__('os')._exit(0)\n"  # no close, no clean-up: as a process that is killed
    )
    subprocess.run(
        [sys.executable, "-c", script, str(config.outbox.path), found.model_dump_json()],
        env=subprocess_env(), check=True, timeout=60,
    )  # fmt: skip
    service = DeliveryService.from_config(config)
    try:
        building = violation_event(plate=None, evidence=[])
        service.outbox.put_fired(building)  # this process's: its evidence is on its way
        # A process gone whose pid is this one's now (a node restarted as PID 1 of a new
        # container): told apart by its start time. A row that cannot be read is left.
        import os
        import sqlite3

        reused = violation_event(plate=None, evidence=[])
        service.outbox.put_fired(reused)
        with sqlite3.connect(config.outbox.path / "outbox.sqlite3") as db:
            boot = db.execute("SELECT owner FROM fired LIMIT 1").fetchone()[0].split()[0]
            db.execute(
                "UPDATE fired SET owner = ? WHERE event_id = ?",
                (f"{boot} {os.getpid()} 1", reused.event_id),
            )
            db.execute("INSERT INTO fired VALUES ('x', 'cam-01', '{not an event', 0, 'b 1')")
        done = package(10)
        service.outbox.put_fired(done.event.model_copy(update={"signature": None}))
        service.submit(done)
        by_id = {f.event.event_id: f for f in service.outbox.fired()}
        assert set(by_id) == {found.event_id, building.event_id, reused.event_id}
        assert by_id[found.event_id].orphaned and not by_id[building.event_id].orphaned
        assert by_id[reused.event_id].orphaned
        assert main(["edge", "outbox", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert "violations found, evidence being built 1, left by a stopped node 2" in out

        assert service.recover_fired() == 2
        [message] = [m for m in service.outbox.due_messages(10) if m.id == found.event_id]
        stored = parse_payload(ViolationEvent, message.payload)
        verify(stored, service.key.public_key())
        assert stored.evidence == []
        assert stored.explanation.startswith(found.explanation)
        assert "No evidence: the node stopped" in stored.explanation
        assert stored.model_dump(exclude={"explanation", "signature"}) == found.model_dump(
            exclude={"explanation", "signature"}
        )
        assert [f.event.event_id for f in service.outbox.fired()] == [building.event_id]
        assert service.recover_fired() == 0  # nothing twice
    finally:
        service.stop(timeout_s=1)


def test_a_violations_file_that_refuses_writes_loses_nothing_stored(tmp_path: Path) -> None:
    """``--violations FILE`` on a full disk: each package is stored in the outbox first,
    and the copy that cannot be written is logged; the run goes on."""
    from edge.config import SiteConfig
    from edge.node import EdgeNode

    class FullFile:
        def write(self, _text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            raise OSError(28, "No space left on device")

    service = DeliveryService.from_config(load_delivery_config(write_config(tmp_path)))
    try:
        node = EdgeNode(SiteConfig.for_source("/data/a.mp4"), {}, service)
        node.violations_out = FullFile()  # type: ignore[assignment]
        packages = [package(10), package(10)]
        node._deliver(packages, [])
        assert (node.counters.stored, node.counters.not_stored) == (2, 0)
        for p in packages:
            assert service.outbox.message_state(p.event.event_id) is MessageState.PENDING
    finally:
        service.stop(timeout_s=1)


def test_outbox_status_of_a_path_with_no_outbox_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mistyped outbox.path created an empty outbox and reported 0 pending.
    from roadwatch.cli import main

    path = write_config(tmp_path)
    missing = tmp_path / "outbox"
    assert main(["edge", "outbox", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"roadwatch: error: no outbox at {missing} (outbox.path in {path})\n"
    assert not missing.exists()
    missing.mkdir()  # a folder without the outbox's database is no outbox either
    assert main(["edge", "outbox", "--config", str(path)]) == 2
    assert list(missing.iterdir()) == []
    DeliveryService.from_config(load_delivery_config(path)).stop(timeout_s=1)
    assert main(["edge", "outbox", "--config", str(path)]) == 0
    assert "violations pending 0, awaiting a receipt 0" in capsys.readouterr().out


def test_outbox_command_counts_traffic_minutes_apart_from_violations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Traffic minutes get no receipt: the broker's acknowledgement is their delivery.
    Counted with the violations, a sent minute read as an event awaiting a receipt."""
    from datetime import UTC, datetime

    from roadwatch.cli import main
    from roadwatch.contract import TrafficStats

    path = write_config(tmp_path)
    service = DeliveryService.from_config(load_delivery_config(path))
    try:
        minutes = [datetime(2026, 12, 7, 8, m, tzinfo=UTC) for m in range(3)]
        for minute in minutes:
            service.outbox.put_traffic(
                TrafficStats(site="s", node="n", camera="c", minute_start=minute)
            )
        sent = [m.id for m in service.outbox.due_messages(10)][:2]
        service.outbox.mark_published(sent)
        service.submit(package(10))
    finally:
        service.stop(timeout_s=1)
    assert main(["edge", "outbox", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "violations pending 1, awaiting a receipt 0, receipted 0" in out
    assert "traffic minutes pending 1, sent 2" in out


def test_outbox_command_lists_the_violations_central_refused_for_good(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from roadwatch.cli import main
    from roadwatch.contract.models import EventRefusal, RefusalCode

    path = write_config(tmp_path)
    config = load_delivery_config(path)
    service = DeliveryService.from_config(config)
    try:
        submitted = service.submit(package(1000))
        [message] = service.outbox.due_messages(10)
        service.outbox.mark_published([message.id])
        refusal = EventRefusal(
            event_id=submitted.event_id, payload_sha256=hashlib.sha256(message.payload).hexdigest(),
            code=RefusalCode.REVOKED_KEY, reason="signed with key 3f9a, revoked: box stolen",
        )  # fmt: skip
        assert service.outbox.mark_refused([refusal]) == 1
    finally:
        service.stop(timeout_s=1)
    assert main(["edge", "outbox", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "awaiting a receipt 0, receipted 0, refused by central 1 (kept, not sent again)" in out
    assert f"refused {submitted.event_id} at " in out
    assert ": revoked_key: signed with key 3f9a, revoked: box stolen" in out
