"""The web UI where review gets awkward: a long queue, cases without evidence or with
evidence that cannot be shown, cases someone else holds or decided, the two-person rule,
a session that runs out mid-review, a browser in another time zone, a changed role, and
pages that fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from roadwatch.contract import EvidenceRole, Measurement, MediaType, ViolationType
from tests.ui_fixtures import (
    PASSWORD,
    VIEWPORT,
    Blob,
    PageErrors,
    UiServer,
    browser,
    ui_server,
    wait_until,
)

__all__ = ["browser", "ui_server"]  # fixtures used by name

pytestmark = [pytest.mark.integration, pytest.mark.browser]
TIMEOUT_MS = 10_000


@pytest.fixture
def errors() -> Iterator[PageErrors]:
    seen = PageErrors()
    yield seen
    # A blob the store lost answers 404, which the console reports; the page says why.
    assert not [e for e in seen.errors if "404" not in e], seen.errors


def open_page(browser: Any, errors: PageErrors, server: UiServer, who: str, tz: str = "") -> Any:
    context = browser.new_context(
        viewport=VIEWPORT, locale="vi-VN", timezone_id=tz or "Asia/Ho_Chi_Minh"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = errors.watch(context.new_page())
    page.goto(f"{server.url}/")
    page.get_by_label("Tên đăng nhập").fill(server.username(who))
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.locator("#logout")).to_be_visible()
    return page


def open_new_case(browser: Any, errors: PageErrors, server: UiServer, who: str) -> tuple[int, Any]:
    """A new case, open in a page of ``who``'s: (its id, the page)."""
    vid = server.add_case(camera="ql13-km22")
    page = open_page(browser, errors, server, who)
    page.goto(f"{server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    return vid, page


def test_the_whole_queue_is_listed_and_walked_past_the_first_page(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    now = datetime.now(UTC)
    ids = [
        ui_server.add_case(camera="mptv-km18", occurred_at=now - timedelta(minutes=300 - n),
                           plate=f"72C-{n:03d}.00")
        for n in range(205)
    ]  # fmt: skip
    try:
        page = open_page(browser, errors, ui_server, "officer")
        page.goto(f"{ui_server.url}/ui/#/queue?camera=mptv-km18")
        expect(page.locator("#queue tbody tr")).to_have_count(205)
        expect(page.locator("#queue-count")).to_contain_text("Hiển thị 205 hồ sơ")
        # J from the 200th case goes on to the 201st, which the first page did not hold.
        page.goto(f"{ui_server.url}/ui/#/case/{ids[199]}")
        expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[199]}")).to_be_visible()
        page.keyboard.press("j")
        expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[200]}")).to_be_visible()
        # Find cases lists the newest 200 first, and goes on to older ones when asked.
        page.goto(f"{ui_server.url}/ui/#/search?camera=mptv-km18")
        results = page.locator("#results tbody tr")
        expect(results).to_have_count(200)
        expect(page.locator("#search-count")).to_have_text(
            "Hiển thị 200 hồ sơ mới nhất; còn hồ sơ cũ hơn"
        )
        expect(page.locator(f'#results tr[data-id="{ids[0]}"]')).to_have_count(0)
        page.get_by_role("button", name="Xem thêm hồ sơ cũ hơn").click()
        expect(page.locator(f'#results tr[data-id="{ids[0]}"]')).to_be_visible()
        found = results.evaluate_all("rows => rows.map(r => Number(r.dataset.id))")
        assert len(found) == len(set(found)) > 200
        assert [i for i in found if i in set(ids)] == ids[::-1]
        page.context.close()
    finally:
        for vid in ids:  # each test owns its queue
            ui_server.take_out(vid)


