// The dashboard in a real browser: Debian's chromium driven by playwright-core.
//
// Starts `zbatch up` with basic authentication on free ports, submits a batch over HTTP and
// watches the group's progress reach 100% on the page without a reload, retries a failed task
// from its page, visits every view, and checks that authentication is enforced.
// Usage: node dashboard_test.mjs <zbatch binary> <node_modules folder> [screenshot folder]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";

import { startUp, waitFor } from "./support.mjs";

const [binary, modules, shots] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const { chromium } = require("playwright-core");

const USER = "admin", PASSWORD = "s3cret-for-tests";
const AUTH = "Basic " + Buffer.from(`${USER}:${PASSWORD}`).toString("base64");

// A handler that writes to stderr for about three seconds: its task page shows it as it runs.
const configDir = mkdtempSync(path.join(os.tmpdir(), "zbatch-dashboard-config-"));
const config = path.join(configDir, "zbatch.toml");
writeFileSync(config, `[[handler]]
kind = "slow_log"
argv = ["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo progress line $i >&2; sleep 0.4; done; echo '{\\"ok\\": true}'"]

# A model pool the Overview lists with its servers (no task runs on it here).
[[pool]]
name = "coder"
model = "qwen2.5-coder:7b"
hosts = ["http://gpu1.example:11434", "http://gpu2.example:11434"]
parallel = 2

[[queue]]
name = "pooled_agents"
handler = "agent"
pool = "coder"
`);
const cluster = await startUp(binary, "dashboard", ["--auth-basic", `${USER}:${PASSWORD}`, "--config", config]);
const base = cluster.base;
const call = (p, options = {}) => fetch(base + p, { ...options, headers: { Authorization: AUTH, "Content-Type": "application/json", ...(options.headers || {}) } });

