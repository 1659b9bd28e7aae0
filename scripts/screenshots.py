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
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import Child, has_ipv6, spawn_listener  # noqa: E402

DEMOS = (
    ("tcp", "127.0.0.1", 8080, "demo-web"),
    ("tcp", "127.0.0.1", 5432, "demo-db"),
    ("tcp", "127.0.0.1", 6379, "demo-cache"),
    ("udp", "127.0.0.1", 5353, "demo-mdns"),
    ("tcp", "127.0.0.1", 0, "demo-worker"),
    ("tcp", "::1", 8443, "demo-api6"),
)


def start_demos() -> list[Child]:
    children: list[Child] = []
    for proto, host, port, name in DEMOS:
        if ":" in host and not has_ipv6():
            continue
        try:
            children.append(spawn_listener(proto, host, port, name=name, accept=True))
        except RuntimeError:  # the preferred port is taken here: any free port will do
            children.append(spawn_listener(proto, host, 0, name=name, accept=True))
    return children


def connect_to(child: Child, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection((child.host, child.port), timeout=5)
        out.append(s)
    return out


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


async def render(out: Path, size: tuple[int, int], children: list[Child]) -> list[Path]:
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
        await pilot.pause(0.2)
        shot("connections")
        await pilot.press("escape", "3")
        await pilot.pause(0.2)
        shot("interfaces")
        await pilot.press("1")
        key = key_for(web.port)
        if key:
            app.model().select_key(key)
            app.table().model_changed()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "sockets held" in str(app.query_one("#detail-text").render()))
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
    children = start_demos()
    clients: list[socket.socket] = []
    try:
        web = next(c for c in children if c.name == "demo-web")
        clients = connect_to(web, 3)
        svgs = asyncio.run(render(out, (width, height), children))
    finally:
        for s in clients:
            s.close()
        for c in children:
            c.stop()
    for svg in svgs:
        png = to_png(svg)
        print(f"wrote {svg}" + (f" and {png.name}" if png else ""))
    if not shutil.which("rsvg-convert"):
        print("rsvg-convert not found: SVG only (apt-get install librsvg2-bin for PNGs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
