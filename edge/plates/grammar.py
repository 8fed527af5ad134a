"""Vietnamese plate grammar: which texts are plates, their normal form, and safe repairs.

Formats covered (Circular 79/2024/TT-BCA and the earlier 58/2020, civilian plates; the
military shape as issued by the Ministry of Defence):

| kind | lines | example | written |
| --- | --- | --- | --- |
| car | 1 or 2 | 51F-123.45, 51F-1234 (older four-digit) | province, series letter, number |
| car, two-letter series | 1 or 2 | 51LD-123.45 | LD, DA, KT, MK (see below) |
| car trailer | 1 or 2 | 51R-123.45 | series R |
| motorcycle | 2 | 59-X1 123.45, 59-X1 1234 (older) | series letter and digit 1-9 |
| moped under 50 cm3 | 2 | 29-HA 123.45 | two series letters (not LD, DA, KT, MK) |
| electric motorcycle / moped | 2 | 29-MĐ1 123.45 | series MĐ and digit 1-9 |
| military (red) | 1 | TM-12-34 | unit letters, four digits |

A two-line plate reads top line first: the province and series on top, the number below.
Two-letter car series: LD foreign-invested firms, DA projects, KT army-run enterprises,
MK tractors. Not covered: foreign and diplomatic plates (NG, NN, QT, CV) and temporary paper plates.

Series letters are A-Z without I, J, O, Q, R, W (R is the trailer series); the province
code must be one in :mod:`edge.plates.provinces`. OCR confusions are repaired only where
the position makes the character class certain (a digit slot turns O into 0, a letter slot
turns 8 into B) and only when exactly one format fits with the fewest repairs; nothing is
ever added or dropped. An all-zero number ("000.00", "0000") is never issued and never valid.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from edge.plates.provinces import PROVINCES


class PlateKind(StrEnum):
    CAR = "car"
    MOTORCYCLE = "motorcycle"
    MILITARY = "military"


DIGITS = frozenset("0123456789")
NONZERO = frozenset("123456789")
SERIES_LETTERS = frozenset("ABCDEFGHKLMNPSTUVXYZ")
CAR_LETTERS = SERIES_LETTERS | {"R"}
CAR_SPECIAL_SERIES = ("LD", "DA", "KT", "MK")
ELECTRIC_SERIES = "MĐ"
MILITARY_UNIT_FIRST = frozenset("ABHKPQT")

# A slot is the set of characters a plate may hold at that position.
Slot = frozenset[str]

_TO_DIGIT: Mapping[str, str] = MappingProxyType(
    {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "B": "8", "S": "5", "Z": "2", "G": "6"}
)
_TO_LETTER: Mapping[str, str] = MappingProxyType(
    {"8": "B", "5": "S", "2": "Z", "6": "G", "4": "A", "Đ": "D"}
)


@dataclass(frozen=True)
class PlateFormat:
    """One plate layout: the head (province and series) and the number of digits after it."""

    name: str
    kind: PlateKind
    lines: int
    head: tuple[Slot, ...]
    digits: int
    # Series this format does not take although its slots allow them.
    exclude: frozenset[str] = frozenset()

    def takes(self, chars: str) -> bool:
        """False for what the format's slots allow but is never issued to it.

        That is a series the regulation gives elsewhere, or an all-zero number: numbers run
        from 0001 / 000.01, so "000.00" is a misreading (often five O's "repaired" to 0).
        """
        n = len(self.head)
        return chars[2:n] not in self.exclude and chars[n:].strip("0") != ""

    def slots(self) -> tuple[tuple[Slot, ...], ...]:
        """The slots of each printed line, top line first."""
        number = tuple(DIGITS for _ in range(self.digits))
        if self.lines == 1:
            return (self.head + number,)
        return (self.head, number)

    def render(self, chars: str) -> str:
        """Normal written form of a plate's characters (separators added)."""
        n = len(self.head)
        head, number = chars[:n], chars[n:]
        if self.kind is PlateKind.MILITARY:
            return f"{head}-{number[:2]}-{number[2:]}"
        written = f"{number[:3]}.{number[3:]}" if self.digits == 5 else number
        if self.kind is PlateKind.CAR:
            return f"{head}-{written}"
        return f"{head[:2]}-{head[2:]} {written}"


def _fixed(text: str) -> tuple[Slot, ...]:
    return tuple(frozenset(c) for c in text)


_PROVINCE: tuple[Slot, ...] = (frozenset("123456789"), DIGITS)


def _build_formats() -> tuple[PlateFormat, ...]:
    formats: list[PlateFormat] = []
    car_heads: list[tuple[str, tuple[Slot, ...]]] = [("car", (*_PROVINCE, CAR_LETTERS))]
    car_heads += [(f"car-{s}", (*_PROVINCE, *_fixed(s))) for s in CAR_SPECIAL_SERIES]
    for lines in (1, 2):
        for name, head in car_heads:
            for digits in (5, 4):
                formats.append(
                    PlateFormat(f"{name}-{lines}l-{digits}", PlateKind.CAR, lines, head, digits)
                )
    moto_heads: list[tuple[str, tuple[Slot, ...], tuple[int, ...]]] = [
        ("motorcycle", (*_PROVINCE, SERIES_LETTERS, NONZERO), (5, 4)),
        ("moped", (*_PROVINCE, SERIES_LETTERS, SERIES_LETTERS), (5,)),
        ("electric", (*_PROVINCE, *_fixed(ELECTRIC_SERIES), NONZERO), (5,)),
    ]
    for name, head, digit_counts in moto_heads:
        # a two-line "51LD / 123.45" is the square plate of an LD car, not a moped
        exclude = frozenset(CAR_SPECIAL_SERIES) if name == "moped" else frozenset()
        for digits in digit_counts:
            formats.append(
                PlateFormat(f"{name}-{digits}", PlateKind.MOTORCYCLE, 2, head, digits, exclude)
            )
    formats.append(
        PlateFormat("military", PlateKind.MILITARY, 1, (MILITARY_UNIT_FIRST, SERIES_LETTERS), 4)
    )
    return tuple(formats)


FORMATS: tuple[PlateFormat, ...] = _build_formats()


@dataclass(frozen=True)
class PlateText:
    """A plate reading checked against the grammar.

    ``text`` is the normal form (``51F-123.45``, ``59-X1 123.45``) when ``valid``; otherwise
    it is the cleaned reading as seen, which is never presented as a plate.
    """

    text: str
    valid: bool
    lines: int
    kind: PlateKind | None = None
    format: str | None = None
    province: str | None = None
    repairs: int = 0

    @property
    def wire_text(self) -> str:
        """The text as the event contract carries it: ASCII, Đ written as D, at most 16."""
        return to_wire_text(self.text)


_WIRE_DROP = re.compile(r"[^0-9A-Z.\- ]")


def to_wire_text(text: str) -> str:
    return _WIRE_DROP.sub("", text.replace("Đ", "D"))[:16]


_KEEP = re.compile(r"[^0-9A-ZĐ]")


def clean(raw: str) -> str:
    """Upper-case plate characters of one OCR line, separators and noise removed."""
    text = unicodedata.normalize("NFC", raw).upper().replace("Ð", "Đ")
    return _KEEP.sub("", text)


def _fit(chars: str, slots: Sequence[Slot]) -> tuple[str, int] | None:
    """The characters made to fit the slots with position-safe repairs, and how many."""
    if len(chars) != len(slots):
        return None
    out: list[str] = []
    repairs = 0
    for ch, slot in zip(chars, slots, strict=True):
        if ch in slot:
            out.append(ch)
            continue
        fixed = _repair(ch, slot)
        if fixed is None:
            return None
        out.append(fixed)
        # D read for Đ is the recognizer dropping the stroke, not a confusion.
        repairs += 0 if (ch, fixed) == ("D", "Đ") else 1
    return "".join(out), repairs


def _repair(ch: str, slot: Slot) -> str | None:
    if slot == frozenset("Đ"):
        return "Đ" if ch == "D" else None
    cand = _TO_DIGIT.get(ch) if slot <= DIGITS else _TO_LETTER.get(ch)
    return cand if cand is not None and cand in slot else None


def look_alikes(slot: Slot) -> dict[str, tuple[str, ...]]:
    """For each character a slot allows, the other characters a reader may see in its place.

    The same position-safe table the repairs use: in a digit slot an I is a 1, in a
    letter slot an 8 is a B, and a D in the stroked-D slot is a Đ.
    """
    out: dict[str, list[str]] = {}
    for ch in sorted(_TO_DIGIT.keys() | _TO_LETTER.keys() | {"D"}):
        target = _repair(ch, slot)
        if target is not None and target != ch:
            out.setdefault(target, []).append(ch)
    return {k: tuple(v) for k, v in out.items()}


@dataclass(frozen=True)
class _Match:
    fmt: PlateFormat
    chars: str
    repairs: int


def _matches(lines: Sequence[str], formats: Iterable[PlateFormat]) -> list[_Match]:
    found: list[_Match] = []
    for fmt in formats:
        if fmt.lines != len(lines):
            continue
        chars: list[str] = []
        repairs = 0
        for line, slots in zip(lines, fmt.slots(), strict=True):
            fitted = _fit(line, slots)
            if fitted is None:
                break
            chars.append(fitted[0])
            repairs += fitted[1]
        else:
            text = "".join(chars)
            if fmt.kind is not PlateKind.MILITARY and text[:2] not in PROVINCES:
                continue
            if not fmt.takes(text):
                continue
            found.append(_Match(fmt, text, repairs))
    return found


def parse_plate(lines: Sequence[str], formats: Iterable[PlateFormat] = FORMATS) -> PlateText:
    """Check OCR lines (top line first) against the plate grammar.

    One line is read as a one-line plate, two as a two-line plate. The result is valid only
    when exactly one normal form fits with the fewest repairs.
    """
    cleaned = [c for c in (clean(line) for line in lines) if c]
    n_lines = max(1, min(len(cleaned), 2))
    seen = " ".join(cleaned)
    if not cleaned or len(cleaned) > 2:
        return PlateText(text=seen, valid=False, lines=n_lines)
    found = _matches(cleaned, formats)
    if not found:
        return PlateText(text=seen, valid=False, lines=n_lines)
    best = min(m.repairs for m in found)
    top = {m.fmt.render(m.chars): m for m in found if m.repairs == best}
    if len(top) != 1:
        return PlateText(text=seen, valid=False, lines=n_lines)
    ((text, match),) = top.items()
    province = None if match.fmt.kind is PlateKind.MILITARY else PROVINCES[match.chars[:2]]
    return PlateText(
        text=text,
        valid=True,
        lines=n_lines,
        kind=match.fmt.kind,
        format=match.fmt.name,
        province=province,
        repairs=match.repairs,
    )


def parse_written(text: str) -> PlateText:
    """Parse a plate as written: a space or newline separates the lines of a two-line plate."""
    return parse_plate(text.split())
