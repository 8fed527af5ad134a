"""What `roadwatch verify` costs on a case package with a large clip, against the way it
read members before, measured in the same run.

The verifier hashes each member once, in 1 MiB chunks, and the evidence check and the
manifest check share that one read (``roadwatch.case_package``). Its peer here reads each
evidence member whole into memory twice and hashes it each time, as the verifier did
before. Printed: the best of several runs of each, their ratio, and the most memory
Python allocated for each (tracemalloc), for a clip of each size.

    .venv/bin/python bench/case_verify.py
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evidence_check import best_of  # (bench/, beside this script)

from roadwatch.case_package import verify_package
from roadwatch.contract import EvidenceRole, MediaType
from tests.case_packages import make_package  # (a package as central writes it)

SIZES_MB = (16, 64, 200)


def read_whole_twice(path: Path) -> None:
    """The peer: each evidence member read whole and hashed, once for the evidence check
    and once for the manifest check."""
    with zipfile.ZipFile(path) as package:
        for name in package.namelist():
            if name.startswith("evidence/"):
                for _ in range(2):
                    hashlib.sha256(package.read(name)).hexdigest()


def measure(repeats: int, run: Callable[[], object]) -> tuple[float, int]:
    """The best time of ``repeats`` runs, and the most memory one run allocates."""
    best = best_of(repeats, run)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak


def one_size(folder: Path, mb: int, repeats: int) -> str:
    path = folder / f"case-{mb}.zip"
    central = make_package(
        path, evidence=os.urandom(mb << 20), role=EvidenceRole.CLIP, media_type=MediaType.MP4
    ).central
    assert verify_package(path, central_key=central).ok
    ours, our_peak = measure(repeats, lambda: verify_package(path, central_key=central))
    peer, peer_peak = measure(repeats, lambda: read_whole_twice(path))
    path.unlink()
    return (
        f"clip {mb:4d} MB: verify {ours * 1000:7.1f} ms, {our_peak / 2**20:6.1f} MB"
        f" allocated; reading whole twice {peer * 1000:7.1f} ms, {peer_peak / 2**20:6.1f} MB;"
        f" time ratio {ours / peer:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mb in SIZES_MB:
            print(one_size(Path(tmp), mb, args.repeats))


if __name__ == "__main__":
    main()
