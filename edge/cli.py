"""``roadwatch edge ...`` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.perception_cli import register_perception


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.add_parser("edge", help="run an edge node and manage its identity")
    edge_sub = edge.add_subparsers(dest="edge_command", metavar="SUBCOMMAND", required=True)

    keygen = edge_sub.add_parser(
        "keygen",
        help="write the node's Ed25519 key pair (PREFIX.key mode 0600, PREFIX.pub)",
        description="Write a new Ed25519 key pair for signing events. Refuses to overwrite.",
    )
    keygen.add_argument(
        "--out",
        type=Path,
        default=Path("node"),
        metavar="PREFIX",
        help="path prefix of the key files (default: ./node -> node.key, node.pub; "
        "node.key or node.pub name the same pair; a folder: FOLDER/node.key)",
    )
    keygen.set_defaults(func=_keygen)
    register_perception(edge_sub)

    from edge import delivery_cli

    delivery_cli.register(edge_sub)


def _keygen(args: argparse.Namespace) -> int:
    from edge.identity import write_key_pair

    # A folder means the usual names inside it; a name ending in .key or .pub, that pair
    # (node.key gave node.key.key and node.key.pub).
    prefix: Path = args.out / "node" if args.out.is_dir() else args.out
    if prefix.suffix in (".key", ".pub"):
        prefix = prefix.with_suffix("")
    paths = write_key_pair(prefix)
    print(f"private key: {paths.private} (mode 0600, keep it on the node)")
    print(f"public key:  {paths.public} (register it with central)")
    return 0
