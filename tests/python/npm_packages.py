"""Installs pinned npm packages into a folder of the build tree on first use (the machine's
node and npm, the npm registry only), the way kinds_test.py installs the MCP servers."""
import os
import subprocess


def npm_install(prefix, packages, markers):
    """Installs `packages` under `prefix` unless every one of `markers` (paths relative to
    prefix/node_modules) exists already; returns prefix/node_modules."""
    modules = os.path.join(prefix, "node_modules")
    if not all(os.path.exists(os.path.join(modules, m)) for m in markers):
        os.makedirs(prefix, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", prefix, *packages],
                       check=True, timeout=240, stdout=subprocess.DEVNULL)
    return modules
