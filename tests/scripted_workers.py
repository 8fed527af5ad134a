"""Worker processes that follow a script written in their camera ids, for the tests of
``edge.workers`` (importable by a spawned process).

Each camera id names what its worker does:
- ``steady-…``: reports health, sends a traffic minute, runs until told to stop;
- ``ends-…``: as steady, but ends by itself (its files ended);
- ``crash<N>-…``: exits with status 3 at its first N starts (counted in ``$SCRIPT_DIR``);
- ``fails-…``: fails with a user error;
- ``deaf-…``: reports its health, then ignores stop and SIGTERM (it is killed);
- ``refuses-…``: as steady, but cannot take a new configuration (its plate models);
- ``fires-…``: at its first start, finds two violations, delivers the package of the
  first and dies (exit status 3) while the second's evidence is being built;
- ``evidence-…``: as steady, its health's reason the evidence wait it was given;
- ``once-…``: at its first start, sends its traffic minute and dies (exit status 3);
- ``parks-…``: at its first start, sends its camera's fined no-stopping places (one, at
  ``PLACE``) and dies (exit status 3).
A worker told of traffic minutes sent before its start (``traffic_sent``) says the
latest in its health's reason; one told of fined places (``fined_places``), each.
A worker answers a new configuration with a health report whose reason is its version
and the cameras whose files came with it (the scenes' own camera ids), and reports the
per-class thresholds it got as its cameras' frame counts.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

from edge.config import SiteConfig
from edge.evidence.package import EvidencePackage
from edge.pipeline import RunSummary
from edge.rules.geometry import Point
from edge.rules.no_stopping import FinedPlace
from edge.workers import (
    STOP,
    Ended,
    Failed,
    Fired,
    Output,
    Places,
    Reconfigure,
    Refused,
    Status,
    WorkerSpec,
)
from roadwatch.contract import CameraHealth, CameraState, SignalPhase, TrafficStats

MINUTE = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
PLACE = FinedPlace(Point(600.0, 480.0), (960, 540), MINUTE.timestamp())


def _health(config: SiteConfig, reason: str = "") -> list[CameraHealth]:
    return [
        CameraHealth(camera=c.id, state=CameraState.UP, reason=reason, fps=10.0)
        for c in config.cameras
    ]


def _starts(name: str) -> int:
    """How many times this camera's worker has started before (a file per camera)."""
    counter = Path(os.environ["SCRIPT_DIR"]) / f"{name}.starts"
    before = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(before + 1))
    return before


def _fire_and_die(spec: WorkerSpec, camera: str, out: Connection) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from roadwatch.contract.signing import sign
    from tests.factories import violation_event

    key = Ed25519PrivateKey.from_private_bytes(spec.key)
    found = [violation_event(camera=camera, track_id=i, plate=None, evidence=[]) for i in (1, 2)]
    for event in found:
        out.send(Fired(spec.index, event))
    out.send(Output(spec.index, [EvidencePackage(sign(found[0], key), ())], []))
    os._exit(3)


def scripted(spec: WorkerSpec, out: Connection, control: Connection) -> None:
    config = spec.config
    ids = [c.id for c in config.cameras]
    first = ids[0]
    if first.startswith("crash"):
        times = int(first.removeprefix("crash").split("-")[0])
        if _starts(first) < times:
            os._exit(3)
    if first.startswith("fires") and _starts(first) == 0:
        _fire_and_die(spec, first, out)
    if first.startswith("once") and _starts(first) == 0:
        minute = TrafficStats(site=config.site, node=config.node, camera=first, minute_start=MINUTE)
        out.send(Output(spec.index, [], [minute]))
        os._exit(3)
    if first.startswith("parks") and _starts(first) == 0:
        out.send(Places(spec.index, first, (PLACE,)))
        os._exit(3)
    if first.startswith("fails"):
        out.send(Failed(spec.index, "no such model: yolov9x", user_error=True))
        return
    if first.startswith("deaf"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        out.send(Status(spec.index, _health(config), at=time.monotonic()))  # deaf from now on
        while True:
            time.sleep(1)
    reason = f"evidence wait {spec.evidence_wait_s:g} s" if first.startswith("evidence") else ""
    if spec.traffic_sent:
        reason = f"traffic sent up to {max(spec.traffic_sent.values()):%H:%M}"
    if spec.fined_places:
        reason = "fined places " + "; ".join(
            f"{camera} {p.px.x:g},{p.px.y:g} {p.image_size} {p.last_t:g}"
            for camera, places in sorted(spec.fined_places.items())
            for p in places
        )

    def report() -> None:
        health = _health(config, reason)
        out.send(Status(spec.index, health, len(ids), len(ids), at=time.monotonic()))

    report()
    traffic = [TrafficStats(site=config.site, node=config.node, camera=i, minute_start=MINUTE)
               for i in ids]  # fmt: skip
    out.send(Output(spec.index, [], traffic))
    ends = first.startswith("ends")
    deadline = time.monotonic() + (0.5 if ends else 60.0)
    next_report = time.monotonic() + spec.health_every_s
    while time.monotonic() < deadline:
        if time.monotonic() >= next_report:
            report()
            next_report += spec.health_every_s
        if not control.poll(0.05):
            continue
        message = control.recv()
        if message == STOP:
            break
        if isinstance(message, Reconfigure) and first.startswith("refuses"):
            why = "OCR model ch_PP-OCRv4_det_infer.onnx is missing from the rapidocr package"
            out.send(Refused(spec.index, message.config.version, why))
        elif isinstance(message, SignalPhase):  # (a signal controller's, via the node)
            reason = f"signal {message.camera} {message.phase.value}"
            report()
        elif isinstance(message, Reconfigure):
            scenes = ",".join(sorted(f.scene.camera for f in message.files.values()))
            reason = f"config {message.config.version} files {scenes}"
            report()
    thresholds = len(config.detector.class_confidence)  # the config came through whole
    summary = RunSummary(frames=10 * len(ids), frames_by_camera={i: 10 + thresholds for i in ids})
    status = Status(spec.index, _health(config, reason), len(ids), len(ids), at=time.monotonic())
    out.send(Ended(spec.index, summary, status))
