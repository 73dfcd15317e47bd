// What the browser tests share: free ports, deadline-bounded waits, and a `zbatch up` on free
// ports that is always stopped (SIGTERM to its process group, SIGKILL after 10 s).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on("error", reject);
  });
}

export async function waitFor(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { if (await fn()) return; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 50));  // the polling interval of a deadline-bounded wait
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

// `zbatch up -c 2` with `args` added, in a temporary folder named after `name`. Returns
// { base, log(), stop() }: the HTTP base URL, everything it printed so far, and a stop that
// also removes the folder.
export async function startUp(binary, name, args) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `zbatch-${name}-`));
  const [http, fe, be, ev] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const up = spawn(binary, ["up", "--data", path.join(dir, "data"), "--http", `127.0.0.1:${http}`,
    "--frontend", `tcp://127.0.0.1:${fe}`, "--backend", `tcp://127.0.0.1:${be}`, "--events", `tcp://127.0.0.1:${ev}`,
    "-c", "2", ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let log = "";
  up.stdout.on("data", (d) => { log += d; });
  up.stderr.on("data", (d) => { log += d; });
  return {
    base: `http://127.0.0.1:${http}`,
    log: () => log,
    async stop() {
      try { process.kill(-up.pid, "SIGTERM"); } catch { /* already gone */ }
      await waitFor("zbatch up to stop", () => up.exitCode !== null || up.signalCode !== null, 10000).catch(() => {
        try { process.kill(-up.pid, "SIGKILL"); } catch { /* gone */ }
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
