"""The service a process belongs to: its systemd unit or its container, read from its cgroup.

People think in services ("nginx.service", "the web container"), not pids. The kernel already
knows: systemd, Docker, Podman, containerd/CRI, Kubernetes and LXC all put a process in a cgroup
named after the thing that started it, and ``/proc/PID/cgroup`` says which. One small file read
per process (cached per ``(pid, create_time)``, so a recycled pid is never the old process), no
daemon asked, nothing imported that the CLI's start-up would pay for.

Both layouts are read: cgroup v2 (the ``0::/path`` line) and the v1 ``name=systemd`` hierarchy of a
hybrid host. A container's *name* and *image* are not in the cgroup (only its id); they come from
the engine's API in :mod:`app.containers` (blocking, never on a UI thread): merge them in with
:meth:`Service.with_container`.

A listener held by systemd itself (pid 1, or a ``systemd --user`` manager) is socket activation:
:func:`socket_activation` asks systemd which ``.socket`` unit it is (``systemctl list-sockets``,
where systemd runs) and otherwise says the unit is unknown.

Everything here parses text that others chose (cgroup paths, unit and container names): parsing
never raises on it, and what is shown (:meth:`Service.label`, :meth:`Service.stop_command`) has
been through :func:`app.textsafe.printable`.
"""

from __future__ import annotations

import _thread
import os
import time

from app.textsafe import printable

# On the CLI's start-up path (the SERVICE column): re, subprocess, shlex and dataclasses are
# imported only when needed (the regexes when a cgroup path segment could match one).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterable
    from dataclasses import dataclass
else:
    from app.lite import dataclass

PROC = "/proc"
MAX_CGROUP_BYTES = 65536  # /proc/PID/cgroup is a few hundred bytes; a cap keeps hostile paths cheap
LABEL_LIMIT = 80

UNIT = "unit"
USER_UNIT = "user-unit"
CONTAINER = "container"
SOCKET = "socket"

_UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap")
_HEX_ID = r"[0-9a-f]{64}"
# Scope / cgroup names that container engines give a container, innermost wins. (pattern, engine,
# role); each pattern starts with the literal prefix in _CONTAINER_PREFIXES.
_CONTAINER_SEGMENT_PATTERNS: tuple[tuple[str, str, str | None], ...] = (
    (rf"docker-({_HEX_ID})\.scope", "docker", None),
    (rf"libpod-conmon-({_HEX_ID})(?:\.scope)?", "podman", "conmon"),
    (rf"libpod-({_HEX_ID})(?:\.scope)?", "podman", None),
    (rf"cri-containerd-({_HEX_ID})\.scope", "containerd", None),
    (rf"crio-conmon-({_HEX_ID})\.scope", "cri-o", "conmon"),
    (rf"crio-({_HEX_ID})\.scope", "cri-o", None),
    (rf"nerdctl-({_HEX_ID})\.scope", "containerd", None),
)
_CONTAINER_PREFIXES = ("docker-", "libpod-", "cri-containerd-", "crio-", "nerdctl-")
_PATTERNS = {
    "kubepods_slice_pod": r"kubepods(?:-[a-z]+)?-pod([0-9a-f_]{8,64})\.slice",
    "kubepods_fs_pod": r"pod([0-9a-f-]{8,64})",
    "bare_id": _HEX_ID,
    "lxc_payload": r"lxc\.(payload|monitor)\.(.+)",
    "machine_scope": r"machine-(.+)\.scope",
    "user_manager": r"user@(\d{1,10})\.service",
    "unit_escape": r"\\x([0-9a-fA-F]{2})",
    # Units whose "stop" is not a fix for a port: it would end a login session or a user's whole
    # manager, or they are systemd itself.
    "no_stop": r"(session-.*\.scope|init\.scope|user@\d+\.service|user-runtime-dir@\d+\.service)",
}


class _Regexes:
    """The patterns above, compiled on first use. Every use sits behind a cheap test the pattern
    implies (a literal prefix, a length), so the usual paths (``/system.slice/nginx.service``,
    ``/user.slice/user-1000.slice/session-2.scope``) never import re."""

    container_segments: tuple[tuple[re.Pattern[str], str, str | None], ...]
    kubepods_slice_pod: re.Pattern[str]
    kubepods_fs_pod: re.Pattern[str]
    bare_id: re.Pattern[str]
    lxc_payload: re.Pattern[str]
    machine_scope: re.Pattern[str]
    user_manager: re.Pattern[str]
    unit_escape: re.Pattern[str]
    no_stop: re.Pattern[str]

    def __getattr__(self, name: str) -> object:
        if name not in _PATTERNS and name != "container_segments":
            raise AttributeError(name)
        import re

        self.container_segments = tuple(
            (re.compile(pattern), engine, role) for pattern, engine, role in _CONTAINER_SEGMENT_PATTERNS
        )
        for key, pattern in _PATTERNS.items():
            setattr(self, key, re.compile(pattern))
        return getattr(self, name)


