"""``roadwatch demo``: the whole system on one machine, on a sample scene."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from roadwatch import cli_args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run central, a broker and an edge node on a sample scene with known violations",
        description="Starts central (SQLite, a local evidence folder), a local Mosquitto and "
        "one edge node replaying a calibrated sample scene with speeding and wrong-way "
        "vehicles, prints the review UI's address and a running summary. Ctrl-C stops "
        "everything cleanly.",
    )
    demo.add_argument("--port", type=cli_args.port, default=8000, help="central's HTTP port (8000)")
    demo.add_argument(
        "--run-for", type=cli_args.seconds, metavar="SECONDS",
        help="stop after this long, drain what is in flight, print a JSON summary last",
    )  # fmt: skip
    demo.add_argument("--workdir", type=Path, help="demo files (default: the checkout's var/demo)")
    demo.add_argument("--data", type=Path, help="sample media folder (default ../shared/data)")
    demo.add_argument(
        "--prepare-only", action="store_true", help="render the sample scene and exit"
    )
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from roadwatch.demo.prepare import default_data_dir, default_workdir, prepare_demo
    from roadwatch.demo.run import run_demo, summary_json

    data = args.data or default_data_dir()
    workdir = args.workdir or default_workdir()
    if args.prepare_only:
        prepare_demo(workdir, data)
        return 0
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        counts = run_demo(
            workdir=workdir, data_dir=data, port=args.port, run_for_s=args.run_for,
            stop=stop,
        )  # fmt: skip
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if args.run_for is not None:
        print(summary_json(counts))
    return 0 if counts.recorded >= counts.produced else 1
