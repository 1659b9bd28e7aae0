"""Forwarders and their targets, read from a process's own command line.

A port held by ``ssh -N -L 127.0.0.1:9099:127.0.0.1:8088 user@host`` is a tunnel to 127.0.0.1:8088
on the far side of user@host; people want that sentence, not the raw argv. The forwarders known
here are ``ssh -L/-R/-D`` (also ``-o LocalForward=...``, combined flags like ``-NfL``, bind addresses
and ``[v6]`` fields, parsed the way OpenSSH's readconf.c does), ``autossh``, ``kubectl
port-forward``, ``docker-proxy``, podman's ``rootlessport``, ``pasta`` and ``slirp4netns``, and
``socat ...-LISTEN:... TARGET``.

:func:`forward_of` is a pure function of the argv (a tuple of str, as psutil gives it) and
optionally the listener's local port, which picks the right ``-L`` when there are several. It never
raises, whatever the argv holds; unknown programs give ``None``. A container's name for
docker-proxy or rootlessport comes from an optional cache-only lookup (see
:class:`ContainerLookup`, implemented by ``app.containers.ContainerIndex``), so nothing here blocks.
Shown text (:meth:`Forward.label`) has been through :func:`app.textsafe.printable`.
"""

from __future__ import annotations

from app.forwardprogs import KUBECTL_PROGS, base
from app.textsafe import printable

# Imported where a process may forward (app.forwardprogs.might_forward): re and dataclasses are
# still not imported unless an argv is parsed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Sequence
    from dataclasses import dataclass
    from typing import Protocol
else:
    from app.lite import dataclass

    Protocol = object

LABEL_LIMIT = 120
MAX_ARGS = 4096  # argv entries looked at (a hostile argv can be huge; forwarders' are short)
MAX_ARG_LEN = 4096


@dataclass(frozen=True, slots=True)
class Forward:
    """A forwarder: ``kind`` (``ssh-local``, ``ssh-remote``, ``ssh-dynamic``, ``ssh``, ``sshd``,
    ``kubectl``, ``docker-proxy``, ``rootlessport``, ``pasta``, ``slirp4netns``, ``socat``), where it
    forwards to (``target``: ``127.0.0.1:8088``, ``svc/web:80``, ``socks``; ``None`` when the argv does
    not say) and through what (``via``: ``user@host``, a namespace, a container). Raw strings as the
    argv spelled them; show them through :meth:`label`."""

    kind: str
    target: str | None
    via: str | None = None
    listen: str | None = None  # the listening side as written (``127.0.0.1:9099``, ``8080``)
    listen_port: int | None = None
    container: str | None = None  # docker-proxy / rootlessport / pasta: the container's name if known

    def label(self, limit: int | None = LABEL_LIMIT) -> str:
        """One escaped line: ``ssh tunnel → 127.0.0.1:8088 via user@host``."""
        return printable(self._text(), limit)

    def _text(self) -> str:
        via = f" via {self.via}" if self.via else ""
        target = self.target or "?"
        if self.kind == "ssh-local":
            return f"ssh tunnel → {target}{via}"
        if self.kind == "ssh-dynamic":
            return f"ssh SOCKS proxy{via}"
        if self.kind == "ssh-remote":
            return f"ssh reverse tunnel {self.listen or '?'} → {target}{via}"
        if self.kind == "ssh":
            return f"ssh tunnel{via}"
        if self.kind == "sshd":
            return f"sshd session forward{via}"
        if self.kind == "kubectl":
            return f"kubectl port-forward → {target}" + (f" ({self.via})" if self.via else "")
        if self.kind in ("docker-proxy", "rootlessport", "pasta", "slirp4netns"):
            name = "podman rootlessport" if self.kind == "rootlessport" else self.kind
            where = f" in {self.via}" if self.via and self.kind in ("pasta", "slirp4netns") else ""
            if self.container:
                return f"{name} → {self.container}" + (f" ({self.target})" if self.target else "")
            if self.target:
                return f"{name} → {self.target}{where}"
            if where:
                return f"{name} ({self.via})"
            return f"{name} (container port forwarder)"
        if self.kind == "socat":
            return f"socat → {target}{via}"
        return f"{self.kind} → {target}{via}"

    def as_dict(self) -> dict[str, object]:
        """The JSON shape: kind, target, via (raw strings; json.dumps escapes them)."""
        return {"kind": self.kind, "target": self.target, "via": self.via}