let browser;
let failed = false;
try {
  await waitFor("readyz", async () => (await fetch(base + "/readyz")).status === 200);

  // Authentication is enforced for the page and the API; probes stay open.
  assert.equal((await fetch(base + "/")).status, 401);
  assert.match((await fetch(base + "/")).headers.get("www-authenticate") || "", /Basic/);
  assert.equal((await fetch(base + "/api/v1/stats")).status, 401);
  assert.equal((await fetch(base + "/api/v1/stats", { headers: { Authorization: "Basic " + Buffer.from("admin:wrong").toString("base64") } })).status, 401);
  assert.equal((await call("/api/v1/stats")).status, 200);
  assert.equal((await fetch(base + "/healthz")).status, 200);
  assert.ok(!cluster.log().includes(PASSWORD), "the password must never be logged");

  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  // Without credentials the browser gets nothing but the 401.
  const anonymous = await browser.newContext();
  const anonPage = await anonymous.newPage();
  let deniedStatus = 0;
  try {
    deniedStatus = (await anonPage.goto(base + "/")).status();
  } catch (e) {
    // Headless chromium turns an unanswered Basic challenge into this navigation error.
    assert.match(e.message, /ERR_INVALID_AUTH_CREDENTIALS/);
    deniedStatus = 401;
  }
  assert.equal(deniedStatus, 401);
  const anonymousText = await anonPage.evaluate(() => document.body?.innerText || "").catch(() => "");
  assert.ok(!anonymousText.includes("Overview"), "no dashboard without credentials");
  await anonymous.close();

  const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "/#/groups");
  await page.waitForSelector("#group-list");
  await page.waitForSelector("#live.on", { timeout: 10000 });
  await page.evaluate(() => { window.__sameDocument = true; });

  // A batch submitted over HTTP: its progress reaches 100% on the page without a reload.
  const tasks = Array.from({ length: 20 }, (_, i) => ({ id: `t${i}`, kind: "sleep", seconds: 0.3 }));
  const batch = await (await call("/batch/celery/agent-tasks", { method: "POST", body: JSON.stringify({ tasks, parallel: 2 }) })).json();
  const row = `tr[data-group="${batch.group_id}"]`;
  await page.waitForSelector(row, { timeout: 10000 });
  const early = Number(await page.textContent(`${row} td.progress`));
  assert.ok(early < 100, `the group is seen while it runs (${early}%)`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === "100.0", `${row} td.progress`, { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload happened");
  if (shots) await page.screenshot({ path: path.join(shots, "groups.png") });

  // The group's own page: progress, a final summary, and its whole export.
  await page.click(`${row} a code`);
  await page.waitForSelector("#group-progress");
  assert.equal(await page.textContent("#group-progress"), "100.0%");
  assert.equal(await page.textContent("#group-left"), "done");
  assert.match(await page.textContent("#group-summary"), /Finished: 20 task\(s\) in .* 20 succeeded, 0 failed, 0 revoked/);
  for (const [sel, format] of [["#export-jsonl", "jsonl"], ["#export-csv", "csv"]]) {
    const href = await page.getAttribute(sel, "href");
    assert.equal(href, `/api/v1/groups/${batch.group_id}/export?format=${format}`);
    const text = await page.evaluate(async (u) => (await fetch(u)).text(), href);
    assert.equal(text.trim().split("\n").length, format === "csv" ? 21 : 20, `${format} export of 20 tasks`);
  }
  // Every task row shows its whole id, and its copy button copies it.
  const shown = await page.$$eval("#group-tasks tbody tr", (rows) => rows.map((r) => [r.dataset.task, r.querySelector("code").textContent]));
  assert.equal(shown.length, 20);
  for (const [id, text] of shown) assert.equal(text, id);
  assert.equal(new Set(shown.map(([id]) => id)).size, 20, "rows can be told apart");
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  await page.click(`#group-tasks tr[data-task="${shown[3][0]}"] button.copy`);
  await page.waitForFunction(async (id) => (await navigator.clipboard.readText()) === id, shown[3][0], { timeout: 5000 });
  if (shots) await page.screenshot({ path: path.join(shots, "group.png") });

  // A group revoked from its page: both confirmations accepted, its running task stopped too.
  const slow = await (await call("/api/v1/tasks", { method: "POST", body: JSON.stringify({ tasks: [
    { kind: "sleep", payload: { seconds: 60 } }, ...Array.from({ length: 5 }, () => ({ kind: "echo", payload: 1, countdown: 600 }))] }) })).json();
  await waitFor("the long task started", async () => (await (await call(`/api/v1/tasks/${slow.task_ids[0]}`)).json()).state === "started");
  await page.goto(`${base}/#/group/${slow.group_id}`);
  await page.waitForSelector("#revoke-group");
  const answered = [];
  page.on("dialog", (d) => { answered.push(d.message()); d.accept(); });
  await page.click("#revoke-group");
  await page.waitForSelector("#group-revoked", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#group-summary")?.textContent.includes("6 revoked"), null, { timeout: 10000 });
  assert.equal(answered.length, 2, `a confirmation, then the question to stop the running task: ${answered}`);
  assert.equal(await page.$("#revoke-group"), null, "a finished group offers no revoke");
  page.removeAllListeners("dialog");

  // A failed task, retried from its page: the page follows the new attempt live.
  // It was submitted with a W3C traceparent header: its page shows the trace id.
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const failedTask = await (await call("/api/v1/tasks", { method: "POST", headers: { traceparent },
    body: JSON.stringify({ kind: "fail", payload: { error: "Broken: on purpose" }, max_retries: 0 }) })).json();
  await page.goto(`${base}/#/task/${failedTask.task_id}`);
  await page.waitForSelector("#retry", { timeout: 15000 });
  assert.match(await page.textContent("#error"), /Broken: on purpose/);
  assert.match(await page.textContent("#trace"), /4bf92f3577b34da6a3ce929d0e0e4736/, "the task page shows its trace id");
  await page.click("#retry");
  await page.waitForFunction(() => document.querySelector("#attempts")?.textContent === "2", null, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll("#timeline tbody tr").length >= 6, null, { timeout: 15000 });
  if (shots) await page.screenshot({ path: path.join(shots, "task.png") });

  // A running task's live output reaches its page as the handler writes it (docs/STREAMING.md).
  const chatty = await (await call("/api/v1/tasks", { method: "POST", body: JSON.stringify({ kind: "slow_log" }) })).json();
  await page.goto(`${base}/#/task/${chatty.task_id}`);
  await page.waitForFunction(() => /progress line 2/.test(document.querySelector("#live-output")?.textContent || ""), null, { timeout: 15000 });
  const whileRunning = await (await call(`/api/v1/tasks/${chatty.task_id}`)).json();
  assert.notEqual(whileRunning.state, "succeeded", "the output was shown while the task ran");
  if (shots) await page.screenshot({ path: path.join(shots, "live-output.png") });
  await page.waitForFunction(() => /"ok": true/.test(document.querySelector("#result")?.textContent || ""), null, { timeout: 15000 });
  assert.match(await page.textContent("#live-output"), /progress line 1[\s\S]*progress line 8/);

  // Dead letters list it (whole id), with bulk retry.
  await page.goto(`${base}/#/dead`);
  await page.waitForSelector(`#dead-list a[href="#/task/${failedTask.task_id}"]`);
  assert.equal(await page.textContent(`#dead-list tr[data-task="${failedTask.task_id}"] code`), failedTask.task_id);
  assert.equal(await page.isEnabled("#retry-all"), true);
  // Per queue: the tab of its queue counts it, and the queue's own view lists it alone.
  await page.waitForSelector('#dead-queues a[data-queue="default"]');
  assert.equal(await page.textContent('#dead-queues a[data-queue="default"] .count'), "1");
  await page.click('#dead-queues a[data-queue="default"]');
  await page.waitForFunction(() => /of default/.test(document.querySelector("h1")?.textContent || ""), null, { timeout: 10000 });
  assert.equal(await page.$$eval("#dead-list tbody tr", (rows) => rows.length), 1);
  await page.goto(`${base}/#/dead?queue=agent_tasks`);
  await page.waitForFunction(() => /of agent_tasks/.test(document.querySelector("h1")?.textContent || ""), null, { timeout: 10000 });
  const agentDead = await (await call("/api/v1/dead?queue=agent_tasks&limit=200")).json();
  assert.equal(await page.$$eval("#dead-list tbody tr", (rows) => rows.length), agentDead.tasks.length);
  assert.ok(await page.$$eval("#dead-list tbody tr td:nth-child(3)", (cells) => cells.every((c) => c.textContent === "agent_tasks")));
  assert.equal(await page.isEnabled("#retry-all"), agentDead.total > 0);

  // Schedules: one made over the API is listed; pause shows it paused, run now fires it.
  const made = await call("/api/v1/schedules", { method: "POST", body: JSON.stringify({ name: "nightly-report", every_s: 3600,
    task: { kind: "noop" } }) });
  assert.equal(made.status, 201, await made.text());
  await page.goto(`${base}/#/schedules`);
  const scheduleRow = '#schedule-list tr[data-schedule="nightly-report"]';
  await page.waitForSelector(scheduleRow);
  assert.match(await page.textContent(`${scheduleRow} td:nth-child(2)`), /every 1 h/);
  await page.click(`${scheduleRow} button[data-op=pause]`);
  await page.waitForFunction((r) => document.querySelector(`${r} .paused-state`)?.textContent === "paused", scheduleRow, { timeout: 10000 });
  await page.click(`${scheduleRow} button[data-op=run]`);
  await page.waitForFunction((r) => document.querySelector(`${r} .fired`)?.textContent === "1", scheduleRow, { timeout: 10000 });
  await page.waitForSelector(`${scheduleRow} td:nth-child(8) code`);
  if (shots) await page.screenshot({ path: path.join(shots, "schedules.png") });

  // Tasks: filter by state; each row shows its whole id.
  await page.goto(`${base}/#/tasks?state=failed`);
  await page.waitForSelector("#task-list");
  const ids = await page.$$eval("#task-list tbody tr", (rows) => rows.map((r) => [r.dataset.task, r.querySelector("code").textContent]));
  assert.ok(ids.length >= 1 && ids.every(([id, text]) => id === text && text.length === 36), JSON.stringify(ids));
  const states = await page.$$eval("#task-list tbody .state", (els) => els.map((e) => e.textContent));
  assert.ok(states.length >= 1 && states.every((s) => s === "failed"), JSON.stringify(states));

  // Workers: the worker of `up`, with its actions; +1 slot reaches it.
  await page.goto(`${base}/#/workers`);
  await page.waitForSelector("#workers tr[data-worker]");
  // Each worker reports its memory and its host's load.
  await page.waitForFunction(() => /MiB/.test(document.querySelector("#workers tr[data-worker] td.rss")?.textContent || ""), null, { timeout: 15000 });
  assert.match(await page.textContent("#workers tr[data-worker] td.load"), /^\d+\.\d\d$/);
  const slotsBefore = Number(await page.textContent("#workers tr[data-worker] td:nth-child(6)"));
  await page.click("#workers tr[data-worker] button[data-act=grow]");
  await page.waitForFunction((n) => Number(document.querySelector("#workers tr[data-worker] td:nth-child(6)")?.textContent) === n + 1,
    slotsBefore, { timeout: 15000 });
  if (shots) await page.screenshot({ path: path.join(shots, "workers.png") });

  // Overview: queues, both charts from the store's history (so they hold what happened before
  // the page was opened: the batch above), and the dead-letter alert of the failed task.
  await page.goto(`${base}/#/`);
  await page.waitForSelector('#queues tr[data-queue="agent_tasks"]');
  await page.waitForSelector("#chart-rate canvas", { timeout: 10000 });
  await page.waitForSelector("#chart-latency canvas");
  const received = await page.evaluate(() => chartData.charts[0].data[1].reduce((a, b) => a + b, 0));
  assert.ok(received >= 20, `the chart shows the batch sent before the page opened (${received})`);
  await page.waitForSelector('#alerts [data-alert="dead-letters"]');
  // The model pool: each server with its places taken and free, and whether it takes tasks.
  await page.waitForSelector("#pools table");
  const pools = await page.textContent("#pools");
  for (const want of ["coder", "qwen2.5-coder:7b", "http://gpu1.example:11434", "http://gpu2.example:11434", "0 / 2", "takes tasks"])
    assert.ok(pools.includes(want), `the pools table shows ${want}: ${pools}`);
  // Axis labels that fit however large the numbers.
  assert.deepEqual(await page.evaluate(() => [fmtNum(10000), fmtNum(1000000), fmtNum(12500), fmtMs(250), fmtMs(90000)]),
    ["10k", "1M", "12.5k", "250 ms", "1.5 min"]);
  // Queue rates come from the history too: a burst reads as tasks per second while it lasts.
  await call("/batch/celery/tests", { method: "POST", body: JSON.stringify({ tasks: Array.from({ length: 400 }, (_, i) => ({ id: `b${i}`, kind: "noop" })) }) });
  await page.waitForFunction(() => Number(document.querySelector('#queues tr[data-queue="tests"] td.in-rate')?.textContent) > 0, null, { timeout: 15000 });
  if (shots) {
    // Some traffic for the picture.
    for (const [endpoint, n] of [["agent-tasks", 300], ["tests", 150]])
      await call(`/batch/celery/${endpoint}`, { method: "POST", body: JSON.stringify({ tasks: Array.from({ length: n }, (_, i) => ({ id: `s${i}`, kind: "sleep", seconds: 0.02 })) }) });
    let total = 0;
    await waitFor("the pictured batches done", async () => {
      const st = await (await call("/api/v1/stats")).json();
      total = st.succeeded + st.failed;
      return st.queues.agent_tasks?.succeeded >= 320 && st.queues.tests?.succeeded >= 550;
    }, 60000);
    // The page has redrawn with them: its "succeeded" and "failed" cards add up to the total.
    await page.waitForFunction((n) => {
      const cards = [...document.querySelectorAll(".cards .card .n")].map((e) => Number(e.textContent));
      return cards[1] + cards[2] === n;
    }, total, { timeout: 10000 });
    await page.screenshot({ path: path.join(shots, "overview.png") });
  }
  // The 24-hour window reads the same history in minutes: the batches above are in it.
  await page.goto(`${base}/#/?window=24h`);
  await page.waitForFunction(() => document.querySelector("#window-label")?.textContent === "24 hours");
  await page.waitForFunction(() => chartData.charts && chartData.charts[0].data[1].reduce((a, b) => a + b, 0) > 0);
  assert.deepEqual(errors, [], "no script errors");
  console.log("dashboard test passed");
} catch (e) {
  failed = true;
  console.error(e);
  console.error("--- zbatch up log\n" + cluster.log().slice(-4000));
} finally {
  if (browser) await browser.close();
  await cluster.stop();
  rmSync(configDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
