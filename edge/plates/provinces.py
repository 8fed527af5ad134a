"""Province codes on Vietnamese vehicle plates (the two leading digits).

The codes as assigned by the Ministry of Public Security's plate regulation (Circular
79/2024/TT-BCA, appendix of local codes, which keeps the codes of Circular 58/2020): a
province keeps its codes after the 2025 merger of provinces, so the table names the
province that issued the code. Codes 10, 13, 39, 41, 42, 44, 45, 46, 87, 91 and 96 are
not assigned. 80 is issued by the Traffic Police Department to central agencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_HANOI = "Hà Nội"
_HCMC = "TP Hồ Chí Minh"
_HAIPHONG = "Hải Phòng"

PROVINCES: Mapping[str, str] = MappingProxyType(
    {
        "11": "Cao Bằng",
        "12": "Lạng Sơn",
        "14": "Quảng Ninh",
        "15": _HAIPHONG,
        "16": _HAIPHONG,
        "17": "Thái Bình",
        "18": "Nam Định",
        "19": "Phú Thọ",
        "20": "Thái Nguyên",
        "21": "Yên Bái",
        "22": "Tuyên Quang",
        "23": "Hà Giang",
        "24": "Lào Cai",
        "25": "Lai Châu",
        "26": "Sơn La",
        "27": "Điện Biên",
        "28": "Hòa Bình",
        "29": _HANOI,
        "30": _HANOI,
        "31": _HANOI,
        "32": _HANOI,
        "33": _HANOI,
        "34": "Hải Dương",
        "35": "Ninh Bình",
        "36": "Thanh Hóa",
        "37": "Nghệ An",
        "38": "Hà Tĩnh",
        "40": _HANOI,
        "43": "Đà Nẵng",
        "47": "Đắk Lắk",
        "48": "Đắk Nông",
        "49": "Lâm Đồng",
        "50": _HCMC,
        "51": _HCMC,
        "52": _HCMC,
        "53": _HCMC,
        "54": _HCMC,
        "55": _HCMC,
        "56": _HCMC,
        "57": _HCMC,
        "58": _HCMC,
        "59": _HCMC,
        "60": "Đồng Nai",
        "61": "Bình Dương",
        "62": "Long An",
        "63": "Tiền Giang",
        "64": "Vĩnh Long",
        "65": "Cần Thơ",
        "66": "Đồng Tháp",
        "67": "An Giang",
        "68": "Kiên Giang",
        "69": "Cà Mau",
        "70": "Tây Ninh",
        "71": "Bến Tre",
        "72": "Bà Rịa - Vũng Tàu",
        "73": "Quảng Bình",
        "74": "Quảng Trị",
        "75": "Thừa Thiên Huế",
        "76": "Quảng Ngãi",
        "77": "Bình Định",
        "78": "Phú Yên",
        "79": "Khánh Hòa",
        "80": "Cục Cảnh sát giao thông (central agencies)",
        "81": "Gia Lai",
        "82": "Kon Tum",
        "83": "Sóc Trăng",
        "84": "Trà Vinh",
        "85": "Ninh Thuận",
        "86": "Bình Thuận",
        "88": "Vĩnh Phúc",
        "89": "Hưng Yên",
        "90": "Hà Nam",
        "92": "Quảng Nam",
        "93": "Bình Phước",
        "94": "Bạc Liêu",
        "95": "Hậu Giang",
        "97": "Bắc Kạn",
        "98": "Bắc Giang",
        "99": "Bắc Ninh",
    }
)


def province_name(code: str) -> str | None:
    """The province (or agency) that issues plates with this two-digit code."""
    return PROVINCES.get(code)
