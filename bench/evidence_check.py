"""What checking a stored evidence blob against its sha256 costs when it is served,
against reading it, measured in the same run.

Central hashes a blob in full before a reviewer gets it, so a copy altered or damaged in
the store is never shown as evidence: the file is opened once, hashed, and served from
the same open file (``central.evidence`` ``open_checked``). This prints, for a frame, a
clip and a large clip in the filesystem store (warm page cache), the best of several
plain reads and of several checked serves (hash, then read), and their ratio.

    .venv/bin/python bench/evidence_check.py
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from central.evidence import FilesystemStore, file_chunks, intact

SIZES = (150_000, 3_000_000, 30_000_000)  # a JPEG frame, a 4 s clip, a long clip


def best_of(repeats: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = FilesystemStore(Path(folder))
        for size in SIZES:
            data = os.urandom(size)
            sha = hashlib.sha256(data).hexdigest()
            path = store.path(sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if not intact(store, sha):
                raise SystemExit("the stored blob does not check: nothing to measure")

            def read(name: str = sha) -> None:
                for _chunk in store.read(name):
                    pass

            def serve(name: str = sha) -> None:
                checked = store.open_checked(name)
                assert checked is not None
                for _chunk in file_chunks(checked):
                    pass

            served = best_of(args.repeats, read)
            checked = best_of(args.repeats, serve)
            print(
                f"{size / 1e6:6.2f} MB: read {served * 1e3:7.2f} ms, checked serve (sha256,"
                f" then read) {checked * 1e3:7.2f} ms, ratio {checked / served:5.1f}"
            )


if __name__ == "__main__":
    main()
