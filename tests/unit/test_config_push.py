"""Whether a node applies a config pushed by central: apply, same, or refuse with a reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import SiteConfig, parse_site_config
from edge.config_apply import ConfigStore, effective_config, startup_config
from edge.config_push import (
    AppliedConfig,
    PushAction,
    decide,
    document_digest,
    parse_config_document,
    restart_reasons,
)
from roadwatch.contract import ConfigPush, to_wire
from roadwatch.contract.signing import (
    generate_private_key,
    key_fingerprint,
    private_key_pem,
    public_key_pem,
    sign,
)
from roadwatch.demo.scene import CAMERA_ID, demo_camera, scene_document, surveyed_calibration
from roadwatch.errors import UserError

CENTRAL = generate_private_key()
OTHER = generate_private_key()
SITE, NODE = "ql13", "node-01"
BASE = Path("/etc/roadwatch")
ISSUED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
URL = "rtsp://10.0.0.21/stream1"


def _calibration() -> dict[str, Any]:
    calib = surveyed_calibration(demo_camera(), 3, datetime.now(UTC))
    return calib.model_dump(mode="json")


SCENE: dict[str, Any] = scene_document(demo_camera())
CALIBRATION = _calibration()


def current() -> SiteConfig:
    return parse_site_config(
        {
            "site": SITE,
            "node": NODE,
            "version": "v1",
            "cameras": [
                {"id": CAMERA_ID, "url": URL, "scene": "/etc/roadwatch/cam-01.scene.yaml",
                 "calibration": "/etc/roadwatch/cam-01.calib.yaml", "place": "QL13 Km 22"},
            ],
        }
    )  # fmt: skip


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "site": SITE,
        "node": NODE,
        "version": "v2",
        "cameras": [
            {"id": CAMERA_ID, "url": URL, "scene": copy.deepcopy(SCENE),
             "calibration": copy.deepcopy(CALIBRATION), "place": "QL13 Km 22+300"},
        ],
    }  # fmt: skip
    doc.update(changes)
    return doc


def camera(**changes: Any) -> list[dict[str, Any]]:
    cam = document()["cameras"][0]
    cam.update(changes)
    return [cam]


def payload(
    doc: dict[str, Any] | None = None,
    *,
    key: Ed25519PrivateKey | None = CENTRAL,
    site: str = SITE,
    node: str = NODE,
    version: str | None = None,
    issued_at: datetime = ISSUED,
) -> bytes:
    doc = document() if doc is None else doc
    push = ConfigPush(
        site=site,
        node=node,
        config_version=version or str(doc.get("version", "v2")),
        issued_at=issued_at,
        config=doc,
    )
    return to_wire(sign(push, key) if key is not None else push)


def bad_scene() -> dict[str, Any]:
    scene = copy.deepcopy(SCENE)
    scene["lanes"] = "everywhere"
    return document(cameras=camera(scene=scene))


def scene_with(**changes: Any) -> dict[str, Any]:
    return document(cameras=camera(scene={**copy.deepcopy(SCENE), **changes}))


def other_camera_scene() -> dict[str, Any]:
    scene = copy.deepcopy(SCENE)
    scene["camera"] = "cam-09"
    return document(cameras=camera(scene=scene))


def added_camera() -> dict[str, Any]:
    doc = document()
    doc["cameras"].append({"id": "cam-02", "url": "rtsp://10.0.0.22/stream1"})
    return doc


V2 = AppliedConfig("v2", document_digest(document()), ISSUED)
V1 = AppliedConfig("v1")
LATER = AppliedConfig("v0", "0" * 64, ISSUED + timedelta(hours=1))

NOT_LIVE = (  # (it said "restart required", and a restart changed nothing)
    "a push changes only each camera's scene, calibration, place and persons_as_riders:"
    " change the rest in the node's own site file and restart it, or push without it"
)
CASES: list[tuple[str, Callable[[], bytes], AppliedConfig, PushAction, str]] = [
    ("new version", lambda: payload(), V1, PushAction.APPLY, ""),
    ("place only", lambda: payload(document(cameras=camera(place="Km 23"))), V1,
     PushAction.APPLY, ""),
    ("scene off", lambda: payload(document(cameras=camera(scene=None))), V1, PushAction.APPLY, ""),
    ("same again", lambda: payload(), V2, PushAction.SAME, ""),
    ("same version, other content",
     lambda: payload(document(cameras=camera(place="Km 99"))), V2,
     PushAction.REFUSE, "in force with other content"),
    ("the node file's version", lambda: payload(document(version="v1")), V1,
     PushAction.REFUSE, "the node's own file in force; give the push a new version"),
    ("issued before the one in force", lambda: payload(), LATER, PushAction.REFUSE,
     "issued before the version in force (v0)"),
    ("another key", lambda: payload(key=OTHER), V1, PushAction.REFUSE,
     "not signed by central's config key"),
    ("unsigned", lambda: payload(key=None), V1, PushAction.REFUSE, "payload is not signed"),
    ("malformed", lambda: b"{not json", V1, PushAction.REFUSE, "malformed"),
    ("for another node", lambda: payload(node="node-02"), V1, PushAction.REFUSE,
     "addressed to ql13/node-02, not ql13/node-01"),
    ("document for another node", lambda: payload(document(node="node-02")), V1,
     PushAction.REFUSE, "another site or node"),
    ("version differs from the document", lambda: payload(version="v3"), V1,
     PushAction.REFUSE, "the document says version 'v2'"),
    ("schema-invalid scene", lambda: payload(bad_scene()), V1, PushAction.REFUSE,
     "invalid: config: cameras.0.scene"),
    # A folder of tzdata raised IsADirectoryError out of decide(): central never heard why.
    ("time zone a region", lambda: payload(scene_with(timezone="Asia")), V1, PushAction.REFUSE,
     "invalid: config: cameras.0.scene: timezone: 'Asia' is a region, not a time zone"),
    ("unquoted time", lambda: payload(scene_with(no_stopping_zones=[
        {"id": "z", "polygon": [[0, 0], [100, 0], [100, 100]],
         "windows": [{"start": 1320, "end": "06:00"}]}])), V1, PushAction.REFUSE,
     "no_stopping_zones.0.windows.0.start: 1320 is a number, not a time"),
    ("scene of another camera", lambda: payload(other_camera_scene()), V1, PushAction.REFUSE,
     "the scene is for camera 'cam-09'"),
    ("calibration of another camera",
     lambda: payload(document(cameras=camera(calibration={**CALIBRATION, "camera": "cam-09"}))),
     V1, PushAction.REFUSE, "the calibration is for camera 'cam-09'"),
    # The node refused it only when it built the camera's enforcement ("not usable"),
    # after central had recorded and published it.
    ("calibration for another image size",
     lambda: payload(document(cameras=camera(calibration={**CALIBRATION,
                                                          "image_size": [1920, 1080]}))),
     V1, PushAction.REFUSE,
     "cameras.0.calibration: the calibration is for 1920x1080, the scene for 960x540"),
    ("broken calibration",
     lambda: payload(document(cameras=camera(calibration={"camera": CAMERA_ID}))), V1,
     PushAction.REFUSE, "cameras.0.calibration"),
    ("a scene file on the node", lambda: payload(document(cameras=camera(scene="cam.yaml"))),
     V1, PushAction.APPLY, ""),
    ("delivery section", lambda: payload(document(delivery={"key_path": "/x"})), V1,
     PushAction.REFUSE, "delivery stays in the node's own file"),
    ("no version", lambda: payload({k: v for k, v in document().items() if k != "version"},
                                   version="v2"), V1,
     PushAction.REFUSE, "version is required"),
    ("unknown key", lambda: payload(document(colour="red")), V1, PushAction.REFUSE,
     "invalid: config: colour"),
    ("camera added", lambda: payload(added_camera()), V1, PushAction.REFUSE,
     "camera set changed (added cam-02); " + NOT_LIVE),
    ("camera removed", lambda: payload(document(cameras=[])), V1, PushAction.REFUSE,
     "invalid: config: cameras"),
    ("stream changed", lambda: payload(document(cameras=camera(url="rtsp://10.0.0.99/s"))), V1,
     PushAction.REFUSE, "camera cam-01: url changed; " + NOT_LIVE),
    ("detector changed", lambda: payload(document(detector={"model": "other"})), V1,
     PushAction.REFUSE, "detector changed; " + NOT_LIVE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "applied", "action", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision(
    make: Callable[[], bytes], applied: AppliedConfig, action: PushAction, reason: str
) -> None:
    decision, pushed, push = decide(
        make(),
        site=SITE,
        node=NODE,
        central_keys=[CENTRAL.public_key()],
        applied=applied,
        current=current(),
        base=BASE,
    )
    assert decision.action is action, decision.message
    assert reason in decision.message
    assert (pushed is not None) == (action is PushAction.APPLY)
    if action is not PushAction.REFUSE:
        assert push is not None and decision.version == push.config_version


NEW = generate_private_key()  # central's next config key; CENTRAL is the old one
KEY_CHANGE: list[tuple[str, Ed25519PrivateKey | None, list[Ed25519PrivateKey], str]] = [
    ("old key, both taken", CENTRAL, [CENTRAL, NEW], ""),
    ("new key, both taken", NEW, [CENTRAL, NEW], ""),
    ("new key listed first", NEW, [NEW, CENTRAL], ""),
    ("old key, new alone", CENTRAL, [NEW],
     "not signed by central's config key (signature does not match"),
    ("new key, old alone", NEW, [CENTRAL],
     "not signed by central's config key (signature does not match"),
    ("another key, both taken", OTHER, [CENTRAL, NEW],
     "not signed by any of central's 2 config keys (signature does not match"),
    ("unsigned, both taken", None, [CENTRAL, NEW],
     "not signed by any of central's 2 config keys (payload is not signed)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("signer", "taken", "reason"), [c[1:] for c in KEY_CHANGE], ids=[c[0] for c in KEY_CHANGE]
)
def test_during_a_key_change_a_push_signed_with_any_key_taken_is_applied(
    signer: Ed25519PrivateKey | None, taken: list[Ed25519PrivateKey], reason: str
) -> None:
    decision, _, _ = decide(
        payload(key=signer),
        site=SITE,
        node=NODE,
        central_keys=[key.public_key() for key in taken],
        applied=V1,
        current=current(),
        base=BASE,
    )
    if reason:
        assert decision.action is PushAction.REFUSE and decision.message.startswith(reason)
        assert decision.signed_by is None
    else:
        assert decision.action is PushAction.APPLY, decision.message
        assert signer is not None and decision.signed_by == key_fingerprint(signer.public_key())


def test_a_change_that_needs_a_restart_carries_its_reasons_and_the_advice_apart() -> None:
    """The node's start reads the reasons without the advice (the file has changed since
    the push): it takes them from the decision, not by cutting the advice off its text."""
    doc = document(detector={"model": "other"}, cameras=camera(url="rtsp://10.0.0.99/s"))
    decision, _, _ = decide(
        payload(doc),
        site=SITE,
        node=NODE,
        central_keys=[CENTRAL.public_key()],
        applied=V1,
        current=current(),
        base=BASE,
    )
    assert decision.action is PushAction.REFUSE
    assert decision.reason == "camera cam-01: url changed; detector changed"
    assert decision.advice == NOT_LIVE
    assert decision.message == f"{decision.reason}; {NOT_LIVE}"
    # Refusals with nothing to advise say their reason alone.
    other, _, _ = decide(
        payload(node="node-02"),
        site=SITE,
        node=NODE,
        central_keys=[CENTRAL.public_key()],
        applied=V1,
        current=current(),
        base=BASE,
    )
    assert other.advice == "" and other.message == other.reason


def test_restart_reasons_name_every_change() -> None:
    now = current()
    wanted = now.model_copy(
        update={
            "plates": False,
            "cameras": [now.cameras[0].model_copy(update={"target_fps": 5.0, "place": "x"})],
        }
    )
    assert restart_reasons(now, wanted) == ["camera cam-01: target_fps changed", "plates changed"]
    assert restart_reasons(now, now.model_copy(update={"version": "v9"})) == []


def test_a_relative_stream_path_is_taken_from_the_node_folder() -> None:
    local = parse_site_config(
        {"site": SITE, "node": NODE, "cameras": [{"id": CAMERA_ID, "url": "clip.mp4"}]}
    ).resolved(BASE)
    doc = document(cameras=[{"id": CAMERA_ID, "url": "clip.mp4", "place": "Km 1"}])
    decision, _p, _push = decide(
        payload(doc),
        site=SITE,
        node=NODE,
        central_keys=[CENTRAL.public_key()],
        applied=V1,
        current=local,
        base=BASE,
    )
    assert decision.action is PushAction.APPLY, decision.reason


def _node_file(tmp_path: Path, central_key: str | list[str] = "central.pub") -> SiteConfig:
    (tmp_path / "central.pub").write_bytes(public_key_pem(CENTRAL.public_key()))
    return parse_site_config(
        {
            "site": SITE,
            "node": NODE,
            "version": "v1",
            "cameras": [{"id": CAMERA_ID, "url": URL}],
            "delivery": {
                "key_path": "node.key",
                "config_push": {"central_key": central_key, "store": "pushed"},
            },
        }
    ).resolved(tmp_path)


def test_the_stored_push_is_run_after_a_restart(tmp_path: Path) -> None:
    local = _node_file(tmp_path)
    assert local.delivery is not None and local.delivery.config_push is not None
    assert local.delivery.config_push.store == tmp_path / "pushed"
    assert startup_config(local, tmp_path) == (local, V1, None)

    pushed = parse_config_document(document())
    store = ConfigStore(tmp_path / "pushed")
    files = store.files(pushed)
    store.save(payload(), pushed)
    config, applied, why = startup_config(local, tmp_path)
    assert why is None and applied == V2
    assert config == effective_config(local, pushed, files, tmp_path)
    assert config.version == "v2" and config.delivery == local.delivery
    [cam] = config.cameras
    assert cam.place == "QL13 Km 22+300" and cam.scene == files / "cam-01.scene.yaml"
    assert cam.scene.is_file() and cam.calibration is not None and cam.calibration.is_file()

    # The node's own file changed the stream since: the stored push no longer fits.
    moved = local.model_copy(
        update={"cameras": [local.cameras[0].model_copy(update={"url": "rtsp://x/y"})]}
    )
    config, applied, why = startup_config(moved, tmp_path)
    assert config == moved and applied == V1
    assert why == (
        "stored config v2 not used: camera cam-01: url changed (in the node's own file since"
        " that push; the file runs)"
    )


def test_a_worker_that_runs_on_without_a_push_is_reported_to_central(tmp_path: Path) -> None:
    """A node with worker processes took a push that one worker could not take: the
    node's next status keeps the version it took and says which worker runs on without
    it, and why."""
    from edge.node import EdgeNode
    from edge.workers import Refused, Workers

    local = _node_file(tmp_path).model_copy(update={"processes": 2})
    (tmp_path / "node.key").write_bytes(private_key_pem(generate_private_key()))
    node = EdgeNode.from_config(local, model_version="test", config_dir=tmp_path)
    assert node.config_applier is not None
    reports: list[tuple[str, str | None]] = []
    node.config_applier.report = lambda version, error: reports.append((version, error))
    subject = Workers(
        local, generate_private_key(), "test", lambda p, t: None, {},
        refused=node._worker_refused,
    )  # fmt: skip
    subject._handle(Refused(0, "v2", "OCR model det.onnx is missing from the rapidocr package"))
    assert reports == [
        ("v1", f"config v2: worker 0 (cameras {CAMERA_ID}) runs on without it: OCR model "
               "det.onnx is missing from the rapidocr package")
    ]  # fmt: skip


def test_a_store_keeps_the_files_of_the_applied_push_only(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    first = parse_config_document(document())
    second = parse_config_document(document(version="v3"))
    old = store.files(first)
    store.save(payload(), first)
    new = store.files(second)
    store.save(payload(document(version="v3")), second)
    assert not old.exists() and new.is_dir()
    assert store.load() == payload(document(version="v3"))
    assert not list(tmp_path.glob(".*.partial*"))


def _tracked(index: int, at: datetime) -> Any:
    import numpy as np

    from edge.detections import Detections
    from edge.pipeline import TrackedFrame
    from edge.sources import Frame

    image = np.zeros((540, 960, 3), np.uint8)
    return TrackedFrame(Frame(CAMERA_ID, index, float(index), at, image), Detections.empty())


def test_each_camera_switches_at_its_next_frame(tmp_path: Path) -> None:
    import yaml

    from calibration.config import CalibrationFile
    from calibration.store import save_calibration
    from edge.node import EdgeNode

    scene = copy.deepcopy(SCENE)
    (tmp_path / "a.scene.yaml").write_text(yaml.safe_dump(scene))
    scene["lanes"] = scene["lanes"][:2]
    (tmp_path / "b.scene.yaml").write_text(yaml.safe_dump(scene))
    save_calibration(CalibrationFile.model_validate(CALIBRATION), tmp_path / "c.calib.yaml")
    cam = {"id": CAMERA_ID, "url": URL, "calibration": "c.calib.yaml"}
    doc = {"site": SITE, "node": NODE, "plates": False}

    def config(version: str, scene_file: str | None, place: str = "Km 1") -> SiteConfig:
        camera = {**cam, "scene": scene_file, "place": place}
        return parse_site_config({**doc, "version": version, "cameras": [camera]}).resolved(
            tmp_path
        )

    node = EdgeNode.from_config(config("v1", "a.scene.yaml"), model_version="test")
    t0 = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
    node.on_tracked(_tracked(0, t0))
    first = node.enforcement[CAMERA_ID]

    same_lanes = config("v2", "a.scene.yaml", place="Km 2")
    node.reconfigure(same_lanes, node.prepare(same_lanes))
    assert node.config.version == "v2" and node.enforcement[CAMERA_ID] is first
    node.on_tracked(_tracked(1, t0))
    second = node.enforcement[CAMERA_ID]
    assert second is not first and second.place == "Km 2"
    assert second.ring is first.ring and second.traffic is first.traffic
    assert second.counters.frames == 2 and node.counters.traffic_minutes == 0

    two_lanes = config("v3", "b.scene.yaml")
    node.reconfigure(two_lanes, node.prepare(two_lanes))
    node.on_tracked(_tracked(2, t0))
    third = node.enforcement[CAMERA_ID]
    assert third.traffic is not second.traffic and third.traffic.lanes == ("lane-1", "lane-2")
    assert node.counters.traffic_minutes == 1  # the open minute of the old lanes, closed

    off = config("v4", None)
    node.reconfigure(off, node.prepare(off))
    node.on_tracked(_tracked(3, t0))
    assert node.enforcement == {}

    broken = tmp_path / "broken.scene.yaml"
    broken.write_text("camera: cam-01\nlanes: everywhere\n")
    with pytest.raises(UserError, match="lanes"):
        node.prepare(config("v5", str(broken)))
    assert node.config.version == "v4"


def test_a_cleared_config_topic_is_neither_applied_nor_refused(tmp_path: Path) -> None:
    from edge.node import EdgeNode

    local = _node_file(tmp_path)
    (tmp_path / "node.key").write_bytes(private_key_pem(generate_private_key()))
    node = EdgeNode.from_config(local, model_version="test", config_dir=tmp_path)
    assert node.config_applier is not None
    reports: list[tuple[str, str | None]] = []
    node.config_applier.report = lambda version, error: reports.append((version, error))
    decision = node.config_applier.handle(b"")  # how a retained message is cleared
    assert decision.action is PushAction.CLEARED
    assert reports == [] and node.config.version == "v1"
    if node.delivery is not None:
        node.delivery.stop()


def test_a_push_applied_and_run_after_a_restart_is_said_at_the_default_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A technician reads the log at its default level (warnings): a refused push is said
    there ("… stays in force"), so the push applied after it, and the stored push a
    restart runs over the node's own file, must be too."""
    import logging

    from edge.node import EdgeNode

    local = _node_file(tmp_path)
    (tmp_path / "node.key").write_bytes(private_key_pem(generate_private_key()))
    caplog.set_level(logging.WARNING, logger="edge.config_apply")
    node = EdgeNode.from_config(local, model_version="test", config_dir=tmp_path)
    try:
        assert node.config_applier is not None
        node.config_applier.report = lambda version, error: None
        assert node.config_applier.handle(payload()).action is PushAction.APPLY
    finally:
        if node.delivery is not None:
            node.delivery.stop()
    assert "applied config v2 pushed by central in place of v1" in caplog.messages
    caplog.clear()
    _, applied, _ = startup_config(local, tmp_path)
    assert applied == V2
    [said] = caplog.messages
    assert said.startswith("running config v2 pushed by central (stored in ")
    assert said.endswith("over the file's v1: each camera's scene, calibration, place and"
                         " persons_as_riders are the push's")  # fmt: skip


