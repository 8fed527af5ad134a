"""The site configuration's enforcement and delivery sections."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.config import ConfigError, load_site_config, parse_site_config
from roadwatch.contract import CameraHealth, CameraState


def _write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_relative_paths_are_taken_from_the_configuration_folder(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "site": "ql13",
            "node": "node-01",
            "cameras": [
                {
                    "id": "cam-01",
                    "url": "clips/cam01.mp4",
                    "scene": "cam01.scene.yaml",
                    "calibration": "cam01.calib.yaml",
                    "reference_view": "/abs/ref.jpg",
                },
                {"id": "cam-02", "url": "rtsp://10.0.0.2/stream"},
            ],
            "delivery": {"key_path": "keys/node.key", "outbox": {"path": "outbox"}},
        },
    )
    config = load_site_config(path)
    cam, live = config.cameras
    assert cam.url == str(tmp_path / "clips/cam01.mp4")
    assert cam.scene == tmp_path / "cam01.scene.yaml"
    assert cam.calibration == tmp_path / "cam01.calib.yaml"
    assert cam.reference_view == Path("/abs/ref.jpg")
    assert live.url == "rtsp://10.0.0.2/stream"
    assert config.delivery is not None
    assert (config.delivery.site, config.delivery.node) == ("ql13", "node-01")
    assert config.delivery.key_path == tmp_path / "keys/node.key"
    assert config.delivery.outbox.path == tmp_path / "outbox"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"delivery": {"key_path": "k", "site": "other"}}, "must match"),
        ({"delivery": {"key_path": "k", "surprise": 1}}, "delivery.surprise"),
        ({"integrity": {"check_every_s": 0}}, "integrity.check_every_s"),
        ({"cameras": [{"id": "c", "url": "x.mp4", "place": ""}]}, "cameras.0.place"),
    ],
)
def test_bad_sections_are_refused_with_their_path(patch: dict[str, object], message: str) -> None:
    doc: dict[str, object] = {
        "site": "ql13", "node": "node-01", "cameras": [{"id": "c", "url": "x.mp4"}],
    }  # fmt: skip
    doc.update(patch)
    with pytest.raises(ConfigError, match=message):
        parse_site_config(doc, "site.yaml")


@pytest.mark.parametrize(
    ("camera", "push", "message"),
    [
        ({"scene": "missing.scene.yaml"}, {}, "scene file"),
        ({}, {"config_push": {"central_key": "missing.pub"}}, "cannot read central's config key"),
        ({"url": "missing.mp4"}, {}, "camera cam-01: no such video file"),
        ({}, {"key_path": "missing.key"}, "cannot load the node key"),
    ],
)
def test_a_refused_start_leaves_no_outbox_behind(
    tmp_path: Path, camera: dict[str, str], push: dict[str, object], message: str
) -> None:
    # The outbox folder and its database were created before the scene and the central key
    # were looked at, so each refused start left an empty outbox behind.
    import subprocess

    from roadwatch.contract.signing import generate_private_key, private_key_pem
    from tests.edge_support import cli, cli_env

    (tmp_path / "node.key").write_bytes(private_key_pem(generate_private_key()))
    path = _write(
        tmp_path,
        {
            "site": "ql13",
            "node": "node-01",
            "cameras": [{"id": "cam-01", "url": "rtsp://10.255.0.1/stream", **camera}],
            "delivery": {"key_path": "node.key", "outbox": {"path": "outbox"}, **push},
        },
    )
    proc = subprocess.run(
        cli("edge", "run", "--config", str(path)),
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("roadwatch: error: ") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key", "site.yaml"]


# NVDEC made unusable in the node's process, whatever this machine has (as a machine
# without PyNvVideoCodec, the gpu extra, is).
WITHOUT_NVDEC = (
    "import sys; sys.modules['PyNvVideoCodec'] = None;"
    " from roadwatch.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    ("site", "source", "message"),
    [
        ({"decode": {"decoder": "nvdec"}}, False,
         "decode.decoder is nvdec, which cannot run here (NVDEC decoding needs PyNvVideoCodec"),
        ({}, False, "yolov8n-coco-dynamic: MODELS/yolov8n-coco-dynamic.onnx is not there"),
        ({"cameras": [{"id": "cam-01", "url": "CLIP", "model": "yolov8n-coco"}]}, False,
         "yolov8n-coco: MODELS/yolov8n-coco.onnx is not there"),
        ({}, True, "yolov8n-coco-dynamic: MODELS/yolov8n-coco-dynamic.onnx is not there"),
        ({"detector": {"providers": ["TensorrtExecutionProvider"]}}, False,
         "none of the execution providers ['TensorrtExecutionProvider'] is available"),
    ],
)  # fmt: skip
def test_a_start_whose_detector_or_decoder_cannot_run_changes_nothing(
    tmp_path: Path, site: dict[str, object], source: bool, message: str
) -> None:
    """A missing detector model (or one no provider runs) was found by the first frame's
    detection, and NVDEC by the pipeline, both after the node had created its outbox (a
    camera that stays down: never). Now the start is refused first, in one line."""
    import shutil
    import subprocess
    import sys

    import onnxruntime as ort

    from roadwatch.contract.signing import generate_private_key, private_key_pem
    from tests.edge_support import cli_env, hanoi_clip, require_model

    if "TensorrtExecutionProvider" in message and "TensorrtExecutionProvider" in (
        ort.get_available_providers()
    ):
        pytest.skip("onnxruntime here runs TensorRT")
    models = tmp_path / "models"
    models.mkdir()
    if site:  # the model is there where the case is not about it
        shutil.copy(require_model("yolov8n-coco-dynamic"), models)
    work = tmp_path / "node"
    work.mkdir()
    (work / "node.key").write_bytes(private_key_pem(generate_private_key()))
    clip = work / "clip.mp4"
    clip.symlink_to(hanoi_clip())
    doc: dict[str, object] = {
        "site": "ql13", "node": "node-01", "cameras": [{"id": "cam-01", "url": "CLIP"}],
        "delivery": {"key_path": "node.key", "outbox": {"path": "outbox"}}, **site,
    }  # fmt: skip
    for camera in doc["cameras"]:  # type: ignore[attr-defined]
        camera["url"] = str(clip)
    path = _write(work, doc)
    args = ["edge", "run", "--config", str(path), *(["--source", str(clip)] if source else [])]
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_NVDEC, *args], capture_output=True, text=True,
        env={**cli_env(), "ROADWATCH_MODELS_DIR": str(models)}, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("roadwatch: error: "), line
    assert message.replace("MODELS", str(models)) in line, line
    assert sorted(p.name for p in work.iterdir()) == ["clip.mp4", "node.key", "site.yaml"]


CAMERAS = [
    {"id": "cam-01", "url": "rtsp://10.255.0.1/a", "place": "Km 22"},
    {"id": "cam-02", "url": "rtsp://10.255.0.2/b", "place": "Km 23"},
]
TWO_CAMERAS: dict[str, object] = {"site": "ql13", "node": "node-01", "cameras": CAMERAS}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # The first camera's settings and scene were taken without a word.
        (
            ["--source", "CLIP"],
            "site.yaml has 2 cameras (cam-01, cam-02): name the one the video is from with"
            " --camera",
        ),
        (
            ["--source", "CLIP", "--camera", "cam-09"],
            "--camera cam-09: SITE has no such camera (cam-01, cam-02)",
        ),
        (["--camera", "cam-01"], "--camera names a camera of --config to run --source as"),
    ],
)
def test_a_video_of_one_of_several_cameras_needs_the_camera_named(
    tmp_path: Path, args: list[str], message: str
) -> None:
    import subprocess

    from tests.edge_support import cli, cli_env

    site = _write(tmp_path, TWO_CAMERAS)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    named = [str(clip) if a == "CLIP" else a for a in args]
    proc = subprocess.run(
        cli("edge", "run", "--config", str(site), *named),
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert message.replace("SITE", str(site)) in line, line


def test_the_camera_named_is_the_one_run_on_the_video(tmp_path: Path) -> None:
    from edge.perception_cli import _source_camera

    config = parse_site_config(TWO_CAMERAS)
    [chosen] = _source_camera(config, "cam-02", tmp_path / "site.yaml").cameras
    assert (chosen.id, chosen.place) == ("cam-02", "Km 23")
    alone = parse_site_config({**TWO_CAMERAS, "cameras": CAMERAS[:1]})
    assert _source_camera(alone, None, tmp_path / "site.yaml").cameras[0].id == "cam-01"


def test_the_status_names_each_cameras_place_as_the_configuration_in_force_has_it() -> None:
    from edge.node import EdgeNode

    cameras = [
        {"id": "cam-01", "url": "a.mp4", "place": "QL13 Km 22+300"},
        {"id": "cam-02", "url": "b.mp4"},
    ]
    doc = {"site": "ql13", "node": "node-01", "cameras": cameras}
    config = parse_site_config(doc)
    readers = [CameraHealth(camera=c, state=CameraState.UP) for c in ("cam-01", "cam-02")]
    node = EdgeNode(config, {}, None, _readers=lambda: readers)
    assert [(h.camera, h.place) for h in node.health()] == [
        ("cam-01", "QL13 Km 22+300"),
        ("cam-02", None),
    ]
    # A push changes a place live: the next status says the new one.
    moved = [{**cameras[0], "place": "QL13 Km 22+500"}, cameras[1]]
    node.config = parse_site_config({**doc, "cameras": moved})
    assert node.health()[0].place == "QL13 Km 22+500"
    # A place the status could not carry is refused with the configuration.
    with pytest.raises(ConfigError, match="place"):
        parse_site_config({**doc, "cameras": [{**moved[0], "place": "QL13\x1b[31m"}]})
