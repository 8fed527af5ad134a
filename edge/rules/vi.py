"""The rules' explanations in Vietnamese, for the police officer who reviews the case.

Each rule writes its explanation twice, in English and in Vietnamese, from the same facts;
this module holds the Vietnamese words they share: the vehicle classes, the names of lanes,
zones and lines, numbers and days. Numbers are written as the review page writes the
measured values beside the explanation (``Intl.NumberFormat("vi-VN")`` with at most the
digits asked for: ``92,4``, ``1.250``, ``80``), so the two read the same. Times of day are
written as the evidence overlay prints them (``14:03:12.000``), for the reviewer to find
the frame. The English explanation writes its numbers with the same rounding
(``number_en``): a measured 52.5 reads 53 in both, as on the page.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from roadwatch.contract import VehicleClass

VEHICLE_VI: dict[VehicleClass, str] = {
    VehicleClass.CAR: "ô tô",
    VehicleClass.MOTORCYCLE: "xe máy",
    VehicleClass.BUS: "xe khách",
    VehicleClass.TRUCK: "xe tải",
    VehicleClass.BICYCLE: "xe đạp",
    VehicleClass.UNKNOWN: "phương tiện chưa rõ loại",
}

# datetime.weekday(): Monday is 0.
WEEKDAY_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")

# Decree 168/2024's speeding bands (edge.rules.speeding.DECREE_168_BANDS), as the review
# page's fine band says them.
BAND_VI: dict[str, str] = {
    "from 5 to under 10 km/h over": "vượt từ 5 đến dưới 10 km/h",
    "from 10 to 20 km/h over": "vượt từ 10 đến 20 km/h",
    "over 20 to 35 km/h over": "vượt trên 20 đến 35 km/h",
    "over 35 km/h over": "vượt trên 35 km/h",
}


def rounded(x: float, digits: int = 1) -> Decimal:
    """``x`` as the review page rounds it: half away from zero to ``digits`` decimals, from
    the float's shortest decimal spelling, as Intl does (2.675 to 2 digits is 2.68, though
    the float itself lies a hair below 2.675)."""
    return Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def number(x: float, digits: int = 1) -> str:
    """``x`` as the review page writes a number in Vietnamese: rounded half away from zero
    to at most ``digits`` decimals (trailing zeros dropped), a decimal comma and a dot
    between thousands."""
    if digits < 0:
        raise ValueError(f"digits must be 0 or more, not {digits}")
    if not math.isfinite(x):
        raise ValueError(f"not a number to write: {x}")
    written = rounded(x, digits)
    sign = "-" if written < 0 else ""
    whole, _, fraction = f"{abs(written):f}".partition(".")
    fraction = fraction.rstrip("0")
    groups = f"{int(whole):,}".replace(",", ".")
    return sign + groups + ("," + fraction if fraction else "")


def number_en(x: float, digits: int = 1) -> str:
    """``x`` as the English explanation writes a number: rounded as the review page and
    the Vietnamese round it (``rounded``: 52.5 is 53, where Python's own formatting, half
    to even, writes 52), with exactly ``digits`` decimals and a decimal point."""
    if not math.isfinite(x):
        raise ValueError(f"not a number to write: {x}")
    return f"{rounded(x, digits):f}"


def vehicle(v: VehicleClass) -> str:
    return VEHICLE_VI[v]


def capitalized(text: str) -> str:
    """A sentence's first letter in capitals (``ô tô`` -> ``Ô tô``)."""
    return text[:1].upper() + text[1:]


def label(kind: str, ident: str, name: str | None) -> str:
    """A lane, zone or line named by its kind, id and name, in either language
    (``lane l2 (Làn xe máy)``, ``làn l2 (Làn xe máy)``)."""
    return f"{kind} {ident}" + (f" ({name})" if name else "")


def lane_label(ident: str, name: str | None) -> str:
    return label("làn", ident, name)


def zone_label(ident: str, name: str | None) -> str:
    return label("vùng cấm dừng", ident, name)


def solid_line_label(ident: str, name: str | None) -> str:
    return label("vạch liền", ident, name)


def distance(d: float, metric: bool) -> str:
    """A distance on the road (metres) or, without a calibration, in the image (pixels)."""
    return f"{number(d)} m" if metric else f"{number(d, 0)} px"


def seconds(s: float) -> str:
    return f"{number(s)} giây"


def speed(kmh: float) -> str:
    return f"{number(kmh)} km/h"
