"""Fixtures of the web UI's browser tests.

The real central service runs in its own process (``roadwatch central serve``) on a free
port over SQLite, seeded the way production is fed: signed events through the ingest's
batch path, node status and traffic statistics as the ingest records them, and evidence
blobs uploaded over HTTP with the node's token. The evidence is cut from the real
footage under ../shared/data. Debian's Chromium is driven by Playwright.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from central.db import make_engine, migrate, session_factory, transaction
from central.intake import Message
from central.records import KeyCache, create_user, record_batch, register_node
from central.workflow import Role
from edge.identity import write_key_pair
from roadwatch.contract import (
    CameraHealth,
    CameraState,
    CameraTopic,
    EvidenceRef,
    EvidenceRole,
    LampColour,
    LaneFlow,
    Measurement,
    MediaType,
    NodeState,
    NodeStatus,
    NodeTopic,
    PlateColour,
    PlateReading,
    TrafficStats,
    VehicleClass,
    ViolationEvent,
    ViolationType,
    camera_topic,
    new_event_id,
    node_topic,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign
from roadwatch.net import free_port
from tests.factories import status_position
from tests.services import missing, require_shared_file

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = "mật khẩu đủ dài 2026"
SITE = "binhduong"
NODE = "node-01"

# Cameras of the seeded site: (camera, name, place, latitude, longitude, state, reason).
CAMERAS = [
    ("ql13-km22", "QL13 Km 22", "QL13 Km 22+300, Thuận An", 10.905, 106.70, CameraState.UP, ""),
    (
        "ql13-km31",
        "QL13 Km 31",
        "QL13 Km 31, Thủ Dầu Một",
        10.98,
        106.655,
        CameraState.STALLED,
        "no new frame for 12 s",
    ),
    (
        "mptv-km4",
        "MP-TV Km 4",
        "Mỹ Phước – Tân Vạn Km 4, Dĩ An",
        10.925,
        106.77,
        CameraState.VIEW_SHIFTED,
        "view moved 41 px from the reference",
    ),
    (
        "mptv-km18",
        "MP-TV Km 18",
        "Mỹ Phước – Tân Vạn Km 18, Tân Uyên",
        11.03,
        106.665,
        CameraState.UP,
        "",
    ),
    (
        "mptv-km27",
        "MP-TV Km 27",
        "Mỹ Phước – Tân Vạn Km 27, Bến Cát",
        11.08,
        106.63,
        CameraState.DOWN,
        "RTSP connection refused",
    ),
]


# ---------------------------------------------------------------- evidence from real footage


@dataclass(frozen=True)
class Blob:
    role: EvidenceRole
    media_type: MediaType
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def ref(self) -> EvidenceRef:
        return EvidenceRef(
            role=self.role, media_type=self.media_type, sha256=self.sha256, size=len(self.data)
        )


@dataclass(frozen=True)
class Scene:
    """Where in a clip a violation happens and which regions show the plate and lamp."""

    clip: str
    frame: int
    plate_box: tuple[int, int, int, int]  # x0, y0, x1, y1
    lamp_box: tuple[int, int, int, int] | None = None


SCENES = {
    "red_light": Scene("vn_redlight_16h30.mp4", 200, (212, 400, 268, 436), (538, 140, 582, 240)),
    "speeding": Scene("kraten_cars.mp4", 300, (314, 126, 356, 152)),
}


def _jpeg(image: Any) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    return bytes(buf)


def _clip(path: Path, start_s: float, end_s: float) -> bytes:
    """The H.264 packets from the keyframe before ``start_s`` to ``end_s``, remuxed to MP4."""
    import av

    out_buf = io.BytesIO()
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        with av.open(out_buf, "w", format="mp4") as out:
            ostream = out.add_stream_from_template(stream)
            src.seek(int(start_s / tb), stream=stream, backward=True, any_frame=False)
            first: int | None = None
            for packet in src.demux(stream):
                if packet.dts is None or packet.pts is None:
                    continue
                if float(packet.pts * tb) > end_s:
                    break
                if first is None:
                    first = packet.dts
                packet.dts -= first
                packet.pts -= first
                packet.stream = ostream
                out.mux(packet)
    return out_buf.getvalue()


def cut_evidence(kind: str) -> list[Blob]:
    """Frames before/at/after, plate (and lamp) crops and a clip of a real scene."""
    import cv2

    scene = SCENES[kind]
    path = require_shared_file(scene.clip)
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(fps))
    frames: dict[EvidenceRole, Any] = {}
    for role, index in (
        (EvidenceRole.FRAME_BEFORE, scene.frame - step),
        (EvidenceRole.FRAME_AT, scene.frame),
        (EvidenceRole.FRAME_AFTER, scene.frame + step),
    ):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
        assert ok, f"cannot read frame {index} of {path}"
        frames[role] = image
    cap.release()
    at = frames[EvidenceRole.FRAME_AT]
    blobs = [Blob(role, MediaType.JPEG, _jpeg(image)) for role, image in frames.items()]
    x0, y0, x1, y1 = scene.plate_box
    blobs.append(Blob(EvidenceRole.PLATE_CROP, MediaType.PNG, _png(at[y0:y1, x0:x1])))
    if scene.lamp_box is not None:
        x0, y0, x1, y1 = scene.lamp_box
        blobs.append(Blob(EvidenceRole.LAMP_CROP, MediaType.PNG, _png(at[y0:y1, x0:x1])))
    t = scene.frame / fps
    blobs.append(Blob(EvidenceRole.CLIP, MediaType.MP4, _clip(path, t - 2.0, t + 2.0)))
    return blobs


def _png(image: Any) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)


# ---------------------------------------------------------------- the running service


@dataclass
class UiServer:
    """The running central service and the handles the tests seed it through."""

    url: str
    engine: Engine
    key: Ed25519PrivateKey
    node_token: str
    users: dict[str, str]
    data_dir: Path
    # One client for every request of the tests: a client of its own per request (httpx.get)
    # builds a TLS context first, about 40 ms.
    http: httpx.Client
    evidence: dict[str, list[Blob]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # API tokens by who, for act()

    def username(self, who: str) -> str:
        return self.users[who]

    def upload(self, blob: Blob) -> None:
        """Send one evidence blob as the node does."""
        r = self.http.put(
            f"{self.url}/api/v1/evidence/{blob.sha256}",
            content=blob.data,
            headers={
                "Authorization": f"Bearer {self.node_token}",
                "Content-Type": blob.media_type.value,
            },
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text

    def blob_file(self, blob: Blob) -> Path:
        """Where the filesystem store keeps ``blob``."""
        sha = blob.sha256
        return self.data_dir / "evidence" / sha[:2] / sha[2:4] / sha

    def _record(self, messages: list[Message]) -> list[int]:
        with transaction(session_factory(self.engine)) as session:
            result = record_batch(session, messages, KeyCache())
        assert not result.quarantined, result.quarantined
        return result.new_violation_ids

    def add_case(
        self,
        *,
        camera: str,
        type: ViolationType = ViolationType.RED_LIGHT,
        occurred_at: datetime | None = None,
        plate: str | None = "61A-123.45",
        evidence: str | None = None,
        measured: Measurement | None = None,
        plate_valid: bool = True,
        vietnamese: bool = True,
    ) -> int:
        """Store one signed violation through the ingest path; returns its id (``measured``
        in place of the type's usual values; ``plate``: None for no plate read;
        ``plate_valid``: the reading passed the format check; ``vietnamese``: the node
        explains in Vietnamese too, as nodes do since they were taught to, not in English
        only as older ones)."""
        kind = evidence or ("red_light" if type is ViolationType.RED_LIGHT else "speeding")
        blobs = self.evidence[kind]
        when = occurred_at or datetime.now(UTC) - timedelta(hours=1)
        if type is ViolationType.SPEEDING:
            default_measured = Measurement(
                speed_kmh=92.4, speed_uncertainty_kmh=1.1, speed_limit_kmh=80.0, distance_m=18.0
            )
            explanation = (
                "car in lane 2 measured 92.4 ± 1.1 km/h (at least 91.3 km/h) over 18 m; "
                "the limit for car is 80 km/h: 11.3 km/h over"
            )
            explanation_vi = (
                "Ô tô trên làn 2 chạy quá tốc độ: đo được tốc độ 92,4 ± 1,1 km/h (ít nhất "
                "91,3 km/h); tốc độ tối đa cho phép đối với ô tô là 80 km/h, vượt 11,3 km/h"
            )
            vehicle = VehicleClass.CAR
        elif type is ViolationType.NO_STOPPING:
            default_measured = Measurement(dwell_s=184.0)
            explanation = (
                "truck stood still inside the no-stopping zone for 184.0 s, "
                "more than the 60 s allowed"
            )
            explanation_vi = (
                "Xe tải dừng, đỗ nơi cấm: đứng yên trong vùng cấm dừng 184 giây, quá thời "
                "gian cho phép là 60 giây"
            )
            vehicle = VehicleClass.TRUCK
        else:
            default_measured = Measurement(signal_phase=LampColour.RED, time_since_red_s=2.4)
            # (as the edge's rules write it, in English and in Vietnamese)
            explanation = (
                "car crossed the stop line of lane 2 2.4 s after red began, "
                "and went on past the second line without stopping"
            )
            explanation_vi = (
                "Ô tô vượt đèn đỏ: qua vạch dừng của làn 2 2,4 giây sau khi đèn đỏ bật, rồi đi "
                "tiếp qua vạch thứ hai mà không dừng lại"
            )
            vehicle = VehicleClass.CAR
        measured = measured or default_measured
        place = next(c[2] for c in CAMERAS if c[0] == camera)
        event = sign(
            ViolationEvent(
                event_id=new_event_id(),
                type=type,
                site=SITE,
                node=NODE,
                camera=camera,
                lane="lane-2",
                occurred_at=when,
                vehicle_class=vehicle,
                track_id=17,
                plate=PlateReading(
                    text=plate, confidence=0.81, valid=plate_valid, colour=PlateColour.WHITE
                )
                if plate is not None
                else None,
                measured=measured,
                explanation=explanation,
                explanation_vi=explanation_vi if vietnamese else None,
                place=place,
                evidence=[b.ref() for b in blobs],
                model_version="yolov8n-coco@75cc3648",
                rule_version=f"{type.value}@1",
                config_version=f"{camera}@2026-11-20",
            ),
            self.key,
        )
        topic = camera_topic(SITE, NODE, camera, CameraTopic.VIOLATION)
        [vid] = self._record([Message(topic, to_wire(event))])
        return vid

    def set_cameras(
        self, states: dict[str, tuple[CameraState, str]], places: dict[str, str] | None = None
    ) -> None:
        """Record a node status carrying these camera states (and the places it names)."""
        status = NodeStatus(
            site=SITE,
            node=NODE,
            state=NodeState.ONLINE,
            sent_at=datetime.now(UTC),
            cameras=[
                CameraHealth(
                    camera=cam,
                    state=st,
                    reason=reason,
                    fps=0.0 if reason else 25.0,
                    place=(places or {}).get(cam),
                )
                for cam, (st, reason) in states.items()
            ],
            **status_position(),
        )
        signed = to_wire(sign(status, self.key))
        self._record([Message(node_topic(SITE, NODE, NodeTopic.STATUS), signed)])

    def add_traffic(self, camera: str, minutes: list[datetime], base: int, lanes: int = 1) -> None:
        """A traffic report for each of ``minutes``, from ``lanes`` lanes (lane-1 …): the
        vehicles of the n-th minute's lane k are ``traffic_vehicles(base, n, k)``."""
        messages = []
        for n, minute in enumerate(minutes):
            stats = TrafficStats(
                site=SITE,
                node=NODE,
                camera=camera,
                minute_start=minute,
                lanes=[
                    LaneFlow(
                        lane=f"lane-{k + 1}",
                        counts=traffic_by_class(base, n, k),
                        mean_speed_kmh=38.0 + n % 9,
                        occupancy=0.2,
                    )
                    for k in range(lanes)
                ],
            )
            topic = camera_topic(SITE, NODE, camera, CameraTopic.TRAFFIC)
            messages.append(Message(topic, to_wire(sign(stats, self.key))))
        self._record(messages)

    def token(self, who: str) -> str:
        r = self.http.post(
            f"{self.url}/api/v1/auth/token",
            data={"username": self.users[who], "password": PASSWORD},
        )
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(who)}"}
        return self.http.request(method, f"{self.url}{path}", headers=headers, **kw)

    def act(self, who: str, vid: int, *actions: dict[str, Any]) -> None:
        """Take ``actions`` on case ``vid`` through the API, each at the case's version."""
        if who not in self.tokens:  # (a log-in verifies an argon2 hash: slow on purpose)
            self.tokens[who] = self.token(who)
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        for body in actions:
            url = f"{self.url}/api/v1/violations/{vid}"
            version = self.http.get(url, headers=headers).json()["version"]
            r = self.http.post(f"{url}/review", json={**body, "version": version}, headers=headers)
            assert r.status_code == 200, r.text

    def take_out(self, *vids: int) -> None:
        """Take a test's cases out of the queue: each test owns its queue, whichever test
        ran before it on this server."""
        for vid in vids:
            self.act("officer2", vid, {"action": "start_review"},
                     {"action": "reject", "reason": "xong"})  # fmt: skip

    def case(self, who: str, vid: int) -> dict[str, Any]:
        r = self.call(who, "GET", f"/api/v1/violations/{vid}")
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body


