from __future__ import annotations

import pytest

from edge.plates.grammar import (
    DIGITS,
    FORMATS,
    NONZERO,
    SERIES_LETTERS,
    PlateFormat,
    PlateKind,
    clean,
    look_alikes,
    parse_plate,
    parse_written,
    to_wire_text,
)
from edge.plates.provinces import PROVINCES, province_name


@pytest.mark.parametrize(
    ("lines", "text", "kind", "fmt", "n_lines"),
    [
        (["51F-123.45"], "51F-123.45", PlateKind.CAR, "car-1l-5", 1),
        (["51F-1234"], "51F-1234", PlateKind.CAR, "car-1l-4", 1),
        (["61A 888.88"], "61A-888.88", PlateKind.CAR, "car-1l-5", 1),
        (["51LD-123.45"], "51LD-123.45", PlateKind.CAR, "car-LD-1l-5", 1),
        (["51R-012.34"], "51R-012.34", PlateKind.CAR, "car-1l-5", 1),
        (["51F", "123.45"], "51F-123.45", PlateKind.CAR, "car-2l-5", 2),
        (["51LD", "123.45"], "51LD-123.45", PlateKind.CAR, "car-LD-2l-5", 2),  # not a moped
        (["30A", "9999"], "30A-9999", PlateKind.CAR, "car-2l-4", 2),
        (["51F-000.01"], "51F-000.01", PlateKind.CAR, "car-1l-5", 1),  # the lowest number
        (["30A", "0001"], "30A-0001", PlateKind.CAR, "car-2l-4", 2),
        (["59-X1", "123.45"], "59-X1 123.45", PlateKind.MOTORCYCLE, "motorcycle-5", 2),
        (["59-X1", "1234"], "59-X1 1234", PlateKind.MOTORCYCLE, "motorcycle-4", 2),
        (["29-HA", "123.45"], "29-HA 123.45", PlateKind.MOTORCYCLE, "moped-5", 2),
        (["29-MĐ1", "123.45"], "29-MĐ1 123.45", PlateKind.MOTORCYCLE, "electric-5", 2),
        (["29-MD1", "123.45"], "29-MĐ1 123.45", PlateKind.MOTORCYCLE, "electric-5", 2),
        (["TM-12-34"], "TM-12-34", PlateKind.MILITARY, "military", 1),
        (["  51f  -  123 . 45 "], "51F-123.45", PlateKind.CAR, "car-1l-5", 1),
    ],
)
def test_valid_formats(
    lines: list[str], text: str, kind: PlateKind, fmt: str, n_lines: int
) -> None:
    got = parse_plate(lines)
    assert got.valid
    assert (got.text, got.kind, got.format, got.lines) == (text, kind, fmt, n_lines)
    assert got.repairs == 0


@pytest.mark.parametrize(
    ("lines", "text", "repairs"),
    [
        (["51F-I23.45"], "51F-123.45", 1),  # I in a digit slot
        (["51F-123.O5"], "51F-123.05", 1),  # O in a digit slot
        (["518-123.45"], "51B-123.45", 1),  # 8 in the series-letter slot
        (["5IB-I23.45"], "51B-123.45", 2),
        (["59-X1", "I23.45"], "59-X1 123.45", 1),
        (["S9-X1", "123.45"], "59-X1 123.45", 1),
        (["29-H4", "123.45"], "29-H4 123.45", 0),  # a digit fits: motorcycle, not moped
    ],
)
def test_position_safe_repairs(lines: list[str], text: str, repairs: int) -> None:
    got = parse_plate(lines)
    assert got.valid
    assert (got.text, got.repairs) == (text, repairs)


@pytest.mark.parametrize(
    "lines",
    [
        [""],
        [],
        ["51F-123"],  # too few digits
        ["51F-123.456"],  # too many
        ["13F-123.45"],  # 13 is not an assigned province code
        ["39A-123.45"],
        ["51O-123.45"],  # O is not a series letter and nothing safe repairs it
        ["51W-123.45"],  # W is not a series letter
        ["51F", "123.45", "67"],  # three lines
        ["59-X1 123.45"],  # a motorcycle plate is never on one line
        ["51F1", "12345", "x"],
        ["TOYOTA"],
        ["59-X0", "123.45"],  # series digit 0 is not issued
        ["59-XO", "123.45"],  # ... nor repaired from an O
        ["5M-12-34"],  # 5 would be an S, which no military unit starts with
        ["51F"],  # the top line of a two-line plate alone
        ["29-HA", "1234"],  # mopeds carry five digits
        # numbers run from 000.01 / 0001: all zeros is never issued, read or repaired
        ["51F-000.00"],
        ["51F-OOO.OO"],
        ["30A", "0000"],
        ["59-X1", "000.00"],
        ["59X1", "OOOOO"],
        ["29-MĐ1", "000.00"],
        ["TM-00-00"],
    ],
)
def test_invalid_is_never_valid(lines: list[str]) -> None:
    got = parse_plate(lines)
    assert not got.valid
    assert got.kind is None and got.format is None


