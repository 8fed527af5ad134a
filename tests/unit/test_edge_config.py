"""Site configuration: validation errors that name the key, and defaults."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from central.broker_tls import write_broker_tls
from edge.config import ConfigError, SiteConfig, load_site_config, parse_site_config
from edge.delivery_config import DeliveryConfig, load_delivery_config
from edge.delivery_service import check_tls_files
from edge.detections import ObjectClass
from roadwatch.errors import UserError
from tests.edge_support import cli, cli_env

GOOD = """
site: binh-duong
node: ql13-km21
detector:
  providers: [CUDAExecutionProvider, CPUExecutionProvider]
  class_confidence: {motorcycle: 0.2}
tracker:
  lost_buffer_s: 3
cameras:
  - id: cam-north
    url: rtsp://10.0.0.5/stream1
    target_fps: 10
    thresholds: {car: 0.4}
  - id: cam-south
    url: /data/south.mp4
    loop: true
"""


def test_a_valid_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD)
    config = load_site_config(path)
    assert [c.id for c in config.cameras] == ["cam-north", "cam-south"]
    north = config.detector_for(config.cameras[0])
    assert north.threshold(ObjectClass.CAR) == 0.4
    assert north.threshold(ObjectClass.MOTORCYCLE) == 0.2
    assert north.threshold(ObjectClass.BUS) == 0.25
    assert config.tracker.lost_buffer_s == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("target_fps: 10", "target_fps: -1"), "site.yaml: cameras.0.target_fps: Input should be"),
        (("    loop: true", "    loop: true\n    colour: red"), "cameras.1.colour: Extra inputs"),
        (
            ("cam-south", "cam-north"),
            "site.yaml: cameras: camera id 'cam-north' appears twice (cameras.0 and cameras.1)",
        ),
        (("{car: 0.4}", "{tram: 0.4}"), "cameras.0.thresholds: unknown class 'tram'"),
        (("{car: 0.4}", "{car: 1.5}"), "cameras.0.thresholds: car: 1.5 is not a"),
        (
            ("{motorcycle: 0.2}", "{motorcycle: -0.2}"),
            "detector.class_confidence: motorcycle: -0.2 is not a confidence",
        ),
        (("lost_buffer_s: 3", "lost_bufer_s: 3"), "tracker.lost_bufer_s: Extra inputs"),
        (("site: binh-duong\n", ""), "site.yaml: site: Field required"),
        (("url: /data/south.mp4", "url: [oops"), "site.yaml: not valid YAML: line 1"),
        (("rtsp://10.0.0.5", "rstp://10.0.0.5"), "cameras.0.url: unsupported source"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_site_config(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert "Value error" not in str(err.value)  # pydantic's words, not the validator's


def test_defaults_for_a_single_source() -> None:
    config = SiteConfig.for_source("/tmp/clip.mp4")
    assert config.cameras[0].url == "/tmp/clip.mp4"
    assert config.detector.model == "yolov8n-coco-dynamic"
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_site_config(["not", "a", "mapping"])


def test_cli_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GOOD.replace("node: ql13-km21", "node: QL 13"))
    proc = subprocess.run(
        cli("edge", "run", "--config", str(path)),
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadwatch: error: site.yaml: node: String")


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"\xff\xfe site: x")
    with pytest.raises(ConfigError, match=r"^site.yaml: not UTF-8 text$"):
        load_site_config(path)
    with pytest.raises(UserError, match=r"site.yaml: not UTF-8 text$"):
        load_delivery_config(path)


DELIVERY = """
site: binh-duong
node: ql13-km21
cameras:
  - {id: cam-north, url: rtsp://10.0.0.5/stream1}
delivery:
  key_path: keys/node.key
  outbox: {path: outbox}
  broker:
    host: broker.example
    port: 8883
    tls: {ca_file: certs/ca.crt, cert_file: certs/node.crt, key_file: /etc/node.key}
  config_push: {central_key: keys/central.pub}
"""


def test_delivery_paths_are_taken_from_the_config_folder_by_edge_run_and_edge_deliver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "site.yaml").write_text(DELIVERY)
    monkeypatch.chdir(tmp_path)  # run from elsewhere
    site = load_site_config(Path("site/site.yaml")).delivery
    alone = load_delivery_config(Path("site/site.yaml"))  # site and node from the top
    base = folder.resolve()
    for config in (site, alone):
        assert config is not None and (config.site, config.node) == ("binh-duong", "ql13-km21")
        assert config.key_path == base / "keys/node.key"
        assert config.outbox.path == base / "outbox"
        tls = config.broker.tls
        assert tls is not None and tls.ca_file == base / "certs/ca.crt"
        assert (tls.cert_file, tls.key_file) == (base / "certs/node.crt", Path("/etc/node.key"))
        assert config.config_push is not None
        assert config.config_push.central_key == base / "keys/central.pub"
        assert config.config_push.store == base / "var/config"


KEY_FIELD = "delivery.config_push.central_key"


KEY_LISTS: list[tuple[str, object, list[str] | None, str | None]] = [
    ("one path", "central.pub", ["central.pub"], None),
    ("one absolute path", "/etc/roadwatch/central.pub", ["/etc/roadwatch/central.pub"], None),
    ("a list of one", ["old.pub"], ["old.pub"], None),
    ("the old and the new", ["old.pub", "/etc/new.pub"], ["old.pub", "/etc/new.pub"], None),
    ("three", ["a.pub", "b.pub", "c.pub"], ["a.pub", "b.pub", "c.pub"], None),
    ("empty list", [], None, "a list of 1 to 3 paths (the key central signs with, and the"
                             " other during a key change), not 0"),
    ("four", ["a.pub", "b.pub", "c.pub", "d.pub"], None, "a list of 1 to 3 paths (the key"
                             " central signs with, and the other during a key change), not 4"),
    ("a number", 5, None, "expected a path or a list of paths, not 5"),
    ("a mapping", {"old": "old.pub"}, None,
     "expected a path or a list of paths, not {'old': 'old.pub'}"),
    ("nothing", None, None, "expected a path or a list of paths, not None"),
    ("a number in the list", ["old.pub", 5], None, "item 1: expected a path, not 5"),
    ("a list in the list", ["old.pub", ["new.pub"]], None,
     "item 1: expected a path, not ['new.pub']"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("given", "keys", "message"), [c[1:] for c in KEY_LISTS], ids=[c[0] for c in KEY_LISTS]
)
def test_central_key_is_one_path_or_a_list_of_up_to_three(
    tmp_path: Path, given: object, keys: list[str] | None, message: str | None
) -> None:
    """During a change of central's config key a node takes the old key and the new; a
    file naming one key means what it always did."""
    doc = {
        "site": "s", "node": "n", "cameras": [{"id": "c", "url": "x.mp4"}],
        "delivery": {"key_path": "node.key", "config_push": {"central_key": given}},
    }  # fmt: skip
    if message is not None:
        with pytest.raises(ConfigError) as refused:
            parse_site_config(doc, "site.yaml")
        [line] = str(refused.value).splitlines()
        assert line == f"site.yaml: {KEY_FIELD}: {message}"
        return
    delivery = parse_site_config(doc, "site.yaml").resolved(tmp_path).delivery
    assert delivery is not None and delivery.config_push is not None
    assert delivery.config_push.central_keys == tuple(tmp_path / key for key in keys or [])
    if isinstance(given, str):  # (as before: one path, not a list of one)
        assert delivery.config_push.central_key == tmp_path / given


def test_broker_tls_files_are_checked_at_the_start(tmp_path: Path) -> None:
    good = write_broker_tls(tmp_path / "certs", ["127.0.0.1"])
    (tmp_path / "junk.crt").write_text("not a certificate")

    def config(**tls: Path) -> DeliveryConfig:
        return DeliveryConfig(
            site="s", node="n", key_path=tmp_path / "node.key", broker={"tls": tls}
        )

    check_tls_files(config(ca_file=good.ca_cert))
    check_tls_files(config(ca_file=good.ca_cert, cert_file=good.server_cert,
                           key_file=good.server_key))  # fmt: skip
    refusals = [
        ({"ca_file": tmp_path / "nosuch.crt"}, "nosuch.crt: No such file"),
        ({"ca_file": tmp_path / "junk.crt"}, "junk.crt: not a usable PEM file"),
        ({"ca_file": good.ca_cert, "cert_file": tmp_path / "junk.crt"}, "junk.crt"),
    ]
    for tls, message in refusals:
        with pytest.raises(UserError, match=message):
            check_tls_files(config(**tls))
