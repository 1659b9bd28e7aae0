"""Container names, images and port bindings from a real engine: ``podman system service`` on a
temporary unix socket, with its own storage (``--root``/``--runroot`` in a temp dir, so nothing of
the host's podman is touched), a local image imported from a tarball built here (never pulled) and
a container made with ``podman create`` (containers cannot start on the test machine; create
works). Faults (an engine that never answers, refuses, or sends hostile JSON, chunked) come from
small unix-socket servers in the test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.containers import ContainerIndex, EngineError, PortBinding, engine_sockets, list_containers
from app.forwarders import forward_of
from app.service import parse_cgroup
from tests.helpers import Engine, wait_for


def test_container_name_image_and_ports_from_the_real_api(engine: Engine) -> None:
    [web] = [c for c in list_containers(engine.sock) if c.id == engine.cid]
    assert (web.name, web.image, web.engine, web.state) == ("web", engine.image, "podman", "created")
    assert web.ports == (PortBinding("127.0.0.1", engine.port, 80, "tcp"),)
    assert web.socket == engine.sock


def test_the_index_maps_ids_ports_and_services(engine: Engine) -> None:
    index = ContainerIndex([engine.sock])
    assert index.get(engine.cid) is None  # cache only: nothing asked yet
    assert index.refresh() is True and index.errors == {}
    assert index.get(engine.cid).name == "web"  # type: ignore[union-attr]
    assert index.get(engine.cid[:12]).name == "web"  # type: ignore[union-attr]
    assert index.by_published_port(engine.port).name == "web"  # type: ignore[union-attr]
    assert index.by_published_port(engine.port, "udp") is None
    # The cgroup names the container by id; the API gives it its name and image:
    svc = parse_cgroup(f"0::/machine.slice/libpod-{engine.cid}.scope\n")
    named = index.enrich(svc)
    assert named is not None and (named.name, named.image) == ("web", engine.image)
    assert named.stop_command() == "podman stop web"
    assert named.label() == f"container web (podman, {engine.image})"
    # forwarders of a published port name the container:
    assert forward_of(("rootlessport",), engine.port, index).label() == "podman rootlessport → web"  # type: ignore[union-attr]
    proxy = (
        "docker-proxy",
        "-host-port",
        str(engine.port),
        "-container-ip",
        "10.88.0.9",
        "-container-port",
        "80",
    )
    assert forward_of(proxy, engine.port, index).container == "web"  # type: ignore[union-attr]


def test_the_engine_found_through_docker_host(engine: Engine) -> None:
    found = engine_sockets({"DOCKER_HOST": f"unix://{engine.sock}"})
    assert found[0] == engine.sock
    assert engine.sock not in engine_sockets({"DOCKER_HOST": "tcp://127.0.0.1:2375"})  # no network engines
    index = ContainerIndex()  # the default: every socket engine_sockets() finds
    os.environ["DOCKER_HOST"] = f"unix://{engine.sock}"
    try:
        assert index.refresh() and index.get(engine.cid) is not None
    finally:
        del os.environ["DOCKER_HOST"]


def test_refresh_in_background_returns_at_once_and_fills_the_cache(engine: Engine) -> None:
    index = ContainerIndex([engine.sock])
    index.refresh_in_background()
    wait_for(lambda: index.get(engine.cid) is not None, timeout=10)
    assert index.fresh


# --- faults ---------------------------------------------------------------------------------------


@contextmanager
def unix_server(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    """A unix socket in a temp dir; each connection goes to ``handler`` in a thread."""
    tmp = tempfile.mkdtemp(prefix="portscope-fake-engine-")
    path = os.path.join(tmp, "engine.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=_serve, args=(handler, conn), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield path
    finally:
        stop.set()
        t.join(5)
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _serve(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with conn:
        try:
            handler(conn)
        except OSError:
            pass


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


EVIL = "\x1b]0;pwned\x07\x1b[31mweb\u202e"


def test_hostile_json_over_chunked_encoding_is_parsed_and_escaped_when_shown() -> None:
    payload = [
        {"Id": "ab" * 32, "Names": [f"/{EVIL}"], "Image": EVIL + "x" * 5000, "Ports": [{"PublicPort": 1}]},
        {"Id": 5, "Names": "nope"},
        "not a dict",
        {
            "Id": "cd" * 32,
            "Names": [None],
            "Ports": "x",
            "NetworkSettings": {"Networks": {"a": {"IPAddress": 7}}},
        },
        {
            "Id": "ef" * 32,
            "Ports": [{"PublicPort": 99999, "PrivatePort": 80}, {"PublicPort": 8080, "PrivatePort": 80}],
        },
    ]
    body = json.dumps(payload).encode()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        conn.sendall(head + chunked(body))

    with unix_server(handler) as path:
        found = {c.id: c for c in list_containers(path)}
    assert set(found) == {"ab" * 32, "cd" * 32, "ef" * 32}
    evil = found["ab" * 32]
    assert evil.name == EVIL and len(evil.image) == 1024 and evil.engine == "docker"
    assert evil.ports == ()  # no PrivatePort: not a binding
    assert found["cd" * 32].name == ("cd" * 32)[:12] and found["cd" * 32].addresses == ()
    assert found["ef" * 32].ports == (PortBinding("", 8080, 80, "tcp"),)
    svc = parse_cgroup(f"0::/system.slice/docker-{'ab' * 32}.scope\n").with_container(evil.name, evil.image)  # type: ignore[union-attr]
    label = svc.label()
    assert "\x1b" not in label and "\x07" not in label and "\u202e" not in label
    assert label.startswith("container \\x1b]0;pwned\\x07\\x1b[31mweb\\u202e (docker, ")
    assert "\x1b" not in (svc.stop_command() or "")


def test_an_engine_that_never_answers_costs_one_timeout() -> None:
    gate = threading.Event()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        gate.wait(10)

    with unix_server(handler) as path:
        index = ContainerIndex([path], timeout=0.2)
        assert index.refresh() is False
        assert "timed out" in index.errors[path]
        gate.set()


def test_refused_missing_and_not_a_socket() -> None:
    tmp = tempfile.mkdtemp(prefix="portscope-engine-")
    try:
        dead = os.path.join(tmp, "dead.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(dead)
        s.close()  # the socket file stays, nothing listens: ECONNREFUSED
        plain = os.path.join(tmp, "plain")
        Path(plain).write_text("x")
        with pytest.raises(EngineError, match="refused"):
            list_containers(dead)
        with pytest.raises(EngineError):
            list_containers(os.path.join(tmp, "missing.sock"))
        assert engine_sockets({"DOCKER_HOST": f"unix://{plain}"}) == [
            p for p in engine_sockets({}) if p != plain
        ]
        index = ContainerIndex([dead, os.path.join(tmp, "missing.sock")])
        assert index.refresh() is False and len(index.errors) == 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[{]}x",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[",  # cut off, then closed
    ],
)
def test_bad_answers_are_engine_errors(reply: bytes) -> None:
    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(reply)

    with unix_server(handler) as path, pytest.raises(EngineError):
        list_containers(path, timeout=2)


def test_stale_entries_survive_a_failed_refresh() -> None:
    up = threading.Event()
    up.set()
    body = json.dumps([{"Id": "ab" * 32, "Names": ["/web"], "Image": "img"}]).encode()

    def handler(conn: socket.socket) -> None:
        _read_request(conn)
        if up.is_set():
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    with unix_server(handler) as path:
        index = ContainerIndex([path], ttl=0, timeout=0.5)
        assert index.refresh() and index.get("ab" * 32) is not None
        up.clear()
        assert index.refresh() is False
        assert index.get("ab" * 32) is not None and path in index.errors


def test_the_cli_start_up_does_not_import_the_engine_client() -> None:
    code = "import sys, app.cli.main; print('app.containers' in sys.modules, 'app.netns' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["False", "False"], res.stderr
