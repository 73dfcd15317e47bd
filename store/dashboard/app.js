// The zbatch dashboard: one page, hash routes, data from the store's HTTP API, live through
// the Server-Sent Events stream (/api/v1/events). No build step, no dependencies beyond the
// vendored uPlot (charts).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "");
const fmtAgo = (ms) => {
  if (!ms) return "";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 60 ? `${s.toFixed(0)} s ago` : s < 3600 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
};
const stateBadge = (s) => `<span class="state ${esc(s)}">${esc(s)}</span>`;
const COPY_ICON = `<svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true"><rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M3 11V3a1 1 0 0 1 1-1h7" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>`;
// A task or group id in full (monospace, wrapping inside its column), linked to its page, with
// a button that copies it. Ids of one batch share their time prefix; only the whole id tells
// rows apart.
const idCell = (id, href) => `<span class="id"><a href="${href}"><code>${esc(id)}</code></a>` +
  `<button class="copy" type="button" data-copy="${esc(id)}" title="copy ${esc(id)}" aria-label="copy id">${COPY_ICON}</button></span>`;

async function copyText(text) {
  // navigator.clipboard needs a secure context (https or localhost); plain http off loopback
  // falls back to a selected text area.
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement("textarea");
  area.value = text;
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("the browser refused to copy");
}

document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-copy]");
  if (!b) return;
  e.preventDefault();
  try { await copyText(b.dataset.copy); toast(`copied ${b.dataset.copy}`); } catch (err) { toast(err.message); }
});
const pretty = (v) => (v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v, null, 2));

// --- HTTP ---------------------------------------------------------------------------------------
class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) } });
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (res.status === 401) { showLogin(); throw new HttpError(401, "authentication required"); }
  if (res.status === 403) showForbidden(body?.error?.message || "forbidden");
  if (!res.ok) throw new HttpError(res.status, body?.error?.message || res.statusText);
  return body;
}
const post = (path, body) => api(path, { method: "POST", body: JSON.stringify(body ?? {}) });

function toast(message) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3000);
}

// A credential with a smaller role (read, submit) sees every page; an action beyond its role
// is refused with 403, and the page keeps saying so.
function showForbidden(message) {
  const notice = $("#forbidden");
  notice.textContent = `Not allowed with this credential: ${message}`;
  notice.hidden = false;
}

// Bearer-token deployments: the token goes in a cookie so the event stream carries it too.
// (With basic authentication the browser asks for the password itself.)
function showLogin() {
  if ($("#login")) return;
  $("#view").innerHTML = `<form id="login" class="login"><h1>Sign in</h1>
    <p class="muted">This zbatch needs its access token.</p>
    <input id="token" type="password" placeholder="token" autocomplete="current-password">
    <button class="primary">Sign in</button></form>`;
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    document.cookie = `zbatch_token=${encodeURIComponent($("#token").value)}; path=/; SameSite=Strict`;
    location.reload();
  });
}

// --- live updates -------------------------------------------------------------------------------
const live = { dirty: false, source: null, workersSeen: new Map() };
const EVENT_TYPES = ["task-received", "task-scheduled", "task-queued", "task-started", "task-succeeded",
  "task-failed", "task-retried", "task-revoked", "group-updated", "worker-online", "worker-offline",
  "queue-purged", "results-expired"];

function connectEvents() {
  // EventSource reconnects by itself and sends Last-Event-ID: nothing is missed.
  const source = new EventSource("/api/v1/events");
  live.source = source;
  source.onopen = () => { $("#live").textContent = "live"; $("#live").className = "live on"; };
  source.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").className = "live off"; };
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (e) => {
      live.dirty = true;
      if (type === "worker-offline" || type === "worker-online") {
        try {
          const ev = JSON.parse(e.data);
          const w = live.workersSeen.get(ev.worker) || { name: ev.worker };
          w.online = type === "worker-online";
          w.changed_ms = ev.ts_ms;
          if (w.online) flaps.set(ev.worker, [...(flaps.get(ev.worker) || []), Date.now()].slice(-20));
          live.workersSeen.set(ev.worker, w);
        } catch { /* a malformed frame changes nothing */ }
      }
    });
  }
}

// Views re-render at most twice a second while events arrive, and every 2 s regardless
// (rates and ages move on their own).
let lastRender = 0;
setInterval(() => {
  const now = Date.now();
  if ((live.dirty && now - lastRender > 500) || now - lastRender > 2000) {
    live.dirty = false;
    lastRender = now;
    render(false);
  }
}, 250);

// --- overview -----------------------------------------------------------------------------------
// The charts read the store's per-second history (/api/v1/series, kept 24 h in its LMDB): what
// they show does not depend on when the page was opened, and survives a store restart.
const WINDOWS = { "5m": { label: "5 minutes", s: 300, step: 1 }, "1h": { label: "hour", s: 3600, step: 10 },
  "24h": { label: "24 hours", s: 86400, step: 60 } };
const chartData = { charts: null, window: null };
const flaps = new Map();  // worker -> times it came online while this page was open

// Axis labels that fit: 12,500 → "12.5k", 1,000,000 → "1M"; durations in ms → "250 ms", "1.5 s", "20 min".
const fmtNum = (v) => {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  const trim = (x) => String(+x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0));
  if (a >= 1e9) return trim(v / 1e9) + "G";
  if (a >= 1e6) return trim(v / 1e6) + "M";
  if (a >= 1e3) return trim(v / 1e3) + "k";
  return trim(v);
};
const fmtMs = (v) => {
  if (v === null || v === undefined) return "";
  if (v < 1) return `${+v.toFixed(2)} ms`;
  if (v < 1000) return `${+v.toFixed(v < 10 ? 1 : 0)} ms`;
  if (v < 60000) return `${+(v / 1000).toFixed(1)} s`;
  if (v < 3600000) return `${+(v / 60000).toFixed(1)} min`;
  return `${+(v / 3600000).toFixed(1)} h`;
};
// uPlot sizes an axis once from its `size`; this one grows with the longest label.
const axisSize = (self, values) => {
  const longest = Math.max(3, ...(values || []).map((v) => String(v).length));
  return 18 + longest * 7;
};