def test_ambiguous_reading_is_not_repaired() -> None:
    # "29-H8" (motorcycle, 0 repairs) and "29-HB" (moped, 0 repairs) cannot both be read;
    # here B fits the moped and 8 would be a repair: the unrepaired reading wins.
    assert parse_plate(["29-HB", "123.45"]).text == "29-HB 123.45"
    # a Đ in an ordinary series slot is one repair to D, not silently accepted
    got = parse_plate(["51Đ-123.45"])
    assert (got.text, got.repairs) == ("51D-123.45", 1)


def test_two_normal_forms_fitting_equally_well_are_not_a_reading() -> None:
    """Only one normal form may fit with the fewest repairs: the same characters read as a
    car's and as a motorcycle's plate are no plate."""
    head = (frozenset("5"), frozenset("9"), SERIES_LETTERS, NONZERO)
    car = PlateFormat("car-x", PlateKind.CAR, 2, head, 5)
    moto = PlateFormat("moto-x", PlateKind.MOTORCYCLE, 2, head, 5)
    assert parse_plate(["59X1", "12345"], formats=(car,)).text == "59X1-123.45"
    assert parse_plate(["59X1", "12345"], formats=(moto,)).text == "59-X1 123.45"
    both = parse_plate(["59X1", "12345"], formats=(car, moto))
    assert (both.valid, both.text, both.kind, both.lines) == (False, "59X1 12345", None, 2)


@pytest.mark.parametrize(
    ("slot", "alikes"),
    [
        (
            DIGITS,
            {
                "0": ("D", "O", "Q", "U"),
                "1": ("I",),
                "2": ("Z",),
                "5": ("S",),
                "6": ("G",),
                "8": ("B",),
            },
        ),
        (NONZERO, {"1": ("I",), "2": ("Z",), "5": ("S",), "6": ("G",), "8": ("B",)}),
        (
            SERIES_LETTERS,
            {"A": ("4",), "B": ("8",), "D": ("Đ",), "G": ("6",), "S": ("5",), "Z": ("2",)},
        ),
        (frozenset("ABHKPQT"), {"A": ("4",), "B": ("8",)}),
        (frozenset("Đ"), {"Đ": ("D",)}),
        (frozenset("L"), {}),
    ],
)
def test_look_alikes_are_the_repairs_read_backwards(
    slot: frozenset[str], alikes: dict[str, tuple[str, ...]]
) -> None:
    assert look_alikes(slot) == alikes


def test_invalid_keeps_what_was_seen() -> None:
    got = parse_plate(["51F-12X.45"])
    assert not got.valid
    assert got.text == "51F12X45"


def test_province_table() -> None:
    assert province_name("61") == "Bình Dương"
    assert province_name("29") == province_name("30") == "Hà Nội"
    assert province_name("51") == "TP Hồ Chí Minh"
    assert province_name("13") is None
    assert all(len(c) == 2 and c.isdigit() and 11 <= int(c) <= 99 for c in PROVINCES)
    assert len(PROVINCES) == 79  # 11-99 less 13, 39, 41, 42, 44-46, 87, 91, 96


def test_written_form_round_trips_for_every_format() -> None:
    samples = {1: "51F-123.45", 2: "59-X1 123.45"}
    assert parse_written(samples[1]).valid and parse_written(samples[2]).valid
    for fmt in FORMATS:
        chars = "".join(sorted(slot)[-1] for slot in fmt.head)
        chars = ("61" + chars[2:]) if fmt.kind is not PlateKind.MILITARY else chars
        chars += "1" * fmt.digits
        written = fmt.render(chars)
        got = parse_written(written)
        assert got.valid, (fmt.name, written)
        assert got.text == written


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("29-MĐ1 123.45", "29-MD1 123.45"),
        ("51F-123.45", "51F-123.45"),
        ("a#b", ""),
        ("51F12X45 67890123456", "51F12X45 6789012"),  # at most 16 characters
        ("51F12X45 6789012", "51F12X45 6789012"),
    ],
)
def test_wire_text(text: str, wire: str) -> None:
    assert to_wire_text(text) == wire


def test_a_reading_carries_its_wire_text() -> None:
    assert parse_written("29-MĐ1 123.45").wire_text == "29-MD1 123.45"
    assert parse_plate(["29mđ1", "12x45"]).wire_text == "29MD1 12X45"


def test_clean() -> None:
    assert clean("29-mđ1 · 123,45") == "29MĐ112345"