def test_a_node_taking_the_old_key_and_the_new_applies_pushes_signed_with_either(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The overlap of a change of central's config key: the node's list names the old
    .pub and the new; the stored push is verified at a start under the same list, so a
    push signed with the old key runs on only while the old key is listed."""
    import logging

    from edge.node import EdgeNode

    (tmp_path / "new.pub").write_bytes(public_key_pem(NEW.public_key()))
    (tmp_path / "node.key").write_bytes(private_key_pem(generate_private_key()))
    both = _node_file(tmp_path, ["central.pub", "new.pub"])
    caplog.set_level(logging.INFO, logger="edge.config_apply")
    node = EdgeNode.from_config(both, model_version="test", config_dir=tmp_path)
    try:
        assert node.config_applier is not None
        node.config_applier.report = lambda version, error: None
        assert node.config_applier.handle(payload()).action is PushAction.APPLY
        v3 = payload(document(version="v3"), key=NEW, issued_at=ISSUED + timedelta(hours=1))
        assert node.config_applier.handle(v3).action is PushAction.APPLY
    finally:
        if node.delivery is not None:
            node.delivery.stop()
    old_print, new_print = (key_fingerprint(k.public_key())[:16] for k in (CENTRAL, NEW))
    assert (f"config v2 is signed with central's config key {tmp_path / 'central.pub'}"
            f" (sha256 {old_print})") in caplog.messages  # fmt: skip
    assert (f"config v3 is signed with central's config key {tmp_path / 'new.pub'}"
            f" (sha256 {new_print})") in caplog.messages  # fmt: skip

    # The stored push (v3, the new key's) runs after a restart with the new key alone...
    new_alone = _node_file(tmp_path, ["new.pub"])
    config, applied, why = startup_config(new_alone, tmp_path)
    assert (config.version, applied.version, why) == ("v3", "v3", None)
    # ... and one signed with the old key only while the old key is listed.
    v2 = parse_config_document(document())
    ConfigStore(tmp_path / "pushed").save(payload(), v2)
    assert startup_config(both, tmp_path)[1] == V2
    config, applied, why = startup_config(new_alone, tmp_path)
    assert config == new_alone and applied == V1
    assert why is not None and why.startswith(
        "stored config v2 not used: not signed by central's config key (signature does not"
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["central.pub", "missing.pub"],
         "cannot read central's config key {tmp}/missing.pub: No such file or directory"),
        (["junk.pub", "central.pub"], "central's config key {tmp}/junk.pub: not a PEM public key"),
        (["central.pub", "node.key"], "central's config key {tmp}/node.key: not a PEM public key"),
    ],
)  # fmt: skip
def test_a_start_reads_every_config_key_listed_and_names_the_one_it_cannot_use(
    tmp_path: Path, keys: list[str], message: str
) -> None:
    from edge.node import EdgeNode, check_site_files

    (tmp_path / "junk.pub").write_text("not a key\n")
    (tmp_path / "node.key").write_bytes(private_key_pem(generate_private_key()))
    local = _node_file(tmp_path, keys)
    expected = message.format(tmp=tmp_path)
    with pytest.raises(UserError) as refused:
        EdgeNode.from_config(local, model_version="test", config_dir=tmp_path)
    assert str(refused.value).startswith(expected), refused.value
    with pytest.raises(UserError) as checked:
        check_site_files(local, ISSUED)
    assert str(checked.value).startswith(expected), checked.value
    assert not (tmp_path / "var").exists()  # (no outbox opened)
