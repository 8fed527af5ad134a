"""Grammar-constrained decoding of the text recognizer's per-frame character scores.

The recognizer (CTC) gives, for each horizontal step of a text line, a probability for
every character and for "nothing here" (blank). Reading the most likely character at
every step (greedy decoding) can produce a string no plate has, such as ``51F-I23.45``.
Here the best path is searched only among strings the plate grammar allows, position
by position (Viterbi over the slots of each format), and the price the grammar paid is
kept: how much less likely the constrained path is than the free one. A reading is a
plate only when that price is small, every character (with its position-safe
look-alikes) reached a probability of one half somewhere in its span, and no other format
reads nearly as well; otherwise it is a guess and is never reported as valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.plates.grammar import FORMATS, PlateFormat, PlateText, Slot, look_alikes, parse_plate

Floats = npt.NDArray[np.float32]

# The characters plates are made of; index 0 of a score row is blank.
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZĐ"
SEPARATORS = "-.·:, _"
_NEG = np.float32(-1e9)

# A reading is valid when the grammar cost at most MAX_COST nats over the free path and
# every character reached MIN_CHAR_CONFIDENCE somewhere in its span.
MAX_COST = 2.0
MIN_CHAR_CONFIDENCE = 0.5
# ... and when no other format's best reading comes within MIN_MARGIN nats of it (59-P9 on a
# motorcycle against 59-PG on a moped, when the recognizer hesitates between 9 and G).
MIN_MARGIN = 1.0


@dataclass(frozen=True)
class LineScores:
    """Log-probabilities of one text line: rows are steps, column 0 blank, then ALPHABET.

    ``free`` is the log-probability of the unconstrained best path over the recognizer's
    whole vocabulary, the reference the constrained path is priced against.
    """

    logp: Floats
    free: float

    @staticmethod
    def concat(parts: Sequence[LineScores]) -> LineScores:
        return LineScores(np.concatenate([p.logp for p in parts]), sum(p.free for p in parts))


def reduce_vocabulary(probs: Floats, columns: Sequence[Sequence[int]]) -> LineScores:
    """Fold a recognizer's (steps, vocabulary) probabilities onto blank + ALPHABET.

    ``columns[0]`` lists the vocabulary indices counted as blank (blank itself and the
    separators, which carry no identity), ``columns[i]`` those that spell ALPHABET[i-1]
    (upper and lower case).
    """
    folded = np.stack(
        [probs[:, list(c)].sum(axis=1) if c else np.zeros(len(probs)) for c in columns], axis=1
    )
    logp = np.log(np.clip(folded, 1e-12, 1.0)).astype(np.float32)
    free = float(np.log(np.clip(probs.max(axis=1), 1e-12, 1.0)).sum())
    return LineScores(logp, free)


@dataclass(frozen=True)
class LineDecode:
    text: str
    logp: float
    char_confidence: tuple[float, ...]


def _slot_masks(slots: Sequence[Slot]) -> npt.NDArray[np.bool_]:
    mask = np.zeros((len(slots), len(ALPHABET)), dtype=bool)
    for i, slot in enumerate(slots):
        for ch in slot:
            mask[i, ALPHABET.index(ch)] = True
    return mask


def constrained_decode(scores: LineScores, slots: Sequence[Slot]) -> LineDecode | None:
    """The most likely string filling ``slots`` one character each, or None if none fits."""
    logp = scores.logp
    steps, n = logp.shape[0], len(slots)
    if n == 0 or steps < n:
        return None
    mask = _slot_masks(slots)
    emit = np.where(mask[None, :, :], logp[:, None, 1:], _NEG)  # (T, S, K)
    # A look-alike the position makes certain (I for 1 in a digit slot, 8 for B in a letter
    # slot) adds to the character's confidence; the path itself is scored on what the
    # recognizer saw, so that 6 and G still tell a motorcycle from a moped. The stroke of
    # Đ is the exception: recognizers drop it, and no other format competes for it.
    sure = emit.copy()
    for i, slot in enumerate(slots):
        for target, sources in look_alikes(slot).items():
            k = ALPHABET.index(target)
            cols = [k + 1] + [ALPHABET.index(src) + 1 for src in sources]
            sure[:, i, k] = np.logaddexp.reduce(logp[:, cols], axis=1)
            if target == "Đ":
                emit[:, i, k] = sure[:, i, k]
    blank = logp[:, 0]
    k_all = mask.shape[1]
    b = np.full(n + 1, _NEG, np.float32)
    c = np.full((n, k_all), _NEG, np.float32)
    b[0] = blank[0]
    c[0] = emit[0, 0]
    # Back-pointers: for blank state s, 0 = stayed, 1 = came from char slot s-1;
    # for char state (s, k), 0 = stayed, 1 = from blank s, 2 = from char (s-1, prev_k).
    b_from = np.zeros((steps, n + 1), np.int8)
    b_prev_k = np.zeros((steps, n + 1), np.int16)
    c_from = np.zeros((steps, n, k_all), np.int8)
    c_prev_k = np.zeros((steps, n, k_all), np.int16)
    rows = np.arange(n)
    for t in range(1, steps):
        c_best_k = c.argmax(axis=1)
        c_best = c[rows, c_best_k]
        # the best previous-slot character other than k (CTC needs a blank between equals)
        second = c.copy()
        second[rows, c_best_k] = _NEG
        c_second_k = second.argmax(axis=1)
        c_second = second[rows, c_second_k]
        move = np.concatenate([[_NEG], c_best]).astype(np.float32)
        take_b = move > b
        b_from[t] = take_b
        b_prev_k[t, 1:] = c_best_k
        nb = np.where(take_b, move, b) + blank[t]
        from_blank = np.broadcast_to(b[:n, None], c.shape)
        prev = np.full((n, k_all), _NEG, np.float32)
        prev_k = np.zeros((n, k_all), np.int16)
        if n > 1:
            same = np.arange(k_all)[None, :] == c_best_k[:-1, None]
            prev[1:] = np.where(same, c_second[:-1, None], c_best[:-1, None])
            prev_k[1:] = np.where(same, c_second_k[:-1, None], c_best_k[:-1, None])
        origin = np.zeros((n, k_all), np.int8)
        nc = c
        take = from_blank > nc
        nc = np.where(take, from_blank, nc)
        origin[take] = 1
        take = prev > nc
        nc = np.where(take, prev, nc)
        origin[take] = 2
        c_from[t] = origin
        c_prev_k[t] = prev_k
        b, c = nb.astype(np.float32), (nc + emit[t]).astype(np.float32)
    end_k = int(c[n - 1].argmax())
    end_c, end_b = float(c[n - 1, end_k]), float(b[n])
    total = max(end_c, end_b)
    if total <= float(_NEG) / 2:
        return None
    chars = [-1] * n
    conf = [0.0] * n
    on_blank = end_b >= end_c
    s, k = (n, 0) if on_blank else (n - 1, end_k)
    for t in range(steps - 1, -1, -1):
        if not on_blank:
            chars[s] = k
            conf[s] = max(conf[s], float(np.exp(sure[t, s, k])))
        if t == 0:
            break
        if on_blank:
            if b_from[t, s]:
                on_blank, s, k = False, s - 1, int(b_prev_k[t, s])
        else:
            step_origin = int(c_from[t, s, k])
            if step_origin == 1:
                on_blank = True
            elif step_origin == 2:
                s, k = s - 1, int(c_prev_k[t, s, k])
    if any(ch < 0 for ch in chars):
        return None
    return LineDecode("".join(ALPHABET[ch] for ch in chars), total, tuple(conf))


@dataclass(frozen=True)
class PlateDecode:
    """The best plate reading of one set of text lines (top line first)."""

    plate: PlateText
    confidence: float
    char_confidence: tuple[float, ...]
    cost: float


def decode_plate(
    lines: Sequence[LineScores], formats: Sequence[PlateFormat] = FORMATS
) -> PlateDecode | None:
    """The grammar's most likely plate for these lines, checked for how much it was forced."""
    found: list[tuple[float, PlateFormat, list[LineDecode]]] = []
    cache: dict[tuple[int, tuple[Slot, ...]], LineDecode | None] = {}
    for fmt in formats:
        if fmt.lines != len(lines):
            continue
        decoded: list[LineDecode] = []
        for i, slots in enumerate(fmt.slots()):
            key = (i, slots)
            if key not in cache:
                cache[key] = constrained_decode(lines[i], slots)
            got = cache[key]
            if got is None:
                break
            decoded.append(got)
        else:
            if fmt.takes("".join(d.text for d in decoded)):
                found.append((sum(d.logp for d in decoded), fmt, decoded))
    if not found:
        return None
    found.sort(key=lambda f: f[0], reverse=True)
    score, fmt, decoded = found[0]
    text = fmt.render("".join(d.text for d in decoded))
    rival = next(
        (f[0] for f in found[1:] if f[1].render("".join(d.text for d in f[2])) != text), None
    )
    cost = max(0.0, sum(line.free for line in lines) - score)
    char_conf = tuple(c for d in decoded for c in d.char_confidence)
    parsed = parse_plate([d.text for d in decoded], formats=(fmt,))
    confidence = min(char_conf) if char_conf else 0.0
    ambiguous = rival is not None and score - rival < MIN_MARGIN
    if parsed.valid and (cost > MAX_COST or confidence < MIN_CHAR_CONFIDENCE or ambiguous):
        parsed = PlateText(text=parsed.text, valid=False, lines=parsed.lines)
    return PlateDecode(parsed, confidence if parsed.valid else 0.0, char_conf, cost)


def greedy_text(scores: LineScores) -> str:
    """The free best-path reading over the plate alphabet (for diagnostics and fallbacks)."""
    best = scores.logp.argmax(axis=1)
    out: list[str] = []
    prev = 0
    for idx in best:
        if idx != 0 and idx != prev:
            out.append(ALPHABET[idx - 1])
        prev = int(idx)
    return "".join(out)
