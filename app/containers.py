"""Container names, images and published ports from the engine's Docker-compatible API.

A process's cgroup says which container it is in, by id (:mod:`app.service`); people know
containers by name. Docker and Podman both serve the Docker Engine API over a unix socket, so one
``GET /containers/json?all=1`` lists every container's id, name, image, addresses and published
ports. The sockets tried, in order: ``$DOCKER_HOST`` and ``$CONTAINER_HOST`` (``unix://`` only:
nothing here talks to the network), ``/var/run/docker.sock``, ``/run/podman/podman.sock``,
``$XDG_RUNTIME_DIR/podman/podman.sock`` and ``$XDG_RUNTIME_DIR/docker.sock`` (rootless engines).

Threading: :meth:`ContainerIndex.refresh` blocks (up to ``timeout``, 1 s, per socket) and must
never run on a UI thread; call it from a worker, or call :meth:`ContainerIndex.refresh_in_background`,
which returns at once. Every lookup (:meth:`~ContainerIndex.get`, :meth:`~ContainerIndex.by_published_port`,
...) reads only the cache and never blocks. Answers are cached for ``ttl`` seconds.

The client is a small HTTP/1.1-over-unix-socket GET written on :mod:`socket` and :mod:`json`, not
the official ``docker`` SDK: importing the SDK (it brings requests and urllib3) costs about 66 ms,
this module about 4 ms, on top of the stdlib the CLI loads anyway (``bench/imports.py``; README,
"Containers"). Import this module lazily, inside the code that needs it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.service import CONTAINER, Service

TIMEOUT = 1.0
TTL = 10.0
MAX_RESPONSE = 32 * 1024 * 1024
MAX_TEXT = 1024  # a name or image longer than this is cut (hostile engines, or a broken one)


class EngineError(OSError):
    """The engine's socket could not be asked (refused, denied, timed out, a bad answer)."""


@dataclass(frozen=True, slots=True)
class PortBinding:
    """One published port: ``host_ip:host_port`` on the host -> ``container_port`` inside."""

    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as the engine reports it. Raw strings: show them through textsafe.printable."""

    id: str
    name: str
    image: str
    engine: str  # "docker" or "podman"
    state: str = ""
    ports: tuple[PortBinding, ...] = ()
    addresses: tuple[str, ...] = ()  # its IPs on the engine's networks (docker-proxy's -container-ip)
    socket: str = ""  # the API socket it came from

    @property
    def short_id(self) -> str:
        return self.id[:12]


# --- the HTTP client ------------------------------------------------------------------------------


def api_get(sock_path: str, path: str, timeout: float = TIMEOUT) -> tuple[int, dict[str, str], bytes]:
    """``GET path`` over the unix socket at ``sock_path``: (status, headers lowercased, body).

    HTTP/1.1 with ``Connection: close``; chunked bodies are decoded. The whole exchange has one
    deadline of ``timeout`` seconds. Raises :class:`EngineError`."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    total = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(sock_path)
            head = f"GET {path} HTTP/1.1\r\nHost: docker\r\nAccept: application/json\r\n"
            sock.sendall(f"{head}Connection: close\r\n\r\n".encode("ascii"))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(left)
                data = sock.recv(262144)
                if not data:
                    break
                chunks.append(data)
                total += len(data)
                if total > MAX_RESPONSE:
                    raise EngineError(f"{sock_path}: answer larger than {MAX_RESPONSE} bytes")
                if _complete(chunks):
                    break
    except EngineError:
        raise
    except (OSError, ValueError) as exc:  # refused, denied, timed out, no such file
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise EngineError(f"{sock_path}: {reason}") from exc
    return _parse_response(b"".join(chunks), sock_path)


def _complete(chunks: list[bytes]) -> bool:
    """True once a full response is in (engines honour Connection: close, but a keep-alive
    server would otherwise make us wait for the deadline)."""
    data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = data[:head_end].lower()
    body = data[head_end + 4 :]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
        if name.strip() == b"transfer-encoding" and b"chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return False


