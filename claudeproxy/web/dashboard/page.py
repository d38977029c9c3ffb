"""
The dashboard's HTML: rendered here with the figures of the moment, then
kept current by its script, which fetches C{/v1/usage} every few seconds
and redraws the same parts (the charts are inline SVG).  No build step, no
external resource: the style and the script are inline, allowed by the
response's Content-Security-Policy nonce.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any, Optional

from ...store.usage import COUNTS

STYLE = """
:root { --bg:#f7f7f5; --fg:#1d1d1b; --muted:#6b6b66; --card:#fff; --line:#e3e3de; --bad:#b3261e; --ok:#1e7b34; --warn:#a15c00; }
@media (prefers-color-scheme: dark) { :root { --bg:#161615; --fg:#ececea; --muted:#9a9a94; --card:#20201f; --line:#33332f; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; flex-wrap:wrap; align-items:baseline; gap:1em; padding:14px 20px; border-bottom:1px solid var(--line); }
header h1 { font-size:18px; margin:0; }
header .meta { color:var(--muted); }
header form { margin-left:auto; }
main { padding:16px 20px; max-width:1200px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:10px; margin-bottom:16px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.card .label { color:var(--muted); font-size:12px; }
.card .value { font-size:22px; font-variant-numeric:tabular-nums; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px; margin-bottom:16px; }
section h2 { font-size:15px; margin:0 0 8px; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
td.num, th.num { text-align:right; }
.bad { color:var(--bad); } .ok { color:var(--ok); } .warn { color:var(--warn); }
.muted { color:var(--muted); }
.tabs button { font:inherit; padding:3px 10px; border:1px solid var(--line); background:var(--card); color:var(--fg); border-radius:4px; cursor:pointer; }
.tabs button[aria-pressed=true] { background:var(--fg); color:var(--bg); }
svg.chart { width:100%; height:180px; display:block; }
svg.chart text { fill:var(--muted); font-size:10px; }
.legend span { display:inline-block; margin-right:12px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:4px; border-radius:2px; }
.limit { margin:6px 0 10px; }
.limit .bar { height:12px; background:var(--line); border-radius:6px; overflow:hidden; margin:3px 0; }
.limit .fill { height:100%; background:var(--ok); }
.limit .fill.warn { background:var(--warn); } .limit .fill.bad { background:var(--bad); }
.login { max-width:360px; margin:12vh auto; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:20px; }
.login input { width:100%; padding:6px; font:inherit; margin:8px 0; }
"""

SCRIPT = r"""
"use strict";
const COLORS = ["#3b6fd4", "#d4793b", "#2f9e6e", "#b04fbf", "#c9b236", "#d14b5a", "#4fb3bf", "#7a6e5f"];
let data = JSON.parse(document.getElementById("initial").textContent);
let windowName = "day";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, text) {
  const svg = ["svg", "rect", "line", "text", "g", "title"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
const fmt = (n) => n === null || n === undefined ? "–" : Number(n).toLocaleString();
function when(t) { return t ? new Date(t * 1000).toLocaleString() : "–"; }
function ago(t) {
  if (!t) return "–";
  const s = Math.round(data.now - t);
  return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
}
function text(id, value, cls) { const n = $(id); if (!n) return; n.textContent = value; if (cls !== undefined) n.className = cls; }
function colorOf(client) {
  const names = clientsIn(data.history ? data.history.windows.month : null);
  const i = names.indexOf(client);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}
function clientsIn(win) { return win ? Object.keys(win.clients).sort() : []; }

function renderStatus() {
  const cli = data.cli;
  text("cli-version", cli.version || "unknown");
  const login = cli.login || {};
  text("cli-login", login.logged_in === true ? "logged in" + (login.method ? " (" + login.method + ")" : "") :
       login.logged_in === false ? "NOT logged in: run `claude` and /login" : "login unknown",
       login.logged_in === true ? "ok" : login.logged_in === false ? "bad" : "muted");
  const stored = login.stored;
  text("cli-token", stored && stored.expires_at ? "access token expires " + when(stored.expires_at) +
       (stored.refreshable ? "" : " (no refresh token)") : "", stored && stored.refreshable === false ? "bad" : "muted");
  const q = data.quota;
  if (q) {
    const status = q.status || "unknown";
    text("quota-status", status, status === "allowed" ? "ok" : status.startsWith("allowed") ? "warn" : "bad");
    text("quota-resets", q.resetsAt ? "resets " + when(q.resetsAt) : "");
    text("quota-seen", q.observed_at ? "reported " + ago(q.observed_at) : "");
  } else {
    text("quota-status", "not reported yet", "muted");
    text("quota-resets", ""); text("quota-seen", "");
  }
  renderLimits();
  const live = data.live;
  for (const k of ["in_flight", "queued", "warm", "conversations", "tool_waits", "served"]) text("live-" + k, fmt(live[k]));
  text("updated", "updated " + new Date(data.now * 1000).toLocaleTimeString());
}

// the CLI's extra usage figures are in cents of the currency
function credits(cents, currency) { return typeof cents === "number" ? (cents / 100).toFixed(2) + " " + (currency || "USD") : "?"; }
const WINDOW_NAMES = {five_hour: "5-hour session", seven_day: "weekly", seven_day_opus: "weekly (Opus)",
  seven_day_sonnet: "weekly (Sonnet)", seven_day_overage_included: "weekly (extra usage included)"};
function renderLimits() {
  const box = $("limits");
  while (box.firstChild) box.removeChild(box.firstChild);
  const limits = data.limits || {windows: {}, overage: {}};
  const names = Object.keys(limits.windows).sort();
  if (!names.length) box.appendChild(el("p", {class: "muted"}, "the CLI has not reported the subscription's limits yet"));
  for (const name of names) {
    const w = limits.windows[name];
    const row = el("div", {class: "limit", "data-window": name});
    const used = typeof w.utilization === "number" ? Math.round(w.utilization * 100) : null;
    // a window known only from the usage asked for (get_usage) has no status: its use tells
    const cls = !w.status ? (used === null || used < 80 ? "ok" : used < 100 ? "warn" : "bad") :
      w.status === "allowed" ? "ok" : w.status.startsWith("allowed") ? "warn" : "bad";
    row.appendChild(el("div", {}, (WINDOW_NAMES[name] || name) + ": " + (w.status || "asked") +
      (used === null ? " · use not reported" : " · " + used + "% used") + (w.resetsAt ? " · resets " + when(w.resetsAt) : "")));
    const bar = el("div", {class: "bar"}); const fill = el("div", {class: "fill " + cls});
    fill.style.width = (used === null ? 0 : Math.min(100, used)) + "%"; bar.appendChild(fill); row.appendChild(bar);
    if (w.reached_at) row.appendChild(el("div", {class: "warn pace"}, "at this rate the " + (WINDOW_NAMES[name] || name) + " limit is reached on " + when(w.reached_at)));
    else if (used !== null && used > 0) row.appendChild(el("div", {class: "muted pace"}, "at this rate the limit is not reached before it resets"));
    box.appendChild(row);
  }
  const budgets = data.budgets || {};
  for (const client of Object.keys(budgets).sort()) {
    for (const b of budgets[client]) {
      const amount = (v) => b.kind === "usd" ? "$" + v.toFixed(2) : fmt(Math.round(v)) + " " + b.kind;
      const share = b.limit > 0 ? Math.min(1, b.used / b.limit) : 1;
      const row = el("div", {class: "limit budget", "data-client": client, "data-period": b.period});
      row.appendChild(el("div", {}, "budget of " + client + ", " + b.period + ": " + amount(b.used) + " of " + amount(b.limit) +
        " · resets " + when(b.resets_at)));
      const bar = el("div", {class: "bar"}); const fill = el("div", {class: "fill " + (share >= 1 ? "bad" : share >= 0.8 ? "warn" : "ok")});
      fill.style.width = Math.round(share * 100) + "%"; bar.appendChild(fill); row.appendChild(bar);
      box.appendChild(row);
    }
  }
  const g = data.plan_guard;
  if (g) box.insertBefore(el("p", {class: g.paused ? "bad" : "muted", id: "plan-guard"}, "API requests: " + g.summary +
    (g.paused ? "" : g.extra_usage === "allow" ? " · may spend extra usage" : " · extra usage refused") +
    (g.reserve ? " · " + g.reserve + "% kept for you" : "")), box.firstChild);
  const o = limits.overage || {};
  const x = o.extra_usage;
  if (x) box.appendChild(el("p", {class: "muted", id: "extra-usage"}, "extra usage this month: " + (!x.is_enabled ? "off" :
    "on, " + credits(x.used_credits, x.currency) + " used of " + (x.monthly_limit === null || x.monthly_limit === undefined ? "no limit" : credits(x.monthly_limit, x.currency)))));
  if (o.overageStatus || o.isUsingOverage !== undefined)
    box.appendChild(el("p", {class: "muted", id: "overage"}, "extra usage: " + (o.isUsingOverage ? "in use" : "not in use") +
      (o.overageStatus ? " (" + o.overageStatus + (o.overageDisabledReason ? ", " + o.overageDisabledReason : "") + ")" : "") +
      (o.overageResetsAt ? ", resets " + when(o.overageResetsAt) : "")));
}

function chart(svgId, win, field) {
  const svg = $(svgId);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 900, H = 180, L = 46, B = 18, T = 6;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  if (!win) { svg.appendChild(el("text", {x: L, y: 40}, "no usage history (no state directory)")); return; }
  // the window's hours and the current one
  const span = {day: 24, week: 168, month: 720}[windowName] + 1;
  const start = win.start, bw = (W - L - 4) / span;
  const stacks = new Map();
  let max = 0;
  for (const h of win.hours) {
    const v = field(h);
    const i = Math.floor((h.hour - start) / 3600);
    if (i < 0 || i >= span || !v) continue;
    const list = stacks.get(i) || [];
    list.push([h.client, v, h]);
    stacks.set(i, list);
  }
  for (const list of stacks.values()) max = Math.max(max, list.reduce((a, x) => a + x[1], 0));
  const top = max || 1;
  svg.appendChild(el("line", {x1: L, y1: H - B, x2: W, y2: H - B, stroke: "currentColor", "stroke-opacity": "0.3"}));
  svg.appendChild(el("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, fmt(max)));
  svg.appendChild(el("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0"));
  const every = {day: 3, week: 24, month: 120}[windowName];
  for (let i = 0; i <= span; i += every) {
    const d = new Date((start + i * 3600) * 1000);
    const label = windowName === "day" ? d.getHours() + ":00" : (d.getMonth() + 1) + "/" + d.getDate();
    svg.appendChild(el("text", {x: L + i * bw, y: H - 4, "text-anchor": "middle"}, label));
  }
  for (const [i, list] of stacks) {
    let y = H - B;
    list.sort((a, b) => a[0] < b[0] ? -1 : 1);
    for (const [client, v, h] of list) {
      const hgt = (H - B - T) * v / top;
      y -= hgt;
      const r = el("rect", {x: (L + i * bw + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(bw - 1, 1).toFixed(1),
                             height: Math.max(hgt, 0.5).toFixed(1), fill: colorOf(client)});
      r.appendChild(el("title", {}, client + " · " + new Date(h.hour * 1000).toLocaleString() + ": " + fmt(v)));
      svg.appendChild(r);
    }
  }
}

function row(cells, classes) {
  const tr = el("tr");
  cells.forEach((c, i) => tr.appendChild(el("td", classes && classes[i] ? {class: classes[i]} : {}, c)));
  return tr;
}
function fill(id, rows, empty, cols) {
  const body = $(id);
  while (body.firstChild) body.removeChild(body.firstChild);
  if (!rows.length) { const tr = el("tr"); tr.appendChild(el("td", {colspan: cols, class: "muted"}, empty)); body.appendChild(tr); }
  for (const r of rows) body.appendChild(r);
}

function money(c) {
  return "$" + (c.cost || 0).toFixed(4) + (c.unpriced ? " (+" + fmt(c.unpriced) + " unpriced)" : "");
}
function costLine(win, plan) {
  let text = "API-equivalent cost this " + windowName + ": " + money(win.total);
  if (win.saved !== null && win.saved !== undefined && plan && plan.name)
    text += " · against the " + plan.name + " plan ($" + plan.monthly_price.toFixed(2) + "/month): " + (win.saved >= 0 ? "saved $" + win.saved.toFixed(2) : "the plan cost $" + (-win.saved).toFixed(2) + " more");
  return text;
}
function renderHistory() {
  const h = data.history;
  const win = h ? h.windows[windowName] : null;
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-pressed", String(b.dataset.window === windowName));
  chart("chart-requests", win, (x) => x.requests);
  chart("chart-tokens", win, (x) => x.input_tokens + x.output_tokens + x.cache_read_tokens + x.cache_write_tokens);
  const legend = $("legend");
  while (legend.firstChild) legend.removeChild(legend.firstChild);
  const names = clientsIn(win);
  for (const name of names) {
    const s = el("span"); const i = el("i"); i.style.background = colorOf(name); s.appendChild(i); s.appendChild(document.createTextNode(name)); legend.appendChild(s);
  }
  const num = [null, "num", "num", "num", "num", "num", "num", "num"];
  fill("clients", names.map((n) => { const c = win.clients[n];
    return row([n, fmt(c.requests), fmt(c.errors), fmt(c.input_tokens), fmt(c.output_tokens), fmt(c.cache_read_tokens), fmt(c.cache_write_tokens), money(c)], num); }),
    "no requests in this window", 8);
  $("cost").textContent = win ? costLine(win, data.plan) : "";
  const errs = h ? h.errors : [];
  fill("errors", errs.map((e) => row([when(e.time), e.client, e.endpoint, e.model_asked, String(e.status), e.error_code || "", fmt(Math.round(e.total_ms))],
    [null, null, null, null, "num bad", "bad", "num"])), "no errors", 7);
  const recent = h ? h.recent : [];
  fill("recent", recent.map((e) => row([when(e.time), e.client, e.endpoint, e.model_served || e.model_asked, e.served, String(e.status),
    e.first_token_ms === null ? "–" : fmt(Math.round(e.first_token_ms)), fmt(Math.round(e.total_ms)), fmt(e.input_tokens + e.cache_read_tokens + e.cache_write_tokens), fmt(e.output_tokens)],
    [null, null, null, null, null, e.status >= 400 ? "num bad" : "num", "num", "num", "num", "num"])), "no requests yet", 10);
  text("rows", h ? fmt(h.rows) + " requests kept (" + data.retention_days + " days)" : "");
}

function render() { renderStatus(); renderHistory(); }

async function refresh() {
  try {
    const r = await fetch("/v1/usage", {credentials: "same-origin", cache: "no-store"});
    if (r.status === 401) { location.reload(); return; }
    if (r.ok) { data = await r.json(); render(); text("conn", ""); }
    else text("conn", "refresh failed: HTTP " + r.status, "bad");
  } catch (e) { text("conn", "daemon unreachable", "bad"); }
}

for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => { windowName = b.dataset.window; renderHistory(); });
render();
setInterval(refresh, 5000);
window.claudeproxyRefresh = refresh;
"""


def _head(nonce: str, title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>%s</title><style nonce="%s">%s</style></head>'
        % (escape(title), nonce, STYLE)
    )


def login_page(nonce: str, error: Optional[str]) -> str:
    return (
        _head(nonce, "claudeproxy — log in") + '<body><form class="login" method="post" action="/login">'
        "<h1>claudeproxy</h1><p>This daemon requires an API key. Enter one of its keys to see the dashboard.</p>"
        + ('<p class="bad" id="login-error">%s</p>' % (escape(error),) if error else "")
        + '<label for="key">API key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>'
        '<button type="submit" id="login">Log in</button></form></body></html>'
    )


def _n(value: Any) -> str:
    return "–" if value is None else f"{value:,}"


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "–"


def _card(label: str, ident: str, value: str) -> str:
    return '<div class="card"><div class="label">%s</div><div class="value" id="%s">%s</div></div>' % (
        escape(label),
        ident,
        escape(value),
    )


def _table(ident: str, heads: list[str], rows: list[list[str]], empty: str) -> str:
    # numeric columns have capitalised headings
    th = "".join(('<th class="num">%s</th>' if h[:1].isupper() else "<th>%s</th>") % escape(h) for h in heads)
    if rows:
        body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % escape(c) for c in r) for r in rows)
    else:
        body = '<tr><td colspan="%d" class="muted">%s</td></tr>' % (len(heads), escape(empty))
    return '<table><thead><tr>%s</tr></thead><tbody id="%s">%s</tbody></table>' % (th, ident, body)


def _money(c: dict[str, Any]) -> str:
    text = "$%.4f" % (c.get("cost") or 0.0,)
    if c.get("unpriced"):
        text += " (+%s unpriced)" % (_n(c["unpriced"]),)
    return text


def dashboard_page(nonce: str, figures: dict[str, Any], logout: bool) -> str:
    """
    The dashboard with C{figures} (what C{/v1/usage} returns) filled in.
    """
    live = figures["live"]
    cli = figures["cli"]
    quota = figures.get("quota") or {}
    history = figures.get("history")
    day = history["windows"]["day"] if history else None
    clients = (
        [[name, *(_n(c[k]) for k in COUNTS), _money(c)] for name, c in sorted(day["clients"].items())] if day else []
    )
    errors = [
        [
            _when(e["time"]),
            e["client"],
            e["endpoint"],
            e["model_asked"],
            str(e["status"]),
            e["error_code"] or "",
            _n(round(e["total_ms"])),
        ]
        for e in (history["errors"] if history else [])
    ]
    recent = [
        [
            _when(e["time"]),
            e["client"],
            e["endpoint"],
            e["model_served"] or e["model_asked"],
            e["served"],
            str(e["status"]),
            "–" if e["first_token_ms"] is None else _n(round(e["first_token_ms"])),
            _n(round(e["total_ms"])),
            _n(e["input_tokens"] + e["cache_read_tokens"] + e["cache_write_tokens"]),
            _n(e["output_tokens"]),
        ]
        for e in (history["recent"] if history else [])
    ]
    initial = json.dumps(figures, separators=(",", ":")).replace("<", "\\u003c")
    login = cli.get("login") or {}
    return (
        _head(nonce, "claudeproxy")
        + "<body><header><h1>claudeproxy</h1>"
        + '<span class="meta">v%s · CLI <span id="cli-version">%s</span> · <span id="cli-login">%s</span> <span id="cli-token" class="muted"></span></span>'
        % (
            escape(figures["version"]),
            escape(cli.get("version") or "unknown"),
            "logged in"
            if login.get("logged_in")
            else ("NOT logged in" if login.get("logged_in") is False else "login unknown"),
        )
        + '<span class="meta">quota: <b id="quota-status">%s</b> <span id="quota-resets"></span> <span id="quota-seen" class="muted"></span></span>'
        % (escape(str(quota.get("status", "not reported yet"))),)
        + '<span class="meta" id="updated"></span><span id="conn"></span>'
        + ('<form method="post" action="/logout"><button type="submit">Log out</button></form>' if logout else "")
        + "</header><main>"
        + '<div class="cards">'
        + _card("In flight", "live-in_flight", _n(live["in_flight"]))
        + _card("Queued", "live-queued", _n(live["queued"]))
        + _card("Warm processes", "live-warm", _n(live["warm"]))
        + _card("Live conversations", "live-conversations", _n(live["conversations"]))
        + _card("Tool waits", "live-tool_waits", _n(live["tool_waits"]))
        + _card("Served since start", "live-served", _n(live["served"]))
        + "</div>"
        + '<section><h2>Subscription limits</h2><div id="limits"></div></section>'
        + '<section><h2>Requests and tokens per hour <span class="tabs">'
        '<button type="button" data-window="day" aria-pressed="true">day</button> '
        '<button type="button" data-window="week">week</button> '
        '<button type="button" data-window="month">month</button></span> <span class="muted" id="rows"></span></h2>'
        '<div class="legend" id="legend"></div>'
        '<h3 class="muted">Requests</h3><svg class="chart" id="chart-requests" role="img" aria-label="requests per hour"></svg>'
        '<h3 class="muted">Tokens (input, output and cache)</h3><svg class="chart" id="chart-tokens" role="img" aria-label="tokens per hour"></svg></section>'
        + '<section><h2>Clients</h2><p id="cost">%s</p>'
        % (escape("API-equivalent cost this day: " + _money(day["total"])) if day else "",)
        + _table(
            "clients",
            ["client", "Requests", "Errors", "Input", "Output", "Cache read", "Cache write", "API cost"],
            clients,
            "no requests in this window",
        )
        + "</section><section><h2>Last errors</h2>"
        + _table("errors", ["time", "client", "endpoint", "model", "Status", "code", "Total ms"], errors, "no errors")
        + "</section><section><h2>Recent requests</h2>"
        + _table(
            "recent",
            [
                "time",
                "client",
                "endpoint",
                "model",
                "served",
                "Status",
                "First token ms",
                "Total ms",
                "Tokens in",
                "Tokens out",
            ],
            recent,
            "no requests yet",
        )
        + "</section></main>"
        + '<script type="application/json" id="initial">%s</script>' % (initial,)
        + '<script nonce="%s">%s</script></body></html>' % (nonce, SCRIPT)
    )
