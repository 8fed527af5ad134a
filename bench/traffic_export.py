"""Peak Python memory of the traffic flow's JSON answer against its CSV download, for a
day by minute per lane of every camera (20 cameras of 4 lanes: 115,200 buckets), on
SQLite, measured in the same run.

Both are streamed from the database a few hundred rows at a time; the CSV is the peer.
Each answer is asked of the app as a server would ask it (ASGI, its chunks counted and
dropped as a client reads them), and tracemalloc gives the most memory Python held
meanwhile. Printed for the whole day of a quarter of the cameras (one node's) and of all
of them: a peak that stays where it is as the rows grow fourfold is a streamed answer.
The seconds are with tracemalloc on (which slows Python several times): compare them
within a run only.

    .venv/bin/python bench/traffic_export.py [--nodes 4 --cameras 5 --lanes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from central.app import create_app
from central.db import make_engine, migrate, session_factory, transaction
from central.models import TrafficMinute
from central.records import create_user
from central.security import issue_access_token
from central.settings import Settings
from central.workflow import Role
from tests.asgi import get_scope

SECRET = "bench-" + uuid.uuid4().hex * 2
SITE = "ql13-km22"
DAY_START = datetime(2026, 11, 23, tzinfo=UTC)
MINUTES = 24 * 60


def load(url: str, nodes: int, cameras: int, lanes: int) -> int:
    """A day of minutes, every lane of every camera of every node: the rows stored."""
    engine = make_engine(url)
    migrate(engine)
    rows = 0
    with engine.begin() as conn:
        for n in range(1, nodes + 1):
            for c in range(1, cameras + 1):
                batch: list[dict[str, Any]] = []
                for m in range(MINUTES):
                    start = DAY_START + timedelta(minutes=m)
                    for lane in range(1, lanes + 1):
                        cars = (m * 7 + lane * 3 + c) % 23
                        batch.append(
                            {
                                "site": SITE,
                                "node": f"node-{n:02d}",
                                "camera": f"cam-{c:02d}",
                                "minute_start": start,
                                "lane": f"lane-{lane}",
                                "part_start": start,
                                "part_end": None,
                                "vehicles": cars,
                                "counts_json": f'{{"car": {cars}}}',
                                "mean_speed_kmh": 30.0 + (m + lane) % 40 if cars else None,
                                "occupancy": ((m + c * lane) % 100) / 100,
                            }
                        )
                conn.execute(insert(TrafficMinute), batch)
                rows += len(batch)
    with transaction(session_factory(engine)) as session:
        create_user(session, username="ioc-bench", password="p" * 12, role=Role.IOC)
    engine.dispose()
    return rows


async def ask(app: Any, query: str, token: str) -> tuple[int, int, float]:
    """The answer's bytes, the most memory Python held while it was made and sent, and
    the seconds it took."""
    headers = {"Authorization": f"Bearer {token}"}
    scope = get_scope("/api/v1/stats/traffic", query, headers)
    done = asyncio.Event()
    asked = False
    size = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal size, status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    tracemalloc.start()
    began = time.perf_counter()
    await app(scope, receive, send)
    took = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if status != 200:
        raise SystemExit(f"the flow answered {status}")
    return size, peak, took


async def measure(app: Any, token: str, nodes: int) -> list[str]:
    lines = []
    day = "from=2026-11-23T00:00:00Z&to=2026-11-24T00:00:00Z"
    for node in ("node-01", None):
        asked = f"by=minute&per=lane&site={SITE}&{day}" + (f"&node={node}" if node else "")
        await ask(app, asked, token)  # (warm: the first request imports and caches)
        json_size, json_peak, json_s = await ask(app, asked, token)
        csv_size, csv_peak, csv_s = await ask(app, asked + "&format=csv", token)
        what = f"one node of {nodes}" if node else f"all {nodes} nodes"
        lines.append(
            f"{what:>16}: JSON {json_size / 1e6:5.1f} MB, peak {json_peak / 1e6:5.2f} MB,"
            f" {json_s:4.1f} s | CSV {csv_size / 1e6:5.1f} MB, peak {csv_peak / 1e6:5.2f} MB,"
            f" {csv_s:4.1f} s | peak ratio JSON/CSV {json_peak / csv_peak:.2f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--cameras", type=int, default=5, help="cameras a node")
    parser.add_argument("--lanes", type=int, default=4, help="lanes a camera")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="traffic-export-") as folder:
        url = f"sqlite:///{Path(folder) / 'central.db'}"
        rows = load(url, args.nodes, args.cameras, args.lanes)
        print(
            f"{rows} minutes stored: {args.nodes} nodes x {args.cameras} cameras x"
            f" {args.lanes} lanes x {MINUTES} minutes (SQLite)"
        )
        settings = Settings(
            database_url=url, data_dir=Path(folder), secret_key=SECRET, migrate_on_start=False
        )
        app = create_app(settings)
        token = issue_access_token("ioc-bench", Role.IOC, SECRET, 15)

        async def run() -> list[str]:
            async with app.router.lifespan_context(app):
                return await measure(app, token, args.nodes)

        for line in asyncio.run(run()):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
