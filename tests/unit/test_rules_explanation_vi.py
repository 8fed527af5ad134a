"""Each rule's explanation in Vietnamese, for the officer who reviews the case: the same
facts as the English one, in the traffic police's words, numbers as the review page writes
them."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from edge.evidence.package import without_evidence
from edge.rules import vi
from edge.rules.base import Signals, TrackRule
from edge.rules.engine import RULES
from edge.rules.forbidden_lane import ForbiddenLaneRule
from edge.rules.no_stopping import NoStoppingRule
from edge.rules.red_light import RedLightRule
from edge.rules.solid_line import SolidLineRule
from edge.rules.speeding import SpeedingRule
from edge.rules.wrong_way import WrongWayRule
from roadwatch.contract import LampColour, SignalSource, VehicleClass, ViolationType
from roadwatch.contract.signing import generate_private_key, verify
from tests.factories import violation_event
from tests.rules_tracks import BASE, Track, geometry, line_path, run, signal_plan
from tests.services import missing

CAR, MOTO, TRUCK, BUS = (
    VehicleClass.CAR,
    VehicleClass.MOTORCYCLE,
    VehicleClass.TRUCK,
    VehicleClass.BUS,
)
PATH = line_path((500, 690), (500, 300), 0.0, 2.0)  # up lane 1, clear of the speed trap
RED_AT_10 = ((0.0, LampColour.GREEN), (7.0, LampColour.YELLOW), (10.0, LampColour.RED))
NAMED_LANES = copy.deepcopy(BASE["lanes"])
NAMED_LANES[0]["name"] = "Làn ô tô"
KERB = {"id": "kerb", "name": "lề phải", "points": [[400, 100], [400, 900]]}


def through(start_s: float) -> list[tuple[float, float, float]]:
    """Up lane 1 over its stop line (y=500) and second line (y=400), 100 px/s."""
    return line_path((500, 900), (500, 200), start_s, start_s + 7.0)


Case = tuple[
    Callable[[], TrackRule[Any]], list[Track], Callable[[], Signals] | None, ViolationType, str, str
]

# name: (rule, tracks, signals, type, English explanation, Vietnamese explanation)
CASES: dict[str, Case] = {
    "speeding, per-frame speed": (
        lambda: SpeedingRule(geometry(True)),
        [Track(4, PATH, speeds=[(80.0, 2.0)] * 3 + [(79.0, 3.0)] + [(85.0, 2.0)] * 17)],
        None,
        ViolationType.SPEEDING,
        "car in lane 1 measured 80.0 ± 2.0 km/h (at least 78.0 km/h) at 14:03:00.000; the "
        "limit for car is 60 km/h: 18.0 km/h over, Decree 168/2024 band from 10 to 20 km/h over",
        "Ô tô trên làn 1 chạy quá tốc độ: đo được tốc độ 80 ± 2 km/h (ít nhất 78 km/h) lúc "
        "14:03:00.000; tốc độ tối đa cho phép đối với ô tô là 60 km/h, vượt 18 km/h, khung "
        "mức phạt vượt từ 10 đến 20 km/h (Nghị định 168/2024)",
    ),
    "speeding, a motorcycle in a named lane, decimals": (
        lambda: SpeedingRule(geometry(True, lanes=NAMED_LANES)),
        [Track(4, PATH, MOTO, speeds=[(62.4, 1.1)] * len(PATH))],
        None,
        ViolationType.SPEEDING,
        "motorcycle in lane 1 (Làn ô tô) measured 62.4 ± 1.1 km/h (at least 61.3 km/h) at "
        "14:03:00.000; the limit for motorcycle is 50 km/h: 11.3 km/h over, Decree 168/2024 "
        "band from 10 to 20 km/h over",
        "Xe máy trên làn 1 (Làn ô tô) chạy quá tốc độ: đo được tốc độ 62,4 ± 1,1 km/h (ít "
        "nhất 61,3 km/h) lúc 14:03:00.000; tốc độ tối đa cho phép đối với xe máy là 50 km/h, "
        "vượt 11,3 km/h, khung mức phạt vượt từ 10 đến 20 km/h (Nghị định 168/2024)",
    ),
    "speeding, speed trap": (
        lambda: SpeedingRule(geometry(False)),
        [Track(5, line_path((500, 950), (500, 650), 0.0, 1.2))],
        None,
        ViolationType.SPEEDING,
        "car in lane 1 timed over the 20 m of speed trap t1 at 90.0 ± 10.0 km/h (at least "
        "80.0 km/h) at 14:03:01.000; the limit for car is 60 km/h: 20.0 km/h over, Decree "
        "168/2024 band from 10 to 20 km/h over",
        "Ô tô trên làn 1 chạy quá tốc độ: đo trên quãng 20 m của đoạn đo tốc độ t1 được tốc "
        "độ trung bình 90 ± 10 km/h (ít nhất 80 km/h) lúc 14:03:01.000; tốc độ tối đa cho "
        "phép đối với ô tô là 60 km/h, vượt 20 km/h, khung mức phạt vượt từ 10 đến 20 km/h "
        "(Nghị định 168/2024)",
    ),
    "red light, from the lamp, calibrated": (
        lambda: RedLightRule(geometry(True)),
        [Track(7, through(8.0))],
        lambda: signal_plan(*RED_AT_10),
        ViolationType.RED_LIGHT,
        "car crossed the stop line of lane 1 at 14:03:12.000, 2.0 s after red began at "
        "14:03:10.000, and went on past the second line at 14:03:13.000, while still red, "
        "10.0 m beyond where it crossed",
        "Ô tô vượt đèn đỏ: qua vạch dừng của làn 1 lúc 14:03:12.000, 2 giây sau khi đèn đỏ "
        "bật lúc 14:03:10.000, rồi đi tiếp qua vạch thứ hai lúc 14:03:13.000, khi đèn vẫn "
        "đỏ, cách chỗ qua vạch dừng 10 m",
    ),
    "red light, from the signal controller, no calibration": (
        lambda: RedLightRule(geometry(False)),
        [Track(7, through(8.5), MOTO)],
        lambda: signal_plan(*RED_AT_10, source=SignalSource.CONTROLLER),
        ViolationType.RED_LIGHT,
        "motorcycle crossed the stop line of lane 1 at 14:03:12.500, 2.5 s after red began "
        "at 14:03:10.000 (signal controller), and went on past the second line at "
        "14:03:13.500, while still red",
        "Xe máy vượt đèn đỏ: qua vạch dừng của làn 1 lúc 14:03:12.500, 2,5 giây sau khi đèn "
        "đỏ bật lúc 14:03:10.000 (theo bộ điều khiển đèn tín hiệu), rồi đi tiếp qua vạch thứ "
        "hai lúc 14:03:13.500, khi đèn vẫn đỏ",
    ),
    "red light, went on at green without stopping": (
        lambda: RedLightRule(geometry(True)),
        [Track(7, through(15.7))],
        lambda: signal_plan(*RED_AT_10, (20.0, LampColour.GREEN)),
        ViolationType.RED_LIGHT,
        "car crossed the stop line of lane 1 at 14:03:19.700, 9.7 s after red began at "
        "14:03:10.000, and went on past the second line at 14:03:20.700, without stopping, "
        "10.0 m beyond where it crossed",
        "Ô tô vượt đèn đỏ: qua vạch dừng của làn 1 lúc 14:03:19.700, 9,7 giây sau khi đèn đỏ "
        "bật lúc 14:03:10.000, rồi đi tiếp qua vạch thứ hai lúc 14:03:20.700 mà không dừng "
        "lại, cách chỗ qua vạch dừng 10 m",
    ),
    "wrong way, by the lane's two lines": (
        lambda: WrongWayRule(geometry(True)),
        [Track(3, line_path((500, 300), (500, 950), 0, 6))],
        None,
        ViolationType.WRONG_WAY,
        "car drove against the direction of lane 1: it crossed the lane's far line at "
        "14:03:02.769 and then its near line at 14:03:04.615, 20.0 m further on",
        "Ô tô đi ngược chiều trên làn 1: qua vạch xa của làn lúc 14:03:02.769 rồi qua vạch "
        "gần lúc 14:03:04.615, cách đó 20 m",
    ),
    "wrong way, by the lines, in pixels": (
        lambda: WrongWayRule(geometry(False)),
        [Track(3, line_path((500, 300), (500, 950), 0, 6), MOTO)],
        None,
        ViolationType.WRONG_WAY,
        "motorcycle drove against the direction of lane 1: it crossed the lane's far line at "
        "14:03:02.769 and then its near line at 14:03:04.615, 200 px further on",
        "Xe máy đi ngược chiều trên làn 1: qua vạch xa của làn lúc 14:03:02.769 rồi qua vạch "
        "gần lúc 14:03:04.615, cách đó 200 px",
    ),
    "wrong way, along the lane's direction": (
        lambda: WrongWayRule(geometry(True)),
        [Track(3, line_path((700, 300), (700, 400), 0, 2))],
        None,
        ViolationType.WRONG_WAY,
        "car moved 8.0 m against the direction of lane 2 between 14:03:00.400 and 14:03:02.000",
        "Ô tô đi ngược chiều 8 m trên làn 2 từ 14:03:00.400 đến 14:03:02.000",
    ),
    "forbidden lane, calibrated": (
        lambda: ForbiddenLaneRule(geometry(True)),
        [Track(1, line_path((500, 950), (500, 850), 0, 3), TRUCK)],
        None,
        ViolationType.FORBIDDEN_LANE,
        "truck drove in lane 1, which is closed to truck at 14:03 on Mon, for 3.0 s and "
        "10.0 m from 14:03:00.000 to 14:03:03.000",
        "Xe tải đi sai làn đường: đi trong làn 1, làn cấm xe tải lúc 14:03 thứ Hai, trong "
        "3 giây và 10 m từ 14:03:00.000 đến 14:03:03.000",
    ),
    "forbidden lane, no calibration, a named lane": (
        lambda: ForbiddenLaneRule(geometry(False, lanes=NAMED_LANES)),
        [Track(1, line_path((500, 950), (500, 850), 0, 3.4), TRUCK)],
        None,
        ViolationType.FORBIDDEN_LANE,
        "truck drove in lane 1 (Làn ô tô), which is closed to truck at 14:03 on Mon, for "
        "3.0 s from 14:03:00.000 to 14:03:03.000",
        "Xe tải đi sai làn đường: đi trong làn 1 (Làn ô tô), làn cấm xe tải lúc 14:03 thứ "
        "Hai, trong 3 giây từ 14:03:00.000 đến 14:03:03.000",
    ),
    "no stopping, calibrated": (
        lambda: NoStoppingRule(geometry(True)),
        [Track(9, [(0.0, 900, 500), (30.25, 900, 500)])],
        None,
        ViolationType.NO_STOPPING,
        "car stood still (within 1.5 m) inside no-stopping zone shoulder from 14:03:00.000 "
        "to 14:03:30.250: 30.3 s, more than the 30 s allowed",  # (30.25 s: half up, as the page)
        "Ô tô dừng, đỗ nơi cấm: đứng yên (trong phạm vi 1,5 m) trong vùng cấm dừng "
        "shoulder từ 14:03:00.000 đến 14:03:30.250: 30,3 giây, quá thời gian cho phép là "
        "30 giây",
    ),
    "solid line, lane to lane": (
        lambda: SolidLineRule(geometry(True)),
        [Track(2, [(k / 4, x, 800 - 20 * k) for k, x in enumerate([560, 580, 590, 610, 630])])],
        None,
        ViolationType.SOLID_LINE,
        "car crossed solid line divider at 14:03:00.625, from lane 1 into lane 2, and stayed "
        "across it",
        "Ô tô đè vạch liền: vượt qua vạch liền divider lúc 14:03:00.625, từ làn 1 sang làn 2, "
        "và ở lại bên kia vạch",
    ),
    "solid line, a named line, out of the lanes": (
        lambda: SolidLineRule(geometry(True, solid_lines=[*BASE["solid_lines"], KERB])),
        [Track(2, line_path((450, 700), (350, 600), 0, 1))],
        None,
        ViolationType.SOLID_LINE,
        "car crossed solid line kerb (lề phải) at 14:03:00.500, from lane 1 into outside the "
        "lanes, and stayed across it",
        "Ô tô đè vạch liền: vượt qua vạch liền kerb (lề phải) lúc 14:03:00.500, từ làn 1 sang "
        "ngoài các làn đường, và ở lại bên kia vạch",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_rule_explains_in_vietnamese_what_it_explains_in_english(name: str) -> None:
    rule, tracks, signals, kind, english, vietnamese = CASES[name]
    [v] = run(rule(), tracks, None if signals is None else signals())
    assert v.rule is kind
    assert v.explanation == english
    assert v.explanation_vi == vietnamese


def test_every_rule_has_a_vietnamese_case() -> None:
    """A rule added to the engine (a no-helmet rule, say) comes with its row here."""
    assert {case[3] for case in CASES.values()} == set(RULES)


def test_the_event_carries_both_explanations() -> None:
    rule, tracks, signals, _kind, english, vietnamese = CASES[
        "red light, from the lamp, calibrated"
    ]
    [v] = run(rule(), tracks, None if signals is None else signals())
    event = v.to_event(site="s", node="n", model_version="m@1")
    assert (event.explanation, event.explanation_vi) == (english, vietnamese)


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (92.4, 1, "92,4"),
        (80.0, 1, "80"),
        (80.0, 0, "80"),
        (1234.5, 1, "1.234,5"),
        (1_000_000.04, 1, "1.000.000"),
        (0.05, 1, "0,1"),  # (half away from zero)
        (0.25, 1, "0,3"),
        (2.675, 2, "2,68"),  # (from the float's shortest spelling, as Intl does)
        (62.45, 0, "62"),
        (-3.25, 1, "-3,3"),
        (30.199999999, 1, "30,2"),
    ],
)
def test_numbers_are_written_the_vietnamese_way(x: float, digits: int, text: str) -> None:
    assert vi.number(x, digits) == text


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_number_that_is_none_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="not a number"):
        vi.number(bad)


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (52.5, 0, "53"),  # (an exact half: half to even, Python's own, wrote 52)
        (53.5, 0, "54"),
        (0.25, 1, "0.3"),
        (62.25, 1, "62.3"),
        (0.15, 1, "0.2"),  # (the float lies a hair below 0.15: Python's own wrote 0.1)
        (58.65, 1, "58.7"),
        (2.675, 2, "2.68"),
        (-3.25, 1, "-3.3"),
        (0.05, 1, "0.1"),
        (80.0, 1, "80.0"),
        (1234.45, 1, "1234.5"),
    ],
)
def test_english_numbers_round_half_up_as_the_vietnamese_do(
    x: float, digits: int, text: str
) -> None:
    """The same measured value reads the same in both languages and on the review page."""
    assert vi.number_en(x, digits) == text
    assert Decimal(text) == Decimal(vi.number(x, digits).replace(".", "").replace(",", "."))


def figures(text: str) -> list[Decimal]:
    """The numbers an explanation writes, in either language, in order of size."""
    found = re.findall(r"\d+(?:[.,]\d+)*", text)
    return sorted(Decimal(f.replace(".", "").replace(",", ".") if "," in f else f) for f in found)


@pytest.mark.parametrize(
    ("speed", "uncertainty", "english"),
    [
        (62.25, 1.15, "62.3 ± 1.2 km/h (at least 61.1 km/h)"),
        (60.35, 0.25, "60.4 ± 0.3 km/h (at least 60.1 km/h)"),
        (58.65, 1.05, "58.7 ± 1.1 km/h (at least 57.6 km/h)"),
    ],
)
def test_a_half_reads_the_same_in_the_english_explanation(
    speed: float, uncertainty: float, english: str
) -> None:
    """A measured value at a half is rounded up in the English explanation as in the
    Vietnamese one and on the review page, not to even."""
    track = Track(4, PATH, MOTO, speeds=[(speed, uncertainty)] * len(PATH))
    [v] = run(SpeedingRule(geometry(True)), [track])
    assert english in v.explanation, v.explanation
    assert figures(v.explanation) == figures(v.explanation_vi or "")


NUMBERS = [0.0, 0.05, 0.25, 1.1, 2.675, 18.0, 61.35, 92.4, 184.0, 1234.5, 65432.15, 1_000_000.04]


@pytest.mark.parametrize("digits", [0, 1, 2])
def test_numbers_read_as_the_review_page_writes_them(digits: int) -> None:
    """The review page writes measured values with Intl.NumberFormat("vi-VN"): the
    explanation beside them writes the same number the same way."""
    script = (
        f"const f = new Intl.NumberFormat('vi-VN', {{ maximumFractionDigits: {digits} }});"
        f"console.log(JSON.stringify({json.dumps(NUMBERS)}.map((x) => f.format(x))));"
    )
    node = shutil.which("node")
    if node is None:
        missing("Node.js (Debian's nodejs, installed by the set-up) for Intl")
    assert node is not None
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    assert [vi.number(x, digits) for x in NUMBERS] == json.loads(done.stdout)


def test_the_vietnamese_bands_are_the_rules_bands() -> None:
    from edge.rules.speeding import DECREE_168_BANDS

    assert set(vi.BAND_VI) == {label for _low, _high, label in DECREE_168_BANDS}


@pytest.mark.parametrize("older", [False, True], ids=["both languages", "English only"])
def test_a_case_without_evidence_says_so_in_each_language_it_explains_in(older: bool) -> None:
    key = generate_private_key()
    event = violation_event(
        explanation="car crossed the stop line",
        explanation_vi=None if older else "Ô tô vượt đèn đỏ",
    )
    package = without_evidence(event, "the node stopped", key)
    verify(package.event, key.public_key())
    # (each note a sentence of its own: "Ô tô vượt đèn đỏ Không có chứng cứ" read as one)
    assert package.event.explanation == "car crossed the stop line. No evidence: the node stopped"
    assert package.event.explanation_vi == (
        None
        if older
        else "Ô tô vượt đèn đỏ. Không có chứng cứ: thiết bị không lưu được hình ảnh (lý do: xem "
        "bản gốc tiếng Anh)."
    )


@pytest.mark.parametrize("name", list(CASES))
def test_each_explanation_names_the_violation_as_the_review_page_does(name: str) -> None:
    """The officer reads the violation's type on the case page (``type.*`` of the page's
    Vietnamese) and the rule's explanation beneath it: both name it in the same words,
    the Decree 168/2024 ones (*chạy quá tốc độ*, not *vượt quá tốc độ*)."""
    from pathlib import Path

    page = json.loads(
        (Path(__file__).parents[2] / "central/ui/static/i18n/vi.json").read_text("utf-8")
    )
    rule, tracks, signals, kind, _english, _vietnamese = CASES[name]
    [v] = run(rule(), tracks, None if signals is None else signals())
    assert v.explanation_vi is not None
    assert page[f"type.{kind.value}"].lower() in v.explanation_vi.lower()
