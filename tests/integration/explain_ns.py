"""Run ``portscope explain`` inside a private network namespace (and mount namespace) the test creates.

``run_in_netns(spec)`` starts ``unshare --net [--mount] python -c DRIVER SPEC``. The driver, inside the
new namespaces: brings ``lo`` up, adds a veth pair with the given addresses, bind-mounts a hosts file,
loads nft rules or runs iptables commands, opens the listeners (and TIME_WAIT sockets), then runs
``python -m app ARGS`` (or a Python snippet) and prints its exit code and output as JSON. When the
driver exits the namespace goes away with everything in it: the host's firewall, interfaces and
routes are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r"""
import json, os, socket, subprocess, sys, time
spec = json.loads(sys.argv[1])

def sh(*cmd, stdin=None):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"setup failed: {' '.join(cmd)}: {r.stderr.strip()}")

sh("ip", "link", "set", "lo", "up")
if spec.get("addrs"):
    sh("ip", "link", "add", "ps-v0", "type", "veth", "peer", "name", "ps-v1")
    for cidr in spec["addrs"]:
        extra = ["nodad"] if ":" in cidr else []
        sh("ip", "addr", "add", cidr, "dev", "ps-v0", *extra)
    sh("ip", "link", "set", "ps-v0", "up")
    sh("ip", "link", "set", "ps-v1", "up")
if spec.get("hosts_file"):
    sh("mount", "--bind", spec["hosts_file"], "/etc/hosts")
if spec.get("nft"):
    sh("nft", "-f", "-", stdin=spec["nft"])
for cmd in spec.get("commands", []):
    sh(*cmd)
held = []
for l in spec.get("listeners", []):
    fam = socket.AF_INET6 if ":" in l["host"] else socket.AF_INET
    kind = socket.SOCK_STREAM if l.get("proto", "tcp") == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6 and l.get("v6only") is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(l["v6only"]))
    s.bind((l["host"], l["port"]))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    held.append(s)
if spec.get("code"):
    out = {"rc": 0, "stdout": "", "stderr": ""}
    scope = {"result": None}
    exec(spec["code"], scope)
    out["result"] = scope["result"]
else:
    cmd = spec.get("prefix") or [sys.executable, "-m", "app"]
    r = subprocess.run([*cmd, *spec["args"]], capture_output=True, text=True, timeout=60, cwd=spec.get("cwd"))
    out = {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
print(json.dumps(out))
"""


def why_not(mount: bool = False) -> str | None:
    """None when network (and mount) namespaces can be made here, else why not."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed"
    flags = ["--net", "--mount"] if mount else ["--net"]
    try:
        r = subprocess.run(["unshare", *flags, "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if r.returncode:
        return f"cannot create namespaces here: {r.stderr.strip() or r.returncode}"
    return None


def nft_missing() -> str | None:
    return (
        None if shutil.which("nft") or os.path.exists("/usr/sbin/nft") else "nft (nftables) is not installed"
    )


def tool_missing(name: str) -> str | None:
    found = shutil.which(name) or any(os.path.exists(f"{d}/{name}") for d in ("/usr/sbin", "/sbin"))
    return None if found else f"{name} is not installed"


needs_iptables = pytest.mark.skipif(
    tool_missing("iptables-save") is not None or tool_missing("iptables") is not None,
    reason=tool_missing("iptables") or tool_missing("iptables-save") or "",
)
needs_netns = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")
needs_mountns = pytest.mark.skipif(why_not(mount=True) is not None, reason=why_not(mount=True) or "")
needs_nft = pytest.mark.skipif(nft_missing() is not None, reason=nft_missing() or "")


def run_in_netns(spec: dict[str, Any], mount: bool = False, timeout: float = 90) -> dict[str, Any]:
    flags = ["--net", "--mount"] if mount else ["--net"]
    spec = {"cwd": str(ROOT), **spec}
    r = subprocess.run(
        ["unshare", *flags, sys.executable, "-c", DRIVER, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert r.returncode == 0, f"driver failed: {r.stderr.strip()[-2000:]}"
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def explain_json(spec: dict[str, Any], mount: bool = False) -> tuple[int, dict[str, Any]]:
    """Run ``explain ... --json`` per ``spec``; (exit code, the JSON)."""
    out = run_in_netns(spec, mount=mount)
    assert "Traceback" not in out["stderr"], out["stderr"]
    try:
        data = json.loads(out["stdout"])
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON ({exc}): {out['stdout'][:500]!r} {out['stderr'][:500]!r}") from None
    return out["rc"], data


def kinds(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in data["findings"] if f["kind"] == kind]


def texts(data: dict[str, Any]) -> str:
    return "\n".join(f"{f['severity']} {f['kind']}: {f['text']}" for f in data["findings"])
