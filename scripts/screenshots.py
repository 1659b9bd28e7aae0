#!/usr/bin/env python3
"""Render the dashboard's main views to screenshots/ (SVG, and PNG where rsvg-convert exists).

Runs the real app with the real collector. It starts a few demo listeners of its own on loopback
(child processes with readable names) plus a couple of loopback connections, so the views show
something, and stops them all at the end.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--size 120x32]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The demo servers: child processes with readable names (PR_SET_NAME) holding a loopback listener.
# TCP ones accept, keep and read their connections; with "workers", a server forks two idle
# workers that keep its listener, as nginx's or a pre-fork server's do, so the listening view shows
# "+2" and the detail pane every holder and a process tree. This is the script's own code: it runs
# with the runtime dependencies only (no pytest, no test helpers).
DEMO_SERVER = r"""
import os, socket, sys, time
proto, host, port, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
workers = "workers" in sys.argv[5:]
def set_name(n):
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, n.encode()[:15], 0, 0, 0)
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: gone with the script
    except Exception:
        pass
set_name(name)
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind((host, port))
if proto == "tcp":
    s.listen(64)
    s.settimeout(0.2)
if workers:
    for n in range(2):
        if os.fork() == 0:  # the worker keeps the listener (it never accepts: the master does)
            set_name(name + "-w" + str(n + 1))
            while os.getppid() != 1:
                time.sleep(0.5)
            os._exit(0)
print(s.getsockname()[1], flush=True)
held, deadline = [], time.time() + 600
while time.time() < deadline:
    if proto == "tcp":
        try:
            conn = s.accept()[0]
            conn.setblocking(False)
            held.append(conn)
        except OSError:
            pass
        for conn in held:  # read what clients send, so their rates show
            try:
                while conn.recv(1 << 20):
                    pass
            except OSError:
                pass
    else:
        time.sleep(0.2)
"""

DEMOS = (
    ("tcp", "127.0.0.1", 8080, "demo-web", True),
    ("tcp", "127.0.0.1", 5432, "demo-db", True),
    ("tcp", "127.0.0.1", 6379, "demo-cache", False),
    ("udp", "127.0.0.1", 5353, "demo-mdns", False),
    ("tcp", "127.0.0.1", 0, "demo-worker", False),
    ("tcp", "::1", 8443, "demo-api6", False),
)


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    port: int
    host: str
    name: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def spawn_demo(script: Path, proto: str, host: str, port: int, name: str, workers: bool) -> Demo | None:
    args = [sys.executable, str(script), proto, host, str(port), name] + (["workers"] if workers else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():  # the port is taken here
        proc.kill()
        proc.wait()
        return None
    return Demo(proc, int(line), host, name)


def start_demos(workdir: Path) -> list[Demo]:
    script = workdir / "demo_server.py"
    script.write_text(DEMO_SERVER)
    demos: list[Demo] = []
    for proto, host, port, name, workers in DEMOS:
        if ":" in host and not has_ipv6():
            continue
        demo = spawn_demo(script, proto, host, port, name, workers) or spawn_demo(
            script,
            proto,
            host,
            0,
            name,
            workers,  # the preferred port is taken: any free one
        )
        if demo is None:
            raise SystemExit(f"screenshots: could not start the demo server {name}")
        demos.append(demo)
    return demos


def connect_to(child: Demo, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection((child.host, child.port), timeout=5)
        out.append(s)
    return out


class Talker:
    """Sends on one connection from a thread until stopped, so Rx/s and Tx/s show real rates."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        chunk = b"x" * 32768
        self.conn.settimeout(1)
        while not self.stopped.is_set():
            try:
                self.conn.sendall(chunk)
            except OSError:
                return
            time.sleep(0.02)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def to_png(svg: Path) -> Path | None:
    """rsvg-convert drops the non-breaking spaces Textual writes: use plain preserved spaces."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        return None
    fixed = svg.with_suffix(".tmp.svg")
    text = svg.read_text().replace("&#160;", " ").replace("<svg ", '<svg xml:space="preserve" ', 1)
    fixed.write_text(text)
    png = svg.with_suffix(".png")
    try:
        subprocess.run([tool, str(fixed), "-o", str(png)], check=True, timeout=60)
    finally:
        fixed.unlink(missing_ok=True)
    return png


async def wait_until(pilot: object, predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the demo listeners did not show up in time")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def render(out: Path, size: tuple[int, int], children: list[Demo]) -> list[Path]:
    from app.tui.app import PortscopeApp

    app = PortscopeApp(interval=1.0, blink=False)
    written: list[Path] = []
    demo_ports = {c.port for c in children}
    web = next(c for c in children if c.name == "demo-web")

    def shot(name: str) -> None:
        path = out / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"portscope — {name}"))
        written.append(path)

    def key_for(port: int) -> str | None:
        for key, row in app.model("listening").rows.items():
            if row.payload.sock.laddr.port == port:
                return key
        return None

    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: all(key_for(p) for p in demo_ports) and app.poll_count >= 2)
        await wait_until(
            pilot, lambda: any((r.payload.tx or 0) > 0 for r in app.model("connections").rows.values())
        )
        await pilot.press("space")  # pause: a still picture
        await pilot.pause(0.3)
        app.set_filter_text("proc:demo")
        await pilot.pause(0.2)
        shot("listening")
        app.set_filter_text("")
        await pilot.press("slash", *"proc:demo -udp", "enter")
        await pilot.pause(0.2)
        shot("filter")
        await pilot.press("escape", "2")
        app.set_filter_text(f":{web.port}")
        model = app.model("connections")
        tx = next(i for i, c in enumerate(model.columns) if c.key == "tx")
        app.main.sort_by_column("connections", tx)  # the top talkers first
        await pilot.pause(0.2)
        shot("connections")
        await pilot.press("escape", "3")
        await pilot.pause(0.2)
        shot("interfaces")
        await pilot.press("1")
        app.set_filter_text("proc:demo")
        await pilot.pause(0.2)
        key = key_for(web.port)
        if key:
            app.model().select_key(key)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "process tree" in str(app.query_one("#detail-text").render()))
        await pilot.pause(0.2)
        shot("detail")
        await pilot.press("escape", "question_mark")
        await pilot.pause(0.2)
        shot("help")
        await pilot.press("escape", "q")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--size", default="120x32", help="terminal size, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="portscope-demo-"))
    children = start_demos(workdir)
    clients: list[socket.socket] = []
    try:
        web = next(c for c in children if c.name == "demo-web")
        clients = connect_to(web, 3)
        talker = Talker(clients[0])
        try:
            svgs = asyncio.run(render(out, (width, height), children))
        finally:
            talker.stop()
    finally:
        for s in clients:
            s.close()
        for c in children:
            c.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for svg in svgs:
        png = to_png(svg)
        print(f"wrote {svg}" + (f" and {png.name}" if png else ""))
    if not shutil.which("rsvg-convert"):
        print("rsvg-convert not found: SVG only (apt-get install librsvg2-bin for PNGs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
