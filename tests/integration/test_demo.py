"""`roadwatch demo --run-for`: central, a real Mosquitto and an edge node on the sample
scene; every violation the node produced is delivered and recorded."""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import select

from central.db import make_engine, session_factory
from central.models import User
from central.security import verify_password
from central.settings import Settings
from roadwatch.net import free_port
from tests.edge_support import REPO, cli, cli_env, require_model
from tests.services import require_binary, require_shared_file

# (serial: the node is paced at the scene's frame rate and must keep up)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]


def test_demo_runs_and_records_everything_it_produced() -> None:
    require_binary("mosquitto")
    require_shared_file("kraten_cars.mp4")
    require_model("yolov8n-coco-dynamic")
    port = free_port()
    # 30 s: the 24 s sample scene once through, with its four violations, and then some.
    done = subprocess.run(
        cli("demo", "--run-for", "30", "--port", str(port), "--workdir",
            str(REPO / "var" / "demo")),
        env=cli_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert lines[0].startswith("Roadwatch demo: review UI http://127.0.0.1:")
    # The IOC's read-only account is there too, as announced, to try the live feed,
    # statistics and health with.
    assert "IOC ioc / roadwatch-demo" in lines[0], lines[0]
    engine = make_engine(Settings(data_dir=REPO / "var/demo/run/central").resolved_database_url)
    try:
        with session_factory(engine)() as s:
            ioc = s.scalars(select(User).where(User.username == "ioc")).one()
    finally:
        engine.dispose()
    assert ioc.role == "ioc" and ioc.active
    assert verify_password("roadwatch-demo", ioc.password_hash)
    summary = json.loads(lines[-1])
    assert summary["produced"] >= 1, "no violation within 30 s on the sample scene"
    assert summary["delivered"] == summary["produced"]
    assert summary["recorded"] == summary["produced"]
    assert summary["complete"] == summary["recorded"]
