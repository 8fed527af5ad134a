"""The shipped broker configuration, run by a real Mosquitto with generated TLS material,
passwords and ACLs: a node may publish only under its own topic prefix."""

from __future__ import annotations

import queue
import socket
import ssl
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from central.broker_acl import (
    BrokerAccount,
    broker_username,
    mosquitto_password_hash,
    render_acl,
    render_passwd,
)
from central.broker_tls import TlsFiles, write_broker_tls
from roadwatch.net import free_port
from tests.broker import local_docker_config, mosquitto_process

pytestmark = pytest.mark.integration

SITE = "ql13"


def _client(user: str, password: str, tls: TlsFiles, port: int) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{user}-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(user, password)
    client.tls_set(ca_certs=str(tls.ca_cert), cert_reqs=ssl.CERT_REQUIRED)
    return client


def _connect(client: mqtt.Client, port: int) -> ReasonCode:
    result: queue.Queue[ReasonCode] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, rc, _p: result.put(rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return result.get(timeout=10)


def _stop(*clients: mqtt.Client) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


def _central_and_two_nodes(tmp_path: Path, port: int) -> Path:
    """The broker's files for central ("central-pw") and node-01/02 ("n1-pw", "n2-pw")."""
    accounts = [
        BrokerAccount("central", mosquitto_password_hash("central-pw")),
        BrokerAccount(
            broker_username(SITE, "node-01"), mosquitto_password_hash("n1-pw"), SITE, "node-01"
        ),
        BrokerAccount(
            broker_username(SITE, "node-02"), mosquitto_password_hash("n2-pw"), SITE, "node-02"
        ),
    ]
    config = tmp_path / "config"
    config.mkdir()
    (config / "passwd").write_text(render_passwd(accounts))
    (config / "acl").write_text(render_acl([(SITE, "node-01"), (SITE, "node-02")]))
    return local_docker_config(tmp_path, port)


@pytest.fixture
def broker(tmp_path: Path) -> tuple[int, TlsFiles]:
    return free_port(), write_broker_tls(tmp_path / "certs", ["127.0.0.1", "localhost"])


def test_node_publishes_only_under_its_own_prefix(
    tmp_path: Path, broker: tuple[int, TlsFiles]
) -> None:
    port, tls = broker
    conf = _central_and_two_nodes(tmp_path, port)

    with mosquitto_process(conf, port, tmp_path / "mosquitto.log"):
        received: queue.Queue[str] = queue.Queue()
        central = _client("central", "central-pw", tls, port)
        central.on_message = lambda _c, _u, m: received.put(m.topic)
        assert _connect(central, port) == 0
        central.subscribe("roadwatch/v1/#", qos=1)
        node = _client("ql13.node-01", "n1-pw", tls, port)
        try:
            assert _connect(node, port) == 0
            own = f"roadwatch/v1/{SITE}/node-01/cam-01/violation"
            others = [
                f"roadwatch/v1/{SITE}/node-02/cam-01/violation",
                "roadwatch/v1/other-site/node-01/cam-01/violation",
                f"roadwatch/v1/{SITE}/node-01/config",
            ]
            for topic in [*others, own]:
                node.publish(topic, b"{}", qos=1).wait_for_publish(timeout=10)
            assert received.get(timeout=10) == own
            with pytest.raises(queue.Empty):
                print("unexpected:", received.get(timeout=1.0))
        finally:
            _stop(node, central)


@pytest.mark.parametrize(
    ("user", "password"),
    [("ql13.node-01", "wrong"), ("nobody", "x"), (None, None)],
    ids=["wrong-password", "unknown-user", "anonymous"],
)
def test_bad_logins_are_refused(
    tmp_path: Path, broker: tuple[int, TlsFiles], user: str | None, password: str | None
) -> None:
    port, tls = broker
    config = tmp_path / "config"
    config.mkdir()
    account = BrokerAccount("ql13.node-01", mosquitto_password_hash("n1-pw"), SITE, "node-01")
    (config / "passwd").write_text(render_passwd([account]))
    (config / "acl").write_text(render_acl([(SITE, "node-01")]))
    conf = local_docker_config(tmp_path, port)
    with mosquitto_process(conf, port, tmp_path / "mosquitto.log"):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            client.username_pw_set(user, password)
        client.tls_set(ca_certs=str(tls.ca_cert), cert_reqs=ssl.CERT_REQUIRED)
        try:
            rc = _connect(client, port)
            assert rc.is_failure, f"login as {user!r} was accepted"
        finally:
            _stop(client)


def test_plain_tcp_without_tls_gets_no_connack(
    tmp_path: Path, broker: tuple[int, TlsFiles]
) -> None:
    port, _tls = broker
    config = tmp_path / "config"
    config.mkdir()
    (config / "passwd").write_text(
        render_passwd([BrokerAccount("central", mosquitto_password_hash("pw"))])
    )
    (config / "acl").write_text(render_acl([]))
    conf = local_docker_config(tmp_path, port)
    # MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "x", in clear text.
    connect = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 1]) + b"x"
    with (
        mosquitto_process(conf, port, tmp_path / "mosquitto.log"),
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
    ):
        sock.sendall(connect)
        try:
            reply = sock.recv(16)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x20"), "the TLS listener answered a clear-text CONNECT"


def test_password_hash_matches_mosquittos_format() -> None:
    salt = bytes(range(12))
    line = mosquitto_password_hash("secret", salt=salt)
    assert line.startswith("$7$101$AAECAwQFBgcICQoL$")
    assert mosquitto_password_hash("secret", salt=salt) == line
    assert mosquitto_password_hash("secret") != mosquitto_password_hash("secret")
    with pytest.raises(ValueError):
        mosquitto_password_hash("")
    with pytest.raises(ValueError, match="share a username"):
        render_passwd([BrokerAccount("a", line), BrokerAccount("a", line)])
    with pytest.raises(ValueError, match="contains"):
        BrokerAccount("a:b", line)


def test_only_central_writes_a_nodes_config_and_only_that_node_reads_it(
    tmp_path: Path, broker: tuple[int, TlsFiles]
) -> None:
    from central.node_config import BrokerUnavailableError, publish_retained
    from central.settings import Settings

    port, tls = broker
    conf = _central_and_two_nodes(tmp_path, port)
    topic = f"roadwatch/v1/{SITE}/node-01/config"

    def settings(user: str, password: str) -> Settings:
        return Settings(
            mqtt_host="127.0.0.1",
            mqtt_port=port,
            mqtt_username=user,
            mqtt_password=password,
            mqtt_tls_ca=tls.ca_cert,
            config_push_timeout_s=5.0,
        )

    with mosquitto_process(conf, port, tmp_path / "mosquitto.log"):
        publish_retained(settings("central", "central-pw"), topic, b'{"from": "central"}')
        with pytest.raises(BrokerUnavailableError, match="refused"):
            publish_retained(settings("ql13.node-01", "n1-pw"), topic, b'{"from": "node"}')
        readers = {}
        for user, password in (("ql13.node-01", "n1-pw"), ("ql13.node-02", "n2-pw")):
            got: queue.Queue[bytes] = queue.Queue()
            client = _client(user, password, tls, port)
            client.on_message = lambda _c, _u, m, got=got: got.put(bytes(m.payload))
            assert _connect(client, port) == 0
            client.subscribe(topic, qos=1)
            readers[user] = (client, got)
        try:
            assert readers["ql13.node-01"][1].get(timeout=10) == b'{"from": "central"}'
            with pytest.raises(queue.Empty):
                readers["ql13.node-02"][1].get(timeout=1.0)
        finally:
            _stop(*(c for c, _g in readers.values()))