_RE = _Regexes()


_UNKNOWN_SOCKET = "systemd socket activation (unit unknown)"


@dataclass(frozen=True, slots=True)
class Service:
    """What a process belongs to. ``kind`` is one of :data:`UNIT` (a system unit), :data:`USER_UNIT`
    (a unit of a ``systemd --user`` manager, ``uid`` says whose), :data:`CONTAINER` (``engine`` says
    whose) or :data:`SOCKET` (a listener systemd holds for a ``.socket`` unit).

    ``name`` is what people call it: the unit name, the container's name (its short id until the
    engine's API told the name), the LXC/machine name. ``unit`` is the systemd unit it lives in (for a
    container, its scope). Raw strings (as the system spelled them); show them through :meth:`label`.
    """

    kind: str
    name: str
    id: str | None = None  # a container's full id
    image: str | None = None
    unit: str | None = None
    engine: str | None = None  # docker, podman, containerd, cri-o, kubernetes, lxc, machine
    uid: int | None = None  # the owner of a user unit (user@UID.service)
    pod: str | None = None  # a Kubernetes pod's uid
    role: str | None = None  # "conmon" / "monitor": the engine's helper beside the container
    activates: tuple[str, ...] = ()  # a socket unit's services
    cgroup: str = ""  # the cgroup path this was read from

    @property
    def short_id(self) -> str | None:
        return self.id[:12] if self.id else None

    def with_container(self, name: str | None, image: str | None) -> Service:
        """This service with the name and image the engine's API reported (see app.containers)."""
        if self.kind != CONTAINER:
            return self
        from dataclasses import replace

        return replace(self, name=name or self.name, image=image or self.image)

    def label(self, limit: int | None = LABEL_LIMIT) -> str:
        """One line for people, escaped: ``nginx.service``, ``container web (docker, nginx:1)``."""
        if self.kind == CONTAINER:
            detail = [self.engine or "container"]
            if self.image:
                detail.append(self.image)
            if self.pod:
                detail.append(f"pod {self.pod}")
            if self.role:
                detail.append(self.role)
            text = f"container {self.name} ({', '.join(detail)})"
        elif self.kind == USER_UNIT:
            text = f"{self.name} (user {self.uid})" if self.uid is not None else self.name
        elif self.kind == SOCKET:
            text = f"{self.unit} (socket activation)" if self.unit else _UNKNOWN_SOCKET
        else:
            text = self.name
        return printable(text, limit)

    def stop_command(self) -> str | None:
        """The command that stops this service for good (a supervisor would restart a killed pid),
        escaped for showing; ``None`` when there is no such command (a login session, a Kubernetes
        pod whose controller would recreate it, a socket unit systemd did not name)."""
        argv = self._stop_argv()
        if argv is None:
            return None
        import shlex

        return printable(" ".join(shlex.quote(a) for a in argv))

    def _stop_argv(self) -> list[str] | None:
        if self.kind == UNIT:
            if _RE.no_stop.fullmatch(self.name):
                return None
            return ["systemctl", "stop", self.name]
        if self.kind == USER_UNIT:
            if _RE.no_stop.fullmatch(self.name):
                return None
            user = _user_of(self.uid) if self.uid is not None and self.uid != os.geteuid() else None
            return ["systemctl", "--user", *(("-M", f"{user}@") if user else ()), "stop", self.name]
        if self.kind == SOCKET:
            if not self.unit:
                return None
            return ["systemctl", "stop", self.unit, *self.activates]
        if self.kind == CONTAINER:
            ref = self.name or self.short_id or ""
            if self.engine == "docker":
                return ["docker", "stop", ref]
            if self.engine == "podman":
                return ["podman", "stop", ref]
            if self.engine == "containerd" and self.id:
                return ["nerdctl", "stop", self.id]
            if self.engine == "lxc":
                return ["lxc-stop", "-n", ref]
            if self.engine == "machine":
                return ["machinectl", "stop", ref]
        return None

    def as_dict(self) -> dict[str, object]:
        """The JSON shape: kind, name, id, image, unit (+ engine). Raw strings; json.dumps escapes."""
        return {
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "image": self.image,
            "unit": self.unit,
            "engine": self.engine,
        }


