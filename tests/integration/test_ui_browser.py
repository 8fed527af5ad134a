"""The web UI in Debian's Chromium against the real central service: log-in, the review of
a case end to end, the keyboard flow, two officers on one case, what each role sees, the
supervisor's pages, the IOC page with its live feed, an older node's English-only
explanation, and the language switch.

Screenshots are kept under test-artifacts/browser/.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, update

from central.api.feed import REPLAY_MAX
from central.db import session_factory, transaction
from central.intake import Message
from central.models import Camera, HealthChange, TrafficMinute
from central.records import KeyCache, record_batch, register_node
from roadwatch.case_package import verify_package
from roadwatch.contract import (
    CameraState,
    NodeState,
    NodeStatus,
    NodeTopic,
    VehicleClass,
    ViolationType,
    node_topic,
    to_wire,
)
from roadwatch.contract.signing import (
    generate_private_key,
    key_fingerprint,
    public_key_pem,
    sign,
)
from tests.factories import status_position
from tests.ui_fixtures import (
    CAMERAS,
    NODE,
    PASSWORD,
    SITE,
    VIEWPORT,
    PageErrors,
    UiServer,
    browser,
    shot,
    traffic_by_class,
    traffic_vehicles,
    ui_server,
    wait_until,
)

__all__ = ["browser", "ui_server"]  # fixtures used by name

pytestmark = [pytest.mark.integration, pytest.mark.browser]
TIMEOUT_MS = 10_000
NONZERO_BARS = "bars => bars.filter(b => Number(b.getAttribute('height')) > 0).length"


@pytest.fixture
def errors() -> Iterator[PageErrors]:
    seen = PageErrors()
    yield seen
    assert not seen.errors, seen.errors
    assert not seen.not_found, seen.not_found


def new_page(browser: Any, errors: PageErrors) -> Any:
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
    context.set_default_timeout(TIMEOUT_MS)
    return errors.watch(context.new_page())


def login(page: Any, server: UiServer, who: str) -> None:
    page.goto(f"{server.url}/")
    page.get_by_label("Tên đăng nhập").fill(server.username(who))
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.locator("#logout")).to_be_visible()


@pytest.fixture
def officer_page(browser: Any, ui_server: UiServer, errors: PageErrors) -> Iterator[Any]:
    page = new_page(browser, errors)
    login(page, ui_server, "officer")
    yield page
    page.context.close()


def test_login_shows_the_queue_oldest_first_with_filters(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    now = datetime.now(UTC)
    newer = ui_server.add_case(camera="mptv-km18", occurred_at=now - timedelta(hours=2))
    older = ui_server.add_case(
        camera="mptv-km18",
        type=ViolationType.SPEEDING,
        occurred_at=now - timedelta(hours=5),
        plate="51F-678.90",
    )
    page = new_page(browser, errors)
    page.goto(f"{ui_server.url}/")
    # Vietnamese by default; a wrong password is refused with a message.
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    expect(page.get_by_role("heading", name="Đăng nhập")).to_be_visible()
    # The page names an icon of its own that its content policy lets load (without one a
    # browser asks for /favicon.ico, and every load logged that 404).
    icon_loads = (
        "new Promise(done => { const img = new Image();"
        " img.onload = () => done(img.naturalWidth > 0); img.onerror = () => done(false);"
        " img.src = document.querySelector('link[rel=icon]').href; })"
    )
    assert page.evaluate(icon_loads) is True
    page.get_by_label("Tên đăng nhập").fill(ui_server.username("officer"))
    page.get_by_label("Mật khẩu").fill("not the password")
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.locator("#login-error")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    shot(page, "01-login-refused")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Hồ sơ chờ xử lý")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("Nguyễn Văn An")
    # The whole queue is ordered by violation time, the oldest (first due) at the top.
    ids = [
        int(x)
        for x in page.locator("#queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    ]
    assert ids.index(older) < ids.index(newer)
    shot(page, "02-queue")
    # Filters: camera, then type, then a time window.
    page.get_by_label("Camera", exact=True).select_option("mptv-km18")
    page.get_by_role("button", name="Lọc", exact=True).click()
    rows = page.locator("#queue tbody tr")
    # Waited for as a whole: counting the rows at once could catch the table mid-render.
    cameras = rows.locator("td:nth-child(4)")
    expect(cameras.filter(has_not_text="mptv-km18")).to_have_count(0)
    expect(cameras.first).to_have_text("mptv-km18")
    expect(rows.first).to_have_attribute("data-id", str(older))
    page.get_by_label("Loại vi phạm").select_option("speeding")
    page.get_by_role("button", name="Lọc", exact=True).click()
    expect(page.locator("#queue tbody tr")).to_have_count(1)
    expect(page.locator("#queue tbody tr")).to_have_attribute("data-id", str(older))
    page.get_by_label("Loại vi phạm").select_option("")
    local = (now + timedelta(hours=7) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("Từ").fill(local)
    page.get_by_role("button", name="Lọc", exact=True).click()
    expect(page.locator(f"#queue tr[data-id='{newer}']")).to_be_visible()
    expect(page.locator(f"#queue tr[data-id='{older}']")).to_have_count(0)
    shot(page, "03-queue-filtered")
    page.get_by_role("button", name="Xóa lọc").click()
    expect(page.locator(f"#queue tr[data-id='{older}']")).to_be_visible()
    page.context.close()
    ui_server.take_out(newer, older)


def test_an_officer_reviews_a_case_end_to_end(officer_page: Any, ui_server: UiServer) -> None:
    page = officer_page
    vid = ui_server.add_case(camera="ql13-km22", plate="61A-999.99")
    # The same act found again 5 minutes on (the vehicle hidden a while, tracked again).
    twin = ui_server.add_case(
        camera="ql13-km22",
        plate="61A-999.99",
        occurred_at=datetime.now(UTC) - timedelta(minutes=55),
    )
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    same = page.locator("#same-plate")
    expect(same).to_contain_text("cùng một hành vi bị ghi nhận hai lần")
    expect(same.locator(f"a[href='#/case/{twin}']")).to_have_text(f"#{twin}")
    expect(same).to_contain_text("(Mới)")
    # Evidence: the frame at the moment, the clip, the plate and lamp crops.
    frame = page.locator("#frame")
    expect(frame).to_be_visible()
    wait_until(page, "document.querySelector('#frame')?.naturalWidth === 640")
    expect(page.locator("#crop-plate_crop img")).to_be_visible()
    expect(page.locator("#crop-lamp_crop img")).to_be_visible()
    facts = page.locator("#facts")
    expect(facts).to_contain_text("Vượt đèn đỏ")
    expect(facts).to_contain_text("QL13 Km 22+300, Thuận An")
    expect(facts).to_contain_text("2,4 giây sau khi đèn đỏ")
    # The rule's explanation in Vietnamese, as the node signed it, marked so for a screen
    # reader; its English original a click away.
    explanation = page.locator("#explanation")
    expect(explanation).to_have_text(
        "Ô tô vượt đèn đỏ: qua vạch dừng của làn 2 2,4 giây sau khi đèn đỏ bật, rồi đi "
        "tiếp qua vạch thứ hai mà không dừng lại"
    )
    expect(explanation).to_have_attribute("lang", "vi")
    expect(page.locator("#explanation-note")).to_have_count(0)
    original = page.locator("#explanation-other")
    expect(original.locator("p")).not_to_be_visible()
    original.get_by_text("Bản gốc (tiếng Anh)").click()
    expect(original.locator("p")).to_have_text(
        "car crossed the stop line of lane 2 2.4 s after red began, "
        "and went on past the second line without stopping"
    )
    expect(original.locator("p")).to_have_attribute("lang", "en")
    expect(page.locator("#facts")).to_contain_text("Gửi thông báo (10 ngày)")
    # Zoom the plate crop with its slider.
    before = page.locator("#crop-plate_crop img").evaluate("img => img.clientWidth")
    page.get_by_label("Phóng to ảnh cắt Biển số").fill("4")
    after = page.locator("#crop-plate_crop img").evaluate("img => img.clientWidth")
    assert after >= 3.5 * before
    shot(page, "04-case")
    # The clip plays in the page (H.264 MP4 from the evidence store).
    page.get_by_role("button", name=re.compile("Đoạn video")).click()
    wait_until(
        page,
        "(() => { const v = document.querySelector('#clip'); return !!v && v.readyState >= 2 "
        "&& v.videoWidth === 640 && v.duration > 2; })()",
    )
    shot(page, "05-case-clip")
    # Correct the plate, then confirm.
    page.get_by_role("button", name=re.compile("Sửa biển số")).click()
    dialog = page.locator("#dlg-plate")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Biển số như trong chứng cứ").fill("61a-999.98")
    dialog.get_by_role("button", name="Lưu biển số").click()
    expect(page.locator("#plate-value")).to_have_text("61A-999.98")
    expect(page.locator("#same-plate")).to_have_count(0)  # (another plate now)
    expect(page.locator("#audit")).to_contain_text("Sửa biển số")
    # The trail's details in Vietnamese too: fields by name, statuses as statuses.
    expect(page.locator("#audit")).to_contain_text("từ: Mới; sang: Đang xem xét; phiên bản: 1")
    expect(page.locator("#audit")).to_contain_text("biển số sau: 61A-999.98")
    page.get_by_role("button", name=re.compile("Xác nhận")).click()
    expect(page.locator("#toast")).to_contain_text(f"Đã xác nhận hồ sơ #{vid}")
    case = ui_server.case("supervisor", vid)
    assert case["status"] == "confirmed"
    assert case["plate_corrected"] == "61A-999.98"
    assert case["plate_text"] == "61A-999.99"
    assert case["confirmed_by"] == ui_server.username("officer")
    ui_server.take_out(twin)


def test_the_keyboard_flow(officer_page: Any, ui_server: UiServer) -> None:
    page = officer_page
    base = datetime.now(UTC) - timedelta(days=3)
    ids = [
        ui_server.add_case(camera="ql13-km31", occurred_at=base + timedelta(minutes=m))
        for m in range(3)
    ]
    page.goto(f"{ui_server.url}/ui/#/queue?camera=ql13-km31")
    expect(page.locator("#queue tbody tr")).to_have_count(3)
    # J moves down the queue, K back up, Enter opens the selected case.
    page.locator("body").press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(page.locator("#queue tr.selected")).to_have_attribute("data-id", str(ids[1]))
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[0]}")).to_be_visible()
    # ? shows the shortcuts; Escape closes them.
    page.keyboard.press("?")
    expect(page.locator("#dlg-help")).to_be_visible()
    shot(page, "06-keyboard-help")
    page.keyboard.press("Escape")
    expect(page.locator("#dlg-help")).to_be_hidden()
    # 4 shows the clip, 2 the frame again.
    page.keyboard.press("4")
    expect(page.locator("#clip")).to_be_visible()
    page.keyboard.press("2")
    expect(page.locator("#frame")).to_be_visible()
    # C confirms and moves on to the next case.
    page.keyboard.press("c")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[1]}")).to_be_visible()
    # R asks for a reason (required) and rejects.
    page.keyboard.press("r")
    dialog = page.locator("#dlg-reject")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Bác bỏ hồ sơ").click()
    expect(page.locator("#reject-error")).to_be_visible()
    dialog.get_by_label("Lý do thường gặp").select_option(index=1)
    expect(dialog.get_by_label("Lý do", exact=True)).to_have_value(
        "Biển số không đọc được hoặc bị che"
    )
    shot(page, "07-keyboard-reject")
    dialog.get_by_role("button", name="Bác bỏ hồ sơ").click()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[2]}")).to_be_visible()
    # J/K walk the open cases: nothing is before this one any more.
    page.keyboard.press("k")
    expect(page.locator("#toast")).to_have_text("Đây là hồ sơ đầu tiên trong danh sách chờ.")
    # The browser's back button shows the rejected case, which offers no decision now.
    page.go_back()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[1]}")).to_be_visible()
    expect(page.locator("#read-only")).to_contain_text("Đã bác bỏ")
    expect(page.locator("#act-confirm")).to_have_count(0)
    page.go_forward()
    expect(page.get_by_role("heading", name=f"Hồ sơ #{ids[2]}")).to_be_visible()
    # P corrects the plate from the keyboard; Enter saves.
    page.keyboard.press("p")
    expect(page.locator("#plate-input")).to_be_focused()
    page.keyboard.type("61A-000.01")
    page.keyboard.press("Enter")
    expect(page.locator("#plate-value")).to_have_text("61A-000.01")
    states = [ui_server.case("officer", i) for i in ids]
    assert [s["status"] for s in states] == ["confirmed", "rejected", "in_review"]
    assert states[1]["reject_reason"] == "Biển số không đọc được hoặc bị che"
    assert states[2]["plate_corrected"] == "61A-000.01"


def test_two_officers_cannot_decide_the_same_case_twice(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    vid = ui_server.add_case(camera="mptv-km4", plate="72C-111.22")
    first = new_page(browser, errors)
    second = new_page(browser, errors)
    login(first, ui_server, "officer")
    login(second, ui_server, "officer2")
    for page in (first, second):
        page.goto(f"{ui_server.url}/ui/#/case/{vid}")
        expect(page.locator("#act-confirm")).to_be_visible()
    first.keyboard.press("c")
    expect(first.locator("#toast")).to_contain_text(f"Đã xác nhận hồ sơ #{vid}")
    # The second officer still sees the case as it was and decides it too: refused.
    second.get_by_role("button", name=re.compile("Bác bỏ")).click()
    second.locator("#reject-reason").fill("Không thấy vi phạm")
    second.get_by_role("button", name="Bác bỏ hồ sơ").click()
    alert = second.locator("#banner")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(f"Hồ sơ #{vid} vừa được cán bộ khác xử lý")
    expect(alert).to_contain_text(f"Đã xác nhận, bởi {ui_server.username('officer')}")
    expect(second.locator("#act-reject")).to_have_count(0)
    shot(second, "08-conflict")
    case = ui_server.case("supervisor", vid)
    assert case["status"] == "confirmed"
    assert case["reject_reason"] is None
    audit = ui_server.call("supervisor", "GET", f"/api/v1/violations/{vid}/audit").json()
    assert [e["action"] for e in audit] == ["start_review", "confirm"]
    first.context.close()
    second.context.close()


def test_each_role_sees_only_its_part(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    vid = ui_server.add_case(camera="ql13-km22")
    # IOC: the operations page, no review queue, no case page, no review buttons.
    page = new_page(browser, errors)
    login(page, ui_server, "ioc")
    expect(page.get_by_role("heading", name="Trung tâm điều hành")).to_be_visible()
    nav = page.locator("#nav")
    expect(nav.get_by_role("link")).to_have_text(["Trung tâm điều hành", "Thống kê", "Lưu lượng"])
    expect(page.locator("#act-confirm, #act-reject, #act-correct_plate")).to_have_count(0)
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.locator(".forbidden")).to_contain_text("không được mở trang này")
    expect(page.locator("#act-confirm")).to_have_count(0)
    page.goto(f"{ui_server.url}/ui/#/queue")
    expect(page.locator(".forbidden")).to_be_visible()
    page.context.close()
    # Officer: no user management.
    page = new_page(browser, errors)
    login(page, ui_server, "officer")
    expect(page.locator("#nav").get_by_role("link")).to_have_text(
        ["Hồ sơ chờ xử lý", "Tra cứu hồ sơ", "Lưu lượng"]
    )
    page.goto(f"{ui_server.url}/ui/#/users")
    expect(page.locator(".forbidden")).to_contain_text("Cán bộ xử lý")
    shot(page, "09-officer-no-users")
    page.context.close()
    # Admin: users, but no review buttons and no evidence.
    page = new_page(browser, errors)
    login(page, ui_server, "admin")
    expect(page.get_by_role("heading", name="Người dùng", exact=True)).to_be_visible()
    expect(page.locator(f"#users tr[data-user='{ui_server.username('officer')}']")).to_be_visible()
    new_user = f"canbo-{vid}"
    page.get_by_label("Tên đăng nhập").fill(new_user)
    page.get_by_label("Họ và tên").fill("Võ Thị Em")
    page.get_by_label("Vai trò", exact=True).select_option("officer")
    page.get_by_label("Mật khẩu ban đầu (ít nhất 10 ký tự)").fill("một mật khẩu mới")
    page.get_by_role("button", name="Tạo người dùng").click()
    row = page.locator(f"#users tr[data-user='{new_user}']")
    expect(row).to_contain_text("Võ Thị Em")
    # A name already taken is said in Vietnamese, from the code the server refuses with.
    page.get_by_label("Tên đăng nhập").fill(new_user)
    page.get_by_label("Mật khẩu ban đầu (ít nhất 10 ký tự)").fill("một mật khẩu khác")
    page.get_by_role("button", name="Tạo người dùng").click()
    expect(page.locator("#banner")).to_have_text(f"Tên đăng nhập {new_user} đã có.")
    row.get_by_label(f"{new_user} đang hoạt động").uncheck()
    row.get_by_role("button", name=f"Lưu {new_user}").click()
    expect(page.locator("#toast")).to_contain_text(f"Đã lưu người dùng {new_user}")
    shot(page, "10-admin-users")
    users = ui_server.call("admin", "GET", "/api/v1/users").json()
    assert {u["username"]: u["active"] for u in users}[new_user] is False
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    expect(page.locator("#act-confirm")).to_have_count(0)
    expect(page.locator("#read-only")).to_be_visible()
    for key in "1234":  # (the evidence keys on a page that shows no evidence: no error)
        page.keyboard.press(key)
    expect(page.locator("#viewer")).to_have_count(0)
    page.context.close()


def test_an_admin_adds_a_nodes_new_key_and_revokes_its_old_one(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The edge nodes page: a node's keys with their state; a new key pasted in is added
    (its earlier key stays in force), a key added twice is refused in a banner, and the
    old key is revoked with its reason and the time it is revoked from."""
    old_key = generate_private_key()
    old, new = old_key.public_key(), generate_private_key().public_key()
    site = f"t{int(time.time() * 1000) % 10**9}"
    with transaction(session_factory(ui_server.engine)) as session:
        register_node(
            session, site=site, node="node-07", public_key_pem=public_key_pem(old).decode()
        )
    # Its clock an hour behind central's: said on its section.
    late = NodeStatus(
        site=site,
        node="node-07",
        state=NodeState.ONLINE,
        sent_at=datetime.now(UTC) - timedelta(hours=1),
        **status_position(),
    )
    topic = node_topic(site, "node-07", NodeTopic.STATUS)
    with transaction(session_factory(ui_server.engine)) as session:
        taken = record_batch(session, [Message(topic, to_wire(sign(late, old_key)))], KeyCache())
        assert not taken.quarantined
    name, old_fp, new_fp = f"{site}/node-07", key_fingerprint(old), key_fingerprint(new)
    page = new_page(browser, errors)
    login(page, ui_server, "admin")
    page.locator("#nav").get_by_role("link", name="Thiết bị biên").click()
    expect(page.get_by_role("heading", name="Thiết bị biên và khóa ký")).to_be_visible()
    node = page.locator(f"section.node[data-node='{name}']")
    expect(node.get_by_role("heading", name=name)).to_be_visible()
    expect(node.locator(".node-clock")).to_contain_text("Đồng hồ của thiết bị lệch -3600 giây")
    expect(node.locator("tbody tr")).to_have_count(1)
    expect(node.locator(f"tr[data-key='{old_fp}']")).to_contain_text("Đang hiệu lực")

    box = node.get_by_label("Khóa công khai mới (PEM, từ roadwatch edge keygen)")
    box.fill(public_key_pem(new).decode())
    node.get_by_role("button", name="Thêm khóa").dblclick()  # (sent once: no refusal)
    expect(page.locator("#toast")).to_contain_text(f"Đã thêm khóa {new_fp[:16]} cho {name}")
    expect(page.locator("#banner")).to_be_hidden()
    node = page.locator(f"section.node[data-node='{name}']")  # (the page was drawn again)
    expect(node.locator("tbody tr")).to_have_count(2)
    expect(node.locator(f"tr[data-key='{new_fp}']")).to_contain_text("Đang hiệu lực")
    node.get_by_label("Khóa công khai mới (PEM, từ roadwatch edge keygen)").fill(
        public_key_pem(new).decode()
    )
    node.get_by_role("button", name="Thêm khóa").click()
    expect(page.locator("#banner")).to_have_text(
        f"Không thay đổi: Khóa {new_fp[:16]} đã được đăng ký cho thiết bị {name}"
        " (mỗi thiết bị có khóa riêng)."
    )

    row = node.locator(f"tr[data-key='{old_fp}']")
    revoke = row.get_by_role("button", name=f"Thu hồi khóa {old_fp[:16]}")
    row.get_by_label("Lý do thu hồi").fill("   ")  # (the page asks for a reason first)
    revoke.click()
    expect(page.locator("#banner")).to_have_text("Hãy ghi lý do thu hồi khóa.")
    row.get_by_label("Lý do thu hồi").fill("Tủ thiết bị bị cạy, hộp bị mất")
    row.get_by_label("Thu hồi từ (giờ Việt Nam; để trống: ngay bây giờ)").fill(
        "2026-12-01T08:00:00"
    )
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def on_dialog(dialog: Any) -> None:
            asked.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))  # thought better of it: nothing changes
    revoke.click()
    expect(row).to_contain_text("Đang hiệu lực")
    assert asked and "Không thể hoàn tác" in asked[0]
    page.once("dialog", answer(True))
    revoke.click()
    expect(page.locator("#toast")).to_contain_text(f"Đã thu hồi khóa {old_fp[:16]} của {name}")
    row = page.locator(f"section.node[data-node='{name}'] tr[data-key='{old_fp}']")
    expect(row).to_contain_text("Đã thu hồi từ 08:00:00 01/12/2026")
    expect(row).to_contain_text("Tủ thiết bị bị cạy, hộp bị mất")
    expect(row.get_by_role("button")).to_have_count(0)
    shot(page, "14-admin-node-keys")
    keys = ui_server.call("admin", "GET", f"/api/v1/nodes/{site}/node-07/keys").json()
    revoked = {k["fingerprint"]: k["revoked_at"] for k in keys}
    assert revoked[new_fp] is None
    # 08:00 in Vietnam, as every time on the page is, kept as UTC.
    assert datetime.fromisoformat(revoked[old_fp]) == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    page.context.close()


