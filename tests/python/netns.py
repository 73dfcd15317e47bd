"""Network namespaces for the multi-host tests: whether they can be made here, and a shell."""
import os
import shutil
import subprocess


def sh(*args, check=True, timeout=30):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


def why_no_namespaces():
    """None when this process can make network namespaces, else the reason."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 (ip netns)"
    probe = f"zbprobe{os.getpid()}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return "ip netns add failed: " + r.stderr.strip()
    sh("ip", "netns", "del", probe, check=False)
    return None
