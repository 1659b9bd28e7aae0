"""forward_of on argv as the forwarders write them, and on anything at all (it never raises)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.forwarders import Forward, _clean, _dispatch, forward_of, parse_forward
from tests.unit.test_service_parse import assert_escaped


def label(argv: tuple[str, ...], port: int | None = None) -> str | None:
    fwd = forward_of(argv, port)
    return fwd.label() if fwd else None


@pytest.mark.parametrize(
    ("argv", "port", "expected"),
    [
        (
            ("ssh", "-N", "-L", "127.0.0.1:9099:127.0.0.1:8088", "user@host"),
            9099,
            "ssh tunnel → 127.0.0.1:8088 via user@host",
        ),
        (
            ("/usr/bin/ssh", "-NfL", "8080:db:5432", "-l", "bob", "bastion"),
            8080,
            "ssh tunnel → db:5432 via bob@bastion",
        ),
        (("ssh", "-NfL8080:db:5432", "bastion"), 8080, "ssh tunnel → db:5432 via bastion"),
        (("ssh", "-L", "[::1]:8080:[fe80::1]:80", "h"), 8080, "ssh tunnel → [fe80::1]:80 via h"),
        (("ssh", "-L", "8080:/run/app.sock", "h"), 8080, "ssh tunnel → /run/app.sock via h"),
        (("ssh", "-o", "LocalForward=8081 localhost:81", "h"), 8081, "ssh tunnel → localhost:81 via h"),
        (("ssh", "-oLocalForward 8082 localhost:82", "h"), 8082, "ssh tunnel → localhost:82 via h"),
        (("ssh", "-o", "localforward=8083:localhost:83", "h"), 8083, "ssh tunnel → localhost:83 via h"),
        (("ssh", "-o", "DynamicForward=1080", "h"), 1080, "ssh SOCKS proxy via h"),
        (("ssh", "-D", "127.0.0.1:1080", "-p", "2222", "h"), 1080, "ssh SOCKS proxy via h port 2222"),
        (
            ("ssh", "h", "-R", "9000:localhost:3000"),
            None,
            "ssh reverse tunnel remote 9000 → localhost:3000 via h",
        ),
        (("ssh", "-R", "9000", "h"), None, "ssh reverse tunnel remote 9000 → socks via h"),
        (
            ("ssh", "-o", "RemoteForward 9001 localhost:3001", "h"),
            None,
            "ssh reverse tunnel remote 9001 → localhost:3001 via h",
        ),
        (("ssh", "-L", "8080:a:80", "ssh://u@[::1]:2200"), 8080, "ssh tunnel → a:80 via u@::1 port 2200"),
        (
            ("ssh", "-L", "8080:a:80", "-o", "User=carol", "-o", "Port=22", "h"),
            8080,
            "ssh tunnel → a:80 via carol@h",
        ),
        (("ssh", "-L", "8080:a:80", "h"), 5555, "ssh tunnel via h"),  # another of its sockets
        (("ssh", "h", "ls", "-L", "8080:a:80"), None, None),  # after the command: not ssh's
        (("ssh", "h"), None, None),
        (("ssh", "-L", "notaport:a:80", "h"), None, None),
        (("autossh", "-M", "0", "-N", "-L", "8080:a:80", "h"), 8080, "ssh tunnel → a:80 via h"),
        (("sshd: root@notty",), 8080, "sshd session forward via root@notty"),
        (
            (
                "kubectl",
                "-n",
                "prod",
                "port-forward",
                "svc/web",
                "8080:80",
                "9090:metrics",
                "--address",
                "127.0.0.1",
            ),
            9090,
            "kubectl port-forward → svc/web:metrics (namespace prod)",
        ),
        (
            ("kubectl", "port-forward", "--context=kind", "pod/x", "8080"),
            8080,
            "kubectl port-forward → pod/x:8080 (context kind)",
        ),
        (("kubectl", "port-forward", "deploy/api", ":80"), 41234, "kubectl port-forward → deploy/api:80"),
        (("kubectl", "get", "pods"), None, None),
        (
            (
                "/usr/bin/docker-proxy",
                "-proto",
                "tcp",
                "-host-ip",
                "0.0.0.0",
                "-host-port",
                "8080",
                "-container-ip",
                "172.17.0.2",
                "-container-port",
                "80",
            ),
            8080,
            "docker-proxy → 172.17.0.2:80",
        ),
        (
            ("docker-proxy", "--container-ip=fd00::2", "--container-port=80", "-use-listen-fd"),
            None,
            "docker-proxy → [fd00::2]:80",
        ),
        (("rootlessport",), 8080, "podman rootlessport (container port forwarder)"),
        (
            ("pasta", "--config-net", "-t", "127.0.0.1/8080-8081:80-81", "--netns", "/run/user/1000/netns/x"),
            8081,
            "pasta → port 81 in netns /run/user/1000/netns/x",
        ),
        (("pasta", "-t", "all", "1234"), 8080, "pasta → port 8080 in netns of pid 1234"),
        (
            ("slirp4netns", "--mtu=65520", "-c", "-e", "3", "1234", "tap0"),
            8080,
            "slirp4netns (netns of pid 1234)",
        ),
        (
            ("socat", "-d", "-d", "TCP-LISTEN:8080,fork,reuseaddr,bind=127.0.0.1", "TCP:127.0.0.1:80"),
            8080,
            "socat → 127.0.0.1:80",
        ),
        (("socat", "TCP6-LISTEN:8080,fork", "TCP6:[::1]:80"), 8080, "socat → [::1]:80"),
        (("socat", "tcp-l:8080,fork", "UNIX-CONNECT:/run/x.sock"), 8080, "socat → /run/x.sock"),
        (
            ("socat", "TCP-LISTEN:8080", "SOCKS4A:proxy:db:5432,socksport=1080"),
            8080,
            "socat → db:5432 via socks4a proxy",
        ),
        (("socat", "-", "TCP:a:80"), None, None),  # a client, not a forwarder
        (("nginx", "-g", "daemon off;"), None, None),
    ],
)
def test_labels(argv: tuple[str, ...], port: int | None, expected: str | None) -> None:
    assert label(argv, port) == expected


class Names:
    def name_by_address(self, ip: str, port: int) -> str | None:
        return "web" if ip == "172.17.0.2" else None

    def name_by_published_port(self, port: int, proto: str = "tcp") -> str | None:
        return "api" if port == 9000 else None


def test_container_names_come_from_the_lookup() -> None:
    proxy = ("docker-proxy", "-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80")
    fwd = forward_of(proxy, 8080, Names())
    assert fwd is not None and fwd.container == "web" and fwd.label() == "docker-proxy → web (172.17.0.2:80)"
    by_port = forward_of(
        ("docker-proxy", "-host-port", "9000", "-container-ip", "10.0.0.9", "-container-port", "1"),
        9000,
        Names(),
    )
    assert by_port is not None and by_port.container == "api"
    assert forward_of(("rootlessport",), 9000, Names()).label() == "podman rootlessport → api"  # type: ignore[union-attr]


def test_parse_forward_follows_openssh() -> None:
    s = parse_forward("127.0.0.1:9099:127.0.0.1:8088")
    assert s is not None and (s.listen_host, s.listen_port, s.connect_host, s.connect_port) == (
        "127.0.0.1",
        9099,
        "127.0.0.1",
        8088,
    )
    assert parse_forward("[::1]:80:x") is None  # bracketed listen host needs a port and a target
    assert parse_forward("a\\:b:80:c:81") is not None  # an escaped colon stays in the field
    assert parse_forward("1:2:3:4:5") is None  # a fifth field is garbage
    assert parse_forward("8080") is None and parse_forward("8080", dynamic=True) is not None
    assert parse_forward("/tmp/l.sock:/tmp/r.sock") is not None
    assert parse_forward("99999:a:80") is None


ALPHABET = [
    "-L",
    "-R",
    "-D",
    "-o",
    "-p",
    "-l",
    "-N",
    "-NfL",
    "--",
    ":",
    "[",
    "]",
    "::1",
    "8080",
    "0",
    "99999",
]
ALPHABET += ["LocalForward=", "RemoteForward ", "DynamicForward", "port-forward", "-n", "--address", "svc/x"]
ALPHABET += [
    "-host-port",
    "-container-ip",
    "-container-port",
    "-t",
    "--netns",
    "TCP-LISTEN:",
    "TCP:",
    ",fork",
]
ALPHABET += ["SOCKS4:", "EXEC:", "\\", "/", "\x1b[31m", "\u202e", "\udcff", "=", " ", "x" * 5000]
PROGRAMS = ["ssh", "autossh", "kubectl", "docker-proxy", "rootlessport", "pasta", "slirp4netns", "socat"]
PROGRAMS += ["sshd: x", "/usr/bin/ssh", "k3s", ""]

argv_strategy = st.tuples(
    st.sampled_from(PROGRAMS),
    st.lists(
        st.one_of(
            st.sampled_from(ALPHABET),
            st.lists(st.sampled_from(ALPHABET), max_size=6).map("".join),
            st.text(max_size=20),
        ),
        max_size=14,
    ),
).map(lambda t: (t[0], *t[1]))


@settings(max_examples=1500, deadline=None)
@given(argv_strategy, st.one_of(st.none(), st.integers(0, 65535)))
def test_no_argv_ever_raises_and_every_label_is_escaped(argv: tuple[str, ...], port: int | None) -> None:
    # The parsers themselves, without forward_of's last-resort guard: they must not raise at all.
    fwd = _dispatch(_clean(argv), port, None) if _clean(argv) else None
    assert fwd == forward_of(argv, port)
    assert fwd is None or isinstance(fwd, Forward)
    if fwd is not None:
        shown = fwd.label()
        assert_escaped(shown)
        assert len(shown) <= 120
        fwd.as_dict()


@given(st.one_of(st.none(), st.text(), st.lists(st.one_of(st.text(), st.integers(), st.none()))))
def test_odd_inputs(value: object) -> None:
    assert forward_of(value) is None or isinstance(forward_of(value), Forward)  # type: ignore[arg-type]


def test_huge_argv_is_cheap_and_safe() -> None:
    argv = ("ssh", *(["-L", "1:a:2"] * 100_000), "h")
    fwd = forward_of(argv, 1)
    assert fwd is not None and fwd.target == "a:2"


@given(
    st.lists(st.text(max_size=20), max_size=6)
    | st.lists(
        st.sampled_from(["ssh", "-L", "8080:x:80", "kubectl", "port-forward", "socat", "-N"]), max_size=6
    ),
    st.none() | st.integers(1, 65535),
)
def test_might_forward_is_false_only_where_forward_of_finds_nothing(
    argv: list[str], port: int | None
) -> None:
    from app.forwardprogs import might_forward

    if not might_forward(argv):
        assert forward_of(argv, port) is None
