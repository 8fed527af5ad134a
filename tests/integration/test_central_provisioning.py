"""Provisioning: `central node add` issues a node's broker login and upload token;
`central broker-files` writes Mosquitto's files from the registry; a real Mosquitto run
with them lets each node publish under its own prefix only."""

from __future__ import annotations

import os
import queue
import signal
import ssl
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.broker_acl import BROKER_FILES_STEP
from roadwatch.net import free_port
from tests.broker import REPO, local_docker_config, mosquitto_process
from tests.central_fixtures import wait_for

pytestmark = pytest.mark.integration


def _central_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ROADWATCH_ENVIRONMENT": "development",
        "ROADWATCH_DATA_DIR": str(tmp_path / "central"),
        "ROADWATCH_SECRET_KEY": "x" * 48,
        "ROADWATCH_MQTT_PASSWORD": "central-secret",
    }


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "roadwatch", *args], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _value(output: str, label: str) -> str:
    line = next(ln for ln in output.splitlines() if ln.startswith(label))
    return line.rsplit(":", 1)[1].strip()


def _client(user: str, password: str, ca: Path, port: int) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )  # fmt: skip
    client.username_pw_set(user, password)
    client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    connected: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, rc, _p: connected.put(rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.get(timeout=10) == 0
    return client


def _subscribe(client: mqtt.Client, topic: str) -> None:
    """Subscribe and wait for the broker's acknowledgement: a message published before it
    would not be delivered."""
    acked: queue.Queue[tuple[int, list[Any]]] = queue.Queue()
    client.on_subscribe = lambda _c, _u, mid, codes, _p: acked.put((mid, codes))
    _rc, mid = client.subscribe(topic, qos=1)
    got, codes = acked.get(timeout=10)
    assert got == mid and not codes[0].is_failure, codes


def test_registered_nodes_get_broker_logins_limited_to_their_prefix(tmp_path: Path) -> None:
    env = _central_env(tmp_path)
    _cli(env, "central", "migrate")
    logins = {}
    for node in ("node-01", "node-02"):
        _cli(env, "edge", "keygen", "--out", str(tmp_path / node))
        out = _cli(env, "central", "node", "add", "--site", "ql13", "--node", node,
                   "--public-key", str(tmp_path / f"{node}.pub"))  # fmt: skip
        logins[node] = (_value(out, "broker user"), _value(out, "broker password"))
    assert logins["node-01"][0] == "ql13.node-01"

    config = tmp_path / "config"
    (tmp_path / "signal.pw").write_text("lights-secret\n")
    _cli(env, "central", "broker-files", "--out", str(config), "--tls-host", "127.0.0.1",
         "--signal-controller", f"ql13:{tmp_path / 'signal.pw'}")  # fmt: skip
    passwd = (config / "passwd").read_text()
    assert stat.S_IMODE((config / "passwd").stat().st_mode) == 0o600
    assert logins["node-01"][1] not in passwd, "plain broker passwords must not reach the disk"
    assert "lights-secret" not in passwd
    assert {line.split(":")[0] for line in passwd.splitlines()} == {
        "central", "ql13.node-01", "ql13.node-02", "signal.ql13",
    }  # fmt: skip
    (tmp_path / "certs").symlink_to(config / "certs")

    port = free_port()
    conf = local_docker_config(tmp_path, port)
    ca = config / "certs" / "ca.crt"
    with mosquitto_process(conf, port, tmp_path / "mosquitto.log"):
        received: queue.Queue[str] = queue.Queue()
        central = _client("central", "central-secret", ca, port)
        central.on_message = lambda _c, _u, m: received.put(m.topic)
        _subscribe(central, "roadwatch/v1/#")
        publisher = _client(*logins["node-01"], ca, port)
        controller: mqtt.Client | None = None
        try:
            other = "roadwatch/v1/ql13/node-02/cam-01/violation"
            own = "roadwatch/v1/ql13/node-01/cam-01/violation"
            publisher.publish(other, b"{}", qos=1).wait_for_publish(timeout=10)
            publisher.publish(own, b"{}", qos=1).wait_for_publish(timeout=10)
            assert received.get(timeout=10) == own
            with pytest.raises(queue.Empty):
                received.get(timeout=1.0)
            # The site's signal controller writes the phase of any of its cameras, and
            # nothing else; the node reads its own cameras' signal topics.
            controller = _client("signal.ql13", "lights-secret", ca, port)
            phase = "roadwatch/v1/ql13/node-01/cam-01/signal"
            publisher.on_message = lambda _c, _u, m: received.put(f"node read {m.topic}")
            _subscribe(publisher, "roadwatch/v1/ql13/node-01/+/signal")
            not_its = ["roadwatch/v1/other/node-01/cam-01/signal", own,
                       "roadwatch/v1/ql13/node-01/config"]  # fmt: skip
            for topic in [*not_its, phase]:
                controller.publish(topic, b"{}", qos=1).wait_for_publish(timeout=10)
            got = {received.get(timeout=10), received.get(timeout=10)}
            assert got == {phase, f"node read {phase}"}
            with pytest.raises(queue.Empty):
                print("unexpected:", received.get(timeout=1.0))
        finally:
            for client in (controller, publisher, central):
                if client is not None:
                    client.disconnect()
                    client.loop_stop()


def test_new_node_credentials_lock_the_old_ones_out(tmp_path: Path) -> None:
    """A box that may be in other hands: its upload token is refused as soon as new
    credentials are issued, its broker password once the broker's files are written
    again and the broker reloads them; the new ones work from then, not before, as the
    command says when it prints them."""
    from sqlalchemy.orm import Session

    from central.db import make_engine
    from central.records import node_for_token

    env = _central_env(tmp_path)
    _cli(env, "central", "migrate")
    _cli(env, "edge", "keygen", "--out", str(tmp_path / "node-01"))
    at = ("--site", "ql13", "--node", "node-01")
    first = _cli(env, "central", "node", "add", *at, "--public-key", str(tmp_path / "node-01.pub"))
    assert _last_said(first) == (
        "NOT YET IN FORCE: the broker refuses the node's broker login until " + BROKER_FILES_STEP
    ), first
    config = tmp_path / "config"
    _cli(env, "central", "broker-files", "--out", str(config), "--tls-host", "127.0.0.1")
    (tmp_path / "certs").symlink_to(config / "certs")
    renewed = _cli(env, "central", "node", "credentials", *at)
    assert _last_said(renewed) == (
        "NOT YET IN FORCE: the broker still takes the old broker password and refuses the new"
        " one (give the node the new one once it takes it) until " + BROKER_FILES_STEP
    ), renewed
    old = (_value(first, "broker user"), _value(first, "broker password"))
    new = (_value(renewed, "broker user"), _value(renewed, "broker password"))
    assert old[0] == new[0] and old[1] != new[1]
    engine = make_engine(f"sqlite:///{tmp_path / 'central' / 'central.db'}")
    try:
        with Session(engine) as session:
            assert node_for_token(session, _value(first, "upload token")) is None
            found = node_for_token(session, _value(renewed, "upload token"))
            assert found is not None and found.node == "node-01"
    finally:
        engine.dispose()
    unknown = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "node", "credentials", "--site", "ql13",
         "--node", "node-09"], env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "no node ql13/node-09" in unknown.stderr, unknown.stderr

    port = free_port()
    ca = config / "certs" / "ca.crt"

    def login(user: str, password: str) -> object:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"n-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )  # fmt: skip
        client.username_pw_set(user, password)
        client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        answer: queue.Queue[object] = queue.Queue()
        client.on_connect = lambda _c, _u, _f, rc, _p: answer.put(rc)
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            return answer.get(timeout=10)
        finally:
            client.disconnect()
            client.loop_stop()

    with mosquitto_process(local_docker_config(tmp_path, port), port, tmp_path / "m.log") as broker:
        # The broker's files, written before the new credentials: as the command said.
        assert login(*old) == 0
        assert login(*new) != 0  # (bad user name or password)
        _cli(env, "central", "broker-files", "--out", str(config), "--tls-host", "127.0.0.1")
        broker.send_signal(signal.SIGHUP)
        wait_for("the broker to take the new password", lambda: login(*new) == 0)
        assert login(*old) != 0