class ContainerLookup(Protocol):
    """What forward_of asks about containers; cache-only (never blocks). app.containers implements it."""

    def name_by_address(self, ip: str, port: int) -> str | None: ...

    def name_by_published_port(self, port: int, proto: str = "tcp") -> str | None: ...


def forward_of(
    cmdline: Sequence[str] | None,
    local_port: int | None = None,
    containers: ContainerLookup | None = None,
) -> Forward | None:
    """The forward a process with this argv makes; ``local_port`` (a socket's local port) picks the
    matching one among several. ``None`` when the program is not a known forwarder or its argv has
    no forward in it. Never raises."""
    try:
        argv = _clean(cmdline)
        if not argv:
            return None
        return _dispatch(argv, local_port, containers)
    except Exception:  # a parser bug must never cost the caller its listing
        return None


def _clean(cmdline: Sequence[str] | None) -> list[str]:
    if not cmdline or isinstance(cmdline, str | bytes):
        return []
    out: list[str] = []
    for i, arg in enumerate(cmdline):
        if i >= MAX_ARGS:
            break
        if not isinstance(arg, str):
            return []
        out.append(arg[:MAX_ARG_LEN])
    return out


def _dispatch(argv: list[str], local_port: int | None, containers: ContainerLookup | None) -> Forward | None:
    if len(argv) == 1 and argv[0].startswith(("sshd: ", "sshd-session: ")):
        who = argv[0].split(": ", 1)[1].strip()
        return Forward("sshd", None, via=who or None)
    prog = base(argv[0])
    if prog == "ssh":
        return _ssh(argv[1:], local_port)
    if prog == "autossh":
        return _ssh(_autossh_args(argv[1:]), local_port)
    if prog in KUBECTL_PROGS and "port-forward" in argv:
        return _kubectl(argv[1:], local_port)
    if prog == "docker-proxy":
        return _docker_proxy(argv[1:], containers)
    if prog in ("rootlessport", "rootlessport-child"):
        name = containers.name_by_published_port(local_port) if containers and local_port else None
        return Forward("rootlessport", None, via="podman", listen_port=local_port, container=name)
    if prog == "pasta" or prog == "pasta.avx2":
        return _pasta(argv[1:], local_port, containers)
    if prog == "slirp4netns":
        return _slirp4netns(argv[1:], local_port, containers)
    if prog == "socat":
        return _socat(argv[1:])
    return None


# --- ssh ------------------------------------------------------------------------------------------

# OpenSSH 9's getopt string: "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"
_SSH_WITH_ARG = frozenset("bceilmopBDEFIJLOPQRSwW")


@dataclass(frozen=True, slots=True)
class _Spec:
    listen_host: str | None
    listen_port: int | None
    listen_path: str | None
    connect_host: str | None
    connect_port: int | None
    connect_path: str | None


def _fwd_fields(spec: str) -> list[tuple[str, bool]] | None:
    """Split a forward spec into (field, is_path) like OpenSSH's parse_fwd_field: ``:`` separates,
    ``[...]`` quotes a field (an IPv6 address), ``\\`` escapes, a ``/`` makes a field a path."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(spec)
    while i < n and len(out) < 4:
        if spec[i] == "[":
            end = spec.find("]", i + 1)
            if end < 0 or (end + 1 < n and spec[end + 1] != ":"):
                return None
            field = spec[i + 1 : end]
            out.append((field, "/" in field))
            i = end + 2
            continue
        buf: list[str] = []
        ispath = False
        while i < n:
            ch = spec[i]
            if ch == "\\":
                if i + 1 >= n:
                    return None
                buf.append(spec[i + 1])
                i += 2
                continue
            if ch == "/":
                ispath = True
            elif ch == ":":
                i += 1
                break
            buf.append(ch)
            i += 1
        out.append(("".join(buf), ispath))
    if i < n:
        return None  # trailing garbage (a fifth field)
    return out


def _port(text: str) -> int | None:
    if not text.isdigit() or not text.isascii() or len(text) > 5:
        return None
    value = int(text)
    return value if value <= 65535 else None


def parse_forward(spec: str, dynamic: bool = False) -> _Spec | None:
    """An ssh ``-L``/``-R`` (or ``-D`` with ``dynamic``) argument, or ``None`` when ssh would refuse
    it. The field combinations are OpenSSH's parse_forward()."""
    spec = spec.lstrip()
    fields = _fwd_fields(spec)
    if not fields:
        return None
    lh = lport = lpath = ch = cport = cpath = None
    a = [f for f, _ in fields]
    p = [path for _, path in fields]
    if len(a) == 1:
        if p[0]:
            lpath = a[0]
        else:
            lport = _port(a[0])
        ch = "socks"
    elif len(a) == 2:
        if p[0] and p[1]:
            lpath, cpath = a[0], a[1]
        elif p[1]:
            lport, cpath = _port(a[0]), a[1]
        else:
            lh, lport, ch = a[0], _port(a[1]), "socks"
    elif len(a) == 3:
        if p[0]:
            lpath, ch, cport = a[0], a[1], _port(a[2])
        elif p[2]:
            lh, lport, cpath = a[0], _port(a[1]), a[2]
        else:
            lport, ch, cport = _port(a[0]), a[1], _port(a[2])
    else:
        lh, lport, ch, cport = a[0], _port(a[1]), a[2], _port(a[3])
    if dynamic:
        if len(a) > 2 or (lport is None and lpath is None):
            return None
        ch, cport, cpath = "socks", None, None
    else:
        if len(a) < 3 and cpath is None and lpath is None:
            return None
        if cpath is None and cport is None:
            return None
        if lport is None and lpath is None:
            return None
    return _Spec(lh or None, lport, lpath, ch, cport, cpath)