def test_evidence_that_is_missing_lost_or_of_another_kind_says_so(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    page = open_page(browser, errors, ui_server, "officer")
    # No evidence at all: said plainly, no empty viewer.
    ui_server.evidence["none"] = []
    bare = ui_server.add_case(camera="ql13-km22", evidence="none")
    page.goto(f"{ui_server.url}/ui/#/case/{bare}")
    expect(page.locator("#no-evidence")).to_contain_text("không có chứng cứ nào")
    expect(page.locator("#viewer")).to_have_count(0)
    # Nothing to stand on: it can be rejected, not confirmed.
    expect(page.locator("#act-reject")).to_be_visible()
    expect(page.locator("#act-confirm")).to_have_count(0)
    # A clip that is a still: shown as the picture it is. A frame the store lost: said so.
    still = next(b for b in ui_server.evidence["red_light"] if b.role is EvidenceRole.FRAME_AT)
    lost = Blob(EvidenceRole.FRAME_AT, MediaType.JPEG, still.data + b"lost")
    clip = Blob(EvidenceRole.CLIP, MediaType.JPEG, still.data + b"clip")
    crop = Blob(EvidenceRole.VEHICLE_CROP, MediaType.JPEG, still.data + b"car")
    for blob in (lost, clip, crop):
        ui_server.upload(blob)
    ui_server.blob_file(lost).unlink()
    ui_server.evidence["odd"] = [lost, clip, crop]
    odd = ui_server.add_case(camera="ql13-km22", evidence="odd")
    page.goto(f"{ui_server.url}/ui/#/case/{odd}")
    expect(page.locator("#act-reject")).to_be_visible()
    expect(page.locator("#act-confirm")).to_have_count(1)  # (all arrived as listed)
    expect(page.locator("#evidence-error")).to_contain_text("không tìm thấy trong kho lưu trữ")
    expect(page.locator("#crop-vehicle_crop img")).to_be_visible()
    page.get_by_role("button", name="Đoạn video").click()
    expect(page.locator("#frame")).to_be_visible()
    # A frame that has not arrived yet: no confirmation until it has.
    late = Blob(EvidenceRole.FRAME_AT, MediaType.JPEG, still.data + b"late")
    ui_server.evidence["late"] = [late]
    waiting = ui_server.add_case(camera="ql13-km22", evidence="late")
    page.goto(f"{ui_server.url}/ui/#/case/{waiting}")
    expect(page.get_by_text("Chưa thể xác nhận hay gửi thông báo cho đến khi đủ")).to_be_visible()
    expect(page.locator("#act-reject")).to_be_visible()
    expect(page.locator("#act-confirm")).to_have_count(0)
    ui_server.upload(late)
    page.reload()
    expect(page.locator("#act-confirm")).to_be_visible()
    page.context.close()
    for vid in (bare, odd, waiting):
        ui_server.take_out(vid)


def test_only_the_actions_the_workflow_allows_are_offered_and_a_conflict_names_who(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    held = ui_server.add_case(camera="mptv-km4")
    ui_server.act("officer2", held, {"action": "start_review"})
    officer = open_page(browser, errors, ui_server, "officer")
    officer.goto(f"{ui_server.url}/ui/#/case/{held}")
    expect(officer.locator("#read-only")).to_contain_text(
        f"{ui_server.username('officer2')} đang xem xét hồ sơ này"
    )
    expect(officer.locator("#act-confirm")).to_have_count(0)
    officer.keyboard.press("c")  # the shortcut of a button not offered does nothing
    time.sleep(0.3)
    assert ui_server.case("supervisor", held)["status"] == "in_review"
    # The supervisor who confirmed a case is not offered its notice (two-person rule).
    confirmed = ui_server.add_case(camera="mptv-km4")
    ui_server.act("supervisor", confirmed, {"action": "start_review"}, {"action": "confirm"})
    supervisor = open_page(browser, errors, ui_server, "supervisor")
    supervisor.goto(f"{ui_server.url}/ui/#/case/{confirmed}")
    expect(supervisor.locator("#action-note")).to_contain_text("quy tắc hai người")
    expect(supervisor.locator("#act-issue_notice")).to_have_count(0)
    expect(supervisor.locator("#act-release")).to_have_count(1)  # (reopening it: offered)
    # A decision on a case the supervisor rejected meanwhile names the supervisor.
    open_case = ui_server.add_case(camera="mptv-km4")
    officer.goto(f"{ui_server.url}/ui/#/case/{open_case}")
    expect(officer.locator("#act-confirm")).to_be_visible()
    ui_server.act("supervisor", open_case, {"action": "start_review"},
        {"action": "reject", "reason": "Xe ưu tiên"})  # fmt: skip
    officer.locator("#act-confirm").click()
    banner = officer.locator("#banner")
    expect(banner).to_contain_text(f"bởi {ui_server.username('supervisor')}")
    decision = officer.locator("#decision")
    expect(decision).to_contain_text("Bác bỏ bởi")
    expect(decision).to_contain_text(ui_server.username("supervisor"))
    for page in (officer, supervisor):
        page.context.close()
    ui_server.act("officer2", held, {"action": "reject", "reason": "xong"})


def set_session(page: Any, change: str) -> None:
    """Change the tab's stored session (``s``) as time would."""
    page.evaluate(
        "(() => { const s = JSON.parse(sessionStorage.getItem('rw.session'));"
        f" {change}; sessionStorage.setItem('rw.session', JSON.stringify(s)); }})()"
    )


def test_a_session_is_renewed_while_the_officer_reads_the_evidence(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """An officer zooming into the evidence for long makes no call: a key pressed with the
    token nearly run out renews it, so they are not logged out mid-case."""
    vid = ui_server.add_case(camera="ql13-km22")
    page = open_page(browser, errors, ui_server, "officer")
    page.clock.install()
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    stored = "JSON.parse(sessionStorage.getItem('rw.session')).expiresAt"
    issued = page.evaluate(stored)
    page.clock.fast_forward(int(issued - page.evaluate("Date.now()")) - 2 * 60_000)
    page.keyboard.press("Z")  # (zoom the plate: no call)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while page.evaluate(stored) == issued and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert page.evaluate(f"{stored} - Date.now()") > 30 * 60_000
    page.context.close()


def test_a_session_is_renewed_at_work_and_an_ended_one_returns_to_the_case(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    vid, page = open_new_case(browser, errors, ui_server, "officer")
    # Nearly run out: the next call renews the token first (a token of a full hour).
    set_session(page, "s.expiresAt = Date.now() + 60000")
    page.reload()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    session = page.evaluate("JSON.parse(sessionStorage.getItem('rw.session'))")
    assert session["expiresAt"] > time.time() * 1000 + 30 * 60_000
    # Ended (here: a token the server no longer takes): back to this case after logging in.
    set_session(page, "s.token = 'expired'")
    page.reload()
    expect(page.get_by_label("Tên đăng nhập")).to_be_visible()
    expect(page.locator(".login .banner")).to_contain_text("Phiên làm việc đã hết")
    page.get_by_label("Tên đăng nhập").fill(ui_server.username("officer"))
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    assert ui_server.case("supervisor", vid)["status"] == "new"  # nothing was decided
    page.context.close()
    ui_server.take_out(vid)


def test_filter_times_are_vietnam_time_in_a_browser_set_to_utc(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    when = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    vid = ui_server.add_case(camera="mptv-km4", occurred_at=when)
    page = open_page(browser, errors, ui_server, "officer", tz="UTC")
    vn = when + timedelta(hours=7)  # what the page shows and the officer types
    since = (vn - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    until = (vn + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    page.goto(f"{ui_server.url}/ui/#/queue?camera=mptv-km4&from={since}&to={until}")
    expect(page.locator(f'#queue tr[data-id="{vid}"]')).to_have_count(1)
    later = (vn + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    page.goto(f"{ui_server.url}/ui/#/queue?camera=mptv-km4&from={later}&to={until}")
    expect(page.locator(".empty")).to_have_text("Không có hồ sơ nào khớp với bộ lọc.")
    page.context.close()
    ui_server.take_out(vid)


def test_a_page_that_fails_says_so_and_a_changed_role_is_picked_up(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    page = open_page(browser, errors, ui_server, "officer2")
    for case in ("abc", "999999999"):
        page.goto(f"{ui_server.url}/ui/#/case/{case}")
        expect(page.locator("#page-error")).to_contain_text("Không tìm thấy")
        expect(page.locator("#main")).not_to_contain_text("Đang tải")
    # An admin makes this officer an IOC operator: a reload shows the IOC's pages.
    who = ui_server.username("officer2")
    r = ui_server.call("admin", "PATCH", f"/api/v1/users/{who}", json={"role": "ioc"})
    assert r.status_code == 200
    try:
        page.reload()
        # (the role is taken from central once the page has loaded: wait for it, as the
        # nav alone is also without the queue while the page reloads)
        wait_until(
            page,
            "JSON.parse(sessionStorage.getItem('rw.session') || '{}').role === 'ioc'",
            timeout_s=30,
        )
        expect(page.locator("nav")).not_to_contain_text("Hồ sơ chờ xử lý")
    finally:
        r = ui_server.call("admin", "PATCH", f"/api/v1/users/{who}", json={"role": "officer"})
        assert r.status_code == 200
    page.context.close()


def test_crops_zoom_from_the_keyboard_and_a_backwards_or_too_long_range_is_said(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    vid, page = open_new_case(browser, errors, ui_server, "supervisor")
    box = page.locator("#crop-plate_crop .crop-box")
    expect(box.locator("img")).to_be_visible()
    box.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#crop-plate_crop output")).to_have_text("2×")
    page.keyboard.press(" ")
    expect(page.locator("#crop-plate_crop output")).to_have_text("4×")
    page.goto(f"{ui_server.url}/ui/#/stats?from=2026-11-20&to=2026-11-10")
    expect(page.locator("#stats-range")).to_contain_text("Ngày bắt đầu sau ngày kết thúc")
    # Central counts at most 366 days by day in one request: a longer range is said too.
    page.goto(f"{ui_server.url}/ui/#/stats?from=2025-01-01&to=2026-01-02")
    expect(page.locator("#stats-range")).to_contain_text("tối đa 366 ngày")
    page.goto(f"{ui_server.url}/ui/#/stats?from=2025-01-01&to=2026-01-01")  # (366 days)
    expect(page.locator("#chart-day")).to_be_visible()
    expect(page.locator("#stats-range")).to_have_count(0)
    page.context.close()
    ui_server.take_out(vid)


def test_log_out_ends_the_session_at_central_not_only_in_the_tab(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """A token copied off a shared workstation is no use once its officer logs out."""
    name = f"leaver-{time.monotonic_ns() % 10**8}"
    account = {"username": name, "password": PASSWORD, "role": "officer"}
    made = ui_server.call("admin", "POST", "/api/v1/users", json=account)
    assert made.status_code == 201, made.text
    ui_server.users[name] = name
    page = open_page(browser, errors, ui_server, name)
    token = page.evaluate("JSON.parse(sessionStorage.getItem('rw.session')).token")
    me = f"{ui_server.url}/api/v1/auth/me"
    headers = {"Authorization": f"Bearer {token}"}
    assert ui_server.http.get(me, headers=headers).status_code == 200
    page.locator("#logout").click()
    expect(page.get_by_role("button", name="Đăng nhập")).to_be_visible()
    deadline = time.monotonic() + 10  # (the page does not wait for central's answer)
    while ui_server.http.get(me, headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the copied token still works after log-out"
        time.sleep(0.1)
    page.context.close()


def test_a_speeding_case_shows_the_excess_and_fine_band_its_evidence_states(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """71 ± 4 km/h where 60 is allowed: at least 67, so 7 km/h over (the 5-10 band), as
    the rule judged it; 71 - 60 = 11 would read as the 10-20 band."""
    measured = Measurement(speed_kmh=71.0, speed_uncertainty_kmh=4.0, speed_limit_kmh=60.0)
    vid = ui_server.add_case(camera="ql13-km22", type=ViolationType.SPEEDING, measured=measured)
    page = open_page(browser, errors, ui_server, "officer")
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    facts = page.locator("#facts")
    expect(facts).to_contain_text("71 km/h ± 4, ít nhất 67 km/h (giới hạn 60 km/h, vượt 7 km/h)")
    expect(facts).to_contain_text("vượt từ 5 đến dưới 10 km/h (Nghị định 168/2024)")
    expect(facts).not_to_contain_text("vượt 11 km/h")
    # The deadline's state, then its time ("Còn hạn hạn 22:06" read the word twice).
    expect(facts).to_contain_text("Gửi thông báo (10 ngày): Còn hạn · hạn chót ")
    # The decree's own ends: exactly 20 km/h over is "from 10 to 20", exactly 35 "over 20
    # to 35", and the band follows the excess as written (20.04 is written 20).
    bands = {
        (80.0, 0.0): ("vượt 20 km/h", "vượt từ 10 đến 20 km/h"),
        (81.04, 1.0): ("vượt 20 km/h", "vượt từ 10 đến 20 km/h"),
        (95.0, 0.0): ("vượt 35 km/h", "vượt trên 20 đến 35 km/h"),
        (95.2, 0.0): ("vượt 35,2 km/h", "vượt trên 35 km/h"),
    }
    more = []
    for (speed, uncertainty), (over, band) in bands.items():
        m = Measurement(speed_kmh=speed, speed_uncertainty_kmh=uncertainty, speed_limit_kmh=60.0)
        more.append(ui_server.add_case(camera="ql13-km22", type=ViolationType.SPEEDING, measured=m))
        page.goto(f"{ui_server.url}/ui/#/case/{more[-1]}")
        expect(facts).to_contain_text(over)
        expect(facts).to_contain_text(f"{band} (Nghị định 168/2024)")
    page.context.close()
    for v in (vid, *more):
        ui_server.take_out(v)


def test_a_decision_the_sessions_end_refused_is_offered_again_with_what_was_typed(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """An officer writes a rejection's reason while the session ends (its token run out,
    or ended at another desk): the rejection is not recorded, and after logging in again
    the case page says so and offers it again with the reason as written."""
    name = f"reader-{time.monotonic_ns() % 10**8}"
    account = {"username": name, "password": PASSWORD, "role": "officer"}
    made = ui_server.call("admin", "POST", "/api/v1/users", json=account)
    assert made.status_code == 201, made.text
    ui_server.users[name] = name
    vid = ui_server.add_case(camera="ql13-km22")
    page = open_page(browser, errors, ui_server, name)
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    page.keyboard.press("r")
    dialog = page.locator("#dlg-reject")
    reason = "Xe cứu thương làm nhiệm vụ, đèn ưu tiên thấy rõ ở khung hình sau"
    dialog.get_by_label("Lý do", exact=True).fill(reason)
    assert ui_server.call(name, "POST", "/api/v1/auth/logout").status_code == 204
    dialog.get_by_role("button", name="Bác bỏ hồ sơ").click()
    expect(page.locator(".login .banner")).to_contain_text("Phiên làm việc đã hết")
    assert ui_server.case("supervisor", vid)["status"] != "rejected"
    page.get_by_label("Tên đăng nhập").fill(name)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}", exact=True)).to_be_visible()
    expect(page.locator("#banner")).to_contain_text(f"«Bác bỏ» được ghi nhận: hồ sơ #{vid}")
    expect(page.locator("#banner")).to_contain_text(reason)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Lý do", exact=True)).to_have_value(reason)
    dialog.get_by_role("button", name="Bác bỏ hồ sơ").click()
    expect(page.locator("#toast")).to_contain_text(f"Đã bác bỏ hồ sơ #{vid}")
    case = ui_server.case("supervisor", vid)
    assert (case["status"], case["reject_reason"]) == ("rejected", reason)
    # Once offered again it is gone: the case is not offered it a second time.
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.locator("#read-only")).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()
    page.context.close()


def test_a_case_without_a_plate_to_act_on_says_why_it_cannot_be_confirmed(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """A plate read but failing the format check: no Confirm button, and the page says
    why and how on, where the officer looks for it and when the C key is pressed."""
    vid = ui_server.add_case(camera="ql13-km22", plate="61A-12", plate_valid=False)
    page = open_page(browser, errors, ui_server, "officer")
    # The queue says so too, in words, and does not set the reading as a plate.
    row = page.locator(f'#queue tr[data-id="{vid}"]')
    expect(row.locator("td:nth-child(5)")).to_have_text("61A-12 sai định dạng")
    expect(row.locator("td.plate")).to_have_count(0)
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.locator("#act-reject")).to_be_visible()
    expect(page.locator("#act-confirm")).to_have_count(0)
    expect(page.locator("#action-note")).to_contain_text("chưa có biển số hợp lệ")
    page.keyboard.press("c")
    expect(page.locator("#toast")).to_contain_text("Chưa thể xác nhận")
    assert ui_server.case("supervisor", vid)["status"] == "new"
    # A correction that does not read as a plate is said so, with the reading a repaired
    # look-alike gives; corrected, it goes at once.
    page.keyboard.press("p")
    warning = page.locator("#plate-warning")
    page.locator("#plate-input").fill("61A1234S")
    page.keyboard.press("Enter")
    expect(warning).to_contain_text("“61A1234S” không đọc được là biển số Việt Nam.")
    expect(warning).to_contain_text("Có phải 61A-123.45?")
    expect(page.locator("#dlg-plate")).to_be_visible()
    page.locator("#plate-input").fill("61A-123.45")
    expect(warning).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.locator("#plate-value")).to_have_text("61A-123.45")
    expect(page.locator("#act-confirm")).to_be_visible()
    expect(page.locator("#action-note")).to_have_count(0)
    # One that is no Vietnamese plate (a foreign one) is sent when asked a second time.
    page.keyboard.press("p")
    page.locator("#plate-input").fill("51A123")
    page.keyboard.press("Enter")
    expect(warning).to_contain_text("bấm Lưu biển số lần nữa để gửi")
    assert ui_server.case("supervisor", vid)["plate_corrected"] == "61A-123.45"
    page.keyboard.press("Enter")
    expect(page.locator("#plate-value")).to_have_text("51A123")
    assert ui_server.case("supervisor", vid)["plate_corrected"] == "51A123"
    page.context.close()
    ui_server.act("officer", vid, {"action": "reject", "reason": "xong"})


def test_a_case_with_no_plate_read_says_so_in_words_not_as_a_plate(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """No plate read is said in plain words in the queue, the search's results and on the
    case page, not set in the plate's monospace type as if it were plate text to copy; the
    cases with a plate keep it, and the search by plate still finds them alone."""
    plated = ui_server.add_case(camera="ql13-km22", plate="61A-777.01")
    vid = ui_server.add_case(camera="ql13-km22", plate=None)
    page = open_page(browser, errors, ui_server, "officer")

    def said_in_words(cell: Any, words: Any) -> None:
        expect(cell).to_have_text("không đọc được")
        expect(cell.locator(".plate")).to_have_count(0)
        expect(words).to_have_text("không đọc được")
        for each in (cell, words):
            assert "plate" not in (each.get_attribute("class") or "").split()
        family = words.evaluate("e => getComputedStyle(e).fontFamily")
        assert "mono" not in family.lower(), family

    try:
        page.goto(f"{ui_server.url}/ui/#/queue?camera=ql13-km22")
        row = page.locator(f'#queue tr[data-id="{vid}"]')
        # (a screen reader reads the cell under its column's header, as the words alone)
        cell = row.get_by_role("cell", name="không đọc được", exact=True)
        said_in_words(cell, cell.locator(".no-plate"))
        plate = page.locator(f'#queue tr[data-id="{plated}"] td:nth-child(5)')
        expect(plate).to_have_text("61A-777.01")
        expect(plate).to_have_class("plate")
        page.goto(f"{ui_server.url}/ui/#/search?camera=ql13-km22")
        cell = page.locator(f'#results tr[data-id="{vid}"] td:nth-child(5)')
        said_in_words(cell, cell.locator(".no-plate"))
        page.goto(f"{ui_server.url}/ui/#/search?plate=61A-777.01")
        expect(page.locator("#results tbody tr")).to_have_count(1)
        expect(page.locator(f'#results tr[data-id="{plated}"] td.plate')).to_have_text("61A-777.01")
        page.goto(f"{ui_server.url}/ui/#/case/{vid}")
        expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
        said_in_words(page.locator("#plate-value"), page.locator("#plate-value"))
        expect(page.locator("#plate-value").locator("..")).to_contain_text(
            "đọc tại hiện trường: không đọc được"
        )
    finally:
        page.context.close()
        ui_server.take_out(vid, plated)


def test_a_case_found_twice_is_rejected_as_a_duplicate_of_the_other_in_one_choice(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The banner names the other case of the same act; the rejection's reasons offer
    "a duplicate of" it, so the trail says which case stands."""
    now = datetime.now(UTC)
    kept = ui_server.add_case(camera="ql13-km22", plate="61D-777.77", occurred_at=now)
    twin = ui_server.add_case(
        camera="ql13-km22", plate="61D-777.77", occurred_at=now - timedelta(minutes=4)
    )
    page = open_page(browser, errors, ui_server, "officer")
    page.goto(f"{ui_server.url}/ui/#/case/{twin}")
    expect(page.locator("#same-plate")).to_contain_text(f"#{kept}")
    page.keyboard.press("r")
    dialog = page.locator("#dlg-reject")
    duplicate = f"Trùng lặp: cùng một hành vi với hồ sơ #{kept}"
    dialog.get_by_label("Lý do thường gặp").select_option(label=duplicate)
    expect(dialog.get_by_label("Lý do", exact=True)).to_have_value(duplicate)
    dialog.get_by_role("button", name="Bác bỏ hồ sơ").click()
    expect(page.locator("#toast")).to_contain_text(f"Đã bác bỏ hồ sơ #{twin}")
    assert ui_server.case("supervisor", twin)["reject_reason"] == duplicate
    page.context.close()
    ui_server.take_out(kept)


def test_an_officer_finds_a_decided_case_by_its_plate_as_typed(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The queue holds the open cases only: a decided one (a driver calls about a notice)
    is found by its plate, typed without its punctuation, and opened from the results."""
    vid = ui_server.add_case(camera="ql13-km22", plate="61E-135.79")
    ui_server.act("officer2", vid, {"action": "start_review"},
                  {"action": "reject", "reason": "Xe ưu tiên"})  # fmt: skip
    page = open_page(browser, errors, ui_server, "officer")
    page.locator("#nav").get_by_role("link", name="Tra cứu hồ sơ").click()
    expect(page.locator("#search-count")).to_contain_text("Nhập biển số")
    page.get_by_label("Biển số", exact=True).fill("61e13579")
    page.get_by_role("button", name="Tìm").click()
    row = page.locator(f'#results tr[data-id="{vid}"]')
    expect(row).to_contain_text("Đã bác bỏ")
    expect(page.locator("#search-count")).to_contain_text("Tìm thấy 1 hồ sơ")
    page.get_by_label("Trạng thái").select_option(label="Mới")
    page.get_by_role("button", name="Tìm").click()
    expect(page.locator("#search-count")).to_have_text("Không tìm thấy hồ sơ nào.")
    page.go_back()
    row.get_by_role("link", name=f"#{vid}").click()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    expect(page.locator("#read-only")).to_contain_text("Đã bác bỏ")
    page.context.close()


def test_a_step_that_cannot_be_undone_is_asked_once_more_and_can_be_cancelled(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """ "Close (paid)" and "Escalate" sit side by side and neither can be taken back: a
    click asks first, with Cancel focused, and Cancel (or Escape) changes nothing."""
    vid = ui_server.add_case(camera="ql13-km22", plate="61F-246.80")
    ui_server.act("officer", vid, {"action": "start_review"}, {"action": "confirm"})
    ui_server.act("supervisor", vid, {"action": "issue_notice"})
    page = open_page(browser, errors, ui_server, "supervisor")
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    final = page.locator("#dlg-final")
    page.locator("#act-escalate").click()
    expect(final).to_be_visible()
    expect(final).to_contain_text(f"Chuyển xử lý: hồ sơ #{vid}")
    expect(final).to_contain_text("không thể hoàn tác")
    expect(final.get_by_role("button", name="Hủy")).to_be_focused()
    page.keyboard.press("Enter")  # (on Cancel)
    expect(final).to_be_hidden()
    page.locator("#act-close").click()
    page.keyboard.press("Escape")
    expect(final).to_be_hidden()
    assert ui_server.case("supervisor", vid)["status"] == "notice_issued"
    page.locator("#act-escalate").click()
    final.get_by_role("button", name="Chuyển xử lý").click()
    expect(page.locator("#toast")).to_contain_text(f"Hồ sơ #{vid}: Đã chuyển xử lý")
    assert ui_server.case("supervisor", vid)["status"] == "escalated"
    page.context.close()


def test_the_one_key_shortcuts_can_be_turned_off_and_stay_off(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """A word said to speech input, or a slip of the hand, must not confirm a case: the
    help (?) turns the one-key shortcuts off, for good in this browser, and on again."""
    vid, page = open_new_case(browser, errors, ui_server, "officer2")
    page.keyboard.press("?")
    help_dialog = page.locator("#dlg-help")
    switch = help_dialog.get_by_label("Dùng phím tắt một ký tự")
    expect(switch).to_be_checked()
    switch.uncheck()
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    page.reload()
    expect(page.locator("#act-confirm")).to_be_visible()
    page.keyboard.press("c")
    page.keyboard.press("r")
    time.sleep(0.3)
    expect(page.locator("#dlg-reject")).to_be_hidden()
    assert ui_server.case("supervisor", vid)["status"] == "new"
    page.keyboard.press("?")
    expect(switch).not_to_be_checked()
    switch.check()
    page.keyboard.press("Escape")
    page.keyboard.press("c")
    expect(page.locator("#toast")).to_contain_text(f"Đã xác nhận hồ sơ #{vid}")
    page.context.close()


def test_the_confirmed_cases_awaiting_a_notice_are_listed_the_first_due_first(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The notice is due 10 days after the violation: the supervisor's list of confirmed
    cases starts with the oldest, not the newest."""
    now = datetime.now(UTC)
    newer = ui_server.add_case(camera="mptv-km27", occurred_at=now - timedelta(days=2))
    older = ui_server.add_case(camera="mptv-km27", occurred_at=now - timedelta(days=3))
    for vid in (newer, older):
        ui_server.act("officer", vid, {"action": "start_review"}, {"action": "confirm"})
    page = open_page(browser, errors, ui_server, "supervisor")
    page.goto(f"{ui_server.url}/ui/#/deadlines")
    links = page.locator("#awaiting tbody tr td:first-child a")
    expect(links.filter(has_text=f"#{older}")).to_have_count(1)
    order = links.all_inner_texts()
    assert order.index(f"#{older}") < order.index(f"#{newer}"), order
    expect(page.locator("#awaiting-more")).to_have_count(0)
    page.context.close()
    for vid in (newer, older):
        ui_server.act("supervisor", vid, {"action": "release"}, {"action": "start_review"},
                      {"action": "reject", "reason": "xong"})  # fmt: skip
