"""The Debian package (`make deb`): built by CPack from the build tree, its Depends computed by
dpkg-shlibdeps naming the runtime libraries, its files (binary, HTTP module, units, the
example configuration as the conffile /etc/zbatch/zbatch.toml, docs), unpacked into a fresh
root where the installed binary runs and finds its HTTP module, and lintian's findings."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = SOURCE = None
PACKAGE = None


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=240, **kw)


def setUpModule():
    global PACKAGE
    for old in glob.glob(os.path.join(BUILD, "zbatch_*.deb")):
        os.remove(old)
    r = run(["cpack", "-G", "DEB"], cwd=BUILD)
    if r.returncode != 0:
        raise AssertionError("cpack failed:\n" + r.stdout + r.stderr)
    found = glob.glob(os.path.join(BUILD, "zbatch_*.deb"))
    if len(found) != 1:
        raise AssertionError(f"cpack made {found}")
    PACKAGE = found[0]


class DebPackageTest(unittest.TestCase):
    def field(self, name):
        return run(["dpkg-deb", "-f", PACKAGE, name]).stdout.strip()

    def test_depends_names_the_runtime_libraries(self):
        depends = self.field("Depends")
        for lib in ["libzmq5", "liblmdb0", "libsystemd0", "libssl3", "libstdc++6", "libc6"]:
            self.assertIn(lib, depends)
        self.assertRegex(depends, r"libspdlog1[.0-9]*")
        self.assertEqual(self.field("Package"), "zbatch")

    def test_files_and_conffile(self):
        listing = run(["dpkg-deb", "-c", PACKAGE]).stdout
        for path in ["./usr/bin/zbatch", "./usr/lib/zbatch/libzbatch_http.so",
                     "./usr/lib/systemd/system/zbatch-router.service", "./usr/lib/systemd/system/zbatch-worker@.service",
                     "./usr/lib/systemd/system/zbatch-store.service", "./usr/lib/systemd/system/zbatch-up.service",
                     "./etc/zbatch/zbatch.toml", "./usr/share/doc/zbatch/DEPLOYMENT.md"]:
            self.assertIn(path, listing)
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(run(["dpkg-deb", "-e", PACKAGE, d]).returncode, 0)
            with open(os.path.join(d, "conffiles")) as f:
                self.assertEqual(f.read().split(), ["/etc/zbatch/zbatch.toml"])

    def test_installed_binary_runs_from_a_fresh_root(self):
        with tempfile.TemporaryDirectory() as root:
            self.assertEqual(run(["dpkg-deb", "-x", PACKAGE, root]).returncode, 0)
            binary = os.path.join(root, "usr", "bin", "zbatch")
            r = run([binary, "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith("zbatch "), r.stdout)
            # The installed config loads as the defaults, and the installed binary reads it.
            r = run([binary, "config", os.path.join(root, "etc", "zbatch", "zbatch.toml"), "--json"])
            self.assertEqual(r.returncode, 0, r.stderr)
            # The store is in the HTTP module, found beside the binary at ../lib/zbatch/ of the
            # root, not in the build tree: hide the build's copy while the store starts.
            module = os.path.join(BUILD, "libzbatch_http.so")
            hidden = module + ".hidden"
            os.rename(module, hidden)
            try:
                r = run([binary, "store", "--http", "127.0.0.1:notaport"])
            finally:
                os.rename(hidden, module)
            self.assertNotIn("HTTP module", r.stderr, r.stderr)
            self.assertNotEqual(r.returncode, 0)

    def test_lintian(self):
        if not shutil.which("lintian"):
            self.skipTest("lintian is not installed")
        r = run(["lintian", "--no-tag-display-limit", PACKAGE])
        tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:")]
        print("lintian:\n" + "\n".join(tags), file=sys.stderr)
        # Errors that only a Debian archive upload needs (no copyright file and changelog of a
        # Debian maintainer) are reported above; everything else must be clean.
        # No manual page yet: `zbatch help COMMAND` is the reference.
        allowed = ("no-manual-page", "no-copyright-file", "no-changelog", "debian-changelog-file-missing",
                   "extended-description-is-probably-too-short", "maintainer-script-calls-systemctl",
                   "initial-upload-closes-no-bugs", "systemd-service-file-missing-install-key")
        real = [t for t in tags if not any(a in t for a in allowed)]
        self.assertEqual(real, [], "lintian findings")


if __name__ == "__main__":
    BUILD, SOURCE = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main()