def _hostport(host: str | None, port: int | None) -> str:
    host = host or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def _listen_text(spec: _Spec) -> str:
    if spec.listen_path is not None:
        return spec.listen_path
    return _hostport(spec.listen_host, spec.listen_port) if spec.listen_host else str(spec.listen_port)


def _target_text(spec: _Spec) -> str:
    if spec.connect_path is not None:
        return spec.connect_path
    return _hostport(spec.connect_host, spec.connect_port)


def _autossh_args(args: list[str]) -> list[str]:
    """autossh's own options (``-M port``, ``-f``, ``-V``) removed: the rest is ssh's."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-M":
            i += 2
            continue
        if a.startswith("-M") or a in ("-f", "-V"):
            i += 1
            continue
        out.append(a)
        i += 1
    return out


def _ssh_option(text: str) -> tuple[str, list[str]]:
    """``-o Keyword=value`` / ``-o "Keyword value"`` (readconf's strdelim: the keyword ends at
    whitespace or one ``=``): (lowercased keyword, its arguments)."""
    m = _option().match(text)
    if m is None:
        return "", []
    return m.group(1).lower(), m.group(2).split()


_OPTION: list[re.Pattern[str]] = []


def _option() -> re.Pattern[str]:
    if not _OPTION:
        import re

        _OPTION.append(re.compile(r"\s*([^\s=]+)\s*=?\s*(.*)", re.S))
    return _OPTION[0]


def _ssh(args: list[str], local_port: int | None) -> Forward | None:
    local: list[_Spec] = []
    remote: list[_Spec] = []
    dynamic: list[_Spec] = []
    user: str | None = None
    port: str | None = None
    dest: str | None = None

    def take(opt: str, val: str) -> None:
        nonlocal user, port
        if opt == "L":
            if (s := parse_forward(val)) is not None:
                local.append(s)
        elif opt == "R":
            s = parse_forward(val)
            if s is None and (rs := parse_forward(val, dynamic=True)) is not None:
                s = rs  # -R [bind:]port alone: remote dynamic forwarding
            if s is not None:
                remote.append(s)
        elif opt == "D":
            if (s := parse_forward(val, dynamic=True)) is not None:
                dynamic.append(s)
        elif opt == "l":
            user = val
        elif opt == "p":
            port = val
        elif opt == "o":
            key, values = _ssh_option(val)
            if key in ("localforward", "remoteforward") and values:
                spec = ":".join(values[:2])
                take("L" if key == "localforward" else "R", spec)
            elif key == "dynamicforward" and values:
                take("D", values[0])
            elif key == "user" and values:
                user = values[0]
            elif key == "port" and values:
                port = values[0]

    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a == "--":
            if dest is None and i + 1 < n:
                dest = args[i + 1]
            break
        if a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                c = a[j]
                if c in _SSH_WITH_ARG:
                    if j + 1 < len(a):
                        take(c, a[j + 1 :])
                    elif i + 1 < n:
                        i += 1
                        take(c, args[i])
                    break
                j += 1
            i += 1
            continue
        if dest is not None:
            break  # the remote command
        dest = a
        i += 1  # ssh parses options again after the destination
    if not (local or remote or dynamic):
        return None
    via = _ssh_via(dest, user, port)
    if local_port is not None:
        for spec in local:
            if spec.listen_port == local_port:
                return Forward("ssh-local", _target_text(spec), via, _listen_text(spec), spec.listen_port)
        for spec in dynamic:
            if spec.listen_port == local_port:
                return Forward("ssh-dynamic", "socks", via, _listen_text(spec), spec.listen_port)
        return Forward("ssh", None, via)
    if local:
        s = local[0]
        return Forward("ssh-local", _target_text(s), via, _listen_text(s), s.listen_port)
    if dynamic:
        s = dynamic[0]
        return Forward("ssh-dynamic", "socks", via, _listen_text(s), s.listen_port)
    s = remote[0]
    target = "socks" if s.connect_host == "socks" and s.connect_port is None else _target_text(s)
    return Forward("ssh-remote", target, via, f"remote {_listen_text(s)}", s.listen_port)


def _ssh_via(dest: str | None, user: str | None, port: str | None) -> str | None:
    if dest is None:
        return None
    host = dest
    if host.startswith("ssh://"):
        host = host[6:].rstrip("/")
        if "@" in host:
            user_part, _, host = host.rpartition("@")
            user = user or user_part
        if host.startswith("["):
            end = host.find("]")
            if end > 0:
                if host[end + 1 : end + 2] == ":":
                    port = port or host[end + 2 :]
                host = host[1:end]
        elif host.count(":") == 1:
            host, _, uri_port = host.partition(":")
            port = port or uri_port
    elif "@" in host:
        user_part, _, host = host.rpartition("@")
        user = user_part or user  # the user in user@host wins over -l, as in ssh
    text = f"{user}@{host}" if user else host
    if port and port != "22":
        text = f"{text} port {port}"
    return text


# --- kubectl --------------------------------------------------------------------------------------

_KUBECTL_WITH_VALUE = frozenset(
    {
        "-n",
        "--namespace",
        "--context",
        "--cluster",
        "--user",
        "--kubeconfig",
        "-s",
        "--server",
        "--token",
        "--as",
        "--as-group",
        "--as-uid",
        "--certificate-authority",
        "--client-certificate",
        "--client-key",
        "--request-timeout",
        "--tls-server-name",
        "--cache-dir",
        "-v",
        "--v",
        "--address",
        "--pod-running-timeout",
        "--log-file",
        "--vmodule",
        "--profile",
        "--profile-output",
    }
)


def _kubectl(args: list[str], local_port: int | None) -> Forward | None:
    values: dict[str, str] = {}
    positional: list[str] = []
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a == "--":
            positional.extend(args[i + 1 :])
            break
        if a.startswith("-") and len(a) > 1:
            key, eq, val = a.partition("=")
            if not eq and key in _KUBECTL_WITH_VALUE and i + 1 < n:
                val = args[i + 1]
                i += 1
            elif not eq and key.startswith("-n") and not key.startswith("--") and len(key) > 2:
                key, val = "-n", key[2:]
            values[key] = val
            i += 1
            continue
        positional.append(a)
        i += 1
    if "port-forward" not in positional:
        return None
    rest = positional[positional.index("port-forward") + 1 :]
    if not rest:
        return None
    resource, ports = rest[0], rest[1:]
    pairs: list[tuple[int | None, str]] = []
    for spec in ports:
        lpart, sep, rpart = spec.partition(":")
        if sep:
            pairs.append((_port(lpart) if lpart else None, rpart))
        else:
            pairs.append((_port(spec), spec))
    if not pairs:
        return None
    chosen = pairs[0]
    if local_port is not None:
        exact = [p for p in pairs if p[0] == local_port]
        random_local = [p for p in pairs if p[0] is None]
        if exact:
            chosen = exact[0]
        elif len(random_local) == 1:
            chosen = random_local[0]
    ns = values.get("-n") or values.get("--namespace")
    context = values.get("--context")
    via_parts = [f"namespace {ns}" if ns else "", f"context {context}" if context else ""]
    via = ", ".join(p for p in via_parts if p) or None
    lport = chosen[0] if chosen[0] is not None else local_port
    address = values.get("--address")
    listen = f"{address}:{lport}" if address and lport is not None else (str(lport) if lport else None)
    return Forward("kubectl", f"{resource}:{chosen[1]}", via, listen, lport)


# --- container engines ----------------------------------------------------------------------------


def _go_flags(args: list[str]) -> dict[str, str]:
    """Go's flag package: ``-name value``, ``--name value``, ``-name=value`` (booleans take no value)."""
    out: dict[str, str] = {}
    booleans = {"use-listen-fd"}
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a.startswith("-") and len(a) > 1:
            key, eq, val = a.lstrip("-").partition("=")
            if not eq and key not in booleans and i + 1 < n:
                val = args[i + 1]
                i += 1
            out[key] = val
        i += 1
    return out


