/* Roadwatch web UI: review for traffic police, notices and statistics for supervisors,
   users for administrators, the read-only operations-centre (IOC) page, and a camera's
   traffic flow for every role.
   Plain JavaScript, no build step; every visible string comes from i18n/<lang>.json. */
"use strict";

(() => {
  const TZ = "Asia/Ho_Chi_Minh";
  const VN_OFFSET = "+07:00"; // (Vietnam keeps UTC+7 all year)
  const MAX_STATS_DAYS = 366; // the most days central counts by day in one request
  const LANGS = ["vi", "en"];
  const LOCALES = { vi: "vi-VN", en: "en-GB" };
  const TYPES = [
    "speeding", "red_light", "wrong_way", "forbidden_lane", "solid_line", "no_stopping", "no_helmet",
  ];
  const ROLES = ["officer", "supervisor", "admin", "ioc"];
  const VIEWS = ["frame_before", "frame_at", "frame_after", "clip"];
  const CROPS = ["plate_crop", "vehicle_crop", "lamp_crop"];
  const DECIDING = ["confirm", "reject", "correct_plate"];
  const PLATE_RE = /^[0-9A-Z.\- ]{1,16}$/;
  const CROP_HEIGHT = 140; // px: a crop is first shown this high, then zoomed
  const STATUSES = ["new", "in_review", "confirmed", "rejected", "notice_issued", "closed", "escalated"];
  const CAMERA_STATES = ["up", "stalled", "view_shifted", "down", "paused", "offline", "unknown"];

  const PAGES = {
    queue: { roles: ["officer", "supervisor"], nav: "nav.queue", render: renderQueue },
    case: { roles: ["officer", "supervisor", "admin"], render: renderCasePage },
    search: { roles: ["officer", "supervisor", "admin"], nav: "nav.search", render: renderSearch },
    deadlines: { roles: ["supervisor"], nav: "nav.deadlines", render: renderDeadlines },
    stats: { roles: ["supervisor", "admin", "ioc"], nav: "nav.stats", render: renderStats },
    ioc: { roles: ["supervisor", "admin", "ioc"], nav: "nav.ioc", render: renderIoc },
    users: { roles: ["admin"], nav: "nav.users", render: renderUsers },
    nodes: { roles: ["admin"], nav: "nav.nodes", render: renderNodes },
    cameras: { roles: ["supervisor", "admin"], nav: "nav.cameras", render: renderCameras },
    // (every role central answers /stats/traffic for)
    traffic: { roles: ["officer", "supervisor", "admin", "ioc"], nav: "nav.traffic", render: renderTraffic },
  };
  const NAV_ORDER = ["queue", "search", "deadlines", "ioc", "stats", "traffic", "users", "cameras", "nodes"];
  const HOME = { officer: "queue", supervisor: "queue", admin: "users", ioc: "ioc" };
  const NODE_STATES = ["online", "offline", "silent", "unknown"];

  const dicts = {};
  const S = {
    lang: "vi",
    dict: {},
    session: null, // {token, role, username, fullName}
    page: null, // what the current page holds; page.cleanup() runs when it is left
    queueIds: [], // the last review queue shown: [{id, occurred_at}]
    busy: false,
    gen: 0,
  };

  // ------------------------------------------------------------------ i18n

  async function loadLang(lang) {
    if (!LANGS.includes(lang)) lang = "vi";
    if (!dicts[lang]) {
      const r = await fetch(`/ui/i18n/${lang}.json`);
      dicts[lang] = await r.json();
    }
    S.lang = lang;
    S.dict = dicts[lang];
    localStorage.setItem("rw.lang", lang);
    document.documentElement.lang = lang;
  }

  function t(key, params) {
    let s = S.dict[key];
    if (s === undefined) {
      console.error(`missing translation ${S.lang}:${key}`);
      s = key;
    }
    if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] ?? m));
    return s;
  }

  function translateStatic(root) {
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-aria]").forEach((el) => {
      el.setAttribute("aria-label", t(el.dataset.i18nAria));
    });
  }

  const locale = () => LOCALES[S.lang];

  function fmtTime(iso) {
    if (!iso) return t("misc.none");
    return new Intl.DateTimeFormat(locale(), {
      timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    }).format(new Date(iso));
  }

  function fmtClock(iso) {
    return new Intl.DateTimeFormat(locale(), {
      timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    }).format(new Date(iso));
  }

  // The clock alone for a time of today (Vietnam's day), the date too for an earlier one:
  // a camera down since yesterday is not read as down since this morning.
  function fmtSince(iso) {
    if (!iso) return t("misc.none");
    const day = (d) => new Intl.DateTimeFormat("en-CA", { timeZone: TZ }).format(d);
    return day(new Date(iso)) === day(new Date()) ? fmtClock(iso) : fmtTime(iso);
  }

  function fmtDay(iso) {
    return new Intl.DateTimeFormat(locale(), { timeZone: "UTC", day: "2-digit", month: "2-digit" })
      .format(new Date(iso));
  }

  // The bare two-digit hour ("03"), in any language: vi-VN writes "03 giờ", too wide for
  // the flow charts' bars.
  function fmtHour(iso) {
    return new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hour: "2-digit", hour12: false })
      .format(new Date(iso));
  }

  function fmtNum(x, digits = 1) {
    if (x === null || x === undefined) return t("misc.none");
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(x);
  }

  // ------------------------------------------------------------------ DOM

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  // A form's submit handler run one at a time: its submit buttons are off until the request
  // settles. (A double click sent it twice, and the second's refusal said that what had
  // just been done had failed.)
  function oneAtATime(handler) {
    let busy = false;
    return async (e) => {
      e.preventDefault();
      if (busy) return;
      busy = true;
      const buttons = [...e.currentTarget.querySelectorAll("button[type=submit]")];
      for (const b of buttons) b.disabled = true;
      try {
        await handler(e);
      } finally {
        busy = false;
        for (const b of buttons) b.disabled = false;
      }
    };
  }

  // A trail entry's detail in the reader's language: the fields central writes by name,
  // statuses as statuses; a field it does not know is shown as it is.
  function auditDetail(detail) {
    return Object.entries(detail).map(([k, v]) => {
      const label = S.dict[`audit.field.${k}`] ? t(`audit.field.${k}`) : k;
      let value = v;
      if ((k === "from" || k === "to") && S.dict[`status.${v}`]) value = t(`status.${v}`);
      else if (Array.isArray(v)) value = v.length ? v.join(", ") : t("misc.none");
      else if (v === null || v === undefined || v === "") value = t("misc.none");
      return `${label}: ${value}`;
    }).join("; ");
  }

  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(el, attrs);
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  const $ = (sel, root = document) => root.querySelector(sel);
  const main = () => $("#main");

  function banner(message, kind = "error") {
    const el = $("#banner");
    el.textContent = message;
    el.className = `banner ${kind}`;
    el.hidden = false;
  }

  function clearBanner() {
    const el = $("#banner");
    el.hidden = true;
    el.textContent = "";
  }

  let toastTimer = null;
  function toast(message) {
    const el = $("#toast");
    el.textContent = message;
    el.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  // ------------------------------------------------------------------ API

  // A refused request. Where the server names its reason (``code``, ``params``), the
  // message is in the reader's language; else it is the server's own English ``detail``.
  class ApiError extends Error {
    constructor(status, detail, code = null, params = {}) {
      super(refusalText(code, params) ?? detail);
      this.status = status;
      this.detail = detail;
      this.code = code;
    }
  }

  function refusalText(code, params) {
    if (!code || S.dict[`error.${code}`] === undefined) return null;
    const shown = { ...params };
    if (shown.role) shown.role = t(`role.${shown.role}`);
    if (shown.action) shown.action = t(`action.${shown.action}`);
    if (shown.status) shown.status = t(`status.${shown.status}`);
    return t(`error.${code}`, shown);
  }

  // A validation error's list, as "field: problem; …".
  function validationText(detail) {
    if (typeof detail === "string") return detail;
    if (!Array.isArray(detail)) return JSON.stringify(detail);
    return detail.map((d) => {
      const where = (d.loc || []).filter((x) => x !== "body").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }

  // A token is renewed when less than this is left of it, so a reviewer at work is never
  // logged out mid-case; an idle one still is, when the token runs out.
  const REFRESH_BEFORE_MS = 5 * 60 * 1000;
  let refreshing = null;

  async function freshToken() {
    const session = S.session;
    if (!session?.expiresAt || session.expiresAt - Date.now() > REFRESH_BEFORE_MS) return;
    refreshing ??= (async () => {
      try {
        const r = await fetch("/api/v1/auth/refresh", {
          method: "POST", headers: { Authorization: `Bearer ${session.token}` },
        });
        if (r.ok && S.session === session) {
          const tok = await r.json();
          saveSession({ ...session, token: tok.access_token, role: tok.role, expiresAt: expiresAt(tok) });
        }
      } catch (_) { /* offline: the call itself will say so */ } finally {
        refreshing = null;
      }
    })();
    await refreshing;
  }

  // Reading evidence (zooming, the clip, keys that call nothing) is work too: any key,
  // click or wheel renews a token nearly run out, as a call does.
  for (const kind of ["keydown", "pointerdown", "wheel"]) {
    document.addEventListener(kind, () => { if (S.session) freshToken(); }, { passive: true });
  }

  function expiresAt(tok) {
    return Date.now() + tok.expires_in * 1000;
  }

  async function api(path, { method = "GET", body, form, raw = false, signal } = {}) {
    if (S.session) await freshToken();
    const headers = {};
    if (S.session) headers.Authorization = `Bearer ${S.session.token}`;
    let payload;
    if (form) payload = new URLSearchParams(form);
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, { method, headers, body: payload, signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, t("app.offline"));
    }
    if (r.status === 401 && S.session) {
      expire();
      throw new ApiError(401, t("app.session_expired"));
    }
    if (!r.ok) {
      let detail = r.statusText, code = null, params = {};
      try {
        const j = await r.json();
        detail = validationText(j.detail);
        code = typeof j.code === "string" ? j.code : null;
        params = j.params && typeof j.params === "object" ? j.params : {};
      } catch (_) { /* not JSON */ }
      throw new ApiError(r.status, detail, code, params);
    }
    return raw ? r : r.json();
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : "";
  }

  // ------------------------------------------------------------------ session

  function loadSession() {
    try {
      S.session = JSON.parse(sessionStorage.getItem("rw.session") || "null");
    } catch (_) {
      S.session = null;
    }
  }

  function saveSession(session) {
    S.session = session;
    if (session) sessionStorage.setItem("rw.session", JSON.stringify(session));
    else sessionStorage.removeItem("rw.session");
  }

  function expire() {
    saveSession(null);
    sessionStorage.setItem("rw.expired", "1");
    if (!location.hash.startsWith("#/login")) sessionStorage.setItem("rw.return", location.hash);
    location.hash = "#/login";
  }

  // ------------------------------------------------------------------ routing

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, qs] = raw.split("?");
    const [name, arg] = path.split("/");
    return { name: name || "", arg, params: new URLSearchParams(qs || ""), explicit: qs !== undefined };
  }

  function go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  function leavePage() {
    if (S.page?.cleanup) S.page.cleanup();
    S.page = null;
  }

  // Every render bumps ``gen``; a page whose data arrives after another render began is
  // dropped instead of drawn over the newer one.
  async function render() {
    S.gen += 1;
    leavePage();
    clearBanner();
    drawChrome();
    const { name, arg, params, explicit } = parseHash();
    if (!S.session) {
      renderLogin();
      return;
    }
    const page = PAGES[name];
    if (!page) {
      go(`#/${HOME[S.session.role]}`);
      return;
    }
    drawNav(name);
    if (!page.roles.includes(S.session.role)) {
      main().replaceChildren(
        h("h1", { tabindex: "-1" }, t(page.nav || "app.name")),
        h("p", { class: "forbidden" }, t("app.role_forbidden", { role: t(`role.${S.session.role}`) })),
      );
      return;
    }
    main().replaceChildren(h("p", {}, t("app.loading")));
    const gen = S.gen;
    try {
      await page.render(arg, params, explicit);
    } catch (e) {
      if (e.name === "AbortError" || e.status === 401 || gen !== S.gen) return;
      main().replaceChildren(
        h("h1", { tabindex: "-1" }, t(page.nav || "app.name")),
        h("p", { class: "field-error", id: "page-error" },
          e.status === 404 ? t("app.not_found") : t("app.error", { detail: e.message })));
      focusHeading();
    }
  }

  function focusHeading() {
    const h1 = $("#main h1");
    if (h1) {
      h1.setAttribute("tabindex", "-1");
      h1.focus({ preventScroll: true });
    }
  }

  function drawChrome() {
    translateStatic(document);
    const lang = $("#lang");
    const other = S.lang === "vi" ? "en" : "vi";
    lang.textContent = t("app.switch_lang");
    lang.setAttribute("lang", other);
    lang.setAttribute("aria-label", t("app.switch_lang_label"));
    const who = $("#who");
    const logout = $("#logout");
    if (S.session) {
      who.textContent = `${S.session.fullName || S.session.username} · ${t(`role.${S.session.role}`)}`;
      logout.hidden = false;
    } else {
      who.textContent = "";
      logout.hidden = true;
      $("#nav").replaceChildren();
    }
  }

  function drawNav(current) {
    const links = NAV_ORDER.filter((n) => PAGES[n].roles.includes(S.session.role)).map((n) =>
      h("a", {
        href: `#/${n}`,
        "aria-current": n === current || (current === "case" && n === "queue") ? "page" : null,
      }, t(PAGES[n].nav)));
    $("#nav").replaceChildren(...links);
  }

  // ------------------------------------------------------------------ login

  function renderLogin() {
    S.page = { kind: "login" };
    const expired = sessionStorage.getItem("rw.expired"); // (cleared by the next log-in)
    const error = h("p", { id: "login-error", class: "field-error", role: "alert", hidden: true });
    const user = h("input", {
      id: "login-user", name: "username", autocomplete: "username", required: true,
      autocapitalize: "none", spellcheck: "false",
    });
    const pass = h("input", {
      id: "login-pass", name: "password", type: "password", autocomplete: "current-password",
      required: true,
    });
    const form = h("form", { class: "card login", onsubmit: onSubmit },
      h("h1", {}, t("login.title")),
      h("p", {}, t("login.intro")),
      expired ? h("p", { class: "banner warn" }, t("app.session_expired")) : null,
      h("label", { for: "login-user" }, t("login.username")), user,
      h("label", { for: "login-pass" }, t("login.password")), pass,
      error,
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, t("login.submit"))),
      h("p", { class: "help" }, t("app.timezone")),
    );
    main().replaceChildren(form);
    user.focus();

    async function onSubmit(ev) {
      ev.preventDefault();
      error.hidden = true;
      try {
        const tok = await api("/api/v1/auth/token", {
          method: "POST", form: { username: user.value.trim(), password: pass.value },
        });
        saveSession({
          token: tok.access_token, role: tok.role, username: user.value.trim(), fullName: "",
          expiresAt: expiresAt(tok),
        });
        try {
          const me = await api("/api/v1/auth/me");
          saveSession({ ...S.session, username: me.username, fullName: me.full_name });
        } catch (_) { /* the name is a nicety */ }
        const back = sessionStorage.getItem("rw.return");
        sessionStorage.removeItem("rw.return");
        sessionStorage.removeItem("rw.expired");
        go(back && back !== "#/login" ? back : `#/${HOME[tok.role] || "queue"}`);
      } catch (e) {
        error.textContent = e.status === 401 ? t("login.failed") : e.message;
        error.hidden = false;
        pass.value = "";
        pass.focus();
      }
    }
  }

  // ------------------------------------------------------------------ review queue

  function queueFilters(params) {
    return {
      camera: params.get("camera") || "",
      type: params.get("type") || "",
      from: params.get("from") || "",
      to: params.get("to") || "",
    };
  }

  function savedFilters() {
    try {
      return JSON.parse(sessionStorage.getItem("rw.filters") || "{}");
    } catch (_) {
      return {};
    }
  }

  // The filters' times are Vietnam's, as every time on the page is, whatever zone the
  // browser is set to (Vietnam keeps UTC+7 all year).
  function localToIso(value) {
    return value ? new Date(`${value.length === 16 ? `${value}:00` : value}+07:00`).toISOString() : "";
  }

  const QUEUE_PAGE = 200; // the API's largest page
  const QUEUE_MOST = 2000; // read at most this many; the page says when there are more

  // The whole queue in order, page by page (up to QUEUE_MOST), so the list and J/K see
  // every case, not the first page only.
  // Each page starts after the last case of the one before (not at a count of rows), so a
  // case decided by someone else meanwhile neither repeats one nor hides one.
  async function fetchQueue(filters) {
    const items = [];
    const seen = new Set();
    let more = true;
    let last = null;
    while (more && items.length < QUEUE_MOST) {
      const page = await api(`/api/v1/ui/queue${query({
        camera: filters.camera, type: filters.type,
        from: localToIso(filters.from), to: localToIso(filters.to),
        after_id: last ? last.id : "",
        limit: QUEUE_PAGE,
      })}`);
      const before = items.length;
      for (const item of page.items) {
        if (!seen.has(item.id)) items.push(item);
        seen.add(item.id);
      }
      last = page.items.length ? page.items[page.items.length - 1] : last;
      // (a page that adds no case would be asked for again and again: the walk ends)
      more = page.has_more && items.length > before;
    }
    S.queueIds = items.map((i) => ({ id: i.id, occurred_at: i.occurred_at }));
    return { items, has_more: more };
  }

  async function renderQueue(_arg, params, explicit) {
    const filters = explicit ? queueFilters(params) : { ...queueFilters(params), ...savedFilters() };
    sessionStorage.setItem("rw.filters", JSON.stringify(filters));
    const gen = S.gen;
    const [page, cameras] = await Promise.all([fetchQueue(filters), api("/api/v1/cameras")]);
    if (gen !== S.gen) return;
    S.page = { kind: "queue", selected: 0 };

    const camSel = h("select", { id: "f-camera", name: "camera" },
      h("option", { value: "" }, t("queue.all")),
      cameras.map((c) => h("option", { value: c.camera, selected: c.camera === filters.camera }, cameraName(c))));
    const typeSel = h("select", { id: "f-type", name: "type" },
      h("option", { value: "" }, t("queue.all")),
      TYPES.map((ty) => h("option", { value: ty, selected: ty === filters.type }, t(`type.${ty}`))));
    const from = h("input", { id: "f-from", name: "from", type: "datetime-local", value: filters.from });
    const to = h("input", { id: "f-to", name: "to", type: "datetime-local", value: filters.to });
    const form = h("form", { class: "filters", "aria-label": t("queue.filters"), onsubmit: (e) => {
      e.preventDefault();
      go(`#/queue${query({ camera: camSel.value, type: typeSel.value, from: from.value, to: to.value }) || "?"}`);
    } },
    field("f-camera", t("queue.camera"), camSel),
    field("f-type", t("queue.type"), typeSel),
    field("f-from", t("queue.from"), from),
    field("f-to", t("queue.to"), to),
    h("div", { class: "filter-buttons" },
      h("button", { type: "submit", class: "primary" }, t("queue.apply")),
      h("button", { type: "button", class: "ghost", onclick: () => go("#/queue?") }, t("queue.clear"))));

    const rows = page.items.map((item, i) => h("tr", { "data-id": item.id, class: i === 0 ? "selected" : null },
      h("td", {}, h("a", { href: `#/case/${item.id}`, class: "case-link" }, `#${item.id}`)),
      h("td", {}, fmtTime(item.occurred_at)),
      h("td", {}, t(`type.${item.type}`)),
      h("td", {}, item.camera),
      plateCell(item),
      h("td", {}, measuredShort(item)),
      h("td", {}, statusBadge(item.status), item.reviewer ? h("span", { class: "muted" }, ` ${item.reviewer}`) : null),
      h("td", {}, deadlineCell(item.deadlines))));
    const table = rows.length
      ? h("table", { class: "grid", id: "queue" },
        h("caption", { class: "sr-only" }, t("queue.title")),
        h("thead", {}, h("tr", {}, ["case", "time", "type", "camera", "plate", "measured", "status", "deadline"]
          .map((c) => h("th", { scope: "col" }, t(`queue.col.${c}`))))),
        h("tbody", {}, rows))
      : h("p", { class: "empty" }, t(Object.values(filters).some((v) => v) ? "queue.empty_filtered" : "queue.empty"));
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("queue.title")), h("p", { class: "muted" }, t("queue.intro"))),
      form,
      h("p", { class: "muted", id: "queue-count" },
        t(page.has_more ? "queue.count_more" : "queue.count", { count: page.items.length }), " · ", t("queue.hint")),
      table);
    focusHeading();
  }

  // No plate read, said in plain words: not set in the plate's type, as if it were one.
  function noPlate(attrs = {}) {
    return h("span", { class: "muted no-plate", ...attrs }, t("case.plate_unreadable"));
  }

  // A list's plate cell: a roadside reading that failed the format check (no plate to act
  // on until corrected) is said so in words beside it, and not set as a plate; nor is no
  // plate read.
  function plateCell(item) {
    if (!item.plate) return h("td", {}, noPlate());
    if (item.plate_valid !== false || item.plate_corrected || !item.plate_text) {
      return h("td", { class: "plate" }, item.plate);
    }
    return h("td", { class: "plate-unchecked" }, item.plate_text, " ",
      h("span", { class: "badge format-bad" }, t("case.plate_format_bad")));
  }

  function field(id, label, control) {
    return h("div", { class: "field" }, h("label", { for: id }, label), control);
  }

  function moveQueueSelection(delta) {
    const rows = [...document.querySelectorAll("#queue tbody tr")];
    if (!rows.length) return;
    let i = rows.findIndex((r) => r.classList.contains("selected"));
    rows[i]?.classList.remove("selected");
    i = Math.min(rows.length - 1, Math.max(0, i + delta));
    rows[i].classList.add("selected");
    rows[i].querySelector("a").focus();
  }

  function measuredShort(item) {
    if (item.speed_kmh != null) {
      return `${fmtNum(item.speed_kmh)} / ${fmtNum(item.speed_limit_kmh, 0)} km/h`;
    }
    return t("misc.none");
  }

  function statusBadge(status) {
    return h("span", { class: `badge st-${status}` }, t(`status.${status}`));
  }

  function deadlineCell(deadlines) {
    if (!deadlines?.length) return t("misc.none");
    return deadlines.map((d) => h("span", { class: `deadline dl-${d.state}` },
      h("span", { class: "dl-state" }, t(`deadline.${d.state}`)), " ",
      h("span", { class: "muted" }, t("deadline.due_at", { time: fmtTime(d.due_at) }))));
  }

  function cameraName(c) {
    return c.name ? `${c.name} (${c.camera})` : c.camera;
  }

  // ------------------------------------------------------------------ case page

  async function renderCasePage(arg) {
    if (!/^[1-9][0-9]{0,17}$/.test(arg || "")) throw new ApiError(404, "no such case");
    const id = Number.parseInt(arg, 10);
    const gen = S.gen;
    const data = await api(`/api/v1/ui/cases/${id}`);
    if (gen === S.gen) drawCase(data);
  }

  function drawCase(data, keepView) {
    const previous = S.page?.kind === "case" ? S.page : null;
    const urls = previous?.urls || new Map();
    if (previous) previous.cleanup = null; // the blob URLs carry over to the redrawn page
    S.page = {
      kind: "case",
      data,
      urls,
      view: keepView && previous ? previous.view : "frame_at",
      zoom: keepView && previous ? previous.zoom : { plate_crop: 1, vehicle_crop: 1, lamp_crop: 1 },
      cleanup() { for (const u of urls.values()) URL.revokeObjectURL(u); },
    };
    const c = data.case;
    const ev = Object.fromEntries(c.evidence.map((e) => [e.role, e]));
    const views = VIEWS.filter((v) => ev[v]);
    if (!views.includes(S.page.view)) S.page.view = views[0] || "frame_at";

    const viewer = h("div", { class: "viewer", id: "viewer" });
    const viewButtons = views.map((v, i) => h("button", {
      type: "button", class: "view-btn", "data-view": v, "aria-pressed": String(v === S.page.view),
      onclick: () => showView(v),
    }, h("kbd", {}, String(VIEWS.indexOf(v) + 1)), " ", t(`case.${v}`)));
    // (made only where shown: each fetches its blob, and a role that may not see the
    // evidence has no link to it, so the page asked for "null" and got a 404)
    const crops = data.evidence_visible ? CROPS.filter((r) => ev[r]).map((r) => cropFigure(c, ev[r])) : [];

    let evidence;
    if (!data.evidence_visible) {
      evidence = h("p", { class: "muted" }, t("case.evidence_hidden"));
    } else {
      evidence = [
        c.record_problems?.length
          ? h("p", { class: "banner error", id: "record-altered", role: "alert" }, t("case.record_altered", { problems: c.record_problems.join("; ") }))
          : null,
        c.evidence.length ? null : h("p", { class: "banner warn", id: "no-evidence" }, t("case.evidence_none")),
        c.evidence_complete ? null : h("p", { class: "banner warn" }, t("case.evidence_incomplete")),
        views.length ? h("div", { class: "view-buttons", role: "group", "aria-label": t("case.view") }, viewButtons) : null,
        views.length ? viewer : null,
        h("div", { class: "crops" }, crops),
      ];
    }

    main().replaceChildren(h("div", { class: "case" },
      h("section", { class: "evidence", "aria-labelledby": "h-evidence" },
        h("h2", { id: "h-evidence", class: "sr-only" }, t("case.evidence")), evidence),
      h("section", { class: "facts", "aria-labelledby": "case-title" },
        h("div", { class: "case-head" },
          h("h1", { id: "case-title" }, t("case.title", { id: c.id })),
          statusBadge(c.status),
          h("span", { class: "type" }, t(`type.${c.type}`))),
        samePlateNearby(c),
        actionBar(data),
        factsList(data),
        h("h2", {}, t("case.explanation")),
        explanationBlock(c),
        decisionList(data),
        auditTrail(data),
        data.evidence_visible ? exportButton(c) : null)));
    if (data.evidence_visible) showView(S.page.view);
    focusHeading();
    resumePending(data);
  }

  // The rule's explanation, as the node signed it in each language it writes: in the
  // reader's language where the node wrote it so, the other below (a Vietnamese reader
  // can open the English original the evidence package keeps). A node that writes English
  // only: its English, marked so, with a note saying whose words they are.
  function explanationBlock(c) {
    if (!c.explanation && !c.explanation_vi) return h("p", { class: "explanation" }, t("misc.none"));
    const texts = { en: c.explanation || null, vi: c.explanation_vi || null };
    if (!texts.vi) {
      return [
        h("p", { class: "explanation", id: "explanation", lang: "en" }, texts.en),
        h("p", { class: "muted small", id: "explanation-note" }, t("case.explanation_english_only")),
      ];
    }
    const shown = S.lang === "vi" ? "vi" : "en";
    const other = shown === "vi" ? "en" : "vi";
    return [
      h("p", { class: "explanation", id: "explanation", lang: shown }, texts[shown]),
      texts[other] ? h("details", { class: "explanation-other", id: "explanation-other" },
        h("summary", {}, t(`case.explanation_in_${other}`)),
        h("p", { class: "explanation", lang: other }, texts[other])) : null,
    ];
  }

  // A decision the session's end refused (a token run out while the officer read the
  // evidence or wrote the reason) is kept for this tab: back on the case after logging in
  // again, the page says it was not recorded and offers it again with what was typed,
  // for the officer to check against the case as it is now and send.
  function keepPending(user, id, action, extra) {
    const typed = extra.reason ?? extra.plate ?? "";
    sessionStorage.setItem("rw.pending", JSON.stringify({ id, action, typed, user }));
  }

  function resumePending(data) {
    let pending;
    try {
      pending = JSON.parse(sessionStorage.getItem("rw.pending") || "null");
    } catch (_) {
      pending = null;
    }
    if (!pending || pending.id !== data.case.id || !S.session) return;
    sessionStorage.removeItem("rw.pending");
    if (pending.user !== S.session.username) return; // (another officer's work is not shown)
    const what = t(`action.${pending.action}`);
    banner([t("case.pending_lost", { id: pending.id, action: what }),
      pending.typed ? t("case.pending_typed", { text: pending.typed }) : ""].join(" ").trim(), "warn");
    if (data.actions.includes(pending.action) && pending.action !== "confirm") {
      onAction(pending.action, pending.typed);
    }
  }

  // One act found twice (the vehicle hidden from the camera a while and tracked again)
  // comes as two cases of one plate: each names the others, for the reviewer to confirm
  // one and reject the rest as duplicates.
  function samePlateNearby(c) {
    const others = c.same_plate_nearby || [];
    if (!others.length) return null;
    const items = others.map((o) => h("li", {},
      h("a", { href: `#/case/${o.id}` }, `#${o.id}`), " ",
      t("case.same_plate_item", { time: fmtTime(o.occurred_at), status: t(`status.${o.status}`) })));
    return h("div", { class: "banner warn", id: "same-plate", role: "note" },
      h("p", {}, t("case.same_plate")), h("ul", {}, items));
  }

  // The case as one ZIP for a court or the vehicle's owner, checked anywhere with
  // `roadwatch verify` (the export is written to the case's audit trail).
  function exportButton(c) {
    return h("p", { class: "export" },
      h("button", { type: "button", class: "secondary", id: "export", onclick: () => exportCase(c) }, t("case.export")),
      " ", h("span", { class: "muted" }, t("case.export_hint")));
  }

  async function exportCase(c) {
    if (S.busy) return;
    S.busy = true;
    clearBanner();
    try {
      const r = await api(`/api/v1/violations/${c.id}/export`, { method: "POST", raw: true });
      await saveAs(r, `case-${c.id}.zip`);
      toast(t("case.exported", { id: c.id, sha256: (r.headers.get("X-Package-SHA256") || "").slice(0, 16) }));
      const gen = S.gen;
      const fresh = await api(`/api/v1/ui/cases/${c.id}`); // (its trail now holds the export)
      if (gen === S.gen) drawCase(fresh, true);
    } catch (e) {
      if (e.status !== 401) banner(t("app.error", { detail: e.message }));
    } finally {
      S.busy = false;
    }
  }

  // A download fetched with the session's token (a plain link cannot carry it), saved as
  // `name`.
  async function saveAs(r, name) {
    const url = URL.createObjectURL(await r.blob());
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async function blobUrl(e) {
    const urls = S.page.urls;
    if (urls.has(e.sha256)) return urls.get(e.sha256);
    const r = await api(e.url, { raw: true });
    const url = URL.createObjectURL(await r.blob());
    urls.set(e.sha256, url);
    return url;
  }

  // Why a piece of evidence cannot be shown: not uploaded yet, or listed as arrived but
  // not to be had from the store (which the administrator must look into).
  function evidenceMissing(e, error) {
    if (!e.arrived) return t("case.no_evidence");
    if (error?.status === 404) return t("case.evidence_lost");
    return error?.code ? error.message : t("app.error", { detail: error?.message || "" });
  }

  async function showView(view) {
    if (S.page?.kind !== "case" || !$("#viewer")) return; // (no viewer: evidence not shown to this role)
    const c = S.page.data.case;
    const e = c.evidence.find((x) => x.role === view);
    if (!e) return;
    S.page.view = view;
    document.querySelectorAll(".view-btn").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.view === view)));
    const viewer = $("#viewer");
    if (!e.arrived) {
      viewer.replaceChildren(h("p", { class: "muted" }, evidenceMissing(e)));
      return;
    }
    const page = S.page;
    let failed = null;
    const url = await blobUrl(e).catch((error) => { failed = error; return null; });
    if (S.page !== page || page.view !== view) return; // another view was chosen meanwhile
    if (!url) {
      viewer.replaceChildren(h("p", { class: "field-error", id: "evidence-error" }, evidenceMissing(e, failed)));
      return;
    }
    // The element follows what the blob is, not the role it was listed under.
    const shown = e.media_type.startsWith("video/")
      ? h("video", {
        id: "clip", src: url, controls: true, muted: true, playsinline: true, preload: "auto",
        "aria-label": t("case.clip_label", { id: c.id }),
      })
      : h("img", { id: "frame", src: url, alt: t("case.frame_alt", { which: t(`case.${view}`), id: c.id }) });
    shown.addEventListener("error", () => {
      if (S.page === page && page.view === view) {
        viewer.replaceChildren(h("p", { class: "field-error", id: "evidence-error" }, t("case.evidence_unplayable")));
      }
    });
    viewer.replaceChildren(shown);
  }

  function cropFigure(c, e) {
    const which = t(`case.${e.role}`);
    const img = h("img", { alt: t("case.crop_alt", { which, id: c.id }), class: "crop-img" });
    const box = h("div", { class: "crop-box", role: "button", tabindex: "0", "aria-label": t("case.crop_alt", { which, id: c.id }) }, img);
    const zoom = h("input", {
      type: "range", min: "1", max: "8", step: "1", value: String(S.page.zoom[e.role]),
      id: `zoom-${e.role}`, "aria-label": t("case.zoom", { which }),
      oninput: () => setZoom(e.role, Number(zoom.value)),
    });
    const fig = h("figure", { class: "crop", id: `crop-${e.role}` },
      box, h("figcaption", {}, h("span", {}, which), zoom, h("output", { for: `zoom-${e.role}`, class: "zoom-out" }, `${zoom.value}×`)));
    const zoomState = S.page.zoom; // the image may load after the page was left
    img.addEventListener("load", () => {
      img.dataset.base = String(Math.min(box.clientWidth, (CROP_HEIGHT * img.naturalWidth) / img.naturalHeight));
      sizeCrop(img, zoomState[e.role]);
    });
    if (e.arrived) {
      blobUrl(e).then((url) => { img.src = url; }).catch((error) => { box.replaceChildren(evidenceMissing(e, error)); });
    } else {
      box.replaceChildren(evidenceMissing(e));
    }
    const zoomStep = () => setZoom(e.role, zoomState[e.role] >= 8 ? 1 : zoomState[e.role] * 2);
    box.addEventListener("click", zoomStep);
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        ev.stopPropagation(); // (not also the page's own keys)
        zoomStep();
      }
    });
    return fig;
  }

  function setZoom(role, z) {
    if (S.page?.kind !== "case") return;
    S.page.zoom[role] = z;
    const fig = $(`#crop-${role}`);
    if (!fig) return;
    sizeCrop($(".crop-img", fig), z);
    $("input", fig).value = String(z);
    $("output", fig).textContent = `${z}×`;
  }

  function sizeCrop(img, zoom) {
    if (img.dataset.base) img.style.width = `${Number(img.dataset.base) * zoom}px`;
  }

  function factsList(data) {
    const c = data.case;
    const m = c.event?.measured || {};
    const rows = [
      ["case.type", t(`type.${c.type}`)],
      ["case.time", fmtTime(c.occurred_at)],
      ["case.camera", data.camera ? cameraName(data.camera) : c.camera],
      ["case.place", c.place || data.camera?.place || t("misc.none")],
      ["case.lane", c.lane || t("misc.none")],
      ["case.vehicle", t(`vehicle.${c.vehicle_class}`)],
      ["case.plate", plateFacts(c)],
    ];
    if (m.speed_kmh != null) {
      // The excess as the rule judged it and the evidence states it: from the speed less
      // its uncertainty (the least the vehicle can have driven), not from the middle value,
      // which would put a case in a higher fine band than its evidence supports.
      const lower = m.speed_kmh - (m.speed_uncertainty_kmh ?? 0);
      const excess = m.speed_limit_kmh != null ? lower - m.speed_limit_kmh : null;
      rows.push(["case.speed", t("case.speed_value", {
        speed: fmtNum(m.speed_kmh), uncertainty: fmtNum(m.speed_uncertainty_kmh ?? 0),
        lower: fmtNum(lower), limit: fmtNum(m.speed_limit_kmh, 0),
        over: excess != null ? `${fmtNum(excess)} km/h` : t("misc.none"),
      })]);
      if (excess != null) rows.push(["case.band", speedBand(excess)]);
    }
    if (m.signal_phase) {
      rows.push(["case.signal", t("case.signal_value", {
        phase: t(`lamp.${m.signal_phase}`), since: fmtNum(m.time_since_red_s ?? 0),
      })]);
    }
    if (m.dwell_s != null) rows.push(["case.dwell", t("case.dwell_value", { seconds: fmtNum(m.dwell_s) })]);
    if (m.distance_m != null) rows.push(["case.distance", t("case.distance_value", { metres: fmtNum(m.distance_m) })]);
    rows.push(["case.deadlines", c.deadlines.length ? deadlineList(c.deadlines) : t("case.no_deadline")]);
    return h("dl", { class: "facts-list", id: "facts" }, rows.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)]));
  }

  // Decree 168/2024's speeding bands, km/h over the limit, as the decree words them
  // (edge/rules/speeding.py DECREE_168_BANDS, which the rule's explanation names): "from 5
  // to under 10", "from 10 to 20", "over 20 to 35", "over 35"; [[low, taken], [high, taken]].
  const SPEED_BANDS = [[[5, true], [10, false]], [[10, true], [20, true]], [[20, false], [35, true]], [[35, false], [null, false]]];
  const BAND_KEYS = ["case.band_5_10", "case.band_10_20", "case.band_20_35", "case.band_35"];

  function speedBand(excess) {
    // (judged on the excess as the page writes it, to 0.1 km/h, so the two agree)
    const x = Number(new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, useGrouping: false }).format(excess));
    const i = SPEED_BANDS.findIndex(([[low, withLow], [high, withHigh]]) =>
      (withLow ? x >= low : x > low) && (high === null || (withHigh ? x <= high : x < high)));
    return t(i < 0 ? "case.band_none" : BAND_KEYS[i]);
  }

  function deadlineList(deadlines) {
    return deadlines.map((d) => h("div", { class: `deadline dl-${d.state}` },
      `${t(`deadline.${d.name}`)}: `, h("span", { class: "dl-state" }, t(`deadline.${d.state}`)), " ",
      h("span", { class: "muted" }, t("deadline.due_at", { time: fmtTime(d.due_at) }))));
  }

  function plateFacts(c) {
    const conf = c.plate_confidence != null ? `${fmtNum(c.plate_confidence * 100, 0)} %` : t("misc.none");
    const read = c.plate_text || t("case.plate_unreadable");
    return [
      c.plate ? h("strong", { class: "plate", id: "plate-value" }, c.plate) : noPlate({ id: "plate-value" }),
      c.plate_corrected ? h("span", { class: "badge st-confirmed" }, t("case.plate_corrected")) : null,
      h("div", { class: "muted" }, t("case.plate_read", { plate: read, confidence: conf }),
        c.plate_valid === false ? ` · ${t("case.plate_format_bad")}` : ""),
    ];
  }

  function decisionList(data) {
    const c = data.case;
    const actorOf = (...actions) => [...data.audit].reverse().find((e) => actions.includes(e.action))?.actor;
    const rows = [
      ["case.reviewer", c.reviewer],
      ["case.confirmed_by", c.confirmed_by],
      ["case.rejected_by", c.status === "rejected" ? actorOf("reject") : null],
      ["case.reject_reason", c.reject_reason],
      ["case.notice_by", c.notice_issued_by],
      ["case.ended_by", ["closed", "escalated"].includes(c.status) ? actorOf("close", "escalate") : null],
    ].filter(([, v]) => v);
    const versions = c.event ? h("p", { class: "muted small" }, t("case.versions", {
      model: c.event.model_version, rule: c.event.rule_version, config: c.event.config_version,
    })) : null;
    if (!rows.length) return versions;
    return [h("h2", {}, t("case.decision")),
      h("dl", { class: "facts-list", id: "decision" }, rows.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])),
      versions];
  }

  function auditTrail(data) {
    const rows = data.audit;
    const body = rows.length ? h("table", { class: "grid compact", id: "audit" },
      h("thead", {}, h("tr", {}, ["at", "actor", "action", "detail"].map((k) => h("th", { scope: "col" }, t(`case.audit.${k}`))))),
      h("tbody", {}, rows.map((e) => h("tr", {},
        h("td", {}, fmtTime(e.at)), h("td", {}, e.actor),
        h("td", {}, S.dict[`action.${e.action}`] ? t(`action.${e.action}`) : e.action),
        h("td", { class: "small" }, auditDetail(e.detail))))))
      : h("p", { class: "muted" }, t("case.audit_empty"));
    return h("details", { class: "audit", open: S.session.role !== "officer" },
      h("summary", {}, t("case.audit")), body);
  }

  // The review page's buttons, in this order, for the actions the server says the caller
  // can take now (the workflow's answer: who holds the case, the two-person rule).
  const ACTION_BUTTONS = [
    ["confirm", "case.confirm", "C", "primary"],
    ["reject", "case.reject", "R", "danger"],
    ["correct_plate", "case.correct", "P", "secondary"],
    ["release", "case.release", null, "ghost"],
    ["issue_notice", "case.issue_notice", null, "primary"],
    ["close", "case.close", null, "primary"],
    ["escalate", "case.escalate", null, "danger"],
  ];

  function actionBar(data) {
    const c = data.case;
    const me = S.session.username;
    const nav = h("div", { class: "case-nav" },
      h("a", { href: "#/queue", class: "ghost-link" }, t("case.back")),
      h("button", { type: "button", class: "ghost", onclick: () => step(-1) }, h("kbd", {}, "K"), " ", t("case.previous")),
      h("button", { type: "button", class: "ghost", onclick: () => step(1) }, t("case.next"), " ", h("kbd", {}, "J")));
    if (!data.can_review) {
      const why = ["rejected", "closed", "escalated"].includes(c.status) && data.evidence_visible
        ? t("case.decided", { status: t(`status.${c.status}`) }) : t("case.read_only");
      return [h("p", { class: "muted", id: "read-only" }, why), data.evidence_visible ? nav : null];
    }
    const allowed = new Set(data.actions);
    const buttons = ACTION_BUTTONS.filter(([action]) => allowed.has(action)).map(([action, label, key, cls]) =>
      h("button", { type: "button", class: cls, id: `act-${action}`, onclick: () => onAction(action) },
        key ? [h("kbd", {}, key), " "] : null, t(label)));
    if (!buttons.length) {
      let why = t("case.decided", { status: t(`status.${c.status}`) });
      if (c.status === "in_review" && c.reviewer && c.reviewer !== me) why = t("case.held_by", { user: c.reviewer });
      else if (c.status === "confirmed" && c.confirmed_by === me) why = t("case.two_person");
      return [h("p", { class: "muted", id: "read-only" }, why), nav];
    }
    // (A supervisor who confirmed it may reopen it, not send its notice: said beside. A
    // case without a plate to act on is not offered confirmation: said why, and how on.)
    let note = null;
    if (c.status === "confirmed" && c.confirmed_by === me && !allowed.has("issue_notice")) {
      note = h("p", { class: "muted", id: "action-note" }, t("case.two_person"));
    } else if (!allowed.has("confirm") && allowed.has("correct_plate") && c.evidence_complete && needsPlate(c)) {
      note = h("p", { class: "banner warn", id: "action-note" }, t("case.plate_needed"));
    }
    return [note, h("div", { class: "actions", role: "group", "aria-label": t("case.actions") }, buttons), nav];
  }

  async function onAction(action, typed = "") {
    if (S.page?.kind !== "case" || S.busy) return;
    const c = S.page.data.case;
    if (!S.page.data.actions.includes(action)) { // (a key for a button not offered: say why)
      const why = whyNotOffered(S.page.data, action);
      if (why) toast(why);
      return;
    }
    const page = S.page;
    if (action === "reject") {
      const reason = await askReject(c, typed);
      if (reason && S.page === page) await decide("reject", { reason });
    } else if (action === "correct_plate") {
      const plate = await askPlate(c, typed);
      if (plate && S.page === page) await decide("correct_plate", { plate });
    } else if (FINAL.includes(action)) {
      if (await askFinal(c, action) && S.page === page) await decide(action, {});
    } else {
      await decide(action, {});
    }
  }

  // A plate to act on: an officer's correction, or a roadside reading that passed the
  // format check (central/workflow.py plate_to_act_on).
  function needsPlate(c) {
    return !c.plate_corrected && (!c.plate_text || c.plate_valid === false);
  }

  function whyNotOffered(data, action) {
    const c = data.case;
    if (["confirm", "issue_notice"].includes(action) && ["new", "in_review", "confirmed"].includes(c.status)) {
      if (!c.evidence_complete) return t("case.evidence_incomplete");
      if (needsPlate(c) && action === "confirm") return t("case.plate_needed");
    }
    return ($("#action-note") || $("#read-only"))?.textContent || null;
  }

  async function decide(action, extra) {
    if (S.busy) return;
    const c = S.page.data.case;
    if (DECIDING.includes(action) && !["new", "in_review"].includes(c.status)) return;
    S.busy = true;
    clearBanner();
    const me = S.session.username; // (a session that ends takes it with it)
    try {
      let version = c.version;
      if (c.status === "new" && DECIDING.includes(action)) {
        const started = await review(c.id, { action: "start_review", version });
        version = started.version;
      }
      const after = await review(c.id, { action, version, ...extra });
      let message;
      if (action === "confirm") message = t("case.confirmed_toast", { id: c.id });
      else if (action === "reject") message = t("case.rejected_toast", { id: c.id });
      else if (action === "correct_plate") message = t("case.corrected_toast", { id: c.id, plate: after.plate });
      else message = t("case.done_toast", { id: c.id, status: t(`status.${after.status}`) });
      toast(message);
      if (action === "confirm" || action === "reject") {
        S.busy = false;
        await step(1, message);
      } else {
        const gen = S.gen;
        const fresh = await api(`/api/v1/ui/cases/${c.id}`);
        if (gen === S.gen) drawCase(fresh, true);
      }
    } catch (e) {
      if (e.status === 401) keepPending(me, c.id, action, extra);
      if (["evidence_incomplete", "plate_required", "evidence_damaged"].includes(e.code)) banner(e.message);
      else if (e.status === 409) await showConflict(c.id);
      else if (e.status === 403) banner(t("case.forbidden", { detail: e.message }));
      else if (e.status === 422) banner(t("case.invalid", { detail: e.message }));
      else if (e.status !== 401) banner(t("app.error", { detail: e.message }));
    } finally {
      S.busy = false;
    }
  }

  function review(id, body) {
    return api(`/api/v1/violations/${id}/review`, { method: "POST", body });
  }

  async function showConflict(id) {
    const gen = S.gen;
    const fresh = await api(`/api/v1/ui/cases/${id}`);
    if (gen !== S.gen) return;
    const c = fresh.case;
    let message;
    if (c.status === "in_review" && c.reviewer && c.reviewer !== S.session.username) {
      message = t("case.taken", { id, user: c.reviewer });
    } else {
      // Whoever acted last, from the case's own audit trail.
      const last = fresh.audit[fresh.audit.length - 1];
      const by = last ? (last.actor === S.session.username ? t("case.by_you") : last.actor) : null;
      message = t("case.conflict", {
        id, status: t(`status.${c.status}`), by: by ? t("case.conflict_by", { user: by }) : "",
      });
    }
    drawCase(fresh, true);
    banner(message, "warn");
  }

  // Next (+1) or previous (-1) case of the review queue, relative to the case shown.
  // After a decision, ``decided`` is its message: it is shown with "end of queue" if so.
  async function step(dir, decided = null) {
    if (S.page?.kind !== "case") return;
    const c = S.page.data.case;
    const filters = savedFilters();
    const gen = S.gen;
    try {
      await fetchQueue({ camera: "", type: "", from: "", to: "", ...filters });
    } catch (e) {
      if (e.status !== 401) banner(t("app.error", { detail: e.message }));
      return;
    }
    if (gen !== S.gen) return;
    // (Times as the API writes them, whole seconds without a fraction: compared with the
    // fraction written out, since "." sorts before "Z".)
    const key = (x) => [x.occurred_at.replace(/:(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
      (_m, sec, frac, tz) => `:${sec}${(frac || ".").padEnd(7, "0")}${tz}`), x.id];
    const cmp = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]);
    const here = key(c);
    const target = dir > 0
      ? S.queueIds.find((x) => cmp(key(x), here) > 0)
      : [...S.queueIds].reverse().find((x) => cmp(key(x), here) < 0);
    if (target) {
      go(`#/case/${target.id}`);
    } else if (decided) {
      go(`#/queue${query(filters) || "?"}`);
      toast(`${decided} ${t("case.queue_end")}`);
    } else {
      toast(t(dir > 0 ? "case.queue_end" : "case.queue_start"));
    }
  }

  // ------------------------------------------------------------------ dialogs

  function openDialog(dialog, setup, check, opened) {
    return new Promise((resolve) => {
      const form = $("form", dialog);
      translateStatic(dialog);
      setup();
      // (a check may ask central first: it answers a promise, and the dialog closes when
      // that says yes)
      const onSubmit = (e) => {
        if (e.submitter?.value !== "ok") return;
        const passed = check();
        if (passed instanceof Promise) {
          e.preventDefault();
          passed.then((yes) => { if (yes && dialog.open) dialog.close("ok"); });
        } else if (!passed) {
          e.preventDefault();
        }
      };
      form.noValidate = true;
      form.addEventListener("submit", onSubmit);
      dialog.addEventListener("close", () => {
        form.removeEventListener("submit", onSubmit);
        resolve(dialog.returnValue === "ok");
      }, { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      if (opened) opened();
    });
  }

  async function askReject(c, typed = "") {
    const id = c.id;
    const dialog = $("#dlg-reject");
    const preset = $("#reject-preset");
    // One act found twice: "a duplicate of #N" offered for each case of the banner (after
    // the usual reasons, which keep their places).
    preset.querySelectorAll("option[data-duplicate]").forEach((o) => o.remove());
    preset.append(...(c.same_plate_nearby || []).map((o) =>
      h("option", { "data-duplicate": o.id }, t("reject.duplicate", { id: o.id }))));
    const reason = $("#reject-reason");
    const error = $("#reject-error");
    preset.onchange = () => { if (preset.value) reason.value = preset.selectedOptions[0].textContent; };
    const ok = await openDialog(dialog, () => {
      $("#dlg-reject-title").textContent = t("reject.title", { id });
      preset.value = "";
      reason.value = typed;
      error.hidden = true;
      reason.removeAttribute("aria-invalid");
    }, () => {
      if (reason.value.trim()) return true;
      error.hidden = false;
      reason.setAttribute("aria-invalid", "true");
      reason.focus();
      return false;
    });
    return ok ? reason.value.trim() : null;
  }

  // The steps no one can take back (a notice sent, a case ended) are asked once more, with
  // Cancel focused: one slip of the mouse between "close" and "escalate" was final.
  const FINAL = ["issue_notice", "close", "escalate"];

  function askFinal(c, action) {
    const dialog = $("#dlg-final");
    return openDialog(dialog, () => {
      $("#dlg-final-title").textContent = t("final.title", { action: t(`action.${action}`), id: c.id });
      $("#dlg-final-text").textContent = t(`final.${action}`, { plate: c.plate || t("case.plate_unreadable") });
      $("#dlg-final-ok").textContent = t(`case.${action}`);
    }, () => true, () => $("#dlg-final-cancel").focus());
  }

  // A correction central would not read as a Vietnamese plate (a slip: "51A123") is said
  // in the dialog before it is sent, with the reading a repaired look-alike would give;
  // sent again unchanged, it goes (a foreign plate reads as none). Central reads it with
  // the grammar it checks the roadside readings against (GET /api/v1/ui/plate).
  async function askPlate(c, typed = "") {
    const dialog = $("#dlg-plate");
    const input = $("#plate-input");
    const error = $("#plate-error");
    const warning = $("#plate-warning");
    let warned = null; // the text the officer was warned about
    const clearWarning = () => {
      warned = null;
      warning.hidden = true;
      warning.textContent = "";
    };
    input.oninput = () => {
      input.value = input.value.toUpperCase();
      clearWarning();
    };
    const ok = await openDialog(dialog, () => {
      $("#dlg-plate-title").textContent = t("plate.title", { id: c.id });
      input.value = typed || c.plate || "";
      error.hidden = true;
      clearWarning();
      input.removeAttribute("aria-invalid");
    }, () => {
      const v = input.value.trim().toUpperCase();
      if (!PLATE_RE.test(v)) {
        error.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return false;
      }
      error.hidden = true;
      input.removeAttribute("aria-invalid");
      if (warned === v) return true;
      return api(`/api/v1/ui/plate${query({ text: v })}`).then((read) => {
        if (input.value.trim().toUpperCase() !== v) return false; // (typed on meanwhile)
        if (read.reads_as_plate) return true;
        warned = v;
        warning.textContent = [t("plate.not_a_plate", { plate: v }),
          read.suggestion ? t("plate.suggestion", { plate: read.suggestion }) : "",
          t("plate.send_anyway")].filter(Boolean).join(" ");
        warning.hidden = false;
        input.focus();
        return false;
      }, () => true); // (the warning is advice: central unreachable, the decision says so)
    }, () => input.select());
    return ok ? input.value.trim().toUpperCase() : null;
  }

  function openHelp() {
    const dialog = $("#dlg-help");
    if (dialog.open) return;
    translateStatic(dialog);
    const on = $("#keys-on");
    on.checked = keysOn();
    on.onchange = () => localStorage.setItem("rw.keys", on.checked ? "on" : "off");
    dialog.showModal();
  }

  // The one-letter shortcuts can be turned off (and the choice is remembered): a word
  // spoken to speech input, or a key pressed by mistake, would otherwise confirm a case.
  // "?" still opens the help, where they are turned on again.
  function keysOn() {
    return localStorage.getItem("rw.keys") !== "off";
  }

  // ------------------------------------------------------------------ keyboard

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const el = e.target;
    if (el instanceof HTMLElement && (["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName) || el.isContentEditable)) return;
    if (e.key === "?") {
      e.preventDefault();
      openHelp();
      return;
    }
    if (!keysOn()) return;
    const key = e.key.toLowerCase();
    const kind = S.page?.kind;
    if (kind === "queue") {
      if (key === "j") { e.preventDefault(); moveQueueSelection(1); }
      else if (key === "k") { e.preventDefault(); moveQueueSelection(-1); }
      else if (key === "enter" && !(el instanceof HTMLAnchorElement) && !(el instanceof HTMLButtonElement)) {
        const link = $("#queue tr.selected a");
        if (link) { e.preventDefault(); link.click(); }
      }
    } else if (kind === "case") {
      const actions = { c: "confirm", r: "reject", p: "correct_plate" };
      if (actions[key]) { e.preventDefault(); onAction(actions[key]); }
      else if (key === "j") { e.preventDefault(); step(1); }
      else if (key === "k") { e.preventDefault(); step(-1); }
      else if (["1", "2", "3", "4"].includes(key)) { e.preventDefault(); showView(VIEWS[Number(key) - 1]); }
      else if (key === "z" && S.page.zoom) {
        e.preventDefault();
        const z = S.page.zoom.plate_crop;
        setZoom("plate_crop", z >= 8 ? 1 : z * 2);
      }
    }
  }

  // ------------------------------------------------------------------ search

  // Every case, decided or not (the queue holds the open ones): by plate (as written or in
  // its normal form), camera, type, status and Vietnam time, newest first.
  const SEARCH_PAGE = 200; // the API's largest page

  async function renderSearch(_arg, params) {
    const f = {
      plate: params.get("plate") || "", camera: params.get("camera") || "", type: params.get("type") || "",
      status: params.get("status") || "", from: params.get("from") || "", to: params.get("to") || "",
    };
    const asked = Object.values(f).some((v) => v);
    // One page of the results, newest first, after the case ``after`` (the last shown):
    // "more" goes on from there, not from a count of rows, so cases decided meanwhile
    // neither repeat one nor hide one.
    const fetchPage = (after) => api(`/api/v1/violations${query({
      plate: f.plate.trim(), camera: f.camera, type: f.type, status: f.status,
      from: localToIso(f.from), to: localToIso(f.to), limit: SEARCH_PAGE, after_id: after ?? "",
    })}`);
    const gen = S.gen;
    const [found, cameras] = await Promise.all([asked ? fetchPage(null) : null, api("/api/v1/cameras")]);
    if (gen !== S.gen) return;
    S.page = { kind: "search" };
    const plate = h("input", { id: "q-plate", name: "plate", value: f.plate, maxlength: "16", autocomplete: "off",
      autocapitalize: "characters", spellcheck: "false" });
    const camSel = h("select", { id: "q-camera", name: "camera" },
      h("option", { value: "" }, t("queue.all")),
      cameras.map((c) => h("option", { value: c.camera, selected: c.camera === f.camera }, cameraName(c))));
    const typeSel = h("select", { id: "q-type", name: "type" },
      h("option", { value: "" }, t("queue.all")),
      TYPES.map((ty) => h("option", { value: ty, selected: ty === f.type }, t(`type.${ty}`))));
    const statusSel = h("select", { id: "q-status", name: "status" },
      h("option", { value: "" }, t("queue.all")),
      STATUSES.map((st) => h("option", { value: st, selected: st === f.status }, t(`status.${st}`))));
    const from = h("input", { id: "q-from", name: "from", type: "datetime-local", value: f.from });
    const to = h("input", { id: "q-to", name: "to", type: "datetime-local", value: f.to });
    const form = h("form", { class: "filters", role: "search", "aria-label": t("search.title"), onsubmit: (e) => {
      e.preventDefault();
      go(`#/search${query({ plate: plate.value.trim().toUpperCase(), camera: camSel.value, type: typeSel.value,
        status: statusSel.value, from: from.value, to: to.value }) || "?"}`);
    } },
    field("q-plate", t("search.plate"), plate),
    field("q-camera", t("queue.camera"), camSel),
    field("q-type", t("queue.type"), typeSel),
    field("q-status", t("search.status"), statusSel),
    field("q-from", t("queue.from"), from),
    field("q-to", t("queue.to"), to),
    h("div", { class: "filter-buttons" },
      h("button", { type: "submit", class: "primary" }, t("search.submit")),
      h("button", { type: "button", class: "ghost", onclick: () => go("#/search") }, t("queue.clear"))));
    let results;
    if (!found) {
      results = h("p", { class: "muted", id: "search-count" }, t("search.hint"));
    } else if (!found.items.length) {
      results = h("p", { class: "empty", id: "search-count" }, t("search.none"));
    } else {
      const row = (item) => h("tr", { "data-id": item.id },
        h("td", {}, h("a", { href: `#/case/${item.id}` }, `#${item.id}`)),
        h("td", {}, fmtTime(item.occurred_at)),
        h("td", {}, t(`type.${item.type}`)),
        h("td", {}, item.camera),
        plateCell(item),
        h("td", {}, measuredShort(item)),
        h("td", {}, statusBadge(item.status)));
      const shown = new Set(found.items.map((i) => i.id));
      let last = found.items[found.items.length - 1].id;
      const count = h("p", { class: "muted", id: "search-count", role: "status" });
      const body = h("tbody", {}, found.items.map(row));
      const more = h("button", { type: "button", class: "secondary", id: "search-more" }, t("search.more"));
      const counted = (hasMore) => {
        count.textContent = t(hasMore ? "search.count_more" : "search.count", { count: shown.size });
        more.hidden = !hasMore;
      };
      more.addEventListener("click", async () => {
        more.disabled = true;
        let page;
        try {
          page = await fetchPage(last);
        } catch (err) {
          if (err.status !== 401) banner(err.code ? err.message : t("app.error", { detail: err.message }));
          return;
        } finally {
          more.disabled = false;
        }
        if (gen !== S.gen) return;
        const fresh = page.items.filter((i) => !shown.has(i.id));
        fresh.forEach((i) => shown.add(i.id));
        body.append(...fresh.map(row));
        if (page.items.length) last = page.items[page.items.length - 1].id;
        counted(page.has_more && page.items.length > 0);
        body.rows[body.rows.length - fresh.length]?.querySelector("a")?.focus();
      });
      counted(found.has_more);
      results = [
        count,
        h("table", { class: "grid", id: "results" },
          h("caption", { class: "sr-only" }, t("search.title")),
          h("thead", {}, h("tr", {}, ["case", "time", "type", "camera", "plate", "measured", "status"]
            .map((c) => h("th", { scope: "col" }, t(`queue.col.${c}`))))),
          body),
        h("p", {}, more),
      ];
    }
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("search.title")), h("p", { class: "muted" }, t("search.intro"))),
      form, ...[results].flat());
    focusHeading();
  }

  // ------------------------------------------------------------------ deadlines

  // The confirmed cases awaiting their notice, the first due (the oldest violation) first:
  // every one up to QUEUE_MOST, page by page (the search lists the newest first, so its
  // first page alone left out the oldest, the most pressing; past QUEUE_MOST the oldest
  // are still left out, and the page says so).
  async function fetchConfirmed() {
    const items = [];
    let last = null;
    let more = true;
    while (more && items.length < QUEUE_MOST) {
      const page = await api(`/api/v1/violations${query({ status: "confirmed", limit: QUEUE_PAGE, after_id: last ?? "" })}`);
      items.push(...page.items);
      last = page.items.length ? page.items[page.items.length - 1].id : last;
      more = page.has_more && page.items.length > 0;
    }
    items.sort((a, b) => Date.parse(a.occurred_at) - Date.parse(b.occurred_at) || a.id - b.id);
    return { items, has_more: more };
  }

  async function renderDeadlines() {
    const gen = S.gen;
    const [due, confirmed] = await Promise.all([
      api("/api/v1/review/deadlines?limit=200"),
      fetchConfirmed(),
    ]);
    if (gen !== S.gen) return;
    S.page = { kind: "deadlines" };
    const states = due.items.flatMap((i) => i.deadlines.map((d) => d.state));
    const count = (s) => states.filter((x) => x === s).length;
    const dueTable = due.items.length ? h("table", { class: "grid", id: "deadlines" },
      h("thead", {}, h("tr", {},
        ["queue.col.case", "queue.col.time", "queue.col.type", "queue.col.camera", "queue.col.plate",
          "queue.col.status", "deadlines.col.deadline", "deadlines.col.state"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, due.items.map((i) => i.deadlines.map((d) => h("tr", { class: `row-${d.state}` },
        h("td", {}, h("a", { href: `#/case/${i.id}` }, `#${i.id}`)),
        h("td", {}, fmtTime(i.occurred_at)),
        h("td", {}, t(`type.${i.type}`)),
        h("td", {}, i.camera),
        plateCell(i),
        h("td", {}, statusBadge(i.status)),
        h("td", {}, t(`deadline.${d.name}`), h("div", { class: "muted" }, fmtTime(d.due_at))),
        h("td", {}, h("span", { class: `deadline dl-${d.state}` }, h("span", { class: "dl-state" }, t(`deadline.${d.state}`)))))))))
      : h("p", { class: "empty" }, t("deadlines.empty"));
    const waiting = confirmed.items.length ? h("table", { class: "grid", id: "awaiting" },
      h("thead", {}, h("tr", {}, ["queue.col.case", "queue.col.time", "queue.col.type", "queue.col.camera",
        "queue.col.plate", "queue.col.status"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, confirmed.items.map((i) => h("tr", {},
        h("td", {}, h("a", { href: `#/case/${i.id}` }, `#${i.id}`)),
        h("td", {}, fmtTime(i.occurred_at)),
        h("td", {}, t(`type.${i.type}`)),
        h("td", {}, i.camera),
        plateCell(i),
        h("td", {}, statusBadge(i.status)))))) : h("p", { class: "empty" }, t("deadlines.awaiting_empty"));
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("deadlines.title")), h("p", { class: "muted" }, t("deadlines.intro"))),
      h("p", { class: "counts" },
        h("span", { class: "deadline dl-due" }, h("span", { class: "dl-state" }, t("deadlines.due_count", { count: count("due") }))), " ",
        h("span", { class: "deadline dl-overdue" }, h("span", { class: "dl-state" }, t("deadlines.overdue_count", { count: count("overdue") })))),
      dueTable,
      h("h2", {}, t("deadlines.awaiting")),
      confirmed.has_more ? h("p", { class: "banner warn", id: "awaiting-more" }, t("deadlines.awaiting_more", { count: confirmed.items.length })) : "",
      waiting);
    focusHeading();
  }

  // ------------------------------------------------------------------ charts (inline SVG)

  // Horizontal bars: one row per item, the label on the left.
  function hBarChart(id, title, items) {
    const total = items.reduce((s, i) => s + i.value, 0);
    const fig = h("figure", { class: "chart", id });
    fig.append(h("figcaption", {}, h("strong", {}, title), " ", h("span", { class: "muted" }, t("stats.total", { count: fmtNum(total, 0) }))));
    if (!items.length) {
      fig.append(h("p", { class: "muted" }, t("stats.none")));
      return fig;
    }
    const rowH = 26; const labelW = 190; const width = 560; const barW = width - labelW - 60;
    const max = Math.max(...items.map((i) => i.value), 1);
    const height = items.length * rowH + 8;
    const summary = items.map((i) => `${i.label} ${i.text ?? i.value}`).join(", ");
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": t("stats.chart_label", { title, summary }), class: "svg-chart",
    });
    items.forEach((item, n) => {
      const y = 4 + n * rowH;
      const w = Math.max(2, (item.value / max) * barW);
      chart.append(svg("g", {},
        svg("title", {}, `${item.label}: ${item.value}`),
        svg("text", { x: labelW - 8, y: y + 17, "text-anchor": "end", class: "lbl" }, truncate(item.label, 26)),
        svg("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 3, class: `bar ${item.cls || ""}` }),
        svg("text", { x: labelW + w + 6, y: y + 17, class: "val" }, fmtNum(item.value, 0))));
    });
    fig.append(chart);
    return fig;
  }

  // Vertical bars over time buckets.
  function vBarChart(id, title, items, { width = 560, height = 200, note = null } = {}) {
    const total = items.reduce((s, i) => s + i.value, 0);
    const fig = h("figure", { class: "chart", id });
    fig.append(h("figcaption", {}, h("strong", {}, title), " ",
      h("span", { class: "muted" }, note ?? t("stats.total", { count: fmtNum(total, 0) }))));
    if (!items.length) {
      fig.append(h("p", { class: "muted" }, t("stats.none")));
      return fig;
    }
    const left = 36; const bottom = 22; const top = 8;
    const plotH = height - bottom - top; const plotW = width - left - 6;
    const max = Math.max(...items.map((i) => i.value), 1);
    const slot = plotW / items.length;
    const summary = items.map((i) => `${i.label} ${i.text ?? i.value}`).join(", ");
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": t("stats.chart_label", { title, summary }), class: "svg-chart",
    });
    chart.append(svg("line", { x1: left, y1: top + plotH, x2: width - 4, y2: top + plotH, class: "axis" }));
    chart.append(svg("text", { x: left - 4, y: top + 10, "text-anchor": "end", class: "val" }, fmtNum(max, 0)));
    chart.append(svg("text", { x: left - 4, y: top + plotH, "text-anchor": "end", class: "val" }, "0"));
    const every = Math.ceil(items.length / 12);
    items.forEach((item, n) => {
      // (an item with no data is drawn as a hatched slot the plot's height, not as a bar;
      // one counted over part of its span as a paler bar; ``text`` says which in its title)
      const bh = item.gap ? plotH : (item.value / max) * plotH;
      const x = left + n * slot + slot * 0.15;
      chart.append(svg("g", { "data-hour": item.hour ?? null, class: item.gap ? "gap" : item.partial ? "partial" : null },
        svg("title", {}, `${item.label}: ${item.text ?? item.value}`),
        svg("rect", { x, y: top + plotH - bh, width: Math.max(1, slot * 0.7), height: Math.max(0, bh), rx: 2, class: item.gap ? "no-data" : "bar" }),
        n % every === 0 ? svg("text", { x: x + slot * 0.35, y: height - 6, "text-anchor": "middle", class: "lbl small" }, item.label) : null));
    });
    fig.append(chart);
    return fig;
  }

  function truncate(s, n) {
    return s.length > n ? `${s.slice(0, n - 1)}…` : s;
  }

  // ------------------------------------------------------------------ statistics

  // A day in Vietnam as YYYY-MM-DD (en-CA writes dates so), whatever the browser's zone:
  // toISOString's UTC date is yesterday there from 00:00 to 07:00.
  function dateInput(value) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(value);
  }

  async function renderStats(_arg, params) {
    const today = new Date();
    const from = params.get("from") || dateInput(new Date(today.getTime() - 13 * 86400000));
    const to = params.get("to") || dateInput(today);
    // Days in Vietnam (UTC+7, all year): central counts them so, and the range is theirs.
    const dayAfter = new Date(new Date(`${to}T00:00:00Z`).getTime() + 86400000).toISOString().slice(0, 10);
    const range = { from: `${from}T00:00:00${VN_OFFSET}`, to: `${dayAfter}T00:00:00${VN_OFFSET}`, utc_offset: VN_OFFSET };
    const backwards = from > to; // (ISO dates compare as text)
    // Central counts at most MAX_STATS_DAYS days by day in one request (and refuses a
    // backwards range): such a range is said here, not asked for.
    const days = (Date.parse(`${dayAfter}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000;
    const tooLong = days > MAX_STATS_DAYS;
    const gen = S.gen;
    const none = { counts: [] };
    const [byType, byCamera, byDay, byStatus] = backwards || tooLong ? [none, none, none, none] : await Promise.all(
      ["type", "camera", "day", "status"].map((by) => api(`/api/v1/stats/violations${query({ by, ...range })}`)));
    if (gen !== S.gen) return;
    S.page = { kind: "stats" };
    const fromIn = h("input", { id: "s-from", type: "date", value: from });
    const toIn = h("input", { id: "s-to", type: "date", value: to });
    const form = h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      go(`#/stats${query({ from: fromIn.value, to: toIn.value })}`);
    } }, field("s-from", t("stats.from"), fromIn), field("s-to", t("stats.to"), toIn),
    h("div", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary" }, t("stats.apply"))));
    const refusal = backwards ? t("stats.backwards") : tooLong ? t("stats.too_long", { days: MAX_STATS_DAYS }) : "";
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("stats.title")), h("p", { class: "muted" }, t("stats.days_vn"))),
      form,
      refusal ? h("p", { class: "field-error", id: "stats-range", role: "alert" }, refusal) : "",
      refusal ? "" : h("div", { class: "charts" },
        hBarChart("chart-type", t("stats.by_type"), byType.counts.map((c) => ({ label: t(`type.${c.key}`), value: c.count }))),
        hBarChart("chart-camera", t("stats.by_camera"), cameraBars(byCamera.counts)),
        vBarChart("chart-day", t("stats.by_day"), fillDays(from, to, byDay.counts)),
        hBarChart("chart-status", t("stats.by_status"), byStatus.counts.map((c) => ({ label: t(`status.${c.key}`), value: c.count, cls: `st-${c.key}` })))));
    focusHeading();
  }

  // Counts by camera name their site: a camera id that two sites share shows its site.
  function cameraBars(counts) {
    const seen = {};
    for (const c of counts) seen[c.key] = (seen[c.key] || 0) + 1;
    return counts.map((c) => ({ label: seen[c.key] > 1 ? `${c.key} (${c.site})` : c.key, value: c.count }));
  }

  function fillDays(from, to, counts) {
    const byKey = Object.fromEntries(counts.map((c) => [c.key.slice(0, 10), c.count]));
    const out = [];
    for (let d = new Date(`${from}T00:00:00Z`); d <= new Date(`${to}T00:00:00Z`); d = new Date(d.getTime() + 86400000)) {
      const key = d.toISOString().slice(0, 10);
      out.push({ label: fmtDay(d.toISOString()), value: byKey[key] || 0 });
    }
    return out;
  }

  // ------------------------------------------------------------------ users

  async function renderUsers() {
    const gen = S.gen;
    const users = await api("/api/v1/users");
    if (gen !== S.gen) return;
    S.page = { kind: "users" };
    const roleSelect = (id, value, label) => h("select", { id, "aria-label": label },
      ROLES.map((r) => h("option", { value: r, selected: r === value }, t(`role.${r}`))));
    const rows = users.map((u, n) => {
      const sel = roleSelect(`u-role-${n}`, u.role, t("users.row_role", { user: u.username }));
      const active = h("input", { type: "checkbox", id: `u-active-${n}`, checked: u.active, "aria-label": t("users.row_active", { user: u.username }) });
      const save = h("button", { type: "button", class: "secondary", "aria-label": t("users.save_user", { user: u.username }), onclick: async () => {
        try {
          await api(`/api/v1/users/${encodeURIComponent(u.username)}`, { method: "PATCH", body: { role: sel.value, active: active.checked } });
          toast(t("users.saved", { user: u.username }));
        } catch (e) {
          if (e.status === 401) return;
          // Put the row back as it is stored, then say why the change was refused.
          sel.value = u.role;
          active.checked = u.active;
          banner(e.status === 409 ? t("users.refused", { detail: e.message }) : t("app.error", { detail: e.message }));
        }
      } }, t("users.save"));
      return h("tr", { "data-user": u.username },
        h("td", {}, u.username), h("td", {}, u.full_name || t("misc.none")), h("td", {}, sel),
        h("td", {}, active), h("td", {}, fmtTime(u.created_at)), h("td", {}, save));
    });
    const name = h("input", { id: "nu-name", required: true, pattern: "[a-z0-9][a-z0-9_.\\-]{2,63}", autocomplete: "off" });
    const full = h("input", { id: "nu-full", maxlength: "128", autocomplete: "off" });
    const role = roleSelect("nu-role", "officer", null);
    const pass = h("input", { id: "nu-pass", type: "password", minlength: "10", required: true, autocomplete: "new-password" });
    const form = h("form", { class: "filters", id: "new-user", "aria-labelledby": "h-new-user", onsubmit: oneAtATime(async () => {
      try {
        await api("/api/v1/users", { method: "POST", body: { username: name.value.trim(), full_name: full.value, role: role.value, password: pass.value } });
        const who = name.value.trim();
        await render();
        toast(t("users.added", { user: who }));
      } catch (err) {
        if (err.status !== 401) banner(err.code ? err.message : t("app.error", { detail: err.message }));
      }
    }) },
    field("nu-name", t("users.username"), name), field("nu-full", t("users.full_name"), full),
    field("nu-role", t("users.role"), role), field("nu-pass", t("users.password"), pass),
    h("div", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary" }, t("users.add"))));
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("users.title"))),
      h("table", { class: "grid", id: "users" },
        h("thead", {}, h("tr", {}, ["users.username", "users.full_name", "users.role", "users.active", "users.created", "users.actions"]
          .map((k) => h("th", { scope: "col" }, t(k))))),
        h("tbody", {}, rows)),
      h("h2", { id: "h-new-user" }, t("users.create")),
      form);
    focusHeading();
  }

  // ------------------------------------------------------------------ cameras

  // Each camera's name, place and map position, as the IOC map and the case page show
  // them (the node reports the camera; people name and place it here).
  async function renderCameras() {
    const gen = S.gen;
    const cameras = await api("/api/v1/cameras");
    if (gen !== S.gen) return;
    S.page = { kind: "cameras" };
    const rows = cameras.map((c, n) => {
      const who = `${c.site}/${c.node}/${c.camera}`;
      const text = (id, value, label) => h("input", { id, value: value || "", maxlength: "128", autocomplete: "off", "aria-label": label });
      const coord = (id, value, label, min, max) => h("input", { id, type: "number", step: "0.000001", min, max, value: value ?? "", "aria-label": label });
      const name = text(`cam-name-${n}`, c.name, t("cameras.row_name", { camera: who }));
      // The place set here; the one its node names (and its evidence prints) shows where
      // none is set, and beside one that differs.
      const place = text(`cam-place-${n}`, c.registered_place, t("cameras.row_place", { camera: who }));
      if (c.node_place) place.placeholder = c.node_place;
      const differs = c.node_place && c.registered_place && c.node_place !== c.registered_place;
      const nodePlace = differs ? h("p", { class: "muted node-place" }, t("cameras.node_place", { place: c.node_place })) : null;
      const lat = coord(`cam-lat-${n}`, c.latitude, t("cameras.row_lat", { camera: who }), "-90", "90");
      const lon = coord(`cam-lon-${n}`, c.longitude, t("cameras.row_lon", { camera: who }), "-180", "180");
      const save = h("button", { type: "button", class: "secondary", "aria-label": t("cameras.save_camera", { camera: who }), onclick: async () => {
        const number = (input) => (input.value.trim() === "" ? null : Number(input.value));
        if ((number(lat) === null) !== (number(lon) === null) || !lat.checkValidity() || !lon.checkValidity()) {
          banner(t("cameras.both_coords"));
          return;
        }
        try {
          await api(`/api/v1/cameras/${c.id}`, { method: "PATCH", body: {
            name: name.value.trim(), registered_place: place.value.trim(), latitude: number(lat), longitude: number(lon) } });
          clearBanner();
          toast(t("cameras.saved", { camera: who }));
        } catch (e) {
          if (e.status !== 401) banner(t("cameras.refused", { detail: e.message }));
        }
      } }, t("cameras.save"));
      return h("tr", { "data-camera": who },
        h("td", {}, h("code", {}, who)),
        h("td", {}, h("span", { class: `state cam-${stateOf(c)}` }, h("span", { class: "dot", "aria-hidden": "true" }), t(`cam.${stateOf(c)}`))),
        h("td", {}, name), h("td", {}, place, nodePlace), h("td", {}, lat), h("td", {}, lon), h("td", {}, save));
    });
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("cameras.title"))),
      h("p", { class: "muted" }, t("cameras.intro")),
      cameras.length
        ? h("table", { class: "grid", id: "cameras" },
          h("thead", {}, h("tr", {}, ["cameras.camera", "cameras.state", "cameras.name", "cameras.place", "cameras.latitude", "cameras.longitude", "cameras.actions"]
            .map((k) => h("th", { scope: "col" }, t(k))))),
          h("tbody", {}, rows))
        : h("p", { class: "muted" }, t("cameras.none")));
    focusHeading();
  }

  // ------------------------------------------------------------------ edge nodes

  // The registered edge nodes and their signing keys: a new key is added before a node
  // switches to it (rotation); a key is revoked once out of use, or at once when a box
  // may be in other hands, from the time it was last known safe.
  async function renderNodes() {
    const gen = S.gen;
    const nodes = await api("/api/v1/nodes");
    const keys = await Promise.all(nodes.map((n) =>
      api(`/api/v1/nodes/${encodeURIComponent(n.site)}/${encodeURIComponent(n.node)}/keys`)));
    if (gen !== S.gen) return;
    S.page = { kind: "nodes" };
    const sections = nodes.map((n, i) => nodeSection(n, keys[i], i));
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("nodes.title"))),
      h("p", { class: "muted" }, t("nodes.intro")),
      nodes.length ? h("div", { id: "nodes" }, sections) : h("p", { class: "muted" }, t("nodes.none")));
    focusHeading();
  }

  function nodeSection(n, keys, i) {
    const path = `/api/v1/nodes/${encodeURIComponent(n.site)}/${encodeURIComponent(n.node)}/keys`;
    const name = `${n.site}/${n.node}`;
    const refused = (err) => {
      if (err.status !== 401) banner(t("nodes.refused", { detail: err.message }));
    };
    const rows = keys.map((k, j) => {
      const state = k.revoked_at
        ? t("nodes.key_revoked", { at: fmtTime(k.revoked_at), reason: k.revoke_reason || t("misc.none") })
        : t("nodes.key_in_force");
      let action = null;
      if (!k.revoked_at) {
        const reason = h("input", { id: `nk-reason-${i}-${j}`, required: true, maxlength: "2000", autocomplete: "off" });
        const since = h("input", { id: `nk-since-${i}-${j}`, type: "datetime-local", step: "1" });
        action = h("form", { class: "revoke-key", onsubmit: oneAtATime(async () => {
          const body = { reason: reason.value.trim() };
          if (!body.reason) {
            banner(t("error.revoke_reason_required"));
            reason.focus();
            return;
          }
          // (revoking cannot be undone: what the key signs is refused from then on)
          if (!window.confirm(t("nodes.revoke_confirm", { key: k.fingerprint.slice(0, 16), node: name }))) return;
          if (since.value) body.since = localToIso(since.value);
          try {
            await api(`${path}/${k.fingerprint}/revoke`, { method: "POST", body });
            await render();
            toast(t("nodes.revoked", { key: k.fingerprint.slice(0, 16), node: name }));
          } catch (err) {
            refused(err);
          }
        }) },
        field(`nk-reason-${i}-${j}`, t("nodes.reason"), reason),
        field(`nk-since-${i}-${j}`, t("nodes.since"), since),
        h("button", { type: "submit", class: "danger", "aria-label": t("nodes.revoke_key", { key: k.fingerprint.slice(0, 16) }) }, t("nodes.revoke")));
      }
      return h("tr", { "data-key": k.fingerprint, class: k.revoked_at ? "revoked" : null },
        h("td", {}, h("code", { title: k.fingerprint }, `${k.fingerprint.slice(0, 16)}…`)),
        h("td", {}, fmtTime(k.added_at)), h("td", {}, state), h("td", {}, action));
    });
    const pem = h("textarea", { id: `nk-pem-${i}`, required: true, rows: "4", spellcheck: "false",
      placeholder: "-----BEGIN PUBLIC KEY-----" });
    const add = h("form", { class: "add-key", onsubmit: oneAtATime(async () => {
      try {
        const added = await api(path, { method: "POST", body: { public_key_pem: pem.value.trim() + "\n" } });
        await render();
        toast(t("nodes.added", { key: added.fingerprint.slice(0, 16), node: name }));
      } catch (err) {
        refused(err);
      }
    }) },
    field(`nk-pem-${i}`, t("nodes.new_key"), pem),
    h("div", { class: "filter-buttons" }, h("button", { type: "submit", class: "secondary" }, t("nodes.add"))));
    return h("section", { class: "node", "data-node": name, "aria-labelledby": `h-node-${i}` },
      h("h2", { id: `h-node-${i}` }, name, " ",
        h("span", { class: `badge node-${n.state}` }, t(`nodes.state_${NODE_STATES.includes(n.state) ? n.state : "unknown"}`))),
      h("p", { class: "muted" }, t("nodes.last_status", { at: fmtTime(n.status_sent_at) })),
      n.clock_off ? h("p", { class: "banner warn node-clock" }, t("nodes.clock_off", {
        offset: `${n.clock_offset_s > 0 ? "+" : ""}${Math.round(n.clock_offset_s)}` })) : null,
      h("table", { class: "grid node-keys" },
        h("thead", {}, h("tr", {}, ["nodes.fingerprint", "nodes.added_at", "nodes.state", "nodes.actions"]
          .map((key) => h("th", { scope: "col" }, t(key))))),
        h("tbody", {}, rows)),
      add);
  }

  // ------------------------------------------------------------------ IOC

  // Approximate routes (latitude, longitude), drawn as a schematic.
  const ROADS = {
    ql13: [[10.801, 106.711], [10.83, 106.716], [10.862, 106.718], [10.905, 106.70], [10.94, 106.68],
      [10.98, 106.655], [11.04, 106.63], [11.10, 106.60], [11.16, 106.585]],
    mptv: [[10.905, 106.80], [10.925, 106.77], [10.955, 106.735], [10.99, 106.70], [11.03, 106.665],
      [11.08, 106.63], [11.13, 106.60]],
  };
  const TOWNS = [
    ["saigon", 10.801, 106.711], ["thuan_an", 10.905, 106.70], ["thu_dau_mot", 10.98, 106.655],
    ["ben_cat", 11.13, 106.60], ["tan_van", 10.905, 106.80],
  ];
  const BOX = { lat0: 10.78, lat1: 11.18, lon0: 106.50, lon1: 106.86, w: 600, h: 430 };
  const project = (lat, lon) => [
    ((lon - BOX.lon0) / (BOX.lon1 - BOX.lon0)) * BOX.w,
    ((BOX.lat1 - lat) / (BOX.lat1 - BOX.lat0)) * BOX.h,
  ];

  // The traffic flow of the last 24 hours is read again this often: the page stays open on
  // the centre's wall for hours, and a chart of the hours before it was opened misleads.
  const FLOW_REFRESH_MS = 60 * 1000;

  function flowSince() {
    const since = new Date(Date.now() - 24 * 3600 * 1000);
    since.setUTCMinutes(0, 0, 0);
    return since;
  }

  async function refreshFlow(signal) {
    while (!signal.aborted) {
      await sleep(FLOW_REFRESH_MS, signal);
      if (signal.aborted || S.page?.kind !== "ioc") return;
      const since = flowSince();
      let flow;
      try {
        flow = await api(`/api/v1/stats/traffic${query({ by: "hour", from: since.toISOString() })}`);
      } catch (_) {
        continue; // (offline a while: the chart shown stays, and the next turn tries again)
      }
      const panel = $("#flow");
      if (signal.aborted || !panel) return;
      panel.replaceChildren(flowCharts(flow, since));
    }
  }

  // The chart's last 24 hours as a spreadsheet: a row per camera and hour. A link (the page
  // stays read-only), followed with the session's token.
  const flowCsvPath = (since) => `/api/v1/stats/traffic${query({ by: "hour", from: since.toISOString(), format: "csv" })}`;

  async function flowCsv(ev) {
    ev.preventDefault();
    await downloadCsv(flowCsvPath(flowSince()));
  }

  async function downloadCsv(path) {
    try {
      const r = await api(path, { raw: true });
      const named = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
      await saveAs(r, named ? named[1] : "roadwatch_traffic.csv"); // (named for its range)
    } catch (e) {
      if (e.status !== 401) banner(t("app.error", { detail: e.message }));
    }
  }

  async function renderIoc() {
    const since = flowSince();
    const gen = S.gen;
    // The feed replays health changes from a minute before the page loaded (a browser clock
    // a little ahead of the server's loses nothing; repeats are harmless).
    const loadedAt = new Date(Date.now() - 60 * 1000).toISOString();
    const [cameras, recent, flow] = await Promise.all([
      api("/api/v1/cameras"),
      api("/api/v1/violations?limit=15"),
      api(`/api/v1/stats/traffic${query({ by: "hour", from: since.toISOString() })}`),
    ]);
    if (gen !== S.gen) return;
    const abort = new AbortController();
    S.page = { kind: "ioc", cameras, feed: recent.items, cleanup: () => abort.abort() };
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("ioc.title")), h("span", { class: "badge ro" }, t("ioc.read_only"))),
      h("div", { class: "ioc" },
        h("div", { class: "ioc-col" },
          h("section", { class: "map-panel", "aria-labelledby": "h-map" },
            h("h2", { id: "h-map" }, t("ioc.map")), h("div", { id: "map" }), h("div", { id: "legend" })),
          h("section", { class: "flow-panel", "aria-labelledby": "h-flow" },
            h("h2", { id: "h-flow" }, t("ioc.flow")),
            h("a", { href: flowCsvPath(since), id: "flow-csv", onclick: flowCsv }, t("ioc.flow_csv")),
            h("div", { id: "flow" }, flowCharts(flow, since)))),
        h("div", { class: "ioc-col" },
          h("section", { class: "feed-panel", "aria-labelledby": "h-feed" },
            h("h2", { id: "h-feed" }, t("ioc.feed"), " ", h("span", { id: "feed-state", class: "feed-state" }, t("ioc.feed_connecting"))),
            h("p", { id: "feed-cut", class: "banner warn", role: "status", hidden: true }),
            h("ol", { id: "feed", class: "feed", "aria-live": "polite" })),
          h("section", { class: "cams-panel", "aria-labelledby": "h-cams" },
            h("h2", { id: "h-cams" }, t("ioc.cameras")), h("div", { id: "cam-table" })))));
    drawMap();
    drawCameraTable();
    drawFeed();
    focusHeading();
    // With no case yet, from the first: a case committed between the list and the feed's
    // start would otherwise fall before the feed's "now" and never be shown.
    const afterId = recent.items.length ? Math.max(...recent.items.map((i) => i.id)) : 0;
    runFeed(abort.signal, afterId, loadedAt);
    refreshFlow(abort.signal);
  }

  function camKey(c) {
    return `${c.site}/${c.node}/${c.camera}`;
  }

  function stateOf(c) {
    return CAMERA_STATES.includes(c.state) ? c.state : "unknown";
  }

  function drawMap() {
    const { cameras } = S.page;
    const map = svg("svg", {
      viewBox: `0 0 ${BOX.w} ${BOX.h}`, width: "100%", role: "img", id: "map-svg",
      "aria-label": `${t("ioc.map")} (${t("ioc.map_note")})`,
    });
    map.append(svg("rect", { x: 0, y: 0, width: BOX.w, height: BOX.h, class: "map-bg" }));
    for (const [road, points] of Object.entries(ROADS)) {
      const d = points.map(([la, lo], i) => `${i ? "L" : "M"}${project(la, lo).map((v) => v.toFixed(1)).join(",")}`).join(" ");
      map.append(svg("path", { d, class: `road road-${road}` }, svg("title", {}, t(`ioc.${road}`))));
    }
    const [qx, qy] = project(11.06, 106.628);
    map.append(svg("text", { x: qx - 12, y: qy, class: "road-label", "text-anchor": "end" }, t("ioc.ql13")));
    const [mx, my] = project(10.872, 106.80);
    map.append(svg("text", { x: mx, y: my, class: "road-label", "text-anchor": "middle" }, t("ioc.mptv")));
    for (const [key, la, lo] of TOWNS) {
      const [x, y] = project(la, lo);
      map.append(svg("circle", { cx: x, cy: y, r: 3, class: "town" }));
      map.append(svg("text", { x: x - 8, y: y + 4, class: "town-label", "text-anchor": "end" }, t(`ioc.place.${key}`)));
    }
    const unlocated = [];
    for (const c of cameras) {
      if (c.latitude == null || c.longitude == null) {
        unlocated.push(c.name || c.camera);
        continue;
      }
      const [x, y] = project(c.latitude, c.longitude);
      const st = stateOf(c);
      map.append(svg("g", { class: `cam cam-${st}`, "data-camera": c.camera, "data-state": st },
        svg("title", {}, `${cameraName(c)}: ${t(`cam.${st}`)}${c.reason ? ` (${healthReason(c.reason)})` : ""}`),
        svg("circle", { cx: x, cy: y, r: 9 }),
        svg("text", { x: x + 13, y: y + 4, class: "cam-label" }, c.camera)));
    }
    map.append(svg("text", { x: 8, y: BOX.h - 8, class: "map-note" }, t("ioc.map_note")));
    $("#map").replaceChildren(map, unlocated.length ? h("p", { class: "muted small" }, t("ioc.unlocated", { names: unlocated.join(", ") })) : "");
    // (every state a camera can be drawn in: a grey the legend leaves out means nothing)
    $("#legend").replaceChildren(h("ul", { class: "legend", "aria-label": t("ioc.legend") },
      CAMERA_STATES.map((st) => h("li", {},
        h("span", { class: `dot cam-${st}`, "aria-hidden": "true" }), t(`cam.${st}`)))));
  }

  // The reasons an edge (edge/sources.py) or central (central/records.py) gives for a
  // camera's state in fixed words, in the reader's language; any other (an error's own
  // text) is shown as written.
  const HEALTH_REASONS = {
    "node offline": "ioc.reason.node_offline",
    "not in the node's status: not running on the node": "ioc.reason.not_in_status",
    "streaming": "ioc.reason.streaming",
    "not started": "ioc.reason.not_started",
    "no frame within the stall timeout": "ioc.reason.stall_timeout",
    "only corrupt frames": "ioc.reason.only_corrupt_frames",
    "end of file": "ioc.reason.end_of_file",
    "end of file, looping": "ioc.reason.end_of_file_looping",
    "no frame could be read from the file": "ioc.reason.no_frame_in_file",
    "stream failed": "ioc.reason.stream_failed",
  };

  // Reasons in fixed words around a number or a name the edge fills in (edge/pipeline.py,
  // edge/enforcement.py): said in the reader's language with what was filled in.
  const HEALTH_REASON_FORMS = [
    [/^frames not processed for (?<seconds>\d+) s: the pipeline is stuck$/, "ioc.reason.pipeline_stuck"],
    [/^no fresh signal controller message for head (?<heads>[^:]+): red light is not enforced at its stop lines$/, "ioc.reason.signal_silent"],
  ];

  function knownReason(reason) {
    return Object.hasOwn(HEALTH_REASONS, reason) || HEALTH_REASON_FORMS.some(([form]) => form.test(reason));
  }

  function healthReason(reason) {
    if (Object.hasOwn(HEALTH_REASONS, reason)) return t(HEALTH_REASONS[reason]);
    for (const [form, key] of HEALTH_REASON_FORMS) {
      const found = form.exec(reason);
      if (found) return t(key, found.groups);
    }
    return reason;
  }

  function drawCameraTable() {
    const { cameras } = S.page;
    $("#cam-table").replaceChildren(h("table", { class: "grid compact", id: "cameras" },
      h("thead", {}, h("tr", {}, ["camera", "place", "state", "reason", "fps", "updated"].map((k) => h("th", { scope: "col" }, t(`ioc.col.${k}`))))),
      h("tbody", {}, cameras.map((c) => {
        const st = stateOf(c);
        return h("tr", { "data-camera": c.camera },
          h("td", {}, h("strong", {}, c.name || c.camera), c.name ? h("div", { class: "muted small" }, c.camera) : null),
          h("td", {}, c.place || t("misc.none")),
          h("td", {}, h("span", { class: `state cam-${st}` }, h("span", { class: "dot", "aria-hidden": "true" }), t(`cam.${st}`))),
          h("td", { lang: c.reason && !knownReason(c.reason) ? "en" : null }, c.reason ? healthReason(c.reason) : t("misc.none")), h("td", {}, fmtNum(c.fps)), h("td", { title: fmtTime(c.updated_at), class: "when" }, fmtSince(c.updated_at)));
      }))));
  }

  function drawFeed() {
    const items = S.page.feed.slice(0, 15);
    $("#feed").replaceChildren(...(items.length ? items.map((v) => h("li", { "data-id": v.id },
      h("span", { class: "feed-time" }, fmtTime(v.occurred_at)),
      h("strong", {}, t("ioc.feed_item", { type: t(`type.${v.type}`), camera: feedCamera(v) })),
      v.plate ? h("span", { class: "plate" }, v.plate) : noPlate(),
      v.speed_kmh != null ? h("span", { class: "muted" }, `${fmtNum(v.speed_kmh)} km/h`) : null)) : [h("li", { class: "muted" }, t("ioc.feed_empty"))]));
  }

  // A case's camera as the camera table and the map name it (its name, where central
  // gives it one); a case names its site and camera, not its node.
  function feedCamera(v) {
    const cams = S.page.cameras.filter((c) => c.site === v.site && c.camera === v.camera);
    return cams.length === 1 ? cameraName(cams[0]) : v.camera;
  }

  function setFeedState(state) {
    const el = $("#feed-state");
    if (!el) return;
    el.textContent = t(`ioc.feed_${state}`);
    el.className = `feed-state fs-${state}`;
  }

  // The feed from after ``afterId`` and ``since``; a reconnect resumes from the last resume token the
  // stream gave (``id:``), so what happened while it was away still arrives.
  async function runFeed(signal, afterId, since) {
    let resume = null;
    while (!signal.aborted) {
      setFeedState("connecting");
      let ended = false;
      try {
        await freshToken(); // (a stream ends a minute before its token runs out)
        if (!S.session) return;
        const headers = { Authorization: `Bearer ${S.session.token}` };
        if (resume) headers["Last-Event-ID"] = resume;
        const r = await fetch(`/api/v1/feed${resume ? "" : query({ after_id: afterId, since })}`, { headers, signal });
        if (r.status === 401) { expire(); return; }
        if (!r.ok) throw new Error(String(r.status));
        setFeedState("connected");
        const reader = r.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) { ended = true; break; }
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let kind = "message"; let data = ""; let id = null;
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) kind = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
              else if (line.startsWith("id:")) id = line.slice(3).trim();
            }
            if (data) onFeedEvent(kind, JSON.parse(data));
            if (id) resume = id;
          }
        }
      } catch (_) {
        if (signal.aborted) return;
      }
      if (ended) { await sleep(250, signal); continue; } // (it ended as streams do: go on)
      setFeedState("lost");
      await sleep(2000, signal);
    }
  }

  function onFeedEvent(kind, data) {
    if (S.page?.kind !== "ioc") return;
    if (kind === "violation") {
      // (a resumed stream may repeat a violation, from up to a minute back)
      const seen = S.page.feedSeen ??= new Set(S.page.feed.map((v) => v.id));
      if (seen.has(data.id)) return;
      seen.add(data.id);
      if (seen.size > 5000) seen.delete(seen.values().next().value);
      S.page.feed.unshift(data);
      S.page.feed.length = Math.min(S.page.feed.length, 50);
      drawFeed();
    } else if (kind === "camera") {
      const cam = S.page.cameras.find((c) => camKey(c) === camKey(data));
      // (where it is comes with each camera event: the place shown, and both sources)
      const where = { place: data.place ?? "", registered_place: data.registered_place ?? "", node_place: data.node_place ?? null };
      if (cam) Object.assign(cam, { state: data.state, reason: data.reason, updated_at: data.updated_at, ...where });
      else S.page.cameras.push({ ...data, name: "", ...where, latitude: null, longitude: null, fps: null });
      redrawCameras();
    } else if (kind === "health_cut") {
      // (a replay is bounded: the changes it left out never arrive, the states now do)
      const el = $("#feed-cut");
      el.textContent = t("ioc.feed_cut", { from: fmtTime(data.from), to: fmtTime(data.to) });
      el.hidden = false;
    }
  }

  // Once per animation frame, however many camera events came since: a resumed feed replays
  // up to a thousand health changes at once, each a redraw of the map and table otherwise.
  function redrawCameras() {
    const page = S.page;
    if (page.redrawing) return;
    page.redrawing = true;
    requestAnimationFrame(() => {
      page.redrawing = false;
      if (S.page !== page) return;
      drawMap();
      drawCameraTable();
    });
  }

  function flowCharts(flow, since) {
    // One chart per camera: site, node and camera (two nodes may each have a "cam-01").
    const byCamera = new Map();
    for (const b of flow.buckets) {
      const key = camKey(b);
      if (!byCamera.has(key)) byCamera.set(key, []);
      byCamera.get(key).push(b);
    }
    if (!byCamera.size) return h("p", { class: "muted" }, t("ioc.flow_none"));
    const names = [...byCamera.values()].map((bs) => bs[0].camera);
    const shared = new Set(names.filter((n, i) => names.indexOf(n) !== i));
    const hours = [];
    const now = Date.now();
    for (let i = 0; i <= 24; i++) hours.push(new Date(since.getTime() + i * 3600000).toISOString().slice(0, 13));
    return h("div", { class: "flows" }, [...byCamera.values()].map((buckets) => {
      const { site, node } = buckets[0];
      const camera = shared.has(buckets[0].camera) ? `${site}/${node}/${buckets[0].camera}` : buckets[0].camera;
      // (keyed by the bucket's hour in UTC, whatever offset central names it at)
      const byHour = Object.fromEntries(buckets.map((b) => [new Date(b.bucket).toISOString().slice(0, 13), b]));
      const items = hours.map((hr) => flowHour(hr, byHour[hr], now));
      return vBarChart(`flow-${camera.replaceAll("/", "-")}`, flowTitle(camera, buckets), items,
        { width: 300, height: 130, note: `(${t("ioc.flow_axis")})` });
    }), flowLegend());
  }

  // An hour of one camera's chart. A camera reports each minute it counts, an empty road's
  // with no vehicle: an hour with no minute reported is no data (the camera or its node
  // was down), not an empty road, and an hour with fewer minutes than it spans (so far,
  // for the hour under way) counted only those. (The minute just ended may still be on its
  // way: it is not due yet.)
  function flowHour(hr, bucket, now) {
    const start = Date.parse(`${hr}:00:00Z`);
    return flowSlot(start, 60, bucket, now, fmtHour(start), hr);
  }

  // A slot of ``span`` minutes from ``start`` (ms), drawn from its bucket as flowHour says.
  function flowSlot(start, span, bucket, now, label, hour) {
    const due = Math.max(0, Math.min(span, Math.floor((now - start) / 60000) - 1));
    const minutes = bucket?.minutes ?? 0;
    if (!bucket) {
      const gap = span === 60 ? "ioc.flow_no_data" : "traffic.no_data_minute";
      return due ? { label, value: 0, hour, gap: true, due, text: t(gap) } : { label, value: 0, hour, due };
    }
    const item = { label, value: bucket.vehicles, hour, due };
    if (minutes < due) {
      item.partial = true;
      item.text = t("ioc.flow_partial", { vehicles: fmtNum(bucket.vehicles, 0), minutes, of: due });
    }
    return item;
  }

  // "{camera}: N vehicles, mean speed X km/h": the speed weighted by the vehicles counted.
  function flowTitle(camera, buckets) {
    const vehicles = buckets.reduce((s, b) => s + b.vehicles, 0);
    const weighted = buckets.filter((b) => b.mean_speed_kmh != null);
    const wsum = weighted.reduce((s, b) => s + b.vehicles, 0);
    const speed = wsum ? `${fmtNum(weighted.reduce((s, b) => s + b.mean_speed_kmh * b.vehicles, 0) / wsum)} km/h` : t("ioc.no_speed");
    return t("ioc.flow_camera", { camera, vehicles: fmtNum(vehicles, 0), speed });
  }

  function flowLegend(byMinute = false) {
    return h("p", { class: "flow-legend muted small" },
      h("span", { class: "key key-gap", "aria-hidden": "true" }), " ", t(byMinute ? "traffic.legend_gap_minute" : "ioc.flow_legend_gap"),
      byMinute ? null : [" · ", h("span", { class: "key key-partial", "aria-hidden": "true" }), " ", t("ioc.flow_legend_partial")]);
  }

  // ------------------------------------------------------------------ traffic

  const HOUR_MS = 3600 * 1000;
  // A time as Vietnam's wall clock with its offset: "2026-12-08T14:00:00+07:00".
  const vnIso = (ms) => `${new Date(ms + 7 * HOUR_MS).toISOString().slice(0, 19)}${VN_OFFSET}`;
  const fmtMinute = (ms) => new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false }).format(ms);

  // A camera as the page's link names it: its id, or site/node/camera where another node
  // has a camera of that id.
  function trafficKey(c, cameras) {
    return cameras.filter((o) => o.camera === c.camera).length > 1 ? `${c.site}/${c.node}/${c.camera}` : c.camera;
  }

  // The choices the link keeps: a camera (the first listed by default), a Vietnam day
  // (today by default), by hour, or by minute over one hour ("hour") or the whole day
  // (central's most by minute in one request), and per lane or not.
  function trafficChoices(params, cameras) {
    const by = params.get("by") === "minute" ? "minute" : "hour";
    const hour = params.get("hour") || "";
    return {
      camera: params.get("camera") || (cameras.length ? trafficKey(cameras[0], cameras) : ""),
      day: params.get("day") || dateInput(new Date()),
      by,
      hour: by === "minute" && /^([01]\d|2[0-3])$/.test(hour) ? hour : "",
      per: params.get("per") === "lane" ? "lane" : "",
    };
  }

  // The statistics of the choices as JSON or, with ``format``, CSV: the page and its
  // download read the same request, the vehicles by class included (which central adds
  // up only when asked: the IOC page, which shows none, does not ask).
  // A camera is named by its id, or by site/node/id where two nodes have one of that id.
  function trafficCamera(key) {
    const parts = key.split("/");
    if (parts.length === 1 && parts[0]) return [null, null, parts[0]];
    return parts.length === 3 && parts.every(Boolean) ? parts : null;
  }

  // A day written YYYY-MM-DD that is on the calendar (not 2026-02-31, which Date.parse
  // reads as 3 March).
  function calendarDay(day) {
    if (!/^\d{4}-\d\d-\d\d$/.test(day)) return false;
    const [y, m, d] = day.split("-").map(Number);
    const u = new Date(Date.UTC(y, m - 1, d));
    return u.getUTCFullYear() === y && u.getUTCMonth() === m - 1 && u.getUTCDate() === d;
  }

  function trafficPath(c, start, end, format) {
    const [site, node, camera] = trafficCamera(c.camera);
    return `/api/v1/stats/traffic${query({ site, node, camera, by: c.by, per: c.per, from: vnIso(start), to: vnIso(end), utc_offset: VN_OFFSET, classes: true, format })}`;
  }

  async function renderTraffic(_arg, params) {
    const gen = S.gen;
    const cameras = await api("/api/v1/cameras");
    const c = trafficChoices(params, cameras);
    const start = calendarDay(c.day) ? Date.parse(`${c.day}T${c.hour || "00"}:00:00${VN_OFFSET}`) : NaN;
    const end = start + (c.hour ? HOUR_MS : 24 * HOUR_MS);
    let flow = null;
    let error = !c.camera ? t("traffic.no_cameras")
      : !trafficCamera(c.camera) ? t("traffic.unknown_camera", { camera: c.camera })
      : Number.isNaN(start) ? t("traffic.bad_day", { day: c.day }) : "";
    if (!error) {
      try {
        flow = await api(trafficPath(c, start, end));
      } catch (e) {
        if (e.name === "AbortError" || e.status === 401) throw e;
        error = e.status === 404 ? t("traffic.unknown_camera", { camera: c.camera }) : t("app.error", { detail: e.message });
      }
    }
    if (gen !== S.gen) return;
    S.page = { kind: "traffic" };
    const keys = cameras.map((o) => trafficKey(o, cameras));
    const camSel = h("select", { id: "t-camera" },
      keys.includes(c.camera) ? null : h("option", { value: c.camera, selected: true }, c.camera),
      cameras.map((o, n) => h("option", { value: keys[n], selected: keys[n] === c.camera }, cameraName(o))));
    const dayIn = h("input", { id: "t-day", type: "date", value: c.day, required: true });
    const hourSel = h("select", { id: "t-hour", disabled: c.by !== "minute" }, h("option", { value: "" }, t("traffic.whole_day")),
      Array.from({ length: 24 }, (_, n) => String(n).padStart(2, "0")).map((hh) =>
        h("option", { value: hh, selected: hh === c.hour }, `${hh}:00–${hh}:59`)));
    const bySel = h("select", { id: "t-by", onchange: () => { hourSel.disabled = bySel.value !== "minute"; } },
      ["hour", "minute"].map((b) => h("option", { value: b, selected: b === c.by }, t(`traffic.by_${b}`))));
    const perLane = h("input", { id: "t-lane", type: "checkbox", checked: c.per === "lane" });
    const form = h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      const minute = bySel.value === "minute";
      go(`#/traffic${query({ camera: camSel.value, day: dayIn.value, by: bySel.value, hour: minute ? hourSel.value : "", per: perLane.checked ? "lane" : "" })}`);
    } }, field("t-camera", t("queue.camera"), camSel), field("t-day", t("traffic.day"), dayIn),
    field("t-by", t("traffic.by"), bySel), field("t-hour", t("traffic.hour"), hourSel),
    h("label", { for: "t-lane", class: "check" }, perLane, t("traffic.per_lane")),
    h("div", { class: "filter-buttons" }, h("button", { type: "submit", class: "primary" }, t("stats.apply"))));
    main().replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, t("traffic.title")), h("p", { class: "muted" }, t("stats.days_vn"))),
      form,
      error ? h("p", { class: "field-error", id: "traffic-error", role: "alert" }, error) : trafficView(c, flow, start, end));
    focusHeading();
  }

  // The vehicle classes a node counts apart, in the contract's order (central's order of
  // a bucket's counts).
  const VEHICLE_CLASSES = ["car", "motorcycle", "bus", "truck", "bicycle", "unknown"];

  // The classes the answer counted any vehicle of, in the contract's order (one the page
  // does not know yet after them, by its name): a column of the table each; a class no
  // bucket counted has none.
  function countedClasses(buckets) {
    const seen = new Set(buckets.flatMap((b) => Object.keys(b.counts || {})));
    return [...VEHICLE_CLASSES.filter((k) => seen.has(k)), ...[...seen].filter((k) => !VEHICLE_CLASSES.includes(k))];
  }

  // A chart (one per lane, per lane) and a table of the choices' slots, each drawn as the
  // IOC's flow is: a slot the camera reported nothing of is no data, not an empty road.
  function trafficView(c, flow, start, end) {
    const step = c.by === "hour" ? HOUR_MS : 60 * 1000;
    const now = Date.now();
    const lanes = new Map();
    for (const b of flow.buckets) {
      if (!lanes.has(b.lane ?? "")) lanes.set(b.lane ?? "", new Map());
      lanes.get(b.lane ?? "").set(Date.parse(b.bucket), b);
    }
    if (!lanes.size) lanes.set("", new Map());
    const slots = [];
    for (let s = start; s < end; s += step) slots.push(s);
    const charts = [];
    const classes = countedClasses(flow.buckets);
    const rows = slots.map(() => []);
    for (const [lane, byStart] of lanes) {
      const items = slots.map((s) => flowSlot(s, step / 60000, byStart.get(s), now,
        c.by === "hour" ? fmtHour(s) : fmtMinute(s), new Date(s).toISOString().slice(0, c.by === "hour" ? 13 : 16)));
      charts.push(vBarChart(lane ? `traffic-${lane}` : "traffic-chart", flowTitle(lane ? `${c.camera} · ${lane}` : c.camera, [...byStart.values()]),
        items, { width: 900, height: 200, note: `(${t(`traffic.axis_${c.by}`)})` }));
      items.forEach((item, n) => {
        const b = byStart.get(slots[n]);
        if (!b && !item.gap) return; // (not yet due)
        rows[n].push(h("tr", { "data-slot": item.hour, "data-lane": lane || null, class: item.gap ? "gap" : null },
          h("td", { class: "when" }, c.by === "hour" ? `${item.label}:00` : item.label), lane ? h("td", {}, lane) : null,
          b ? [h("td", {}, fmtNum(b.vehicles, 0)),
            classes.map((k) => h("td", { "data-class": k }, fmtNum((b.counts || {})[k] ?? 0, 0))),
            h("td", {}, b.mean_speed_kmh == null ? t("ioc.no_speed") : `${fmtNum(b.mean_speed_kmh)} km/h`),
            h("td", {}, `${fmtNum(b.mean_occupancy * 100)} %`), h("td", {}, item.partial ? `${b.minutes}/${item.due}` : fmtNum(b.minutes, 0))]
            : h("td", { colspan: 4 + classes.length, class: "muted" }, item.text)));
      });
    }
    const head = (k) => h("th", { scope: "col" }, t(`traffic.col.${k}`));
    const cols = [head("time"), c.per ? head("lane") : null, head("vehicles"),
      classes.map((k) => h("th", { scope: "col", "data-class": k }, VEHICLE_CLASSES.includes(k) ? t(`vehicle.${k}`) : k)),
      ["speed", "occupancy", "minutes"].map(head)];
    return h("div", { class: "traffic" },
      h("a", { href: trafficPath(c, start, end, "csv"), id: "traffic-csv", onclick: (ev) => {
        ev.preventDefault();
        downloadCsv(ev.currentTarget.getAttribute("href"));
      } }, t("ioc.flow_csv")),
      charts, flowLegend(c.by === "minute"),
      h("table", { class: "grid", id: "traffic-table" },
        h("thead", {}, h("tr", {}, cols)),
        h("tbody", {}, rows)));
  }

  // ------------------------------------------------------------------ start

  async function start() {
    await loadLang(localStorage.getItem("rw.lang") || "vi");
    loadSession();
    $("#lang").addEventListener("click", async () => {
      await loadLang(S.lang === "vi" ? "en" : "vi");
      await render();
    });
    $("#logout").addEventListener("click", () => {
      // Central ends the session (and every other of this user) for good; the page does
      // not wait for it: offline, the token still runs out by itself.
      if (S.session) {
        fetch("/api/v1/auth/logout", {
          method: "POST",
          headers: { Authorization: `Bearer ${S.session.token}` },
          keepalive: true,
        }).catch(() => {});
      }
      saveSession(null);
      sessionStorage.removeItem("rw.return"); // (a deliberate log-out goes back nowhere)
      sessionStorage.removeItem("rw.pending");
      sessionStorage.removeItem("rw.expired");
      go("#/login");
    });
    $("#skip").addEventListener("click", () => main().focus());
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", render);
    if (S.session) {
      // The role may have changed since this tab signed in (an admin's change).
      try {
        const me = await api("/api/v1/auth/me");
        if (S.session) saveSession({ ...S.session, role: me.role, fullName: me.full_name });
      } catch (_) { /* 401 leads to the login page; offline shows on the page */ }
    }
    await render();
  }

  start();
})();