def _user_of(uid: int) -> str | None:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError, OverflowError):
        return None


# --- parsing ------------------------------------------------------------------------------------


def cgroup_paths(text: str) -> tuple[str | None, str | None, list[str]]:
    """Split a /proc/PID/cgroup file into (v2 path, v1 name=systemd path, the other v1 paths)."""
    v2: str | None = None
    systemd: str | None = None
    others: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            v2 = path
        elif "name=systemd" in controllers.split(","):
            systemd = path
        else:
            others.append(path)
    return v2, systemd, others


def parse_cgroup(text: str) -> Service | None:
    """The service named by a /proc/PID/cgroup file's text; ``None`` when it names none.

    A container found in the v2 or ``name=systemd`` path wins; then a systemd unit (the v2 path
    when it is not the root, else ``name=systemd``). Other v1 hierarchies are looked at only for a
    container (a v1 host without systemd puts Docker's ``/docker/<id>`` there)."""
    v2, systemd, others = cgroup_paths(text)
    main = [p for p in (v2, systemd) if p]
    for path in main:
        found = container_of_path(path)
        if found is not None:
            return found
    for path in main:
        if path != "/":
            unit = unit_of_path(path)
            if unit is not None:
                return unit
    for path in others:
        found = container_of_path(path)
        if found is not None:
            return found
    return None


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def unescape_unit(name: str) -> str:
    """systemd's ``\\xNN`` escapes in unit names back to characters (``qemu\\x2d1`` -> ``qemu-1``)."""
    if "\\x" not in name:
        return name
    return _RE.unit_escape.sub(lambda m: chr(int(m.group(1), 16)), name)


def container_of_path(path: str) -> Service | None:
    """The container a cgroup path belongs to (innermost when nested), or ``None``."""
    segs = _segments(path)
    found: Service | None = None
    pod: str | None = None
    in_kubepods = False
    for i, seg in enumerate(segs):
        if seg.startswith("kubepods"):
            in_kubepods = True
            m = _RE.kubepods_slice_pod.fullmatch(seg)
            if m:
                pod = m.group(1).replace("_", "-")
            continue
        if in_kubepods:
            m = _RE.kubepods_fs_pod.fullmatch(seg) if seg.startswith("pod") else None
            if m and pod is None:
                pod = m.group(1)
                continue
        hit = _container_segment(seg, segs[i - 1] if i else "")
        if hit is not None:
            engine, cid, role, name, unit = hit
            if in_kubepods:
                engine = "kubernetes"
            found = Service(
                kind=CONTAINER,
                name=name or cid[:12],
                id=cid or None,
                unit=unit,
                engine=engine,
                pod=pod if in_kubepods else None,
                role=role,
                cgroup=path,
            )
    if found is None and in_kubepods and pod is not None:
        found = Service(kind=CONTAINER, name=f"pod {pod}", engine="kubernetes", pod=pod, cgroup=path)
    return found


def _container_segment(seg: str, parent: str) -> tuple[str, str, str | None, str | None, str | None] | None:
    """(engine, id, role, name, unit) when one cgroup path segment names a container."""
    if seg.startswith(_CONTAINER_PREFIXES):
        for pattern, engine, role in _RE.container_segments:
            m = pattern.fullmatch(seg)
            if m:
                return engine, m.group(1), role, None, seg if seg.endswith(".scope") else None
    if len(seg) == 64 and _RE.bare_id.fullmatch(seg):
        if parent == "docker":
            return "docker", seg, None, None, None
        if parent.startswith("pod") or parent == "default" or parent.startswith("kubepods"):
            return "containerd", seg, None, None, None
    m = _RE.lxc_payload.fullmatch(seg) if seg.startswith("lxc.") else None
    if m:
        return "lxc", "", None if m.group(1) == "payload" else "monitor", m.group(2), None
    if parent == "lxc" and seg:
        return "lxc", "", None, seg, None
    m = _RE.machine_scope.fullmatch(seg) if seg.startswith("machine-") else None
    if m and not seg.startswith("machine-libpod"):
        return "machine", "", None, unescape_unit(m.group(1)), seg
    return None