def traffic_by_class(base: int, n: int, lane: int = 0) -> dict[VehicleClass, int]:
    """The vehicles of each class ``UiServer.add_traffic`` reports for its n-th minute in
    lane index ``lane``: motorcycles and cars."""
    return {
        VehicleClass.MOTORCYCLE: base + (n * 7) % 23 + lane,
        VehicleClass.CAR: base // 3 + n % 5,
    }


def traffic_vehicles(base: int, n: int, lane: int = 0) -> int:
    """The vehicles ``UiServer.add_traffic`` reports for its n-th minute in lane index
    ``lane``."""
    return sum(traffic_by_class(base, n, lane).values())


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"central exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"central did not answer within {timeout_s} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _seed(server: UiServer) -> None:
    """Cameras with places and health, traffic, and cases spread over two weeks."""
    now = datetime.now(UTC)
    server.set_cameras({c[0]: (c[5], c[6]) for c in CAMERAS})
    sup = server.token("supervisor")
    cams = server.http.get(
        f"{server.url}/api/v1/cameras", headers={"Authorization": f"Bearer {sup}"}
    ).json()
    by_id = {c["camera"]: c["id"] for c in cams}
    for camera, name, place, lat, lon, _st, _r in CAMERAS:
        r = server.http.patch(
            f"{server.url}/api/v1/cameras/{by_id[camera]}",
            json={"name": name, "registered_place": place, "latitude": lat, "longitude": lon},
            headers={"Authorization": f"Bearer {sup}"},
        )
        r.raise_for_status()
    hour = now.replace(minute=0, second=0, microsecond=0)
    for n, camera in enumerate(("ql13-km22", "mptv-km4", "mptv-km18")):
        # (each minute, as a camera reports: an hour with fewer is drawn as reported in part)
        minutes = [hour - timedelta(minutes=k) for k in range(0, 60 * 20)]
        server.add_traffic(camera, minutes, base=20 + 8 * n)
    # History for the statistics: a few cases a day over the last twelve days, all decided
    # (confirmed, rejected, or confirmed with a notice) so that each test owns its queue.
    types = [ViolationType.SPEEDING, ViolationType.RED_LIGHT, ViolationType.NO_STOPPING]
    officer = {"Authorization": f"Bearer {server.token('officer2')}"}
    supervisor = {"Authorization": f"Bearer {sup}"}
    n = 0
    for day in range(2, 12):
        for k in range(day % 3 + 1):
            vid = server.add_case(
                camera=CAMERAS[(day + k) % len(CAMERAS)][0],
                type=types[(day + k) % 3],
                occurred_at=now - timedelta(days=day, hours=k),
                plate=f"61A-{day:03d}.{k:02d}",
            )
            steps: list[tuple[dict[str, str], dict[str, Any]]] = [
                (officer, {"action": "start_review"}),
                (officer, {"action": "reject", "reason": "Biển số bị che"})
                if n % 3 == 1
                else (officer, {"action": "confirm"}),
            ]
            if n % 3 == 2:
                steps.append((supervisor, {"action": "issue_notice"}))
            for version, (headers, body) in enumerate(steps, start=1):
                r = server.http.post(
                    f"{server.url}/api/v1/violations/{vid}/review",
                    json={**body, "version": version},
                    headers=headers,
                )
                r.raise_for_status()
            n += 1


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """The real central service in its own process, seeded, stopped at the end."""
    tmp = tmp_path_factory.mktemp("ui-central")
    db_url = f"sqlite:///{tmp / 'central.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    tag = uuid.uuid4().hex[:4]
    names = {
        "officer": ("officer", "Nguyễn Văn An", Role.OFFICER),
        "officer2": ("officer", "Trần Thị Bình", Role.OFFICER),
        "supervisor": ("supervisor", "Lê Hoàng Cường", Role.SUPERVISOR),
        "admin": ("admin", "Phạm Minh Dũng", Role.ADMIN),
        "ioc": ("ioc", "Trung tâm IOC Bình Dương", Role.IOC),
    }
    users: dict[str, str] = {}
    key = generate_private_key()
    with transaction(session_factory(engine)) as session:
        for who, (_r, full, role) in names.items():
            users[who] = f"{who}-{tag}"
            create_user(session, username=users[who], password=PASSWORD, role=role, full_name=full)
        reg = register_node(
            session,
            site=SITE,
            node=NODE,
            public_key_pem=public_key_pem(key.public_key()).decode("ascii"),
        )
    write_key_pair(tmp / "case-signing", kind="case-signing key")  # (the default place)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "ROADWATCH_DATABASE_URL": db_url,
        "ROADWATCH_DATA_DIR": str(tmp),
        "ROADWATCH_SECRET_KEY": "ui-test-" + uuid.uuid4().hex * 2,
        "ROADWATCH_FEED_POLL_S": "0.2",
        "ROADWATCH_ACCESS_TOKEN_MINUTES": "60",
    }
    log = tmp / "central.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadwatch", "central", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    http = httpx.Client(timeout=10)
    try:
        _wait_healthy(url, proc, log, timeout_s=60)
        server = UiServer(
            url=url,
            engine=engine,
            key=key,
            node_token=reg.token,
            users=users,
            data_dir=tmp,
            http=http,
        )
        for kind in SCENES:
            server.evidence[kind] = cut_evidence(kind)
            for blob in server.evidence[kind]:
                server.upload(blob)
        _seed(server)
        yield server
    finally:
        http.close()
        _stop(proc)
        engine.dispose()


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per test module."""
    if not Path(CHROMIUM).is_file():
        missing(f"Debian's chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


class PageErrors:
    """Script errors and missing translations seen by a page. Failed requests are left out:
    a refused decision (409) is part of what the tests drive."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        # Requests answered 404: none on a page that shows what it has (a missing icon
        # logged one on every load), a lost blob's on the pages that show one.
        self.not_found: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page

    def _response(self, response: Any) -> None:
        if response.status == 404:
            self.not_found.append(response.url)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)


def wait_until(page: Any, script: str, timeout_s: float = 10.0) -> None:
    """Poll a page expression (the UI's CSP forbids the eval that wait_for_function uses)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {script}"
        time.sleep(0.1)


def shot(page: Any, name: str) -> Path:
    """Save a screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # Written here: Playwright writes a `path=` through a thread pool that outlives the test.
    path.write_bytes(page.screenshot())
    return path
