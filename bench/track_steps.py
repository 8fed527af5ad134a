"""How far a track moves between two sightings, in box sizes, from `edge run --tracks`.

A track whose id passed to a vehicle elsewhere in the frame would show as a step of
several box sizes. Printed per file: tracks, steps between sightings, the largest step
between two frames in a row, the largest step at all (and over how many frames), and the
steps longer than one box size. A step is the move of the box's bottom centre divided
by the largest side of the two boxes.

    .venv/bin/roadwatch edge run --source ../shared/data/vn_saigon.mp4 --tracks saigon.jsonl
    .venv/bin/python bench/track_steps.py saigon.jsonl [MORE.jsonl ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import defaultdict
from pathlib import Path

Box = tuple[float, float, float, float]


def steps(path: Path) -> tuple[int, list[tuple[float, int]]]:
    """The number of tracks and each step (box sizes, frames apart) of the file."""
    tracks: dict[int, list[tuple[int, Box]]] = defaultdict(list)
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            for t in row["tracks"]:
                tracks[int(t["track_id"])].append((int(row["frame"]), tuple(t["box"])))
    out = []
    for seen in tracks.values():
        for (f0, a), (f1, b) in itertools.pairwise(seen):
            size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
            move = math.hypot((b[0] + b[2] - a[0] - a[2]) / 2, b[3] - a[3])
            out.append((move / size, f1 - f0))
    return len(tracks), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracks", nargs="+", type=Path, help="`edge run --tracks` files")
    for path in parser.parse_args().tracks:
        n, found = steps(path)
        if not found:
            print(f"{path.name}: {n} tracks, no track seen twice")
            continue
        consecutive = max((s for s, frames in found if frames == 1), default=0.0)
        largest, frames = max(found)
        over = sum(1 for s, _ in found if s > 1.0)
        print(
            f"{path.name}: {n} tracks, {len(found)} steps; largest between frames in a row "
            f"{consecutive:.2f} box sizes; largest {largest:.2f} over {frames} frames; "
            f"{over} over one box size"
        )


if __name__ == "__main__":
    main()