function seriesColumns(series) {
  const t = series.t_ms.map((ms) => ms / 1000);
  const per = series.step_s;
  const finished = series.succeeded.map((n, i) => n + series.failed[i] + series.revoked[i]);
  return {
    rate: [t, series.received.map((n) => n / per), finished.map((n) => n / per), series.failed.map((n) => n / per)],
    latency: [t, series.wait_ms.p50, series.wait_ms.p95, series.run_ms.p50, series.run_ms.p95],
  };
}

function drawCharts(series) {
  const cols = seriesColumns(series);
  const width = Math.max(300, ($("#chart-rate")?.clientWidth || 600) - 16);
  if (!chartData.charts || !document.body.contains(chartData.charts[0].root)) {
    if (typeof uPlot === "undefined") return;
    const latencyRange = (u, min, max) => [Math.max(0.1, min ?? 0.1), Math.max(1, max ?? 1)];
    // One grid line per power of ten on the log axis (uPlot draws 1..9 × 10^k by default).
    const decades = (u, axis, min, max) => {
      const out = [];
      for (let v = Math.pow(10, Math.floor(Math.log10(Math.max(min, 0.1)))); v <= max * 1.0001; v *= 10) if (v >= min * 0.9999) out.push(v);
      return out;
    };
    // One line of time per label: "14:05:30" within an hour, "14:05" beyond.
    const timeAxis = { space: 70, values: (u, splits) => {
      const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
      return splits.map((v) => new Date(v * 1000).toLocaleTimeString([], span <= 3600 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" }));
    } };
    chartData.charts = [
      new uPlot({ width, height: 240, title: "Tasks per second", scales: { x: { time: true } },
        axes: [timeAxis, { values: (u, vals) => vals.map(fmtNum), size: axisSize }],
        series: [{}, { label: "received", stroke: "#2f6fde", value: (u, v) => fmtNum(v) },
          { label: "finished", stroke: "#1f9d55", value: (u, v) => fmtNum(v) },
          { label: "failed", stroke: "#d64545", value: (u, v) => fmtNum(v) }] },
      cols.rate, $("#chart-rate")),
      new uPlot({ width, height: 240, title: "Latency (percentiles, log scale)",
        scales: { x: { time: true }, y: { distr: 3, range: latencyRange } },
        axes: [timeAxis, { values: (u, vals) => vals.map(fmtMs), size: axisSize, splits: decades }],
        series: [{}, { label: "wait p50", stroke: "#7a4fd6", value: (u, v) => fmtMs(v) },
          { label: "wait p95", stroke: "#b9a3ea", value: (u, v) => fmtMs(v) },
          { label: "run p50", stroke: "#c98a0b", value: (u, v) => fmtMs(v) },
          { label: "run p95", stroke: "#e7c57a", value: (u, v) => fmtMs(v) }] },
      cols.latency, $("#chart-latency")),
    ];
  } else {
    chartData.charts[0].setData(cols.rate);
    chartData.charts[1].setData(cols.latency);
  }
}

// Each queue's tasks in and out per second over the last 10 whole seconds.
function queueRates(recent) {
  const rates = {};
  const n = recent.t_ms.length;
  const from = Math.max(0, n - 11), to = n - 1;  // the last entry is the second under way
  const secs = Math.max(1, to - from);
  for (const [name, q] of Object.entries(recent.queues)) {
    let inn = 0, out = 0;
    for (let i = from; i < to; i++) { inn += q.received[i]; out += q.succeeded[i] + q.failed[i] + q.revoked[i]; }
    rates[name] = { in: inn / secs, out: out / secs };
  }
  return rates;
}

async function readiness() {
  try {
    const res = await fetch("/readyz", { credentials: "same-origin" });
    return await res.json();
  } catch { return null; }
}

// What needs someone's attention now; each alert says what to look at.
// The model pools the queues run on (docs/kinds/agent.md): each server's places, taken and
// free, and whether it cools down after refusing a task. Always a #pools element (empty
// without pools), so that a refresh can replace it.
function poolsTable(queues) {
  const pools = new Map();
  for (const q of queues) if (q.pool && !pools.has(q.pool)) pools.set(q.pool, q);
  if (!pools.size) return `<div id="pools"></div>`;
  const rows = [...pools.values()].flatMap((q) => (q.hosts || []).map((h) => `<tr><td>${esc(q.pool)}</td>
    <td>${esc(q.model || "")}</td><td>${esc(h.host)}</td><td class="num">${h.running} / ${h.parallel}</td>
    <td>${h.cooling_ms ? `cooling down, ${(h.cooling_ms / 1000).toFixed(1)} s left` : "takes tasks"}</td></tr>`));
  return `<div id="pools"><h2>Model pools</h2><table><thead><tr><th>pool</th><th>model</th><th>server</th>
    <th class="num">running / places</th><th>state</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function alerts({ queues, workers, recentFailed, dead, ready }) {
  const out = [];
  if (recentFailed > 0)
    out.push(["dead-letters", `${recentFailed} task(s) failed for good in the last 5 minutes (${dead} dead letter(s) in all)`, "#/dead"]);
  for (const q of queues) {
    const served = workers.some((w) => (w.queues || []).includes(q.name));
    if (!served && q.depth + q.scheduled > 0)
      out.push([`unserved-${q.name}`, `queue ${q.name} has ${q.depth + q.scheduled} task(s) waiting and no live worker serving it`, `#/tasks?queue=${encodeURIComponent(q.name)}`]);
  }
  const now = Date.now();
  for (const [name, times] of flaps) {
    const recent = times.filter((t) => t > now - 600000);
    if (recent.length >= 3) out.push([`flapping-${name}`, `worker ${name} came online ${recent.length} times in 10 minutes (flapping)`, "#/workers"]);
  }
  if (ready && (!ready.ready || ready.router_head_seq - ready.applied_seq > 1000))
    out.push(["store-lag", `the store is ${Math.max(0, ready.router_head_seq - ready.applied_seq)} event(s) behind the router${ready.ready ? "" : " and not caught up"}`, "#/"]);
  return out;
}

async function overview(first, params) {
  const win = WINDOWS[params.get("window")] ? params.get("window") : "5m";
  const w = WINDOWS[win];
  const now = Date.now();
  const [stats, queues, workers, series, recent, dead, ready] = await Promise.all([api("/api/v1/stats"), api("/api/v1/queues"),
    api("/api/v1/workers"), api(`/api/v1/series?since=${now - w.s * 1000}&until=${now}&step=${w.step}`),
    win === "5m" ? null : api(`/api/v1/series?since=${now - 12000}&until=${now}&step=1`),
    api("/api/v1/dead?limit=1"), readiness()]);
  const rates = queueRates(recent || series);
  const lastFive = recent ? await api(`/api/v1/series?since=${now - 300000}&until=${now}&step=60`) : series;
  const recentFailed = lastFive.failed.reduce((a, b) => a + b, 0);
  const running = queues.reduce((n, q) => n + q.running, 0);
  const depth = queues.reduce((n, q) => n + q.depth, 0);
  const warn = alerts({ queues, workers, recentFailed, dead: dead.total, ready });
  const html = `<h1>Overview</h1>
    <div id="alerts">${warn.map(([key, text, href]) => `<div class="alert" data-alert="${esc(key)}"><a href="${href}">${esc(text)}</a></div>`).join("")}</div>
    <div class="cards">
      ${[["received", stats.received], ["succeeded", stats.succeeded], ["failed", stats.failed], ["retried", stats.retried],
        ["revoked", stats.revoked], ["queued now", depth], ["running now", running], ["workers online", workers.length]]
        .map(([l, n]) => `<div class="card"><div class="n">${n}</div><div class="l">${l}</div></div>`).join("")}
    </div>
    <h2>Queues</h2>
    <table id="queues"><thead><tr><th>queue</th><th class="num">priority</th><th class="num">depth</th>
      <th class="num">scheduled</th><th class="num">running</th><th class="num">in / s</th><th class="num">out / s</th>
      <th class="num">succeeded</th><th class="num">failed</th></tr></thead><tbody>
      ${queues.map((q) => {
        const r = rates[q.name] || { in: 0, out: 0 };
        const c = stats.queues[q.name] || { succeeded: 0, failed: 0 };
        return `<tr data-queue="${esc(q.name)}"><td><a href="#/tasks?queue=${encodeURIComponent(q.name)}">${esc(q.name)}</a></td>
          <td class="num">${q.priority}</td><td class="num">${q.depth}</td><td class="num">${q.scheduled}</td>
          <td class="num">${q.running}</td><td class="num in-rate">${r.in.toFixed(1)}</td><td class="num">${r.out.toFixed(1)}</td>
          <td class="num">${c.succeeded}</td><td class="num">${c.failed}</td></tr>`;
      }).join("")}</tbody></table>
    ${poolsTable(queues)}
    <h2>Last <span id="window-label">${w.label}</span>
      <span class="windows">${Object.entries(WINDOWS).map(([k, v]) => `<a href="#/?window=${k}" class="${k === win ? "active" : ""}" data-window="${k}">${v.label}</a>`).join("")}</span></h2>
    <div class="charts"><div class="chart" id="chart-rate"></div><div class="chart" id="chart-latency"></div></div>`;
  if (first || !$("#queues") || chartData.window !== win) {
    chartData.charts = null;
    chartData.window = win;
    $("#view").innerHTML = html;
  } else {
    // Keep the charts' elements; replace the rest.
    const tmp = document.createElement("div");
    tmp.innerHTML = html;
    for (const sel of ["#alerts", ".cards", "#queues", "#pools"]) $(sel).replaceWith($(sel, tmp));
  }
  drawCharts(series);
}

// --- workers ------------------------------------------------------------------------------------
// Lifetime counts come from the store (by worker name, over every session); the router's own
// counts start over with each session. Rates are measured between this page's samples.
const workerSamples = new Map();  // name -> [{ ms, done, failed, started: {queue: n} }, ...] over the last 30 s
function workerRates(totals) {
  const now = Date.now();
  const rates = {};
  for (const [name, w] of Object.entries(totals)) {
    const samples = workerSamples.get(name) || [];
    samples.push({ ms: now, done: w.succeeded, failed: w.failed, started: { ...w.started } });
    while (samples.length > 2 && samples[1].ms < now - 30000) samples.shift();
    workerSamples.set(name, samples);
    const first = samples[0], dt = (now - first.ms) / 1000;
    const r = { done: 0, failed: 0, flow: {} };
    if (dt >= 1) {
      r.done = (w.succeeded - first.done) / dt;
      r.failed = (w.failed - first.failed) / dt;
      for (const [q, n] of Object.entries(w.started)) r.flow[q] = (n - (first.started[q] || 0)) / dt;
    }
    rates[name] = r;
  }
  return rates;
}

async function workers() {
  const [list, stats, queues, running] = await Promise.all([api("/api/v1/workers"), api("/api/v1/stats"), api("/api/v1/queues"),
    api("/api/v1/groups?running=1&limit=50")]);
  const totals = stats.workers || {};
  const rates = workerRates(totals);
  const online = new Set(list.map((w) => w.name));
  for (const w of list) live.workersSeen.set(w.name, { ...w, online: true });
  const offline = [...live.workersSeen.values()].filter((w) => !online.has(w.name));
  const life = (name) => totals[name] || { succeeded: 0, failed: 0, started: {} };
  const uptime = (w) => (w.online_ms ? fmtDuration((Date.now() - w.online_ms) / 1000) : "");
  const capped = running.groups.filter((g) => g.parallel);
  $("#view").innerHTML = `<h1>Workers</h1>
    <table id="workers"><thead><tr><th>name</th><th>status</th><th>host</th><th class="num">pid</th><th>queues</th>
      <th class="num">slots</th><th class="num">busy</th><th class="num">in flight</th>
      <th class="num" title="succeeded · failed since the worker's session began at the router">session</th>
      <th class="num" title="succeeded · failed over every session of this worker name">lifetime</th>
      <th class="num" title="succeeded · failed per second">per s</th>
      <th class="num" title="the worker process's resident memory (reported every 5 s)">RSS</th>
      <th class="num" title="its host's 1-minute load average">load</th><th>up</th><th>heartbeat</th><th>actions</th></tr></thead><tbody>
    ${list.map((w) => {
      const l = life(w.name), r = rates[w.name] || { done: 0, failed: 0 };
      return `<tr data-worker="${esc(w.name)}"><td>${esc(w.name)}</td><td>${stateBadge(w.draining ? "draining" : "online")}</td>
      <td>${esc(w.hostname)}</td><td class="num">${w.pid}</td><td>${esc((w.queues || []).join(", "))}</td>
      <td class="num">${w.concurrency}</td><td class="num">${w.busy}</td><td class="num">${w.in_flight}</td>
      <td class="num nowrap">${w.processed} · ${w.failed}</td>
      <td class="num nowrap lifetime">${l.succeeded} · ${l.failed}</td>
      <td class="num nowrap">${r.done.toFixed(1)} · ${r.failed.toFixed(1)}</td>
      <td class="num nowrap rss">${w.rss_kb ? `${(w.rss_kb / 1024).toFixed(1)} MiB` : ""}</td>
      <td class="num load">${w.rss_kb ? Number(w.load).toFixed(2) : ""}</td>
      <td class="nowrap">${uptime(w)}</td><td class="nowrap">${fmtAgo(w.last_heartbeat_ms)}</td>
      <td><button data-act="grow" title="one slot more">+1 slot</button> <button data-act="shrink" title="one slot fewer">−1 slot</button>
        <button class="danger" data-act="shutdown">Shut down</button></td></tr>`;
    }).join("")}
    ${offline.map((w) => `<tr class="offline"><td>${esc(w.name)}</td><td>${stateBadge("offline")}</td>
      <td colspan="7">offline ${fmtAgo(w.changed_ms)}</td>
      <td class="num nowrap lifetime">${life(w.name).succeeded} · ${life(w.name).failed}</td><td colspan="6"></td></tr>`).join("")}
    </tbody></table>
    ${list.length ? "" : `<p class="muted">No worker is online.</p>`}
    <h2>Routing</h2>
    <p class="muted">Which queues each online worker serves, highest priority first, and the tasks per second it starts from each
      (measured between this page's samples).</p>
    <table id="routing"><thead><tr><th>queue</th><th class="num">priority</th><th class="num">depth</th><th class="num">running</th>
      ${list.map((w) => `<th class="num">${esc(w.name)}</th>`).join("")}</tr></thead><tbody>
    ${[...queues].sort((a, b) => b.priority - a.priority).map((q) => `<tr data-queue="${esc(q.name)}"><td>${esc(q.name)}</td>
      <td class="num">${q.priority}</td><td class="num">${q.depth}</td><td class="num">${q.running}</td>
      ${list.map((w) => {
        const serves = (w.queues || []).includes(q.name);
        const flow = rates[w.name]?.flow?.[q.name] || 0;
        return `<td class="num route ${serves ? "serves" : ""}" data-worker="${esc(w.name)}">${serves ? `${flow > 0 ? `→ ${flow.toFixed(1)}/s` : "serves"}` : "–"}</td>`;
      }).join("")}</tr>`).join("")}
    </tbody></table>
    <h2>Group caps in force</h2>
    ${capped.length ? `<table id="caps"><thead><tr><th>group</th><th class="num">parallel</th><th class="num">running</th><th class="num">total</th></tr></thead><tbody>
      ${capped.map((g) => `<tr><td class="idcol">${idCell(g.group_id, `#/group/${g.group_id}`)}</td><td class="num">${g.parallel}</td>
        <td class="num">${g.running}</td><td class="num">${g.total}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">No running group has a <code>parallel</code> cap.</p>`}`;
  for (const b of document.querySelectorAll("#workers button[data-act]")) {
    b.addEventListener("click", async () => {
      const name = b.closest("tr").dataset.worker;
      const act = b.dataset.act;
      if (act === "shutdown" && !confirm(`Shut down ${name}? It finishes its running tasks first.`)) return;
      try {
        if (act === "shutdown") await post(`/api/v1/workers/${encodeURIComponent(name)}/shutdown`);
        else await post(`/api/v1/workers/${encodeURIComponent(name)}/pool`, { delta: act === "grow" ? 1 : -1 });
        toast(`${act} sent to ${name}`);
      } catch (e) { toast(e.message); }
    });
  }
}

// --- tasks --------------------------------------------------------------------------------------
const STATES = ["", "waiting", "scheduled", "queued", "started", "retrying", "succeeded", "failed", "revoked"];

async function tasks(first, params) {
  const f = Object.fromEntries(params);
  const query = new URLSearchParams();
  for (const k of ["state", "queue", "kind", "group", "q", "before"]) if (f[k]) query.set(k, f[k]);
  if (f.since) query.set("since", String(Date.now() - Number(f.since) * 60000));
  query.set("limit", "50");
  const reply = await api(`/api/v1/tasks?${query}`);
  const active = document.activeElement?.name;
  $("#view").innerHTML = `<h1>Tasks</h1>
    <form class="filters" id="filters">
      <input name="q" placeholder="search id, caller id, error" value="${esc(f.q)}">
      <select name="state">${STATES.map((s) => `<option value="${s}" ${s === (f.state || "") ? "selected" : ""}>${s || "any state"}</option>`).join("")}</select>
      <input name="queue" placeholder="queue" value="${esc(f.queue)}">
      <input name="kind" placeholder="kind" value="${esc(f.kind)}">
      <input name="group" placeholder="group id" value="${esc(f.group)}">
      <select name="since">${[["", "any time"], ["5", "last 5 min"], ["60", "last hour"], ["1440", "last day"]]
        .map(([v, l]) => `<option value="${v}" ${v === (f.since || "") ? "selected" : ""}>${l}</option>`).join("")}</select>
      <button class="primary">Filter</button>
    </form>
    <table id="task-list"><thead><tr><th>task</th><th>caller id</th><th>state</th><th>queue</th><th>kind</th>
      <th class="num">attempt</th><th>worker</th><th>created</th><th>error</th></tr></thead><tbody>
    ${reply.tasks.map((t) => `<tr data-task="${esc(t.task_id)}"><td class="idcol">${idCell(t.task_id, `#/task/${t.task_id}`)}</td>
      <td>${esc(t.id)}</td><td>${stateBadge(t.state)}</td><td>${esc(t.queue)}</td><td>${esc(t.kind)}</td>
      <td class="num">${t.attempt}</td><td>${esc(t.worker)}</td><td>${fmtTime(t.created_ms)}</td>
      <td>${esc((t.error || "").slice(0, 80))}</td></tr>`).join("")}</tbody></table>
    ${reply.tasks.length ? "" : `<p class="muted">No task matches.</p>`}
    ${reply.complete ? "" : `<p class="muted">The search stopped after 200,000 records; narrow the filters.</p>`}
    ${reply.next ? `<p><a id="older" href="#/tasks?${new URLSearchParams({ ...f, before: reply.next })}">Older tasks →</a></p>` : ""}`;
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams([...new FormData(e.target)].filter(([, v]) => v));
    location.hash = `#/tasks?${q}`;
  });
  if (active) $(`#filters [name=${active}]`)?.focus();
}

// The live output of the task page's task (docs/STREAMING.md): kept across the page's
// re-renders, closed when another page is shown.
const taskOutput = { id: null, source: null, text: "", ended: false };
const OUTPUT_KEEP = 200000;  // characters shown at most, the newest

function closeTaskOutput() {
  taskOutput.source?.close();
  Object.assign(taskOutput, { id: null, source: null, text: "", ended: false });
}

function followTaskOutput(id) {
  if (taskOutput.id === id) return;
  closeTaskOutput();
  taskOutput.id = id;
  const source = new EventSource(`/api/v1/tasks/${id}/stream`);
  taskOutput.source = source;
  const show = () => {
    const pre = $("#live-output");
    if (!pre) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = taskOutput.text;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("output", (e) => {
    try {
      const c = JSON.parse(e.data);
      taskOutput.text += c.type === "step" ? `\n▸ ${c.text}\n` : c.text;
      if (taskOutput.text.length > OUTPUT_KEEP) taskOutput.text = taskOutput.text.slice(-OUTPUT_KEEP);
      show();
    } catch { /* a malformed frame shows nothing */ }
  });
  source.addEventListener("end", () => { taskOutput.ended = true; source.close(); live.dirty = true; });
}

async function taskPage(first, params, id) {
  const [t, timeline] = await Promise.all([api(`/api/v1/tasks/${id}`),
    api(`/api/v1/tasks/${id}/events`).catch(() => ({ events: [] }))]);
  const canRetry = t.state === "failed" || t.state === "revoked";
  const canRevoke = !["succeeded", "failed", "revoked"].includes(t.state);
  if (canRevoke) followTaskOutput(id);  // running, or about to: its output as it comes
  $("#view").innerHTML = `<h1>Task ${idCell(t.task_id, `#/task/${t.task_id}`)} ${stateBadge(t.state)}</h1>
    <p>${canRetry ? `<button class="primary" id="retry">Retry</button>` : ""}
       ${canRevoke ? `<button class="danger" id="revoke">Revoke</button>` : ""}</p>
    <div class="grid2">
      <table class="kv"><tbody>
        <tr><td>caller id</td><td>${esc(t.id)}</td></tr>
        <tr><td>queue / kind</td><td>${esc(t.queue)} / ${esc(t.kind)}</td></tr>
        <tr><td>attempts</td><td id="attempts">${t.attempt}</td></tr>
        <tr><td>worker</td><td>${esc(t.worker)}</td></tr>
        <tr><td>group</td><td>${t.group_id ? idCell(t.group_id, `#/group/${t.group_id}`) : ""}</td></tr>
        <tr><td>created</td><td>${fmtTime(t.created_ms)}</td></tr>
        <tr><td>started</td><td>${fmtTime(t.started_ms)}</td></tr>
        <tr><td>finished</td><td>${fmtTime(t.finished_ms)}</td></tr>
        ${t.trace_id ? `<tr><td>trace id</td><td id="trace" class="mono" title="${esc(t.traceparent)}"><span class="id"><code>${esc(t.trace_id)}</code><button class="copy" type="button"
          data-copy="${esc(t.trace_id)}" title="copy ${esc(t.trace_id)}" aria-label="copy trace id">${COPY_ICON}</button></span></td></tr>` : ""}
        ${t.unique_key ? `<tr><td>unique key</td><td id="unique-key">${esc(t.unique_key)}</td></tr>` : ""}
        ${t.depends_on ? `<tr><td>waits for (${esc(t.when)})</td><td id="depends-on">${t.depends_on.map((d) => idCell(d, `#/task/${d}`)).join("<br>")}${t.depends_on_group ? `${t.depends_on.length ? "<br>" : ""}group ${idCell(t.depends_on_group, `#/group/${t.depends_on_group}`)}` : ""}</td></tr>` : ""}
      </tbody></table>
      <div><h2 style="margin-top:0">Timeline</h2><table id="timeline"><thead><tr><th>time</th><th>event</th>
        <th class="num">attempt</th><th>worker</th><th>error</th></tr></thead><tbody>
        ${timeline.events.map((e) => `<tr><td>${new Date(e.ts_ms).toLocaleTimeString()}</td><td>${esc(e.event)}</td>
          <td class="num">${e.attempt || ""}</td><td>${esc(e.worker)}</td><td>${esc(e.error)}</td></tr>`).join("")}
      </tbody></table></div>
    </div>
    ${taskOutput.id === id && (taskOutput.text || !taskOutput.ended) ? `<h2>Live output ${taskOutput.ended ? "" : `<span class="muted">(as it runs)</span>`}</h2>
      <pre id="live-output">${esc(taskOutput.text)}</pre>` : ""}
    ${t.error ? `<h2>Error</h2><pre id="error">${esc(t.error)}</pre>` : ""}
    <h2>Result</h2><pre id="result">${esc(pretty(t.result))}</pre>
    <h2>Payload</h2><pre>${esc(pretty(t.payload))}</pre>`;
  const pre = $("#live-output");
  if (pre) pre.scrollTop = pre.scrollHeight;
  $("#retry")?.addEventListener("click", async () => {
    try { await post(`/api/v1/tasks/${id}/retry`); toast("queued again"); live.dirty = true; } catch (e) { toast(e.message); }
  });
  $("#revoke")?.addEventListener("click", async () => {
    const terminate = t.state === "started" && confirm("The task is running. Stop it (terminate)?");
    try { await post(`/api/v1/tasks/${id}/revoke`, { terminate }); toast("revoked"); live.dirty = true; } catch (e) { toast(e.message); }
  });
}

// --- groups -------------------------------------------------------------------------------------
const progressBar = (g) => {
  const ok = g.total ? (100 * g.successful) / g.total : 0;
  const bad = g.total ? (100 * (g.failed + g.revoked)) / g.total : 0;
  return `<div class="bar" title="${g.progress.toFixed(1)}%"><div class="ok" style="width:${ok}%"></div><div class="fail" style="width:${bad}%"></div></div>`;
};

async function groups() {
  const reply = await api("/api/v1/groups?limit=50");
  $("#view").innerHTML = `<h1>Groups</h1>
    <table id="group-list"><thead><tr><th>group</th><th>progress</th><th class="num">%</th><th class="num">total</th>
      <th class="num">succeeded</th><th class="num">failed</th><th class="num">running</th><th class="num">parallel</th>
      <th>created</th></tr></thead><tbody>
    ${reply.groups.map((g) => `<tr data-group="${g.group_id}"><td class="idcol">${idCell(g.group_id, `#/group/${g.group_id}`)}</td>
      <td>${progressBar(g)}</td><td class="num progress">${g.progress.toFixed(1)}</td><td class="num">${g.total}</td>
      <td class="num">${g.successful}</td><td class="num">${g.failed}</td><td class="num">${g.running}</td>
      <td class="num">${g.parallel || ""}</td><td>${fmtTime(g.created_ms)}</td></tr>`).join("")}</tbody></table>
    ${reply.groups.length ? "" : `<p class="muted">No group yet.</p>`}`;
}

// What people wait for: a group's pace, measured over the last minute of this page's samples
// (else since the group was created), and the time left at that pace.
const groupPace = new Map();  // group id -> [[ms, completed], ...]
const fmtDuration = (s) => {
  if (!Number.isFinite(s) || s < 0) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
};

function groupProgress(g) {
  const now = Date.now();
  const samples = groupPace.get(g.group_id) || [];
  samples.push([now, g.completed]);
  while (samples.length > 2 && samples[0][0] < now - 60000) samples.shift();
  groupPace.set(g.group_id, samples);
  const end = g.ready && g.finished_ms ? g.finished_ms : now;
  const elapsed = g.created_ms ? Math.max(0, (end - g.created_ms) / 1000) : NaN;
  const [t0, c0] = samples[0];
  const windowS = (now - t0) / 1000;
  let rate = windowS >= 2 ? (g.completed - c0) / windowS : NaN;
  if (!Number.isFinite(rate) || (rate === 0 && g.completed > 0 && windowS < 10)) rate = elapsed > 0 ? g.completed / elapsed : NaN;
  const left = rate > 0 ? (g.total - g.completed) / rate : NaN;
  return { elapsed, rate, left };
}

async function groupPage(first, params, id) {
  const g = await api(`/api/v1/groups/${id}?limit=200`);
  const p = groupProgress(g);
  const failures = g.failed + g.revoked;
  const summary = g.ready
    ? `<p id="group-summary" class="summary ${failures ? "bad" : "good"}">Finished: ${g.total} task(s) in ${fmtDuration(p.elapsed)} — ` +
      `${g.successful} succeeded, ${g.failed} failed, ${g.revoked} revoked${p.elapsed > 0 ? `; ${(g.total / p.elapsed).toFixed(1)} tasks/s on average` : ""}.</p>`
    : "";
  const cards = [["group-progress", `${g.progress.toFixed(1)}%`, "progress"], ["", g.total, "total"],
    ["", g.successful, "succeeded"], ["group-failures", failures, "failed or revoked"], ["", g.running, "running"],
    ["group-rate", Number.isFinite(p.rate) ? `${p.rate.toFixed(1)}/s` : "–", "rate"],
    ["group-elapsed", fmtDuration(p.elapsed), "elapsed"],
    ["group-left", g.ready ? "done" : fmtDuration(p.left), "time left"]];
  const exportUrl = (format) => `/api/v1/groups/${encodeURIComponent(g.group_id)}/export?format=${format}`;
  const revokedAt = g.revoked_at_ms ? `<p id="group-revoked" class="summary bad">Revoked at ${fmtTime(g.revoked_at_ms)}: ` +
    `it takes no more tasks and none of its tasks starts.</p>` : "";
  $("#view").innerHTML = `<h1>Group ${idCell(g.group_id, `#/group/${g.group_id}`)}</h1>
    ${g.ready ? "" : `<p><button class="danger" id="revoke-group">${g.revoked_at_ms ? "Stop its running tasks" : "Revoke group"}</button></p>`}
    ${revokedAt}
    <div class="cards">
      ${cards.map(([cid, n, l]) => `<div class="card"><div class="n" ${cid ? `id="${cid}"` : ""}>${n}</div><div class="l">${l}</div></div>`).join("")}
    </div>
    <p>${progressBar(g)}</p>
    ${summary}
    <p class="downloads">Download all ${g.total} results:
      <a class="button" id="export-jsonl" href="${exportUrl("jsonl")}" download>JSON lines</a>
      <a class="button" id="export-csv" href="${exportUrl("csv")}" download>CSV</a></p>
    <table id="group-tasks"><thead><tr><th>task</th><th>caller id</th><th>state</th><th class="num">attempt</th><th>error</th></tr></thead><tbody>
    ${g.tasks.map((t) => `<tr data-task="${esc(t.task_id)}"><td class="idcol">${idCell(t.task_id, `#/task/${t.task_id}`)}</td><td>${esc(t.id)}</td>
      <td>${stateBadge(t.state)}</td><td class="num">${t.attempt}</td><td>${esc((t.error || "").slice(0, 100))}</td></tr>`).join("")}
    </tbody></table>
    ${g.results_truncated ? `<p class="muted">The first ${g.tasks.length} tasks; <a href="#/tasks?group=${g.group_id}">search them all</a> or download them above.</p>` : ""}`;
  $("#revoke-group")?.addEventListener("click", async () => {
    if (!confirm(`Revoke every unfinished task of this group (${g.total - g.completed} of ${g.total})?`)) return;
    const terminate = g.running > 0 && confirm(`${g.running} task(s) are running. Stop them too (terminate)?`);
    try {
      const r = await post(`/api/v1/groups/${id}/revoke`, { terminate });
      toast(`${r.revoked} task(s) revoked${r.running ? `, ${r.running} running left to finish` : ""}`);
      live.dirty = true;
    } catch (e) { toast(e.message); }
  });
}

// --- dead letters -------------------------------------------------------------------------------
async function dead(first, params) {
  // Per queue: how many dead letters each holds, and the list of the one picked (#/dead?queue=Q).
  const queue = params.get("queue") || "";
  const [reply, queues] = await Promise.all([
    api(`/api/v1/dead?limit=200${queue ? `&queue=${encodeURIComponent(queue)}` : ""}`),
    api("/api/v1/queues").catch(() => [])]);
  const counts = await Promise.all(queues.map(async (q) =>
    [q.name, (await api(`/api/v1/dead?limit=1&queue=${encodeURIComponent(q.name)}`).catch(() => ({ total: 0 }))).total]));
  const tab = (name, n, label) => `<a class="button ${name === queue ? "primary" : ""}" data-queue="${esc(name)}"
      href="#/dead${name ? `?queue=${encodeURIComponent(name)}` : ""}">${esc(label)} <span class="count">${n}</span></a>`;
  const all = counts.reduce((sum, [, n]) => sum + n, 0);
  $("#view").innerHTML = `<h1>Dead letters${queue ? ` of ${esc(queue)}` : ""}</h1>
    <p class="muted">Tasks that failed after their last retry (${reply.total} ${queue ? `in ${esc(queue)}` : "in all"}).</p>
    <p id="dead-queues">${tab("", all || reply.total, "all queues")}
      ${counts.filter(([name, n]) => n > 0 || name === queue).map(([name, n]) => tab(name, n, name)).join(" ")}</p>
    <p><button class="primary" id="retry-all" ${reply.total ? "" : "disabled"}>Retry all${queue ? ` of ${esc(queue)}` : ""}</button></p>
    <table id="dead-list"><thead><tr><th>task</th><th>caller id</th><th>queue</th><th>kind</th><th class="num">attempts</th>
      <th>error</th><th>finished</th><th></th></tr></thead><tbody>
    ${reply.tasks.map((t) => `<tr data-task="${esc(t.id)}"><td class="idcol">${idCell(t.id, `#/task/${t.id}`)}</td><td>${esc(t.ref)}</td>
      <td>${esc(t.queue)}</td><td>${esc(t.kind)}</td><td class="num">${t.attempt}</td><td>${esc((t.error || "").slice(0, 120))}</td>
      <td>${fmtTime(t.finished_ms)}</td><td><button data-id="${esc(t.id)}">Retry</button></td></tr>`).join("")}</tbody></table>`;
  $("#retry-all").addEventListener("click", async () => {
    try { const r = await post("/api/v1/dead/retry", queue ? { queue } : {}); toast(`${r.retried} task(s) queued again`); live.dirty = true; } catch (e) { toast(e.message); }
  });
  for (const b of document.querySelectorAll("#dead-list button[data-id]")) {
    b.addEventListener("click", async () => {
      try { await post(`/api/v1/tasks/${b.dataset.id}/retry`); toast("queued again"); live.dirty = true; } catch (e) { toast(e.message); }
    });
  }
}

// --- schedules ----------------------------------------------------------------------------------
const every = (ms) => ms % 3600000 === 0 ? `every ${ms / 3600000} h` : ms % 60000 === 0 ? `every ${ms / 60000} min` : `every ${ms / 1000} s`;

async function schedules() {
  const reply = await api("/api/v1/schedules");
  const rows = reply.schedules;
  $("#view").innerHTML = `<h1>Schedules</h1>
    <p class="muted">Periodic tasks the router fires (docs/SCHEDULES.md): from the configuration file's
      <code>[[schedule]]</code> tables or made over the API. ${rows.length} in all.</p>
    <table id="schedule-list"><thead><tr><th>name</th><th>when</th><th>queue / kind</th><th>state</th>
      <th>next</th><th>last slot</th><th class="num">fired</th><th>last task</th><th></th></tr></thead><tbody>
    ${rows.map((r) => `<tr data-schedule="${esc(r.name)}"><td>${esc(r.name)}<div class="muted">${esc(r.source)}</div></td>
      <td>${r.cron ? `<code>${esc(r.cron)}</code> ${esc(r.timezone)}` : esc(every(r.every_ms))}<div class="muted">catch-up ${esc(r.catch_up)}, overlap ${esc(r.overlap)}</div></td>
      <td>${esc(r.task.queue || "default")} / ${esc(r.task.kind || "(queue's)")}</td>
      <td class="paused-state">${r.paused ? `<strong>paused</strong>` : "active"}</td>
      <td>${r.paused ? "" : fmtTime(r.next_slot_ms)}</td><td>${fmtTime(r.last_slot_ms)}</td>
      <td class="num fired">${r.fired}</td><td>${r.last_task ? idCell(r.last_task, `#/task/${r.last_task}`) : ""}</td>
      <td><button data-op="${r.paused ? "resume" : "pause"}" data-name="${esc(r.name)}">${r.paused ? "Resume" : "Pause"}</button>
        <button data-op="run" data-name="${esc(r.name)}">Run now</button></td></tr>
      ${r.recent.length ? `<tr class="firings"><td></td><td colspan="8"><details><summary>${r.recent.length} recent firing(s)</summary>
        <table><tbody>${r.recent.slice().reverse().map((f) => `<tr><td>${fmtTime(f.slot_ms)}</td><td>${esc(f.how)}</td>
          <td>${f.task ? idCell(f.task, `#/task/${f.task}`) : ""}</td></tr>`).join("")}</tbody></table></details></td></tr>` : ""}`).join("")}
    </tbody></table>`;
  for (const b of document.querySelectorAll("#schedule-list button[data-op]")) {
    b.addEventListener("click", async () => {
      try {
        await post(`/api/v1/schedules/${encodeURIComponent(b.dataset.name)}/${b.dataset.op}`, {});
        toast(b.dataset.op === "run" ? "fired" : `${b.dataset.op}d`);
        live.dirty = true;
        render(false);
      } catch (e) { toast(e.message); }
    });
  }
}

// --- routing ------------------------------------------------------------------------------------
const routes = [
  [/^\/?$/, "overview", overview], [/^\/workers$/, "workers", workers], [/^\/tasks$/, "tasks", tasks],
  [/^\/task\/([0-9a-f-]{36})$/, "tasks", taskPage], [/^\/groups$/, "groups", groups],
  [/^\/group\/([0-9a-f-]{36})$/, "groups", groupPage], [/^\/dead$/, "dead", dead],
  [/^\/schedules$/, "schedules", schedules],
];
let current = "";

async function render(first) {
  if ($("#login")) return;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  if (first) current = hash;
  if (taskOutput.id && path !== `/task/${taskOutput.id}`) closeTaskOutput();
  for (const [re, nav, view] of routes) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.view === nav);
    // A form being typed into is not redrawn under the user's fingers.
    if (!first && document.activeElement && document.activeElement.closest("form")) return;
    try {
      await view(first, new URLSearchParams(query), m[1]);
    } catch (e) {
      if (e.status !== 401) $("#view").innerHTML = `<h1>Error</h1><p>${esc(e.message)}</p>`;
    }
    return;
  }
  $("#view").innerHTML = `<h1>Not found</h1><p><a href="#/">Overview</a></p>`;
}

window.addEventListener("hashchange", () => { lastRender = Date.now(); render(true); });
connectEvents();
render(true);