def _docker_proxy(args: list[str], containers: ContainerLookup | None) -> Forward | None:
    flags = _go_flags(args)
    cip, cport = flags.get("container-ip"), _port(flags.get("container-port", ""))
    hip, hport = flags.get("host-ip"), _port(flags.get("host-port", ""))
    proto = flags.get("proto", "tcp")
    if cip is None and cport is None:
        return None
    target = _hostport(cip, cport) if cip else (str(cport) if cport is not None else None)
    name = None
    if containers is not None:
        if cip and cport is not None:
            name = containers.name_by_address(cip, cport)
        if name is None and hport is not None:
            name = containers.name_by_published_port(hport, proto)
    listen = _hostport(hip, hport) if hip else (str(hport) if hport is not None else None)
    return Forward("docker-proxy", target, "docker", listen, hport, container=name)


_PASTA_WITH_VALUE = frozenset(
    {
        "-l",
        "--log-file",
        "--log-size",
        "--runas",
        "-P",
        "--pid",
        "-p",
        "--pcap",
        "-m",
        "--mtu",
        "-a",
        "--address",
        "-n",
        "--netmask",
        "-M",
        "--mac-addr",
        "-g",
        "--gateway",
        "-i",
        "--interface",
        "-o",
        "--outbound",
        "--outbound-if4",
        "--outbound-if6",
        "-D",
        "--dns",
        "--dns-forward",
        "-S",
        "--search",
        "-t",
        "--tcp-ports",
        "-u",
        "--udp-ports",
        "-T",
        "-U",
        "--userns",
        "--netns",
        "--ns-ifname",
        "-I",
        "-F",
        "--fd",
        "--map-host-loopback",
        "--map-guest-addr",
        "--dns-host",
        "-c",
        "-s",
    }
)


