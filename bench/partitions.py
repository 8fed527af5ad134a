"""Monthly partitions of violations against the plain table, in the same run.

Two fresh schemas on the same PostgreSQL: one at revision 0002 (plain table), one at the
newest (partitioned by month). Both get the same generated rows (bench/api.py's loader,
spread over 90 days), then each query the service runs is timed on both with psycopg:
the review queue and searches, a case read by id, the ingest's look-up of 500 event ids,
and the ingest itself (``record_batch`` of 500 signed events, of which 100 re-sent).

    .venv/bin/python bench/partitions.py --rows 1000000
    (PostgreSQL: ROADWATCH_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from alembic import command  # noqa: E402

from bench.api import LOAD_SQL, kinds  # noqa: E402
from central.db import alembic_config, make_engine, migrate, session_factory, transaction  # noqa: E402
from central.intake import Message  # noqa: E402
from central.partitions import ensure_partitions  # noqa: E402
from central.records import KeyCache, record_batch, register_node  # noqa: E402
from roadwatch.contract import CameraTopic, camera_topic, to_wire  # noqa: E402
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign  # noqa: E402
from tests.factories import violation_event  # noqa: E402

BASE = os.environ.get("ROADWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def schema(layout: str) -> Iterator[str]:
    name = f"rw_bench_{layout}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def sqlalchemy_url(name: str) -> str:
    url = BASE.replace("postgresql://", "postgresql+psycopg://", 1)
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{name}"


def p50_ms(run: Callable[[], object], repeat: int) -> float:
    run()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def measure(layout: str, rows: int, repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with schema(layout) as name:
        engine = make_engine(sqlalchemy_url(name))
        try:
            if layout == "plain":
                command.upgrade(alembic_config(sqlalchemy_url(name)), "0002")
            else:
                migrate(engine)
                # The loader's months (Aug to Nov 2026) get their partitions first.
                ensure_partitions(engine, months_ahead=4, today=date(2026, 8, 1))
            key = generate_private_key()
            with transaction(session_factory(engine)) as s:
                pem = public_key_pem(key.public_key()).decode()
                register_node(s, site="bench-site", node="node-01", public_key_pem=pem)
            t = time.perf_counter()
            with psycopg.connect(BASE, autocommit=True, options=f"-csearch_path={name}") as conn:
                conn.execute(LOAD_SQL, {"rows": rows})
                conn.execute("VACUUM ANALYZE")
                out["load (all rows)"] = (time.perf_counter() - t) * 1000
                plate, max_id = conn.execute(
                    "SELECT (SELECT plate_text FROM violations ORDER BY id LIMIT 1 OFFSET %s), "
                    "(SELECT max(id) FROM violations)",
                    (rows // 2,),
                ).fetchone()  # type: ignore[misc]
                event_ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT event_id FROM violations TABLESAMPLE SYSTEM (1) LIMIT 500"
                    )
                ]
                rng = random.Random(7)
                for k in kinds(plate):

                    def query(sql: str = k.sql, params: dict[str, object] = k.sql_params) -> None:
                        conn.execute(sql, params).fetchall()

                    out[k.name] = p50_ms(query, repeat)
                out["case by id"] = p50_ms(
                    lambda: conn.execute(
                        "SELECT * FROM violations WHERE id = %s", (rng.randint(1, max_id),)
                    ).fetchall(),
                    repeat,
                )
                out["500 event ids looked up"] = p50_ms(
                    lambda: conn.execute(
                        "SELECT event_id, payload_sha256 FROM violations WHERE event_id = ANY(%s)",
                        (event_ids,),
                    ).fetchall(),
                    repeat,
                )
            sessions = session_factory(engine)
            topic = camera_topic("bench-site", "node-01", "cam-00", CameraTopic.VIOLATION)
            runs = max(5, repeat // 10)
            batches = [  # signed beforehand: only the storing is timed
                [
                    Message(topic.replace("cam-00", e.camera), to_wire(e))
                    for e in (
                        sign(violation_event(site="bench-site", camera=f"cam-{i % 8:02d}"), key)
                        for i in range(400)
                    )
                ]
                for _ in range(runs + 1)
            ]
            resend: list[Message] = []

            def ingest_batch() -> None:
                nonlocal resend
                fresh = batches.pop()
                with transaction(sessions) as s:
                    record_batch(s, fresh + resend, KeyCache())
                resend = fresh[:100]

            out["ingest batch (400 new, 100 re-sent)"] = p50_ms(ingest_batch, runs)
        finally:
            engine.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=100, help="timed runs of each query")
    args = parser.parse_args()
    plain = measure("plain", args.rows, args.repeat)
    parts = measure("partitioned", args.rows, args.repeat)
    print(f"{args.rows} violations over 90 days; median of {args.repeat} runs (ingest: fewer)")
    print(f"{'':40} {'plain':>10} {'monthly':>10} {'ratio':>7}")
    for name, base in plain.items():
        print(f"{name:40} {base:9.2f}ms {parts[name]:9.2f}ms {parts[name] / base:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