def test_a_supervisor_names_and_places_a_camera(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The cameras page: a camera's name, place and map position edited and saved (and
    audited); one coordinate without the other is refused on the page. The place its node
    names shows beside one set here that differs."""
    cams = ui_server.call("supervisor", "GET", "/api/v1/cameras").json()
    [cam] = [c for c in cams if c["camera"] == "mptv-km18"]
    before = {k: cam[k] for k in ("name", "latitude", "longitude")}
    before["registered_place"] = cam["registered_place"]
    who = f"{cam['site']}/{cam['node']}/mptv-km18"
    seeded = {c[0]: (c[5], c[6]) for c in CAMERAS}
    ui_server.set_cameras(seeded, places={"mptv-km18": "ĐT 742 Km 18"})
    page = new_page(browser, errors)
    try:
        login(page, ui_server, "supervisor")
        page.locator("#nav").get_by_role("link", name="Camera", exact=True).click()
        expect(page.get_by_role("heading", name="Camera", exact=True)).to_be_visible()
        row = page.locator(f"#cameras tr[data-camera='{who}']")
        expect(row.get_by_label(f"Tên của {who}")).to_have_value(before["name"])
        expect(row.get_by_label(f"Vị trí của {who}")).to_have_value(before["registered_place"])
        expect(row.locator(".node-place")).to_have_text(
            "Thiết bị biên (và bằng chứng) ghi: ĐT 742 Km 18"
        )
        row.get_by_label(f"Tên của {who}").fill("Camera Km 18 hướng Tân Vạn")
        row.get_by_label(f"Vị trí của {who}").fill("ĐT 742 Km 18+500, Tân Uyên")
        row.get_by_label(f"Vĩ độ của {who}").fill("")
        row.get_by_role("button", name=f"Lưu {who}").click()
        expect(page.locator("#banner")).to_contain_text("Hãy nhập cả vĩ độ và kinh độ")
        row.get_by_label(f"Vĩ độ của {who}").fill("11.051234")
        row.get_by_label(f"Kinh độ của {who}").fill("106.641234")
        row.get_by_role("button", name=f"Lưu {who}").click()
        expect(page.locator("#toast")).to_contain_text(f"Đã lưu camera {who}")
        shot(page, "15-supervisor-cameras")
        [saved] = [
            c
            for c in ui_server.call("supervisor", "GET", "/api/v1/cameras").json()
            if c["id"] == cam["id"]
        ]
        assert (saved["name"], saved["place"]) == (
            "Camera Km 18 hướng Tân Vạn", "ĐT 742 Km 18+500, Tân Uyên",
        )  # fmt: skip
        assert (saved["latitude"], saved["longitude"]) == (11.051234, 106.641234)
        trail = ui_server.call("supervisor", "GET", "/api/v1/audit?limit=5").json()
        assert any(
            e["action"] == "camera_update" and e["actor"] == ui_server.username("supervisor")
            for e in trail
        )
    finally:
        page.context.close()
        back = ui_server.call("admin", "PATCH", f"/api/v1/cameras/{cam['id']}", json=before)
        assert back.status_code == 200, back.text  # (the other pages' tests see it as seeded)
        ui_server.set_cameras(seeded)


def test_supervisor_notices_statistics_and_audit(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    now = datetime.now(UTC)
    due = ui_server.add_case(camera="mptv-km27", occurred_at=now - timedelta(days=9, hours=12))
    overdue = ui_server.add_case(camera="mptv-km27", occurred_at=now - timedelta(days=12))
    decided = ui_server.add_case(camera="mptv-km27", occurred_at=now - timedelta(days=1))
    officer = ui_server.token("officer")
    for action, version in (("start_review", 1), ("confirm", 2)):
        r = ui_server.call(
            "officer",
            "POST",
            f"/api/v1/violations/{decided}/review",
            json={"action": action, "version": version},
        )
        assert r.status_code == 200, (officer[:0], r.text)
    page = new_page(browser, errors)
    login(page, ui_server, "supervisor")
    page.locator("#nav").get_by_role("link", name="Thông báo và thời hạn").click()
    table = page.locator("#deadlines")
    expect(table.locator("tr.row-due", has=page.locator(f"a[href='#/case/{due}']"))).to_be_visible()
    expect(
        table.locator("tr.row-overdue", has=page.locator(f"a[href='#/case/{overdue}']"))
    ).to_be_visible()
    expect(page.locator("#awaiting")).to_contain_text(f"#{decided}")
    shot(page, "11-deadlines")
    # The confirmed case: its audit trail, and the notice issued by another person.
    page.locator("#awaiting").get_by_role("link", name=f"#{decided}").click()
    audit = page.locator("#audit")
    expect(audit).to_contain_text(ui_server.username("officer"))
    expect(audit.locator("tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Gửi thông báo").click()
    final = page.locator("#dlg-final")  # (asked once more: it cannot be undone)
    expect(final).to_contain_text("không thể hoàn tác")
    final.get_by_role("button", name="Gửi thông báo").click()
    expect(page.locator("#toast")).to_contain_text("Đã gửi thông báo")
    expect(audit.locator("tbody tr")).to_have_count(3)
    expect(page.locator("#facts")).to_contain_text("Chuyển xử lý (20 ngày)")
    shot(page, "12-supervisor-case")
    # The case for a court: one ZIP that checks out without central; the export is audited.
    with page.expect_download() as download:
        page.get_by_role("button", name="Xuất hồ sơ cho tòa án (ZIP)").click()
    assert download.value.suggested_filename == f"case-{decided}.zip"
    central_pub = (ui_server.data_dir / "case-signing.pub").read_bytes()
    report = verify_package(Path(download.value.path()), central_key=central_pub)
    assert report.ok, [c for c in report.checks if not c.ok]
    expect(page.locator("#toast")).to_contain_text(f"Đã xuất hồ sơ #{decided}")
    expect(audit.locator("tbody tr")).to_have_count(4)
    expect(audit).to_contain_text("Đã xuất hồ sơ")
    # Statistics by type, camera and day, drawn as inline SVG; the range ends today in
    # Vietnam, whatever the hour.
    page.locator("#nav").get_by_role("link", name="Thống kê").click()
    today = (datetime.now(UTC) + timedelta(hours=7)).date().isoformat()
    expect(page.locator("#s-to")).to_have_value(today)
    assert "null" not in page.locator("main").inner_text()
    for chart in ("chart-type", "chart-camera", "chart-status"):
        expect(page.locator(f"#{chart} svg rect.bar").first).to_be_visible()
    labels = page.locator("#chart-type svg").get_attribute("aria-label") or ""
    assert "Vượt đèn đỏ" in labels and "Chạy quá tốc độ" in labels
    expect(page.locator("#chart-camera svg")).to_contain_text("mptv-km27")
    days = page.locator("#chart-day svg rect.bar")
    expect(days).to_have_count(14)
    assert days.evaluate_all(NONZERO_BARS) >= 10
    shot(page, "13-statistics")
    page.context.close()


def test_ioc_page_live_status_and_feed(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    # The node heard from now, each camera as seeded: a node silent (no status for two
    # minutes, as when this runs late in the file) has its cameras shown unknown.
    ui_server.set_cameras({c[0]: (c[5], c[6]) for c in CAMERAS})
    page = new_page(browser, errors)
    login(page, ui_server, "ioc")
    map_ = page.locator("#map-svg")
    expect(map_.locator("g.cam")).to_have_count(5)
    expect(map_.locator("g.cam[data-camera='ql13-km31']")).to_have_attribute(
        "data-state", "stalled"
    )
    expect(map_.locator("g.cam[data-camera='mptv-km4']")).to_have_attribute(
        "data-state", "view_shifted"
    )
    expect(map_.locator("g.cam[data-camera='mptv-km27']")).to_have_attribute("data-state", "down")
    expect(page.locator("#cameras tr[data-camera='mptv-km4']")).to_contain_text("Lệch góc quay")
    expect(page.locator("#feed-state")).to_have_text("Trực tiếp")
    assert page.locator("#flow-ql13-km22 svg rect.bar").evaluate_all(NONZERO_BARS) >= 18
    expect(page.locator("#flow-mptv-km18")).to_contain_text("phương tiện")
    # The chart's hours as a spreadsheet, named for their range: a row per camera and hour.
    with page.expect_download() as download:
        page.get_by_role("link", name="Tải CSV").click()
    assert re.fullmatch(
        r"traffic_by-hour_\d{4}-\d\d-\d\dT\d{4}\+0700_\d{4}-\d\d-\d\dT\d{4,6}\+0700\.csv",
        download.value.suggested_filename,
    ), download.value.suggested_filename
    rows = list(csv.DictReader(Path(download.value.path()).read_text("utf-8").splitlines()))
    assert {r["camera"] for r in rows} >= {"ql13-km22", "mptv-km18"}
    assert all(r["bucket"].endswith(":00:00+07:00") and int(r["vehicles"]) >= 0 for r in rows)
    assert "car" not in rows[0]  # (the totals alone: the page shows no class)
    # A new violation and a camera that stalls arrive over the live feed.
    vid = ui_server.add_case(camera="mptv-km18", type=ViolationType.SPEEDING, plate="61K-246.80")
    item = page.locator(f"#feed li[data-id='{vid}']")
    expect(item).to_contain_text("61K-246.80")
    # The camera is named as the table and the map name it, not by its id alone.
    expect(item).to_contain_text("tại MP-TV Km 18 (mptv-km18)")
    ui_server.set_cameras({"mptv-km18": (CameraState.STALLED, "no new frame for 9 s")})
    expect(map_.locator("g.cam[data-camera='mptv-km18']")).to_have_attribute(
        "data-state", "stalled"
    )
    expect(page.locator("#feed li").first).to_have_attribute("data-id", str(vid))
    # A place set on central reaches the page with the camera's event.
    [cam] = [
        c
        for c in ui_server.call("supervisor", "GET", "/api/v1/cameras").json()
        if c["camera"] == "mptv-km18"
    ]
    where = f"/api/v1/cameras/{cam['id']}"
    moved = ui_server.call("supervisor", "PATCH", where, json={"registered_place": "ĐT 742 Km 19"})
    assert moved.status_code == 200, moved.text
    place = page.locator("#cameras tr[data-camera='mptv-km18'] td:nth-child(2)")
    expect(place).to_have_text("ĐT 742 Km 19")
    back = {"registered_place": cam["registered_place"]}
    assert ui_server.call("supervisor", "PATCH", where, json=back).status_code == 200
    expect(place).to_have_text(cam["place"])
    # An edge's reason in its fixed words is said in the reader's language; any other (an
    # error's own text) as the edge wrote it.
    ui_server.set_cameras(
        {
            "mptv-km18": (CameraState.UP, "streaming"),
            "ql13-km31": (CameraState.STALLED, "no new frame for 12 s"),
        }
    )
    reason = "#cameras tr[data-camera='{}'] td:nth-child(4)".format
    expect(page.locator(reason("mptv-km18"))).to_have_text("đang nhận hình")
    expect(page.locator(reason("ql13-km22"))).to_contain_text("không báo camera này")
    raw = page.locator(reason("ql13-km31"))
    expect(raw).to_have_text("no new frame for 12 s")
    expect(raw).to_have_attribute("lang", "en")
    # Fixed words around a number or a name the edge fills in are said too.
    ui_server.set_cameras(
        {
            "mptv-km18": (
                CameraState.STALLED,
                "frames not processed for 124 s: the pipeline is stuck",
            )
        }
    )
    expect(page.locator(reason("mptv-km18"))).to_have_text(
        "khung hình không được xử lý trong 124 giây: luồng xử lý bị treo"
    )
    expect(page.locator(reason("mptv-km18"))).not_to_have_attribute("lang", "en")
    # Read-only: nothing on the page changes a record.
    expect(page.locator("main button")).to_have_count(0)
    shot(page, "14-ioc")
    ui_server.set_cameras({"mptv-km18": (CameraState.UP, "")})
    page.context.close()
    ui_server.take_out(vid)  # (the queue's filter test counts mptv-km18's speeding cases)


def test_ioc_page_says_where_the_feed_left_health_changes_out(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """More health changes at once than a replay sends: the feed's ``health_cut`` is told
    to the reader, and the states shown are the latest ones."""
    page = new_page(browser, errors)
    login(page, ui_server, "ioc")
    expect(page.locator("#feed-state")).to_have_text("Trực tiếp")
    notice = page.locator("#feed-cut")
    expect(notice).to_be_hidden()
    now = datetime.now(UTC)
    states = ["stalled", "up"]  # (the last, as the page shows it, stalled)
    with transaction(session_factory(ui_server.engine)) as session:
        rows = [
            HealthChange(
                at=now - timedelta(milliseconds=2 * (REPLAY_MAX - n)),
                kind="camera",
                site=SITE,
                node=NODE,
                camera="ql13-km22",
                state=states[n % 2],
                reason="",
            )
            for n in range(REPLAY_MAX + 1)
        ]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    try:
        expect(notice).to_be_visible(timeout=TIMEOUT_MS)  # (a thousand changes to draw)
        expect(notice).to_contain_text("không được phát lại")
        expect(notice).to_contain_text("trạng thái hiển thị là trạng thái hiện tại")
        expect(page.locator("#map-svg g.cam[data-camera='ql13-km22']")).to_have_attribute(
            "data-state", states[REPLAY_MAX % 2]
        )
        shot(page, "15-ioc-feed-cut")
    finally:
        with transaction(session_factory(ui_server.engine)) as session:
            session.execute(delete(HealthChange).where(HealthChange.id.in_(ids)))
        page.context.close()


def test_the_ioc_pages_traffic_flow_is_read_again_while_it_stays_open(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The page stays open on the centre's wall for hours: its last 24 hours of traffic
    follow what the cameras report, not the hours before it was opened."""
    page = new_page(browser, errors)
    flows: list[str] = []
    page.on("request", lambda r: flows.append(r.url) if "/stats/traffic" in r.url else None)
    page.clock.install()
    login(page, ui_server, "ioc")
    expect(page.locator("#flow-ql13-km22")).to_contain_text("phương tiện")
    quiet = page.locator("#flow-mptv-km27")
    expect(quiet).to_have_count(0)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ui_server.add_traffic("mptv-km27", [now - timedelta(minutes=2), now], base=30)
    page.clock.fast_forward(30_000)
    page.wait_for_timeout(500)
    expect(quiet).to_have_count(0)  # (not read again at every tick)
    page.clock.fast_forward(31_000)
    expect(quiet).to_contain_text("mptv-km27")
    assert quiet.locator("svg rect.bar").evaluate_all(NONZERO_BARS) >= 1
    expect(page.locator("#flow-ql13-km22")).to_contain_text("phương tiện")
    expect(page.locator("#feed-state")).to_have_text("Trực tiếp")
    # Each reading asks for the totals alone: the vehicles by class cost central more to
    # add up, and the page shows none.
    assert len(flows) >= 2 and not [u for u in flows if "classes" in parse_qs(urlsplit(u).query)]
    page.context.close()