def _pasta_target(spec: str, local_port: int) -> int | None:
    """The namespace port that a pasta ``-t``/``-u`` spec maps ``local_port`` to, or ``None``.

    Specs: ``[ADDR[%IF]/]FIRST[-LAST][:TFIRST[-TLAST]]``, comma-separated; ``~`` excludes; ``all``
    forwards every port to itself."""
    if spec == "all":
        return local_port
    for part in spec.split(","):
        if part.startswith("~") or part in ("none", "auto", ""):
            continue
        part = part.rsplit("/", 1)[-1]
        src, _, dst = part.partition(":")
        first_s, _, last_s = src.partition("-")
        first, last = _port(first_s), _port(last_s) if last_s else _port(first_s)
        if first is None or last is None or not first <= local_port <= last:
            continue
        if not dst:
            return local_port
        tfirst = _port(dst.partition("-")[0])
        return tfirst + (local_port - first) if tfirst is not None else None
    return None


def _pasta(args: list[str], local_port: int | None, containers: ContainerLookup | None) -> Forward | None:
    specs: list[str] = []
    netns: str | None = None
    positional: list[str] = []
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        key, eq, val = a.partition("=")
        if a.startswith("-") and len(a) > 1:
            if not eq and key in _PASTA_WITH_VALUE and i + 1 < n:
                val = args[i + 1]
                i += 1
            if key in ("-t", "--tcp-ports", "-u", "--udp-ports"):
                specs.append(val)
            elif key == "--netns":
                netns = val
            i += 1
            continue
        positional.append(a)
        i += 1
    via = f"netns {netns}" if netns else (f"netns of pid {positional[-1]}" if positional else None)
    target_port = None
    if local_port is not None:
        for spec in specs:
            target_port = _pasta_target(spec, local_port)
            if target_port is not None:
                break
    name = containers.name_by_published_port(local_port) if containers and local_port else None
    target = f"port {target_port}" if target_port is not None else None
    return Forward("pasta", target, via, listen_port=local_port, container=name)


