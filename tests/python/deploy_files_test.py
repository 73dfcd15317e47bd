"""The deployment files checked by real tools: every systemd unit by `systemd-analyze verify`
(with ExecStart's /usr/bin/zbatch pointed at the built binary, which must exist), and a
misspelt key caught the same way; deploy/compose.yaml by docker-compose's own schema check
(`docker-compose config`, no daemon needed); deploy/Dockerfile by dockerfile-utils' linter
(npm, installed under the build tree on first use). No container engine runs here, so the
image is not built by this test (docs/DEPLOYMENT.md)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from npm_packages import npm_install

BINARY = SOURCE = NPM_PREFIX = None
UNITS = ["zbatch-router.service", "zbatch-store.service", "zbatch-worker@.service", "zbatch-up.service"]


def verify(folder, names):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *[os.path.join(folder, n) for n in names]],
                          capture_output=True, text=True, timeout=60)


class SystemdUnitsTest(unittest.TestCase):
    def setUp(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (Debian's systemd package)")
        self.dir = tempfile.TemporaryDirectory(prefix="zbatch-units-")
        for name in UNITS:
            with open(os.path.join(SOURCE, "deploy", "systemd", name)) as f:
                text = f.read()
            with open(os.path.join(self.dir.name, name), "w") as f:
                f.write(text.replace("/usr/bin/zbatch", os.path.abspath(BINARY)))

    def tearDown(self):
        self.dir.cleanup()

    def test_every_unit_verifies_cleanly(self):
        # A template is verified through an instance of it.
        names = [n.replace("@.service", "@1.service") for n in UNITS]
        r = verify(self.dir.name, names)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), "", "systemd-analyze verify has remarks")

    def test_units_are_notify_services_with_watchdog_reload_and_hardening(self):
        for name in UNITS:
            with open(os.path.join(SOURCE, "deploy", "systemd", name)) as f:
                lines = {l.split("=", 1)[0]: l.split("=", 1)[1] for l in f.read().splitlines() if "=" in l and not l.startswith("#")}
            for key, value in [("Type", "notify"), ("ExecReload", "/bin/kill -HUP $MAINPID"), ("DynamicUser", "yes"),
                               ("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes")]:
                self.assertEqual(lines.get(key), value, f"{name}: {key}")
            self.assertIn("WatchdogSec", lines, name)
            self.assertIn("StateDirectory", lines, name)

    def test_a_misspelt_key_is_reported(self):
        path = os.path.join(self.dir.name, "zbatch-router.service")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("WatchdogSec=", "WatchdogSecs="))
        r = verify(self.dir.name, ["zbatch-router.service"])
        self.assertIn("Unknown key 'WatchdogSecs'", r.stderr)

    def test_the_units_start_the_commands_the_binary_has(self):
        # ExecStart's command and flags are accepted by the binary (--help parses them).
        for command, extra in [("router", []), ("store", []), ("up", []), ("worker", ["--hostname", "1@host"])]:
            r = subprocess.run([BINARY, command, "--config", os.path.join(SOURCE, "zbatch.example.toml"), *extra,
                                "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)


class ComposeTest(unittest.TestCase):
    def setUp(self):
        if not shutil.which("docker-compose"):
            self.skipTest("docker-compose is not installed (Debian's docker-compose package)")

    def config(self, path, env):
        return subprocess.run(["docker-compose", "-f", path, "config"], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, **env), cwd=os.path.dirname(path))

    def test_compose_file_is_valid_and_has_the_seed_services(self):
        r = self.config(os.path.join(SOURCE, "deploy", "compose.yaml"), {"ZBATCH_TOKEN": "0123456789abcdef0123"})
        self.assertEqual(r.returncode, 0, r.stderr)
        import yaml
        doc = yaml.safe_load(r.stdout)
        self.assertEqual(set(doc["services"]), {"router", "store", "worker"})
        self.assertIn("/readyz", " ".join(doc["services"]["store"]["healthcheck"]["test"]))
        self.assertIn("ping", doc["services"]["router"]["healthcheck"]["test"])
        self.assertEqual(doc["services"]["worker"]["depends_on"]["router"]["condition"], "service_healthy")
        self.assertNotIn("container_name", doc["services"]["worker"], "a fixed name would forbid --scale")

    def test_compose_refuses_to_start_without_a_token(self):
        env = dict(os.environ)
        env.pop("ZBATCH_TOKEN", None)
        r = subprocess.run(["docker-compose", "-f", os.path.join(SOURCE, "deploy", "compose.yaml"), "config"],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ZBATCH_TOKEN", r.stderr)

    def test_a_broken_compose_file_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "compose.yaml")
            with open(path, "w") as f:
                f.write("services:\n  router:\n    image: zbatch\n    healthcheck:\n      retries: many\n")
            self.assertNotEqual(self.config(path, {}).returncode, 0)


class DockerfileTest(unittest.TestCase):
    def lint(self, path):
        modules = npm_install(NPM_PREFIX, ["dockerfile-utils@0.16.3"], ["dockerfile-utils/package.json"])
        return subprocess.run([os.path.join(modules, ".bin", "dockerfile-utils"), "lint", path],
                              capture_output=True, text=True, timeout=60)

    def test_dockerfile_lints_cleanly(self):
        r = self.lint(os.path.join(SOURCE, "deploy", "Dockerfile"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "")

    def test_the_linter_catches_a_bad_dockerfile(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "Dockerfile")
            with open(path, "w") as f:
                f.write("FROM debian:12\nEXPOSE http\nCMDD zbatch\n")
            r = self.lint(path)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("Unknown instruction", r.stdout)


if __name__ == "__main__":
    BINARY, SOURCE, NPM_PREFIX = sys.argv[1], sys.argv[2], sys.argv[3]
    del sys.argv[1:4]
    unittest.main()
