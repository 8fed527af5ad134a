"""Plate reading time per vehicle on this CPU, against rapidocr's own full pipeline.

Both read the same seeded synthetic vehicle crops in the same run:
- roadwatch: PlateReader (detector at 480 px, recognizer scores, grammar-constrained decode);
- peer: rapidocr's default pipeline (detector at its default size, angle classifier,
  recognizer, best-string decode), its lines assembled into plates by the same grammar
  (each line, and each pair of lines top line first), the most confident valid one kept.

Usage: PYTHONPATH=$PWD .venv/bin/python bench/plates.py [--count N] [--seed S] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from edge.plates.grammar import PlateText, parse_plate
from edge.plates.ocr import packaged_models
from edge.plates.reader import PlateReader
from edge.plates.synth import generate, shared_data_dir


def peer_engine(threads: int) -> Any:
    from rapidocr import RapidOCR

    models = packaged_models()
    return RapidOCR(
        params={
            "Global.log_level": "error",
            "Det.model_path": str(models.det),
            "Rec.model_path": str(models.rec),
            "Cls.model_path": str(models.cls),
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


def peer_read(engine: Any, image: np.ndarray) -> PlateText:
    out = engine(image)
    texts = list(out.txts or ())
    if not texts:
        return PlateText("", False, 1)
    tops = [float(np.asarray(b)[:, 1].min()) for b in out.boxes]
    scores = list(out.scores)
    groups = [([i], scores[i]) for i in range(len(texts))]
    groups += [
        ([i, j], (scores[i] + scores[j]) / 2)
        for i in range(len(texts))
        for j in range(len(texts))
        if i != j and tops[i] < tops[j]
    ]
    best: tuple[float, PlateText] | None = None
    for idx, score in groups:
        plate = parse_plate([texts[i] for i in idx])
        if plate.valid and (best is None or score > best[0]):
            best = (score, plate)
    return best[1] if best else PlateText(" ".join(texts), False, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="crops per condition")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    samples = list(generate(args.count, args.seed, shared_data_dir()))
    reader = PlateReader.from_packaged_models(args.threads)
    peer = peer_engine(args.threads)
    reader.read(samples[0].image)  # warm both up
    peer(samples[0].image)
    ours_ms: list[float] = []
    peer_ms: list[float] = []
    ours_ok = peer_ok = 0
    for s in samples:
        t0 = time.perf_counter()
        mine = reader.read(s.image)
        t1 = time.perf_counter()
        theirs = peer_read(peer, s.image)
        t2 = time.perf_counter()
        ours_ms.append((t1 - t0) * 1000)
        peer_ms.append((t2 - t1) * 1000)
        ours_ok += mine.plate.valid and mine.plate.text == s.spec.text
        peer_ok += theirs.valid and theirs.text == s.spec.text
    n = len(samples)
    ours_med, peer_med = statistics.median(ours_ms), statistics.median(peer_ms)
    print(f"plates bench: {n} vehicle crops (seed {args.seed}), {args.threads} threads")
    print(f"  roadwatch PlateReader : median {ours_med:7.1f} ms/vehicle, exact {ours_ok / n:.1%}")
    print(f"  rapidocr full pipeline: median {peer_med:7.1f} ms/vehicle, exact {peer_ok / n:.1%}")
    print(f"  ratio (peer / roadwatch): {peer_med / ours_med:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
