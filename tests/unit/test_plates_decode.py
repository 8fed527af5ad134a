"""Grammar-constrained CTC decoding on hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from edge.plates.decode import ALPHABET, LineScores, constrained_decode, decode_plate, greedy_text
from edge.plates.grammar import DIGITS, SERIES_LETTERS


def scores(steps: list[dict[str, float]]) -> LineScores:
    """A line from per-step probabilities ({} = blank); what is left over goes to blank."""
    probs = np.full((len(steps), len(ALPHABET) + 1), 1e-6, np.float32)
    for t, step in enumerate(steps):
        for ch, p in step.items():
            probs[t, ALPHABET.index(ch) + 1] = p
        probs[t, 0] = max(1e-6, 1.0 - sum(step.values()))
    logp = np.log(probs)
    return LineScores(logp, float(logp.max(axis=1).sum()))


def spell(text: str, p: float = 0.97) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for ch in text:
        out += [{ch: p}, {}]
    return out


def test_clean_line_decodes_to_itself_at_no_cost() -> None:
    got = decode_plate([scores(spell("51F12345"))])
    assert got is not None
    assert got.plate.valid and got.plate.text == "51F-123.45"
    assert got.cost < 0.1
    assert got.confidence > 0.9


def test_a_look_alike_counts_for_the_character_its_position_needs() -> None:
    steps = spell("51F12345")
    steps[6] = {"I": 0.6, "1": 0.35}  # the first number digit: I first, 1 second
    line = scores(steps)
    assert greedy_text(line) == "51FI2345"
    got = decode_plate([line])
    assert got is not None and got.plate.valid
    assert got.plate.text == "51F-123.45"
    assert got.char_confidence[3] == pytest.approx(0.95, abs=0.01)  # I and 1 together


def test_hesitation_between_two_formats_is_not_a_plate() -> None:
    top = spell("33P9")
    top[6] = {"G": 0.5, "9": 0.45}  # moped 33-PG or motorcycle 33-P9?
    got = decode_plate([scores(top), scores(spell("14882"))])
    assert got is not None and not got.plate.valid and got.confidence == 0.0
    top[6] = {"9": 0.95}
    got = decode_plate([scores(top), scores(spell("14882"))])
    assert got is not None and got.plate.valid and got.plate.text == "33-P9 148.82"


def test_a_character_the_recognizer_never_saw_is_not_invented() -> None:
    steps = spell("51F12345")
    steps[6] = {"X": 0.999}  # nothing like a digit there
    got = decode_plate([scores(steps)])
    assert got is not None
    assert not got.plate.valid
    assert got.confidence == 0.0


def test_missing_character_is_not_filled_in() -> None:
    got = decode_plate([scores(spell("51F1234"))])  # seven characters: the 4-digit form
    assert got is not None and got.plate.text == "51F-1234"
    got = decode_plate([scores(spell("51F123"))])  # six: no format has six
    assert got is None or not got.plate.valid


def test_repeated_characters_need_a_blank_between_them() -> None:
    steps = spell("51F12344")
    got = decode_plate([scores(steps)])
    assert got is not None and got.plate.text == "51F-123.44"
    # the same '4' held over two steps without a blank is one character, not two
    merged = [*spell("51F1234")[:-1], {"4": 0.97}, {"4": 0.97}, {}]
    got = decode_plate([scores(merged)])
    assert got is not None and got.plate.text == "51F-1234"


def test_two_lines_top_first() -> None:
    got = decode_plate([scores(spell("59X1")), scores(spell("12345"))])
    assert got is not None and got.plate.text == "59-X1 123.45" and got.plate.valid
    flipped = decode_plate([scores(spell("12345")), scores(spell("59X1"))])
    assert flipped is None or not flipped.plate.valid


def test_stroked_d_read_as_plain_d() -> None:
    got = decode_plate([scores(spell("29MD1")), scores(spell("12345"))])
    assert got is not None and got.plate.valid
    assert got.plate.text == "29-MĐ1 123.45"


def test_constrained_decode_respects_slot_sets() -> None:
    line = scores(spell("A1"))
    got = constrained_decode(line, [SERIES_LETTERS, DIGITS])
    assert got is not None and got.text == "A1"
    assert constrained_decode(scores(spell("A")), [DIGITS, DIGITS, DIGITS]) is None