def unit_of_path(path: str) -> Service | None:
    """The systemd unit of a cgroup path (as systemd's cg_path_get_unit: the first component that
    is not a slice), and for ``user@UID.service/...`` the user unit inside it. ``None`` when the path
    is not systemd's."""
    segs = _segments(path)
    unit: str | None = None
    rest: list[str] = []
    for i, seg in enumerate(segs):
        if seg.endswith(".slice"):
            continue
        if seg.endswith(_UNIT_SUFFIXES) and len(seg) > len(".scope"):
            unit = seg
            rest = segs[i + 1 :]
        break
    if unit is None:
        return None
    m = _RE.user_manager.fullmatch(unit) if unit.startswith("user@") else None
    if m:
        uid = int(m.group(1))
        for seg in rest:
            if seg.endswith(".slice"):
                continue
            if seg.endswith(_UNIT_SUFFIXES) and seg != "init.scope":
                return Service(kind=USER_UNIT, name=seg, unit=seg, uid=uid, cgroup=path)
            break
        return Service(kind=UNIT, name=unit, unit=unit, uid=uid, cgroup=path)
    return Service(kind=UNIT, name=unit, unit=unit, cgroup=path)


# --- reading ------------------------------------------------------------------------------------


def read_cgroup(pid: int, proc: str = PROC) -> str | None:
    """The text of /proc/PID/cgroup (capped); ``None`` if the process is gone or unreadable."""
    try:
        with open(f"{proc}/{pid}/cgroup", "rb") as f:
            data = f.read(MAX_CGROUP_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", "surrogateescape")


class ServiceCache:
    """``service_of`` answers kept per ``(pid, create_time)``: a process's service is read once.

    (A process can be moved to another cgroup later, rarely: a ``systemd-run --scope`` or podman's
    conmon at their start. :meth:`forget_pids` drops exited or moved ones.) Thread-safe."""

    def __init__(self, max_entries: int = 65536, proc: str = PROC) -> None:
        self._lock = _thread.allocate_lock()  # = threading.Lock (threading costs start-up)
        self._entries: dict[tuple[int, float], Service | None] = {}
        self._max = max_entries
        self._proc = proc

    def get(self, pid: int, create_time: float) -> Service | None:
        key = (pid, create_time)
        with self._lock:
            if key in self._entries:
                return self._entries[key]
        text = read_cgroup(pid, self._proc)
        found = parse_cgroup(text) if text is not None else None
        if text is None:
            return None  # gone or unreadable: not cached, a later look may succeed
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = found
        return found

    def forget_pids(self, pids: Iterable[int]) -> None:
        drop = set(pids)
        with self._lock:
            for key in [k for k in self._entries if k[0] in drop]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


_CACHE = ServiceCache()


def service_of(pid: int, create_time: float | None = None) -> Service | None:
    """The unit or container ``pid`` belongs to, ``None`` when none (or the process is gone).

    With ``create_time`` (``ProcessInfo.create_time``) the answer is cached for that process;
    without, /proc/PID/cgroup is read each time (one small read). Cheap enough for a UI thread."""
    if create_time is None:
        text = read_cgroup(pid)
        return parse_cgroup(text) if text is not None else None
    return _CACHE.get(pid, create_time)


def forget_pids(pids: Iterable[int]) -> None:
    """Drop cached answers for exited pids (the collector knows when processes exit)."""
    _CACHE.forget_pids(pids)


# --- socket activation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SocketEntry:
    """One row of ``systemctl list-sockets``: a listen address, its type, its unit, what it starts."""

    listen: str
    type: str  # "Stream", "Datagram", ... ("" when systemd did not say)
    unit: str
    activates: tuple[str, ...]

    def address(self) -> tuple[str, int] | None:
        """(ip, port) of an inet listen address (``[::]:22``, ``127.0.0.1:631``), else ``None``."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or not host:
            return None
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            return None
        if "/" in host or not host:
            return None
        return host, int(port)


_SOCKET_TYPES = {"Stream", "Datagram", "SequentialPacket", "FIFO", "Special", "Netlink", "MessageQueue"}
_PROTO_TYPE = {"tcp": "Stream", "udp": "Datagram"}
_WILDCARDS = {"0.0.0.0", "::", "*"}


def parse_list_sockets(text: str) -> list[SocketEntry]:
    """Parse ``systemctl list-sockets --all --full --plain --no-legend --show-types`` (or without
    ``--show-types``): ``LISTEN [TYPE] UNIT ACTIVATES...``. Lines that do not fit are skipped."""
    out: list[SocketEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        if len(fields) >= 3 and fields[1] in _SOCKET_TYPES:
            listen, kind, unit, rest = fields[0], fields[1], fields[2], fields[3:]
        else:
            listen, kind, unit, rest = fields[0], "", fields[1], fields[2:]
        if not unit.endswith(".socket"):
            continue
        activates = tuple(a.strip(",") for a in rest if a.strip(",") and a != "-")
        out.append(SocketEntry(listen, kind, unit, activates))
    return out


def match_socket_unit(
    entries: Iterable[SocketEntry], port: int, proto: str = "tcp", ip: str | None = None
) -> SocketEntry | None:
    """The entry listening on ``port`` (and ``proto``, and ``ip`` when given): the exact address
    first; a wildcard socket (``0.0.0.0``) also matches the other family's wildcard (``[::]``)."""
    want_type = _PROTO_TYPE.get(proto, "")
    wildcard: SocketEntry | None = None
    for entry in entries:
        addr = entry.address()
        if addr is None or addr[1] != port:
            continue
        if entry.type and want_type and entry.type != want_type:
            continue
        if ip is None or addr[0] == ip:
            return entry
        if addr[0] in _WILDCARDS and ip in _WILDCARDS and wildcard is None:
            wildcard = entry  # 0.0.0.0 against [::] (a dual-stack listener is shown either way)
    return wildcard


if TYPE_CHECKING:
    Runner = Callable[[list[str]], str | None]


def _run_systemctl(argv: list[str], timeout: float = 1.0) -> str | None:
    import subprocess

    try:
        res = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            env={**os.environ, "COLUMNS": "10000", "SYSTEMD_PAGER": "", "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


_LIST_SOCKETS = ["list-sockets", "--all", "--full", "--plain", "--no-legend", "--no-pager", "--show-types"]
_SOCKETS_TTL = 10.0
_sockets_cache: dict[tuple[str, ...], tuple[float, list[SocketEntry] | None]] = {}
_sockets_lock = _thread.allocate_lock()


def _comm(pid: int, proc: str = PROC) -> str | None:
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read(64).decode("utf-8", "replace").strip()
    except OSError:
        return None


def socket_activation(
    pid: int,
    port: int,
    proto: str = "tcp",
    ip: str | None = None,
    *,
    run: Runner | None = None,
    proc: str = PROC,
    systemd_dir: str = "/run/systemd/system",
) -> Service | None:
    """For a listener held by systemd (pid 1, or a ``systemd --user`` manager): the ``.socket``
    unit, as a :data:`SOCKET` service. ``None`` when ``pid`` is not systemd. When systemd cannot be
    asked (not running as init here, ``systemctl`` missing or failing, another user's manager
    without root) the service's ``unit`` is ``None``: "socket activation, unit unknown".

    Runs ``systemctl`` (up to 1 s; the table is cached 10 s): call it from a worker, not a UI thread.
    """
    if _comm(pid, proc) != "systemd":
        return None
    unknown = Service(kind=SOCKET, name="", cgroup="")
    argv: list[str] | None
    if pid == 1:
        argv = ["systemctl", *_LIST_SOCKETS] if os.path.isdir(systemd_dir) else None
    else:
        text = read_cgroup(pid, proc) or ""
        v2, systemd, _ = cgroup_paths(text)
        mgr = unit_of_path(v2 if v2 and v2 != "/" else systemd or "")
        uid = mgr.uid if mgr is not None else None
        if uid is None:
            argv = None
        elif uid == os.geteuid():
            argv = ["systemctl", "--user", *_LIST_SOCKETS]
        elif os.geteuid() == 0 and (user := _user_of(uid)):
            argv = ["systemctl", "--user", "-M", f"{user}@", *_LIST_SOCKETS]
        else:
            argv = None
    if argv is None:
        return unknown
    entries = _socket_table(tuple(argv), run or _run_systemctl)
    if entries is None:
        return unknown
    entry = match_socket_unit(entries, port, proto, ip)
    if entry is None:
        return unknown
    return Service(kind=SOCKET, name=entry.unit, unit=entry.unit, activates=entry.activates)


def _socket_table(argv: tuple[str, ...], run: Runner) -> list[SocketEntry] | None:
    """systemd's socket table, cached for the real runner only (an injected one is always asked)."""
    cached = run is _run_systemctl
    now = time.monotonic()
    if cached:
        with _sockets_lock:
            hit = _sockets_cache.get(argv)
            if hit is not None and now - hit[0] < _SOCKETS_TTL:
                return hit[1]
    text = run(list(argv))
    entries = parse_list_sockets(text) if text is not None else None
    if cached:
        with _sockets_lock:
            _sockets_cache[argv] = (now, entries)
    return entries
