"""Owners as people name them: every process holding a socket, the service it belongs to (a
systemd unit, a container, a ``.socket`` unit of systemd) and, for a forwarder (``ssh -L``,
``kubectl port-forward``, ``docker-proxy``, ``socat``), where it forwards to.

:class:`OwnerFacts` answers these per snapshot from the modules that know them
(:mod:`app.service`, :mod:`app.containers`, :mod:`app.forwarders`) and caches per process across
snapshots, so a long-lived instance (the dashboard's) costs one cgroup read per new process.
:meth:`OwnerFacts.prepare` does the blocking part (container engines' APIs, ``systemctl`` for
socket activation): call it off the UI thread, after each collect. The lookups afterwards only
read what was prepared and never block.
"""

from __future__ import annotations

from app.forwardprogs import might_forward
from app.service import CONTAINER, SOCKET, service_of, socket_activation
from app.textsafe import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from app.containers import ContainerIndex
    from app.forwarders import Forward
    from app.model import ProcessInfo, Snapshot, Sock
    from app.service import Service

# Programs whose forward names a container only the engine can tell (docker-proxy's target address).
_ENGINE_FORWARDERS = ("docker-proxy", "rootlessport", "rootlessport-child", "slirp4netns", "pasta")


class OwnerFacts:
    """Services, forwards and holders of a snapshot's owners. ``containers``: an index to name
    containers with (``None``: do not ask engines; the default makes one when an owner needs it)."""

    def __init__(self, containers: ContainerIndex | None = None, *, ask_engines: bool = True) -> None:
        self._containers = containers
        self._ask = ask_engines
        self._activation: dict[tuple[int, str, str, int], Service | None] = {}
        self._forwards: dict[tuple[int, float, int], Forward | None] = {}
        self._forwarders: dict[tuple[int, float], bool] = {}  # is the process a forwarder at all

    # -- the blocking part ----------------------------------------------------------------------

    def prepare(self, snapshot: Snapshot, socks: Iterable[Sock] | None = None) -> None:
        """Do what the lookups need that may block: ask the container engines (when an owner lives
        in a container or is an engine's forwarder; at most once per the index's TTL) and systemd
        (for listeners pid 1 holds). Never call it on a UI thread."""
        socks = list(snapshot.sockets if socks is None else socks)
        need_engines = False
        for pid, info in snapshot.processes.items():
            svc = service_of(pid, info.create_time)
            if (svc is not None and svc.kind == CONTAINER) or info.name in _ENGINE_FORWARDERS:
                need_engines = True
        if need_engines and self._ask:
            self.containers().refresh()
        self._activation = {
            key: self._activation.get(key) if key in self._activation else _activation(s)
            for s in socks
            if s.pid == 1 and s.listening
            for key in [(s.laddr.port, s.proto.value, s.laddr.ip, s.netns)]
        }

    def containers(self) -> ContainerIndex:
        if self._containers is None:
            from app.containers import ContainerIndex  # lazily: only hosts with containers pay

            self._containers = ContainerIndex()
        return self._containers

    # -- lookups (never block) ------------------------------------------------------------------

    def service(self, snapshot: Snapshot, sock: Sock) -> Service | None:
        """The unit, container or socket unit the owner of ``sock`` belongs to."""
        if sock.pid is None:
            return None
        if sock.pid == 1 and sock.listening:
            hit = self._activation.get((sock.laddr.port, sock.proto.value, sock.laddr.ip, sock.netns))
            if hit is not None:
                return hit
        return self.process_service(snapshot.processes.get(sock.pid))

    def process_service(self, info: ProcessInfo | None) -> Service | None:
        if info is None:
            return None
        svc = service_of(info.pid, info.create_time)
        if svc is not None and svc.kind == CONTAINER and self._containers is not None:
            svc = self._containers.enrich(svc)
        return svc

    def forward(self, snapshot: Snapshot, sock: Sock) -> Forward | None:
        """Where the owner of ``sock`` forwards it to, if it is a known forwarder."""
        info = snapshot.owner(sock)
        if info is None:
            return None
        pkey = (info.pid, info.create_time)
        maybe = self._forwarders.get(pkey)
        if maybe is None:
            if len(self._forwarders) > 65536:
                self._forwarders.clear()
            maybe = self._forwarders[pkey] = might_forward(info.cmdline)
        if not maybe:
            return None
        key = (info.pid, info.create_time, sock.laddr.port)
        if key not in self._forwards:
            if len(self._forwards) > 65536:
                self._forwards.clear()
            from app.forwarders import forward_of  # (a process that may forward: few of them)

            self._forwards[key] = forward_of(info.cmdline, sock.laddr.port, self._containers)
        return self._forwards[key]

    @staticmethod
    def holders(snapshot: Snapshot, sock: Sock) -> list[ProcessInfo]:
        """Every visible process holding ``sock``, the primary owner first."""
        procs = snapshot.processes
        return [procs[p] for p in snapshot.holders_of(sock) if p in procs]


def _activation(sock: Sock) -> Service | None:
    return socket_activation(1, sock.laddr.port, sock.proto.value, sock.laddr.ip)


def owner_dict(info: ProcessInfo) -> dict[str, object]:
    """One holder in JSON: pid, name, user."""
    return {"pid": info.pid, "name": info.name, "user": info.username}


def forward_text(fwd: Forward) -> str:
    """A forward's label as raw text (not escaped): for CSV, whose writer escapes every cell once.
    Everything else shows :meth:`Forward.label`."""
    return fwd._text()


SERVICE_LIMIT = 40


def service_name(svc: Service, limit: int | None = SERVICE_LIMIT) -> str:
    """What people call a service, escaped and cut: the unit or container name, for a
    socket-activated listener its ``.socket`` unit. (``Service.label`` says more: the engine, the
    image.)"""
    if svc.kind == SOCKET:
        return printable(svc.unit, limit) if svc.unit else "socket activation"
    return printable(svc.name, limit)
