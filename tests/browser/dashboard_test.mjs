// The dashboard in a real browser: Debian's chromium driven by playwright-core.
//
// Starts `zbatch up` with basic authentication on free ports, submits a batch over HTTP and
// watches the group's progress reach 100% on the page without a reload, retries a failed task
// from its page, visits every view, and checks that authentication is enforced.
// Usage: node dashboard_test.mjs <zbatch binary> <node_modules folder> [screenshot folder]
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";

import { startUp, waitFor } from "./support.mjs";

const [binary, modules, shots] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const { chromium } = require("playwright-core");

const USER = "admin", PASSWORD = "s3cret-for-tests";
const AUTH = "Basic " + Buffer.from(`${USER}:${PASSWORD}`).toString("base64");

const cluster = await startUp(binary, "dashboard", ["--auth-basic", `${USER}:${PASSWORD}`]);
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

  // The group's own page.
  await page.click(`${row} a`);
  await page.waitForSelector("#group-progress");
  assert.equal(await page.textContent("#group-progress"), "100.0%");

  // A failed task, retried from its page: the page follows the new attempt live.
  const failedTask = await (await call("/api/v1/tasks", { method: "POST", body: JSON.stringify({ kind: "fail", payload: { error: "Broken: on purpose" }, max_retries: 0 }) })).json();
  await page.goto(`${base}/#/task/${failedTask.task_id}`);
  await page.waitForSelector("#retry", { timeout: 15000 });
  assert.match(await page.textContent("#error"), /Broken: on purpose/);
  await page.click("#retry");
  await page.waitForFunction(() => document.querySelector("#attempts")?.textContent === "2", null, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll("#timeline tbody tr").length >= 6, null, { timeout: 15000 });
  if (shots) await page.screenshot({ path: path.join(shots, "task.png") });

  // Dead letters list it, with bulk retry.
  await page.goto(`${base}/#/dead`);
  await page.waitForSelector(`#dead-list a[href="#/task/${failedTask.task_id}"]`);
  assert.equal(await page.isEnabled("#retry-all"), true);

  // Tasks: filter by state.
  await page.goto(`${base}/#/tasks?state=failed`);
  await page.waitForSelector("#task-list");
  const states = await page.$$eval("#task-list tbody .state", (els) => els.map((e) => e.textContent));
  assert.ok(states.length >= 1 && states.every((s) => s === "failed"), JSON.stringify(states));

  // Workers: the worker of `up`, with its actions; +1 slot reaches it.
  await page.goto(`${base}/#/workers`);
  await page.waitForSelector("#workers tr[data-worker]");
  const slotsBefore = Number(await page.textContent("#workers tr[data-worker] td:nth-child(6)"));
  await page.click("#workers tr[data-worker] button[data-act=grow]");
  await page.waitForFunction((n) => Number(document.querySelector("#workers tr[data-worker] td:nth-child(6)")?.textContent) === n + 1,
    slotsBefore, { timeout: 15000 });
  if (shots) await page.screenshot({ path: path.join(shots, "workers.png") });

  // Overview: queues and both charts.
  await page.goto(`${base}/#/`);
  await page.waitForSelector('#queues tr[data-queue="agent_tasks"]');
  await page.waitForSelector("#chart-rate canvas", { timeout: 10000 });
  await page.waitForSelector("#chart-latency canvas");
  if (shots) {
    // Some traffic for the picture: the charts sample every 2 s.
    for (const [endpoint, n] of [["agent-tasks", 300], ["tests", 150]])
      await call(`/batch/celery/${endpoint}`, { method: "POST", body: JSON.stringify({ tasks: Array.from({ length: n }, (_, i) => ({ id: `s${i}`, kind: "sleep", seconds: 0.02 })) }) });
    await page.waitForFunction(() => chartData.points.length >= 8, null, { timeout: 30000 });
    await page.screenshot({ path: path.join(shots, "overview.png") });
  }
  assert.deepEqual(errors, [], "no script errors");
  console.log("dashboard test passed");
} catch (e) {
  failed = true;
  console.error(e);
  console.error("--- zbatch up log\n" + cluster.log().slice(-4000));
} finally {
  if (browser) await browser.close();
  await cluster.stop();
}
process.exit(failed ? 1 : 0);
