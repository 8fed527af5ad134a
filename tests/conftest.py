from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.services import BrokerAddress, missing, mqtt_address, postgres_url, tcp_open
from tests.threads import leaked_threads


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a thread running: every thread needs a bounded shutdown."""
    before = set(threading.enumerate())
    yield
    extra = leaked_threads(before)
    if extra:
        names = ", ".join(sorted(t.name for t in extra))
        pytest.fail(f"test left {len(extra)} thread(s) running: {names}", pytrace=False)


@pytest.fixture
def mqtt_broker() -> BrokerAddress:
    """The real Mosquitto broker."""
    address = mqtt_address()
    if not tcp_open(address.host, address.port):
        missing(f"no MQTT broker at {address.host}:{address.port}")
    return address


@pytest.fixture
def postgres() -> str:
    """URL of the real PostgreSQL server's test database."""
    url = postgres_url()
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            pass
    except Exception as exc:
        missing(f"no PostgreSQL at {url}: {exc}")
    return url
