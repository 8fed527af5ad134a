"""``roadwatch verify``: check a case package exported by central, without central."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser(
        "verify",
        help="check a case package exported by central (signature, evidence, audit trail)",
        description="Check a case package (case-N.zip, exported from the case page or by"
        " POST /api/v1/violations/N/export): the edge node's signature on the event, that"
        " every piece of evidence is the one the signed event lists, the audit entries'"
        " hashes, and the manifest and central's signature on it. Exits 0 when everything"
        " checks out with central's key given, 3 when the package is whole but was checked"
        " only with the keys it carries (who made it is not proven), 1 when anything is"
        " wrong or missing, 2 for a file that is not a case package.",
    )
    verify.add_argument("package", type=Path, help="the case package (ZIP)")
    verify.add_argument(
        "--key",
        type=Path,
        help="the node's public key (PEM) from a source you trust; without it the key in"
        " the package is used, which proves the package is whole but not who signed it",
    )
    verify.add_argument(
        "--central-key",
        type=Path,
        help="central's case-signing public key (PEM, `roadwatch central case keygen`) from a"
        " source you trust; it proves the audit trail and the manifest. Without it the"
        " package's own central.pub is used",
    )
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from roadwatch.case_package import describe, verify_package
    from roadwatch.errors import UserError

    def read(path: Path | None) -> bytes | None:
        try:
            return None if path is None else path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read the key {path}: {exc.strerror}") from exc

    key, central_key = read(args.key), read(args.central_key)
    if not args.package.is_file():
        raise UserError(f"{args.package}: no such file")
    report = verify_package(args.package, key, central_key)
    for line in describe(report):
        print(line)
    if not report.ok:
        return 1
    return 0 if report.origin_proven else 3