def _slirp4netns(args: list[str], local_port: int | None, containers: ContainerLookup | None) -> Forward:
    with_value = {"-m", "--mtu", "-e", "--exit-fd", "-r", "--ready-fd", "-a", "--api-socket"}
    with_value |= {"--cidr", "--netns-type", "--userns-path", "--outbound-addr", "--outbound-addr6"}
    with_value |= {"--target-type"}
    positional: list[str] = []
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a.startswith("-") and len(a) > 1:
            if "=" not in a and a in with_value and i + 1 < n:
                i += 1
            i += 1
            continue
        positional.append(a)
        i += 1
    via = None
    if positional:
        ns = positional[0]
        via = f"netns of pid {ns}" if ns.isdigit() else f"netns {ns}"
    name = containers.name_by_published_port(local_port) if containers and local_port else None
    return Forward("slirp4netns", None, via, listen_port=local_port, container=name)


# --- socat ----------------------------------------------------------------------------------------

_SOCAT_WITH_VALUE = frozenset({"-lf", "-lp", "-b", "-t", "-T", "-L", "-W", "-r", "-R"})
_SOCAT_CONNECT = {
    "TCP",
    "TCP4",
    "TCP6",
    "TCP-CONNECT",
    "TCP4-CONNECT",
    "TCP6-CONNECT",
    "UDP",
    "UDP4",
    "UDP6",
    "UDP-CONNECT",
    "UDP4-CONNECT",
    "UDP6-CONNECT",
    "UDP-SENDTO",
    "UDP4-SENDTO",
    "UDP6-SENDTO",
    "SCTP",
    "SCTP-CONNECT",
    "OPENSSL",
    "SSL",
    "OPENSSL-CONNECT",
    "DCCP-CONNECT",
}
_SOCAT_PATH = {"UNIX", "UNIX-CONNECT", "UNIX-CLIENT", "UNIX-SENDTO", "ABSTRACT-CONNECT", "ABSTRACT-CLIENT"}
_SOCAT_PROXY = {"PROXY", "PROXY-CONNECT", "SOCKS4", "SOCKS4A", "SOCKS5", "SOCKS5-CONNECT"}
_SOCAT_COMMAND = {"EXEC", "SYSTEM", "SHELL"}


def _socat_split(address: str) -> tuple[str, list[str], dict[str, str]]:
    """``TYPE:p1:p2,opt=v,flag`` -> (TYPE upper-cased, [p1, p2], {opt: v}). ``[v6]`` stays whole."""
    main, _, opts = address.partition(",")
    params: list[str] = []
    buf: list[str] = []
    depth = 0
    for ch in main:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == ":" and depth == 0:
            params.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    params.append("".join(buf))
    options: dict[str, str] = {}
    for opt in opts.split(","):
        key, _, val = opt.partition("=")
        if key:
            options[key.lower()] = val
    return params[0].upper(), params[1:], options


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _socat(args: list[str]) -> Forward | None:
    addresses: list[str] = []
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a.startswith("-") and len(a) > 1 and not addresses:
            if a in _SOCAT_WITH_VALUE and i + 1 < n:
                i += 1
            i += 1
            continue
        addresses.append(a)
        i += 1
    if len(addresses) != 2:
        return None
    sides = [_socat_split(a) for a in addresses]
    listen_i = next((k for k, s in enumerate(sides) if "LISTEN" in s[0] or s[0].endswith("-L")), None)
    if listen_i is None:
        listen_i = next((k for k, s in enumerate(sides) if "RECV" in s[0]), None)
    if listen_i is None:
        return None
    _ltype, lparams, lopts = sides[listen_i]
    ttype, tparams, _topts = sides[1 - listen_i]
    lport = _port(lparams[0]) if lparams else None
    bind = lopts.get("bind")
    listen = _hostport(_strip_brackets(bind), lport) if bind else (str(lport) if lport is not None else None)
    via: str | None = None
    if ttype in _SOCAT_CONNECT and len(tparams) >= 2:
        target = _hostport(_strip_brackets(tparams[0]), _port(tparams[1]))
    elif ttype in _SOCAT_PROXY and len(tparams) >= 3:
        target = _hostport(_strip_brackets(tparams[1]), _port(tparams[2]))
        via = f"{ttype.lower()} {tparams[0]}"
    elif ttype in _SOCAT_PATH and tparams:
        target = tparams[0]
    elif ttype in _SOCAT_COMMAND and tparams:
        target = f"command {':'.join(tparams)}"
    elif ttype in ("-", "STDIO", "STDOUT", "STDIN"):
        target = "stdio"
    else:
        target = addresses[1 - listen_i]
    return Forward("socat", target, via, listen, lport)
