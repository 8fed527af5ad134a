"""The ``roadwatch`` command line.

Each capability registers its own subcommand group from a small module that imports
nothing heavy at import time; the work is imported when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from roadwatch import __version__
from roadwatch.errors import UserError

# (command, module providing ``register(subparsers)``), in the order --help lists them.
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("edge", "edge.cli"),
    ("models", "models.cli"),
    ("central", "central.cli"),
    ("eval", "roadwatch.eval_cli"),
    ("calibrate", "calibration.cli"),
    ("scene", "edge.scene_cli"),
    ("demo", "roadwatch.demo.cli"),
    ("verify", "roadwatch.verify_cli"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadwatch",
        description="Roadwatch: traffic-camera violation analytics (edge and central).",
    )
    parser.add_argument("--version", action="version", version=f"roadwatch {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _name, module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"roadwatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("roadwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output went away (`roadwatch verify case.zip | head`): no
        # traceback, and none again when Python flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):  # (a stdout without a descriptor)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