def test_the_ioc_pages_traffic_flow_tells_no_data_from_an_empty_road(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """An hour a camera reported nothing is no data, not a zero bar; an hour it reported
    in part says how many minutes its bar counts."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    whole = [hour - timedelta(hours=5, minutes=-m) for m in range(60)]
    part = [hour - timedelta(hours=3, minutes=-m) for m in range(15)]
    ui_server.add_traffic("ql13-km31", whole + part, base=12)
    slot = "#flow-ql13-km31 svg g[data-hour='{:%Y-%m-%dT%H}']".format
    page = new_page(browser, errors)
    try:
        login(page, ui_server, "ioc")
        expect(page.locator("#flow-ql13-km31")).to_contain_text("phương tiện")
        full = page.locator(slot(hour - timedelta(hours=5)))
        expect(full.locator("rect.bar")).to_have_count(1)
        expect(full).not_to_have_class(re.compile("gap|partial"))
        down = page.locator(slot(hour - timedelta(hours=4)))
        expect(down).to_have_class("gap")
        expect(down.locator("rect.bar")).to_have_count(0)
        expect(down.locator("rect.no-data")).to_have_count(1)
        expect(down.locator("title")).to_contain_text("không có dữ liệu")
        partial = page.locator(slot(hour - timedelta(hours=3)))
        expect(partial).to_have_class("partial")
        expect(partial.locator("title")).to_contain_text("15/60 phút")
        # (the hours before its first report are no data too)
        expect(page.locator(slot(hour - timedelta(hours=6)))).to_have_class("gap")
        label = page.locator("#flow-ql13-km31 svg").get_attribute("aria-label") or ""
        assert "không có dữ liệu" in label and "15/60 phút" in label
        expect(page.locator("#flow .flow-legend")).to_contain_text("không có dữ liệu")
        page.locator("#lang").click()
        expect(page.locator("#flow .flow-legend")).to_contain_text("no data")
        expect(page.locator(slot(hour - timedelta(hours=3))).locator("title")).to_contain_text(
            "15 of 60 minutes"
        )
        page.locator("#flow-ql13-km31").scroll_into_view_if_needed()
        shot(page, "14b-ioc-flow-gaps")
        page.locator("#lang").click()
        expect(page.locator("#flow .flow-legend")).to_contain_text("không có dữ liệu")
    finally:
        page.context.close()
        with transaction(session_factory(ui_server.engine)) as session:
            session.execute(delete(TrafficMinute).where(TrafficMinute.camera == "ql13-km31"))


VN = ZoneInfo("Asia/Ho_Chi_Minh")


def vi_number(n: int) -> str:
    """``n`` as the page writes it in Vietnamese: 4.321."""
    return f"{n:,}".replace(",", ".")


def test_the_traffic_page_is_in_the_menu_of_each_role_central_answers_it_for(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """The menu offers the traffic page to a role exactly when central answers that role
    its statistics."""
    for who in ("officer", "supervisor", "admin", "ioc"):
        answered = ui_server.call(who, "GET", "/api/v1/stats/traffic?by=hour").status_code
        assert answered in (200, 403), answered
        page = new_page(browser, errors)
        login(page, ui_server, who)
        link = page.locator("#nav").get_by_role("link", name="Lưu lượng")
        expect(link).to_have_count(1 if answered == 200 else 0)
        page.context.close()


def csv_link(page: Any) -> dict[str, list[str]]:
    href = page.locator("#traffic-csv").get_attribute("href") or ""
    assert urlsplit(href).path == "/api/v1/stats/traffic", href
    return parse_qs(urlsplit(href).query)


def test_the_traffic_page_shows_a_camera_day_by_hour_by_minute_and_per_lane(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """A day of one camera, in Vietnam time: by hour with its totals, an hour reported in
    part and an hour with no report told apart; by minute over one hour and the whole day;
    per lane; the download asks for exactly what is shown, and the link keeps the choices
    through a reload."""
    day = (datetime.now(VN) - timedelta(days=3)).date()
    eight = datetime(day.year, day.month, day.day, 8, tzinfo=VN)
    # 08:00-08:59 whole, 09:00-09:14 only, nothing from 10:00; two lanes.
    minutes = [eight + timedelta(minutes=m) for m in range(75)]
    camera, base = "mptv-km27", 10
    ui_server.add_traffic(camera, minutes, base, lanes=2)
    both = [traffic_vehicles(base, n) + traffic_vehicles(base, n, 1) for n in range(75)]
    # (each minute's cars and motorcycles, both lanes together)
    cars, motorcycles = (
        [traffic_by_class(base, n)[c] + traffic_by_class(base, n, 1)[c] for n in range(75)]
        for c in (VehicleClass.CAR, VehicleClass.MOTORCYCLE)
    )

    def slot(at: datetime) -> str:
        return f"#traffic-table tr[data-slot='{at.astimezone(UTC):%Y-%m-%dT%H}']"

    page = new_page(browser, errors)
    try:
        login(page, ui_server, "ioc")
        page.locator("#nav").get_by_role("link", name="Lưu lượng").click()
        expect(page.get_by_role("heading", name="Lưu lượng giao thông")).to_be_visible()
        page.get_by_label("Camera", exact=True).select_option(camera)
        page.get_by_label("Ngày").fill(day.isoformat())
        page.get_by_role("button", name="Xem").click()
        expect(page).to_have_url(re.compile(rf"#/traffic\?camera={camera}&day={day}&by=hour$"))
        expect(page.locator(slot(eight))).to_contain_text(vi_number(sum(both[:60])))
        expect(page.locator(slot(eight))).to_contain_text("60")
        # A column per class counted, named in Vietnamese, in the contract's order (cars
        # first), each slot's vehicles of that class; none for a class not counted.
        expect(page.locator("#traffic-table thead th")).to_have_text(
            ["Thời gian", "Số phương tiện", "Ô tô", "Xe máy", "Tốc độ trung bình",
             "Độ chiếm dụng làn", "Số phút có báo"]
        )  # fmt: skip
        by_class = page.locator(slot(eight)).locator("td[data-class]")
        expect(by_class).to_have_text([vi_number(sum(cars[:60])), vi_number(sum(motorcycles[:60]))])
        nine = page.locator(slot(eight + timedelta(hours=1)))
        expect(nine).to_contain_text(vi_number(sum(both[60:])))
        expect(nine).to_contain_text("15/60")
        ten = page.locator(slot(eight + timedelta(hours=2)))
        expect(ten).to_have_class("gap")
        expect(ten).to_contain_text("không có dữ liệu")
        expect(ten.locator("td.muted")).to_have_attribute("colspan", "6")  # (to the row's end)
        expect(page.locator("#traffic-table tbody tr")).to_have_count(24)
        chart = page.locator("#traffic-chart")
        expect(chart).to_contain_text(f"{camera}: {vi_number(sum(both))} phương tiện")
        expect(chart.locator("g.gap")).to_have_count(22)
        expect(chart.locator("g.partial")).to_have_count(1)
        start, end = f"{day}T00:00:00+07:00", f"{day + timedelta(days=1)}T00:00:00+07:00"
        assert csv_link(page) == {
            "camera": [camera], "by": ["hour"], "from": [start], "to": [end],
            "utc_offset": ["+07:00"], "classes": ["true"], "format": ["csv"],
        }  # fmt: skip
        with page.expect_download() as download:
            page.get_by_role("link", name="Tải CSV").click()
        rows = list(csv.DictReader(Path(download.value.path()).read_text("utf-8").splitlines()))
        assert [(r["bucket"], int(r["vehicles"])) for r in rows] == [
            (f"{day}T08:00:00+07:00", sum(both[:60])),
            (f"{day}T09:00:00+07:00", sum(both[60:])),
        ]
        assert [(int(r["car"]), int(r["motorcycle"]), int(r["bus"])) for r in rows] == [
            (sum(cars[:60]), sum(motorcycles[:60]), 0),
            (sum(cars[60:]), sum(motorcycles[60:]), 0),
        ]
        shot(page, "16-traffic-by-hour")
        # By minute over 09:00-09:59, per lane.
        page.get_by_label("Chia theo").select_option("minute")
        page.get_by_label("Giờ (khi xem theo phút)").select_option("09")
        page.get_by_label("Theo từng làn").check()
        page.get_by_role("button", name="Xem").click()
        expect(page).to_have_url(re.compile(r"&by=minute&hour=09&per=lane$"))
        nine_five = (eight + timedelta(hours=1, minutes=5)).astimezone(UTC)
        cell = "#traffic-table tr[data-slot='{:%Y-%m-%dT%H:%M}'][data-lane='{}']".format
        expect(page.locator(cell(nine_five, "lane-1"))).to_contain_text(
            str(traffic_vehicles(base, 65))
        )
        expect(page.locator(cell(nine_five, "lane-2"))).to_contain_text(
            str(traffic_vehicles(base, 65, 1))
        )
        counted = traffic_by_class(base, 65, 1)
        expect(page.locator(cell(nine_five, "lane-2")).locator("td[data-class]")).to_have_text(
            [str(counted[VehicleClass.CAR]), str(counted[VehicleClass.MOTORCYCLE])]
        )
        expect(page.locator(cell(nine_five + timedelta(minutes=10), "lane-1"))).to_have_class("gap")
        expect(page.locator("#traffic-table tbody tr")).to_have_count(120)
        expect(page.locator("#traffic-lane-1")).to_contain_text("lane-1")
        expect(page.locator("#traffic-lane-2 g.gap")).to_have_count(45)
        assert csv_link(page) == {
            "camera": [camera], "by": ["minute"], "per": ["lane"],
            "from": [f"{day}T09:00:00+07:00"], "to": [f"{day}T10:00:00+07:00"],
            "utc_offset": ["+07:00"], "classes": ["true"], "format": ["csv"],
        }  # fmt: skip
        shot(page, "16b-traffic-by-minute-per-lane")
        # A reload (or the link sent to a colleague) shows the same.
        page.reload()
        expect(page.locator(cell(nine_five, "lane-2"))).to_contain_text(
            str(traffic_vehicles(base, 65, 1))
        )
        expect(page.get_by_label("Camera", exact=True)).to_have_value(camera)
        expect(page.get_by_label("Ngày")).to_have_value(day.isoformat())
        expect(page.get_by_label("Chia theo")).to_have_value("minute")
        expect(page.get_by_label("Giờ (khi xem theo phút)")).to_have_value("09")
        expect(page.get_by_label("Theo từng làn")).to_be_checked()
        # The whole day by minute: central's most in one request.
        page.get_by_label("Giờ (khi xem theo phút)").select_option("")
        page.get_by_label("Theo từng làn").uncheck()
        page.get_by_role("button", name="Xem").click()
        expect(page).to_have_url(re.compile(rf"day={day}&by=minute$"))
        expect(page.locator("#traffic-table tbody tr")).to_have_count(24 * 60)
        expect(page.locator("#traffic-table tbody tr:not(.gap)")).to_have_count(75)
        assert csv_link(page)["from"] == [start] and csv_link(page)["to"] == [end]
        # What central refuses is said in words, in either language.
        page.goto(f"{ui_server.url}/ui/#/traffic?camera=no-such-cam&day={day}")
        expect(page.locator("#traffic-error")).to_have_text(
            "Trung tâm chưa từng nhận tin từ camera no-such-cam: hãy chọn một camera trong"
            " danh sách."
        )
        page.locator("#lang").click()
        expect(page.locator("#traffic-error")).to_contain_text("never heard from camera")
        # (central's 404 for it, as the page meant to ask)
        assert [u for u in errors.not_found if "camera=no-such-cam" in u] == errors.not_found
        errors.not_found.clear()
        page.goto(f"{ui_server.url}/ui/#/traffic?camera={camera}&day=3-12-2026")
        expect(page.locator("#traffic-error")).to_contain_text("is not a day")
        # A day off the calendar is not read as another (2026-02-31 as 3 March), and a
        # camera named by two of site/node/id not as every camera of that node.
        page.goto(f"{ui_server.url}/ui/#/traffic?camera={camera}&day=2026-02-31")
        expect(page.locator("#traffic-error")).to_contain_text("is not a day")
        page.goto(f"{ui_server.url}/ui/#/traffic?camera=ql13-km22/node-01&day={day}")
        expect(page.locator("#traffic-error")).to_contain_text("never heard from camera")
        assert errors.not_found == []  # (asked nothing of central)
        page.locator("#lang").click()
    finally:
        page.context.close()
        with transaction(session_factory(ui_server.engine)) as session:
            session.execute(delete(TrafficMinute).where(TrafficMinute.camera == camera))


def test_the_ioc_feed_says_no_plate_read_in_words(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """A case with no plate read is said so in plain words in the live feed, not set in the
    plate's type as if it were a plate."""
    page = new_page(browser, errors)
    login(page, ui_server, "ioc")
    expect(page.locator("#feed-state")).to_have_text("Trực tiếp")
    vid = ui_server.add_case(camera="mptv-km4", plate=None)
    try:
        item = page.locator(f"#feed li[data-id='{vid}']")
        expect(item).to_contain_text("không đọc được")
        expect(item.locator(".plate")).to_have_count(0)
        expect(item.locator(".no-plate")).to_have_text("không đọc được")
        family = item.locator(".no-plate").evaluate("e => getComputedStyle(e).fontFamily")
        assert "mono" not in family.lower(), family
    finally:
        page.context.close()
        ui_server.take_out(vid)


def test_the_ioc_camera_table_dates_a_change_before_today(
    browser: Any, ui_server: UiServer, errors: PageErrors
) -> None:
    """A camera down since yesterday shows the day it changed, not only a time of day
    read as this morning's."""
    long_ago = datetime.now(UTC) - timedelta(days=3)
    # The node heard from now, each camera as seeded: a node silent (no status for two
    # minutes) has its cameras shown unknown from when the silence began.
    ui_server.set_cameras({c[0]: (c[5], c[6]) for c in CAMERAS})
    with transaction(session_factory(ui_server.engine)) as session:
        session.execute(
            update(Camera).where(Camera.camera == "mptv-km27").values(updated_at=long_ago)
        )
        # (and its history: the feed replays the last minute's changes to the page, the
        # seeded one among them when this runs first)
        session.execute(
            update(HealthChange)
            .where(HealthChange.kind == "camera", HealthChange.camera == "mptv-km27")
            .values(at=long_ago)
        )
    page = new_page(browser, errors)
    login(page, ui_server, "ioc")
    when = "#cameras tr[data-camera='{}'] td:nth-child(6)".format
    vietnam = ZoneInfo("Asia/Ho_Chi_Minh")
    expect(page.locator(when("mptv-km27"))).to_contain_text(
        long_ago.astimezone(vietnam).strftime("%d/%m/%Y")
    )
    cameras = ui_server.call("ioc", "GET", "/api/v1/cameras").json()
    today = datetime.now(vietnam).date()
    for cam in cameras:
        at = datetime.fromisoformat(cam["updated_at"]).astimezone(vietnam)
        if at.date() == today:
            expect(page.locator(when(cam["camera"]))).to_have_text(at.strftime("%H:%M:%S"))
    page.context.close()


def test_an_older_nodes_case_shows_its_english_explanation_as_the_nodes_text(
    officer_page: Any, ui_server: UiServer
) -> None:
    """A node before the Vietnamese explanation wrote English only: its text is shown as
    written, marked English, with a note saying whose words they are."""
    page = officer_page
    vid = ui_server.add_case(camera="ql13-km22", vietnamese=False)
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    explanation = page.locator("#explanation")
    expect(explanation).to_have_text(
        "car crossed the stop line of lane 2 2.4 s after red began, "
        "and went on past the second line without stopping"
    )
    expect(explanation).to_have_attribute("lang", "en")
    expect(page.locator("#explanation-note")).to_contain_text(
        "Nguyên văn của thiết bị tại hiện trường, bằng tiếng Anh"
    )
    expect(page.locator("#explanation-note")).to_contain_text(
        "Các số đo ở trên nêu chính những dữ kiện đó bằng tiếng Việt."
    )
    expect(page.locator("#explanation-other")).to_have_count(0)
    expect(page.locator("#facts")).to_contain_text("2,4 giây sau khi đèn đỏ")
    shot(page, "04b-case-older-node")


def test_the_language_switch(officer_page: Any, ui_server: UiServer) -> None:
    page = officer_page
    vid = ui_server.add_case(camera="ql13-km22", type=ViolationType.SPEEDING)
    page.goto(f"{ui_server.url}/ui/#/case/{vid}")
    expect(page.get_by_role("heading", name=f"Hồ sơ #{vid}")).to_be_visible()
    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name=f"Case #{vid}")).to_be_visible()
    expect(page.locator("#facts")).to_contain_text("Speeding")
    expect(page.locator("#facts")).to_contain_text(
        "km/h ± 1.1, at least 91.3 km/h (limit 80 km/h, 11.3 km/h over)"
    )
    expect(page.locator("#nav").get_by_role("link")).to_have_text(
        ["Review queue", "Find cases", "Traffic"]
    )
    # In English the node's English explanation leads; its Vietnamese is a click away.
    expect(page.locator("#explanation")).to_have_attribute("lang", "en")
    expect(page.locator("#explanation")).to_contain_text("car in lane 2 measured 92.4 ± 1.1 km/h")
    other = page.locator("#explanation-other")
    other.get_by_text("In Vietnamese, as the node wrote it").click()
    expect(other.locator("p")).to_have_attribute("lang", "vi")
    expect(other.locator("p")).to_contain_text("chạy quá tốc độ: đo được tốc độ 92,4 ± 1,1 km/h")
    expect(page.get_by_role("button", name=re.compile("Confirm"))).to_be_visible()
    shot(page, "15-case-english")
    # The choice is kept across a reload, and switching back restores Vietnamese.
    page.reload()
    expect(page.get_by_role("heading", name=f"Case #{vid}")).to_be_visible()
    page.get_by_role("button", name="Chuyển sang tiếng Việt").click()
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    expect(page.locator("#facts")).to_contain_text("Chạy quá tốc độ")
    expect(page.locator("#explanation")).to_have_attribute("lang", "vi")
    expect(page.locator("#explanation")).to_contain_text("Ô tô trên làn 2 chạy quá tốc độ")
    expect(page.get_by_role("button", name=re.compile("Xác nhận"))).to_be_visible()