def _parse_response(data: bytes, where: str) -> tuple[int, dict[str, str], bytes]:
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        raise EngineError(f"{where}: not an HTTP answer")
    lines = data[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise EngineError(f"{where}: not an HTTP answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = data[head_end + 4 :]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body, where)
    elif headers.get("content-length", "").isdigit():
        body = body[: int(headers["content-length"])]
    return int(parts[1]), headers, body


def _dechunk(body: bytes, where: str) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise EngineError(f"{where}: cut-off chunked answer")
        size_text = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise EngineError(f"{where}: bad chunk size") from None
        if size == 0:
            return bytes(out)
        start = eol + 2
        if start + size > len(body):
            raise EngineError(f"{where}: cut-off chunked answer")
        out += body[start : start + size]
        pos = start + size + 2


# --- the engines ----------------------------------------------------------------------------------


def _unix_path(url: str | None) -> str | None:
    if url and url.startswith("unix://"):
        return url[len("unix://") :] or None
    return None


def engine_sockets(env: Mapping[str, str] | None = None) -> list[str]:
    """The engine API sockets present here, in the order they are asked (duplicates by real path
    removed). Only unix sockets that exist; whether they answer is :func:`list_containers`' job."""
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR")
    candidates = [
        _unix_path(env.get("DOCKER_HOST")),
        _unix_path(env.get("CONTAINER_HOST")),
        "/var/run/docker.sock",
        "/run/podman/podman.sock",
        f"{runtime}/podman/podman.sock" if runtime else None,
        f"{runtime}/docker.sock" if runtime else None,
    ]
    out: list[str] = []
    seen: set[str] = set()
    for path in candidates:
        if not path:
            continue
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                continue
        except OSError:
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535 else None


def parse_containers(payload: object, engine: str, sock_path: str = "") -> list[ContainerInfo]:
    """``/containers/json`` as :class:`ContainerInfo` records. Whatever the JSON holds (wrong
    types, missing fields, hostile strings), this never raises: bad entries are skipped."""
    out: list[ContainerInfo] = []
    if not isinstance(payload, list):
        return out
    for item in payload:
        if not isinstance(item, dict):
            continue
        cid = _text(item.get("Id"))
        if not cid:
            continue
        names = item.get("Names")
        name = ""
        if isinstance(names, list) and names:
            name = _text(names[0]).lstrip("/")
        labels = item.get("Labels") if isinstance(item.get("Labels"), dict) else {}
        assert isinstance(labels, dict)
        pod = labels.get("io.kubernetes.pod.name")
        if isinstance(pod, str) and pod:
            ns = labels.get("io.kubernetes.pod.namespace")
            cname = labels.get("io.kubernetes.container.name")
            name = _text("/".join(p for p in (ns, pod, cname) if isinstance(p, str) and p))
        ports: list[PortBinding] = []
        raw_ports = item.get("Ports")
        for p in raw_ports if isinstance(raw_ports, list) else ():
            if not isinstance(p, dict):
                continue
            public, private = _int(p.get("PublicPort")), _int(p.get("PrivatePort"))
            if public is None or private is None:
                continue
            ports.append(PortBinding(_text(p.get("IP")), public, private, _text(p.get("Type")) or "tcp"))
        addresses: list[str] = []
        settings = item.get("NetworkSettings")
        networks = settings.get("Networks") if isinstance(settings, dict) else None
        for net in networks.values() if isinstance(networks, dict) else ():
            if isinstance(net, dict):
                for key in ("IPAddress", "GlobalIPv6Address"):
                    ip = _text(net.get(key))
                    if ip:
                        addresses.append(ip)
        out.append(
            ContainerInfo(
                id=cid,
                name=name or cid[:12],
                image=_text(item.get("Image")),
                engine=engine,
                state=_text(item.get("State")),
                ports=tuple(ports),
                addresses=tuple(addresses),
                socket=sock_path,
            )
        )
    return out


def list_containers(sock_path: str, timeout: float = TIMEOUT) -> list[ContainerInfo]:
    """Every container (running or not) the engine at ``sock_path`` knows. Blocking: not on a UI
    thread. Raises :class:`EngineError`."""
    status, headers, body = api_get(sock_path, "/containers/json?all=1", timeout)
    if status != 200:
        raise EngineError(f"{sock_path}: HTTP {status}")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise EngineError(f"{sock_path}: not JSON") from exc
    podman = "libpod-api-version" in headers or "libpod" in headers.get("server", "").lower()
    engine = "podman" if podman else "docker"
    return parse_containers(payload, engine, sock_path)


# --- the cache ------------------------------------------------------------------------------------


@dataclass
class _State:
    by_id: dict[str, ContainerInfo] = field(default_factory=dict)
    fetched: float | None = None
    errors: dict[str, str] = field(default_factory=dict)


class ContainerIndex:
    """Containers from every engine socket, cached for ``ttl`` seconds.

    :meth:`refresh` blocks (never call it on a UI thread); the lookups only read the cache. It
    implements ``app.forwarders.ContainerLookup`` (``name_by_address``, ``name_by_published_port``)."""

    def __init__(
        self, sockets: Iterable[str] | None = None, ttl: float = TTL, timeout: float = TIMEOUT
    ) -> None:
        self._sockets = list(sockets) if sockets is not None else None
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._state = _State()
        self._worker: threading.Thread | None = None

    @property
    def errors(self) -> dict[str, str]:
        """Per socket, why the last refresh could not ask it (empty when every engine answered)."""
        return dict(self._state.errors)

    @property
    def fresh(self) -> bool:
        fetched = self._state.fetched
        return fetched is not None and time.monotonic() - fetched < self.ttl

    def refresh(self, force: bool = False) -> bool:
        """Ask every engine again unless the cache is fresh (or ``force``). Blocking: up to
        ``timeout`` per socket. Returns True if at least one engine answered."""
        if self.fresh and not force:
            return not self._state.errors or bool(self._state.by_id)
        sockets = self._sockets if self._sockets is not None else engine_sockets()
        old = self._state.by_id
        by_id: dict[str, ContainerInfo] = {}
        errors: dict[str, str] = {}
        answered = False
        for path in sockets:
            try:
                found = list_containers(path, self.timeout)
            except EngineError as exc:
                errors[path] = str(exc)
                by_id.update((k, v) for k, v in old.items() if v.socket == path)  # stale beats nothing
                continue
            answered = True
            by_id.update((c.id, c) for c in found)
        with self._lock:
            self._state = _State(by_id, time.monotonic(), errors)
        return answered

    def refresh_in_background(self) -> None:
        """Start a refresh in a daemon thread when the cache is stale; returns at once (UI-safe)."""
        with self._lock:
            if self.fresh or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(target=self.refresh, name="portscope-containers", daemon=True)
            self._worker.start()

    def containers(self) -> list[ContainerInfo]:
        return list(self._state.by_id.values())

    def get(self, container_id: str) -> ContainerInfo | None:
        """By full id, or by a unique prefix of 12+ characters (the short id). Cache only."""
        by_id = self._state.by_id
        hit = by_id.get(container_id)
        if hit is not None or len(container_id) < 12:
            return hit
        matches = [c for cid, c in by_id.items() if cid.startswith(container_id)]
        return matches[0] if len(matches) == 1 else None

    def by_published_port(self, port: int, proto: str = "tcp", ip: str | None = None) -> ContainerInfo | None:
        """The container that publishes host ``port`` (``-p [ip:]port:cport``). Cache only."""
        fallback = None
        for c in self._state.by_id.values():
            for b in c.ports:
                if b.host_port == port and b.proto == proto:
                    if ip is None or b.host_ip == ip:
                        return c
                    if b.host_ip in ("", "0.0.0.0", "::") and fallback is None:
                        fallback = c
        return fallback

    def by_address(self, ip: str, port: int | None = None) -> ContainerInfo | None:
        """The container with address ``ip`` on one of its networks (docker-proxy's target)."""
        for c in self._state.by_id.values():
            if ip in c.addresses:
                return c
        return None

    def name_by_address(self, ip: str, port: int) -> str | None:
        hit = self.by_address(ip, port)
        return hit.name if hit else None

    def name_by_published_port(self, port: int, proto: str = "tcp") -> str | None:
        hit = self.by_published_port(port, proto)
        return hit.name if hit else None

    def enrich(self, service: Service | None) -> Service | None:
        """``service`` with its container's name and image from the cache (unchanged otherwise)."""
        if service is None or service.kind != CONTAINER or not service.id:
            return service
        info = self.get(service.id)
        return service.with_container(info.name, info.image) if info else service
