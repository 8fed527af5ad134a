"""``roadwatch eval ...``: accuracy of the product's parts on seeded evaluation sets."""

from __future__ import annotations

import argparse
import importlib

# Modules providing ``register(eval_subparsers)``, one per measured capability.
EVAL_MODULES: tuple[str, ...] = (
    "edge.plates.eval_cli",
    "calibration.speed_eval_cli",
    "edge.red_light_eval",
    "edge.rules_eval.cli",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser("eval", help="measure accuracy on seeded evaluation sets")
    ev_sub = ev.add_subparsers(dest="eval_command", metavar="SUBCOMMAND", required=True)
    for module in EVAL_MODULES:
        importlib.import_module(module).register(ev_sub)