def _last_said(output: str) -> str:
    """The command's last paragraph (from NOT YET IN FORCE on), its lines joined."""
    return " ".join(output[output.index("NOT YET IN FORCE") :].split())


def test_broker_files_need_centrals_own_password(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ROADWATCH_ENVIRONMENT": "development",
        "ROADWATCH_DATA_DIR": str(tmp_path / "central"),
        "ROADWATCH_SECRET_KEY": "x" * 48,
    }
    env.pop("ROADWATCH_MQTT_PASSWORD", None)
    done = subprocess.run(
        [sys.executable, "-m", "roadwatch", "central", "broker-files", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "ROADWATCH_MQTT_PASSWORD" in done.stderr
    assert not (tmp_path / "passwd").exists()


def test_broker_files_check_everything_before_writing_and_never_replace_a_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from roadwatch.cli import main

    env = _central_env(tmp_path)

    def files(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        # (in this process, as `roadwatch central broker-files` runs them: each run in a
        # subprocess took 2 s to start)
        with monkeypatch.context() as m:
            for name, value in {**env, **extra}.items():
                if name.startswith("ROADWATCH_"):
                    m.setenv(name, value)
            code = main(["central", "broker-files", *args])
        told = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, told.out, told.err)

    out = tmp_path / "broker"
    empty = tmp_path / "empty.pw"
    empty.write_text("\n")
    refusals = [
        (["--out", str(out), "--tls-host", ""], {}, "not a host name: ''"),
        (["--out", str(out)], {"ROADWATCH_MQTT_USERNAME": "cen:tral"}, "broker accounts:"),
        (["--out", str(tmp_path / "central" / "central.db")], {}, "not a folder"),
        (["--out", str(out), "--signal-controller", "ql13"], {}, "give SITE:PASSWORD_FILE"),
        (["--out", str(out), "--signal-controller", f"QL13:{empty}"], {}, "not a valid topic"),
        (["--out", str(out), "--signal-controller", f"ql13:{tmp_path}/none"], {}, "cannot read"),
        (["--out", str(out), "--signal-controller", f"ql13:{empty}"], {}, "holds no password"),
    ]
    for args, extra, message in refusals:
        done = files(*args, **extra)
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert message in line, line
        assert not out.exists() or list(out.iterdir()) == []  # nothing written
    # A CA without its server certificate (say, copied over by hand) is never replaced.
    certs = out / "certs"
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_text("the CA the nodes trust")
    done = files("--out", str(out), "--tls-host", "broker.example")
    assert done.returncode == 2 and "but no server.crt" in done.stderr, done.stderr
    assert (certs / "ca.crt").read_text() == "the CA the nodes trust"
    assert not (out / "passwd").exists()
    # A kept certificate that is not one: one line, nothing written.
    (certs / "server.crt").write_text("not a certificate")
    done = files("--out", str(out), "--tls-host", "broker.example")
    assert done.returncode == 2 and "not a usable certificate" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (out / "passwd").exists()
    (certs / "server.crt").unlink()
    # passwd and acl change together: an acl that cannot be written leaves passwd as it was.
    (out / "acl.tmp").mkdir()
    done = files("--out", str(out))
    assert done.returncode == 2 and not (out / "passwd").exists(), done.stderr
    (out / "acl.tmp").rmdir()
    # Made once; asked again for another host name, the kept certificate says so.
    (certs / "ca.crt").unlink()
    assert files("--out", str(out), "--tls-host", "broker.example").returncode == 0
    again = files("--out", str(out), "--tls-host", "10.0.0.9")
    assert again.returncode == 0 and "is for broker.example, not 10.0.0.9" in again.stdout


def test_central_logs_in_as_the_account_broker_files_wrote() -> None:
    from central.settings import Settings

    assert Settings(mqtt_password="pw").broker_username == "central"
    assert Settings(mqtt_password="pw", mqtt_username="ingest").broker_username == "ingest"
    assert Settings().broker_username is None  # an open broker: no login
