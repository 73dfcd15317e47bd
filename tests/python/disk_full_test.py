"""A full disk does not stop the router: with its data folder on a small tmpfs, submissions are
refused with 507 storage_full (naming the folder and its free space) while every task
acknowledged before runs and succeeds, the router stays up, and once space returns it accepts
again by itself. Once with the reserve (--min-free-mb), once without it, where commits really
fail with ENOSPC and are rolled back. Skipped, saying why, where a tmpfs cannot be mounted.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import requests

from cluster import free_port, wait_until

BINARY = sys.argv.pop(1)
FS_BYTES = 16 << 20
PAD = "x" * 1500  # a task of about 1.6 KiB, so the filesystem fills in a few thousand tasks
BATCH = 50


def can_mount():
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    probe = tempfile.mkdtemp(prefix="zbatch-mount-probe-")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            return "mount -t tmpfs failed: " + r.stderr.strip()
        subprocess.run(["umount", probe], capture_output=True, timeout=30)
        return None
    finally:
        os.rmdir(probe)


WHY_NOT = can_mount()


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@unittest.skipIf(WHY_NOT, f"a small filesystem cannot be made: {WHY_NOT}")
class DiskFull(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="zbatch-disk-")
        self.fs = os.path.join(self.dir.name, "fs")
        os.mkdir(self.fs)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", self.fs], check=True,
                       capture_output=True, timeout=30)
        self.addCleanup(self.unmount)
        self.procs = {}
        self.addCleanup(self.stop_all)

    def unmount(self):
        subprocess.run(["umount", "-l", self.fs], capture_output=True, timeout=30)
        self.dir.cleanup()

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def start(self, name, args):
        with open(os.path.join(self.dir.name, name + ".log"), "ab") as log:
            self.procs[name] = subprocess.Popen([BINARY] + args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def logs(self):
        out = []
        for name in self.procs:
            with open(os.path.join(self.dir.name, name + ".log"), errors="replace") as f:
                out.append(f"--- {name}\n{f.read()[-4000:]}")
        return "\n".join(out)

    def start_cluster(self, min_free_mb):
        frontend, backend, events = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.start("router", ["router", "--data", self.fs, "--frontend", frontend, "--backend", backend,
                              "--events", events, "--min-free-mb", str(min_free_mb)])
        self.start("worker", ["worker", "--router", backend, "-c", "4", "--hostname", "w@disk"])
        self.start("store", ["store", "--router", frontend, "--events", events,
                             "--data", os.path.join(self.dir.name, "store-data"), "--http", self.url[7:]])
        wait_until(lambda: requests.get(self.url + "/readyz", timeout=1).status_code == 200, 20, "readyz")

    def submit(self, n, tag):
        tasks = [{"id": f"{tag}-{i}", "kind": "noop", "pad": PAD} for i in range(n)]
        return requests.post(f"{self.url}/batch/celery/tests", json={"tasks": tasks}, timeout=30)

    def stats(self):
        r = requests.get(f"{self.url}/api/v1/inspect/stats", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["router"]

    def group(self, gid):
        return requests.get(f"{self.url}/batch/celery/group/{gid}?limit=0", timeout=10).json()

    def fill(self, leave_bytes):
        """A file taking all but `leave_bytes` of the filesystem."""
        filler = os.path.join(self.fs, "filler")
        size = free_bytes(self.fs) - leave_bytes
        with open(filler, "wb") as f:
            f.write(b"\0" * size)  # tmpfs allocates what is written, not what is truncated
        return filler

    def fill_until_refused(self):
        """Submits batches until one is refused; returns the accepted groups and the refusal."""
        accepted = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.assertIsNone(self.procs["router"].poll(), "the router exited\n" + self.logs())
            r = self.submit(BATCH, f"b{len(accepted)}")
            if r.status_code == 200:
                accepted.append(r.json()["group_id"])
                continue
            return accepted, r
        self.fail("no submission was refused while the filesystem filled\n" + self.logs())

    def check_full_disk(self, min_free_mb):
        self.start_cluster(min_free_mb)
        filler = self.fill(7 << 20)
        accepted, refusal = self.fill_until_refused()
        print(f"min_free_mb={min_free_mb}: acknowledged {len(accepted) * BATCH} tasks before the refusal "
              f"(free {free_bytes(self.fs) >> 10} KiB)", file=sys.stderr)
        self.assertGreater(len(accepted), 0, self.logs())
        self.assertEqual(refusal.status_code, 507, refusal.text)
        error = refusal.json()["error"]
        self.assertEqual(error["code"], "storage_full", error)
        self.assertIn(self.fs, error["message"])  # the folder, and its free space
        self.assertIn("MiB free", error["message"])

        stats = self.stats()
        self.assertEqual(stats["storage_reserve_bytes"], min_free_mb << 20, stats)
        self.assertLess(stats["storage_free_bytes"], 8 << 20, stats)
        if min_free_mb:
            # Refused for as long as less than the reserve is free, and the router says so.
            self.assertTrue(stats["storage_full"], stats)
            self.assertEqual(stats["storage_failed_commits"], 0, stats)
            self.assertEqual(self.submit(1, "again").status_code, 507)
        else:
            # Without a reserve the refusal came from a commit that failed and was rolled back.
            # (Later probes may accept what still fits: accepted is durable.)
            self.assertGreater(stats["storage_failed_commits"], 0, stats)
        self.assertIsNone(self.procs["router"].poll(), "the router exited\n" + self.logs())

        # Results need little room (LMDB reuses the pages earlier turns freed): every acknowledged
        # task ends while the disk is still full.
        self.wait_all_succeeded(accepted)
        if min_free_mb:
            self.assertEqual(self.submit(1, "still").status_code, 507)
        self.assertIsNone(self.procs["router"].poll(), "the router exited\n" + self.logs())

        # Space returns: accepted again by itself.
        os.unlink(filler)
        freed = time.monotonic()
        def accepted_again():
            r = self.submit(BATCH, f"back{time.monotonic_ns()}")
            if r.status_code == 200:
                accepted.append(r.json()["group_id"])
                return True
            self.assertEqual(r.status_code, 507, r.text)
            return False
        wait_until(accepted_again, 15, "submissions accepted again after the filler was deleted")
        print(f"min_free_mb={min_free_mb}: accepting again {time.monotonic() - freed:.2f} s after space returned",
              file=sys.stderr)
        r = self.submit(BATCH, "after")
        self.assertEqual(r.status_code, 200, r.text)
        accepted.append(r.json()["group_id"])
        self.wait_all_succeeded(accepted)
        self.assertFalse(self.stats()["storage_full"])
        self.assertIsNone(self.procs["router"].poll(), "the router exited\n" + self.logs())

    def wait_all_succeeded(self, groups):
        """Every acknowledged task runs and succeeds: none is lost."""
        for gid in groups:
            wait_until(lambda: self.group(gid)["ready"], 90, f"group {gid} ready\n{self.logs()}")
            g = self.group(gid)
            self.assertEqual((g["total"], g["successful"], g["failed"]), (BATCH, BATCH, 0), g)

    def test_below_the_reserve_submissions_are_refused_and_results_go_on(self):
        self.check_full_disk(min_free_mb=4)

    def test_without_a_reserve_failed_commits_are_rolled_back_not_fatal(self):
        self.check_full_disk(min_free_mb=0)


if __name__ == "__main__":
    unittest.main()
