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
import json
import os
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central.audit import GENESIS, entry_hash
from roadwatch.case_package import (
    AUDIT,
    CENTRAL_KEY,
    EVENT,
    FORMAT,
    MANIFEST,
    MANIFEST_SIG,
    NODE_KEY,
    evidence_name,
    verify_package,
)
from roadwatch.contract import EvidenceRef, EvidenceRole, MediaType, to_wire
from roadwatch.contract.signing import generate_private_key, public_key_pem, sign, sign_bytes
from tests.factories import T0, violation_event  # (a typical event, as the tests make)

SIZES_MB = (16, 64, 200)


def make_package(path: Path, clip_bytes: int) -> bytes:
    """A signed package whose clip has ``clip_bytes`` of incompressible data; central's
    public key."""
    clip = os.urandom(clip_bytes)
    node, central = generate_private_key(), generate_private_key()
    ref = EvidenceRef(
        role=EvidenceRole.CLIP, media_type=MediaType.MP4,
        sha256=hashlib.sha256(clip).hexdigest(), size=len(clip),
    )  # fmt: skip
    event = sign(violation_event(evidence=[ref]), node)
    entry = {"seq": 1, "at": T0.isoformat(), "actor": "an", "action": "start_review",
             "violation_id": 12, "detail": "{}", "prev_hash": GENESIS}  # fmt: skip
    entry["entry_hash"] = entry_hash(**{**entry, "at": T0})
    members = {
        EVENT: to_wire(event), NODE_KEY: public_key_pem(node.public_key()),
        evidence_name(ref.role, ref.media_type): clip, AUDIT: json.dumps([entry]).encode(),
        CENTRAL_KEY: public_key_pem(central.public_key()),
    }  # fmt: skip
    files = {n: hashlib.sha256(b).hexdigest() for n, b in members.items()}
    facts = {"format": FORMAT, "case": 12, "event_id": event.event_id, "missing": [],
             "record_problems": [], "files": files}  # fmt: skip
    manifest = json.dumps(facts).encode()
    with zipfile.ZipFile(path, "w") as package:
        for name, data in members.items():
            stored = name.startswith("evidence/")  # (as central writes clips)
            package.writestr(name, data, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        package.writestr(MANIFEST, manifest)
        package.writestr(MANIFEST_SIG, sign_bytes(manifest, central) + "\n")
    return public_key_pem(central.public_key())


def read_whole_twice(path: Path) -> None:
    """The peer: each evidence member read whole and hashed, once for the evidence check
    and once for the manifest check."""
    with zipfile.ZipFile(path) as package:
        for name in package.namelist():
            if name.startswith("evidence/"):
                for _ in range(2):
                    hashlib.sha256(package.read(name)).hexdigest()


def measure(repeats: int, run: Callable[[], object]) -> tuple[float, int]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak


def one_size(folder: Path, mb: int, repeats: int) -> str:
    path = folder / f"case-{mb}.zip"
    central = make_package(path, mb << 20)
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
