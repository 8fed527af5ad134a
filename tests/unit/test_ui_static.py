"""The web UI's static files: both languages say everything the pages show, and only the
front end's own files are served."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from central.api.deps import REFUSALS
from central.ui.routes import STATIC, resolve_asset
from central.workflow import Action, DeadlineState, Role, Status
from roadwatch.contract import CameraState, LampColour, VehicleClass, ViolationType

LANGS = ("vi", "en")
# The dictionary's sections; a quoted "section.name" in the script is a key.
PREFIXES = (
    "app|nav|login|queue|search|case|deadlines|deadline|stats|users|ioc|help|reject|plate|final"
    "|dialog|misc|error|nodes|cameras|traffic"
)


def dictionary(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((STATIC / "i18n" / f"{lang}.json").read_text("utf-8"))
    return data


def used_keys() -> set[str]:
    """Keys named literally in the page and the script: t("…"), data-i18n="…", labels."""
    js = (STATIC / "app.js").read_text("utf-8")
    html = (STATIC / "index.html").read_text("utf-8")
    keys = set(re.findall(r"""\bt\(\s*["']([a-z_.0-9]+)["']""", js))
    keys |= set(re.findall(rf"""["']((?:{PREFIXES})\.[a-z_.0-9]+)["']""", js))
    keys |= set(re.findall(r'data-i18n(?:-aria)?="([^"]+)"', html))
    return keys


def enum_keys() -> set[str]:
    """Keys the script builds from values the API sends (types, statuses, states …)."""
    keys = {f"type.{t.value}" for t in ViolationType}
    keys |= {f"status.{s.value}" for s in Status}
    keys |= {f"action.{a.value}" for a in Action}
    keys |= {f"deadline.{d.value}" for d in DeadlineState} | {
        "deadline.notice",
        "deadline.escalation",
    }
    keys |= {f"role.{r.value}" for r in Role if r is not Role.NODE}
    keys |= {f"vehicle.{v.value}" for v in VehicleClass}
    keys |= {f"lamp.{c.value}" for c in LampColour}
    keys |= {f"cam.{c.value}" for c in CameraState} | {"cam.offline", "cam.unknown"}
    keys |= {f"case.{r}" for r in ("frame_before", "frame_at", "frame_after", "clip")}
    keys |= {f"case.{r}" for r in ("plate_crop", "lamp_crop")}
    keys |= {f"ioc.feed_{s}" for s in ("connected", "connecting", "lost")}
    keys |= {f"error.{code}" for code in REFUSALS}
    keys |= {f"nodes.state_{s}" for s in ("online", "offline", "unknown")}
    keys |= {f"final.{a}" for a in ("issue_notice", "close", "escalate")}
    keys |= {f"traffic.{k}_{by}" for k in ("by", "axis") for by in ("hour", "minute")}
    cols = ("time", "lane", "vehicles", "speed", "occupancy", "minutes")
    keys |= {f"traffic.col.{c}" for c in cols}
    return keys


def test_both_languages_have_the_same_keys_and_no_empty_string() -> None:
    vi, en = dictionary("vi"), dictionary("en")
    assert set(vi) == set(en), set(vi) ^ set(en)
    assert not [k for k, v in {**vi, **en}.items() if not v.strip()]


@pytest.mark.parametrize("lang", LANGS)
def test_every_string_the_pages_use_is_translated(lang: str) -> None:
    words = dictionary(lang)
    missing = sorted((used_keys() | enum_keys()) - set(words))
    assert not missing, f"{lang}: {missing}"


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_match_between_languages(lang: str) -> None:
    other = dictionary("en" if lang == "vi" else "vi")
    for key, text in dictionary(lang).items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", other[key])), key


def test_vietnamese_is_really_vietnamese() -> None:
    vi, en = dictionary("vi"), dictionary("en")
    words = {k: re.sub(r"\{\w+\}", "", v) for k, v in vi.items()}
    same = [k for k in vi if vi[k] == en[k] and re.search(r"[a-z]{4}", words[k])]
    # Proper names and units read the same in both languages; nothing else may.
    assert set(same) <= {
        "app.name",
        "queue.camera",
        "queue.col.camera",
        "case.camera",
        "ioc.col.camera",
        "cameras.camera",
        "case.distance_value",
    }, same


@pytest.mark.parametrize(
    ("asset", "found"),
    [
        ("", "index.html"),
        ("app.js", "app.js"),
        ("i18n/vi.json", "vi.json"),
        ("../routes.py", None),
        ("../../settings.py", None),
        ("i18n/../../pages.py", None),
        ("/etc/passwd", None),
        ("missing.js", None),
        ("i18n", None),
    ],
)
def test_only_the_front_end_files_are_served(asset: str, found: str | None) -> None:
    path = resolve_asset(asset)
    if found is None:
        assert path is None
    else:
        assert path is not None and path.name == found and path.is_relative_to(STATIC)


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text("utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
    assert Path(STATIC / "index.html").read_text("utf-8").count("<script") == 1


def test_the_case_page_names_the_speeding_bands_the_rule_reports() -> None:
    """The page's fine band of a speeding case follows the bands the rule's explanation
    names, so the two never disagree."""
    from edge.rules.speeding import DECREE_168_BANDS

    js = (STATIC / "app.js").read_text("utf-8")
    found = re.search(r"const SPEED_BANDS = (\[.*?\]);\n", js)
    assert found is not None
    bands = json.loads(found.group(1))
    rule = [
        [[low, with_low], [None if high == float("inf") else high, with_high]]
        for (low, with_low), (high, with_high), _ in DECREE_168_BANDS
    ]
    assert bands == rule


def test_the_edges_fixed_camera_reasons_are_each_translated() -> None:
    """The IOC's camera table says the reasons an edge or central gives in fixed words in
    the reader's language (an error's own text is shown as written)."""
    root = Path(__file__).resolve().parents[2]
    sources = (root / "edge" / "sources.py").read_text("utf-8")
    fixed = set(re.findall(r'CameraState\.\w+,\s*"([^"]+)"', sources))
    fixed |= set(re.findall(r'self\._reason = "([^"]+)"', sources))
    fixed |= set(re.findall(r'else "([^"]+)"', sources))
    records = (root / "central" / "records.py").read_text("utf-8")
    fixed |= set(re.findall(r'state, reason = "\w+", "([^"]+)"', records))
    assert {"streaming", "not started", "stream failed", "node offline"} <= fixed
    js = (STATIC / "app.js").read_text("utf-8")
    found = re.search(r"const HEALTH_REASONS = \{(.*?)\};", js, re.S)
    assert found is not None
    mapped = dict(re.findall(r'"([^"]+)":\s*"([a-z_.]+)"', found.group(1)))
    assert fixed <= set(mapped), fixed - set(mapped)
    for lang in LANGS:
        words = dictionary(lang)
        assert not [key for key in mapped.values() if key not in words], lang
    assert dictionary("vi")["ioc.reason.streaming"] == "đang nhận hình"


def test_the_edges_camera_reasons_with_a_number_or_name_filled_in_are_translated() -> None:
    """The reasons an edge writes around a number or a name (the pipeline stuck, a
    signal controller silent) match a form the IOC page translates, in both languages."""
    root = Path(__file__).resolve().parents[2]
    written = {
        "edge/pipeline.py": r'f"(frames not processed for \{[^}]+\} s: [^"]+)"',
        "edge/enforcement.py": (
            r'f"(no fresh signal controller message for head \{[^"]+)"\s*"([^"]+)"'
        ),
    }
    js = (STATIC / "app.js").read_text("utf-8")
    found = re.search(r"const HEALTH_REASON_FORMS = \[(.*?)\n  \];", js, re.S)
    assert found is not None
    forms = re.findall(r'\[/(.+?)/, "([a-z_.]+)"\]', found.group(1))
    assert len(forms) >= len(written)
    for path, pattern in written.items():
        source = re.search(pattern, (root / path).read_text("utf-8"))
        assert source is not None, path
        template = "".join(source.groups())
        example = re.sub(r"\{[^}]+\}", "7", template)
        matched = [key for form, key in forms if re.fullmatch(form.replace("?<", "?P<"), example)]
        assert len(matched) == 1, (example, forms)
        for lang in LANGS:
            assert matched[0] in dictionary(lang), lang


def test_the_ioc_maps_legend_names_every_camera_state_each_in_its_own_colour() -> None:
    """A camera drawn in a colour the legend leaves out (enforcement paused, or a node
    not heard from) could not be read off the IOC's map."""
    js = (STATIC / "app.js").read_text("utf-8")
    found = re.search(r"const CAMERA_STATES = \[([^\]]*)\];", js)
    assert found is not None
    states = re.findall(r'"(\w+)"', found.group(1))
    assert set(states) >= {s.value for s in CameraState} | {"offline", "unknown"}
    legend = re.search(r'\$\("#legend"\)\.replaceChildren\((.*?)\);\n', js, re.S)
    assert legend is not None
    drawn = legend.group(1)
    listed = re.search(r"\[([^\]]*)\]\.map", drawn)
    assert "CAMERA_STATES.map" in drawn or (
        listed is not None and set(re.findall(r'"(\w+)"', listed.group(1))) >= set(states)
    )
    css = (STATIC / "style.css").read_text("utf-8")
    colours = {
        st: re.findall(rf"\.dot\.cam-{st}\b[^{{]*\{{[^}}]*background: (#[0-9a-f]+)", css)
        for st in states
    }
    assert all(colours.values()), colours
    assert len({c[0] for c in colours.values()}) == len(states), colours


def test_the_page_names_its_icon_so_no_request_for_one_fails() -> None:
    """Without an icon of its own the browser asks for /favicon.ico, which is no page:
    every load logged a 404 in the console."""
    html = (STATIC / "index.html").read_text("utf-8")
    icon = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert icon is not None and icon.group(1).startswith("data:image/svg+xml,")
