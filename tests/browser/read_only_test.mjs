// The dashboard with a read-only credential, in a real browser (Debian's chromium driven by
// playwright-core): every view works, live updates included; the worker, retry and
// dead-letter actions are refused (403) and the page says so, and nothing changes.
// Usage: node read_only_test.mjs <zbatch binary> <node_modules folder>
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";

import { startUp, waitFor } from "./support.mjs";

const [binary, modules] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const { chromium } = require("playwright-core");

const READ = "read-only-token-0123456789", ADMIN = "admin-token-for-tests-0123456789";

const cluster = await startUp(binary, "read-only", ["--auth-token", `read:${READ}`, "--auth-token", `admin:${ADMIN}`]);
const base = cluster.base;
const admin = (p, body) => fetch(base + p, { method: "POST", body: JSON.stringify(body),
  headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" } });

let browser;
let failed = false;
try {
  await waitFor("readyz", async () => (await fetch(base + "/readyz")).status === 200);
  const failedTask = await (await admin("/api/v1/tasks", { kind: "fail", payload: { error: "Broken: on purpose" }, max_retries: 0 })).json();

  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  await context.addCookies([{ name: "zbatch_token", value: READ, url: base }]);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));

  // Reading works, live updates included.
  await page.goto(base + "/#/");
  await page.waitForSelector('#queues tr[data-queue="agent_tasks"]');
  await page.waitForSelector("#live.on", { timeout: 10000 });
  assert.equal(await page.isHidden("#forbidden"), true, "nothing refused yet");

  // A worker action: refused, said so, and the slots stay as they were.
  await page.goto(`${base}/#/workers`);
  await page.waitForSelector("#workers tr[data-worker]");
  const slots = await page.textContent("#workers tr[data-worker] td:nth-child(6)");
  await page.click("#workers tr[data-worker] button[data-act=grow]");
  await page.waitForSelector("#forbidden", { state: "visible", timeout: 10000 });
  assert.match(await page.textContent("#forbidden"), /needs the admin role; this credential has the read role/);
  assert.match(await page.textContent("#toast"), /needs the admin role/);
  await page.reload();
  await page.waitForSelector("#workers tr[data-worker]");
  assert.equal(await page.textContent("#workers tr[data-worker] td:nth-child(6)"), slots);

  // Retry from a failed task's page: refused, the task stays failed.
  await page.goto(`${base}/#/task/${failedTask.task_id}`);
  await page.waitForSelector("#retry", { timeout: 15000 });
  await page.click("#retry");
  await page.waitForFunction(() => /needs the admin role/.test(document.querySelector("#forbidden")?.textContent || ""));
  const state = await (await fetch(`${base}/api/v1/tasks/${failedTask.task_id}`, { headers: { Authorization: `Bearer ${READ}` } })).json();
  assert.equal(state.state, "failed");

  // Dead letters: listed, and retry-all refused.
  await page.goto(`${base}/#/dead`);
  await page.waitForSelector(`#dead-list a[href="#/task/${failedTask.task_id}"]`);
  await page.click("#retry-all");
  await page.waitForFunction(() => /POST \/api\/v1\/dead\/retry needs the admin role/.test(document.querySelector("#forbidden")?.textContent || ""));
  assert.deepEqual(errors, [], "no script errors");
  console.log("read-only dashboard test passed");
} catch (e) {
  failed = true;
  console.error(e);
  console.error("--- zbatch up log\n" + cluster.log().slice(-4000));
} finally {
  if (browser) await browser.close();
  await cluster.stop();
}
process.exit(failed ? 1 : 0);
