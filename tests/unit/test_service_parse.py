"""Parsing /proc/PID/cgroup text and `systemctl list-sockets` output: pure functions, any input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.service import (
    CONTAINER,
    SOCKET,
    UNIT,
    USER_UNIT,
    Service,
    match_socket_unit,
    parse_cgroup,
    parse_list_sockets,
    unescape_unit,
)

CID = "ab" * 32
BIDI = set("\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def assert_escaped(shown: str) -> None:
    """No control character, lone surrogate or bidi override reaches the screen."""
    for c in shown:
        code = ord(c)
        assert code >= 0x20 and not 0x7F <= code < 0xA0 and not 0xD800 <= code <= 0xDFFF, repr(shown)
        assert c not in BIDI, repr(shown)


def test_hybrid_host_prefers_the_v2_path_and_falls_back_to_name_systemd() -> None:
    text = "12:pids:/\n1:name=systemd:/system.slice/cron.service\n0::/system.slice/nginx.service\n"
    svc = parse_cgroup(text)
    assert svc is not None and svc.name == "nginx.service"
    assert parse_cgroup("1:name=systemd:/system.slice/cron.service\n0::/\n").name == "cron.service"  # type: ignore[union-attr]


def test_a_v1_host_without_systemd_finds_docker_in_any_controller() -> None:
    text = f"4:memory:/docker/{CID}\n3:cpu:/docker/{CID}\n"
    svc = parse_cgroup(text)
    assert svc is not None and (svc.kind, svc.engine, svc.id) == (CONTAINER, "docker", CID)


def test_root_and_foreign_cgroups_name_nothing() -> None:
    assert parse_cgroup("0::/\n") is None
    assert parse_cgroup("4:memory:/process_api/b2358ae3\n1:name=systemd:/\n0::/\n") is None
    assert parse_cgroup("0::/some/custom/group\n") is None
    assert parse_cgroup("") is None


def test_user_manager_itself_and_user_units() -> None:
    base = "0::/user.slice/user-1000.slice/user@1000.service"
    mgr = parse_cgroup(base + "/init.scope\n")
    assert mgr == Service(
        UNIT, "user@1000.service", unit="user@1000.service", uid=1000, cgroup=base[3:] + "/init.scope"
    )
    assert mgr.stop_command() is None  # stopping it would end the user's whole manager
    app = parse_cgroup(base + "/app.slice/app-firefox-123.scope\n")
    assert app is not None and (app.kind, app.name, app.uid) == (USER_UNIT, "app-firefox-123.scope", 1000)


def test_rootless_podman_under_a_user_manager() -> None:
    svc = parse_cgroup(
        f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container\n"
    )
    assert svc is not None and (svc.kind, svc.engine, svc.id) == (CONTAINER, "podman", CID)


def test_nested_docker_in_docker_is_the_innermost() -> None:
    inner = "cd" * 32
    svc = parse_cgroup(f"0::/docker/{CID}/docker/{inner}\n")
    assert svc is not None and svc.id == inner


def test_kubernetes_guaranteed_pod_and_crio() -> None:
    svc = parse_cgroup(f"0::/kubepods.slice/kubepods-pod1234abcd_5678.slice/crio-{CID}.scope\n")
    assert svc is not None and (svc.engine, svc.pod, svc.id) == ("kubernetes", "1234abcd-5678", CID)
    assert svc.stop_command() is None  # its controller would recreate it
    bare = parse_cgroup("0::/kubepods/burstable/pod1234abcd-5678\n")
    assert bare is not None and bare.pod == "1234abcd-5678" and bare.id is None


def test_systemd_machines_unescape_their_names() -> None:
    svc = parse_cgroup("0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope\n")
    assert svc is not None and (svc.engine, svc.name) == ("machine", "qemu-1-vm")
    assert svc.stop_command() == "machinectl stop qemu-1-vm"
    assert unescape_unit("a\\x2db\\xzz") == "a-b\\xzz"


def test_container_name_and_image_merge_in() -> None:
    svc = parse_cgroup(f"0::/system.slice/docker-{CID}.scope\n")
    assert svc is not None
    named = svc.with_container("web", "nginx:1.27")
    assert named.label() == "container web (docker, nginx:1.27)"
    assert named.stop_command() == "docker stop web"
    assert named.as_dict() == {
        "kind": "container",
        "name": "web",
        "id": CID,
        "image": "nginx:1.27",
        "unit": f"docker-{CID}.scope",
        "engine": "docker",
    }
    unit = Service(UNIT, "nginx.service")
    assert unit.with_container("x", "y") is unit


def test_stop_commands_quote_what_a_shell_would_split() -> None:
    assert Service(UNIT, "a b.service").stop_command() == "systemctl stop 'a b.service'"
    assert Service(CONTAINER, "web;rm", engine="docker").stop_command() == "docker stop 'web;rm'"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["0", "1", "12", "x", ""]),
            st.sampled_from(["", "name=systemd", "cpu,cpuacct", "memory"]),
            st.lists(
                st.one_of(
                    st.sampled_from(
                        [
                            "system.slice",
                            "user@1000.service",
                            "kubepods",
                            "kubepods.slice",
                            "pod12345678",
                            "docker",
                            "lxc",
                            "lxc.payload.",
                            f"docker-{CID}.scope",
                            f"libpod-{CID}",
                            CID,
                            "machine-\\x2.scope",
                            ".service",
                            ".scope",
                        ]
                    ),
                    st.text(max_size=30),
                ),
                max_size=8,
            ).map(lambda parts: "/" + "/".join(parts)),
        ),
        max_size=6,
    ).map(lambda lines: "\n".join(":".join(t) for t in lines))
)
def test_parse_cgroup_never_raises_and_labels_are_printable(text: str) -> None:
    svc = parse_cgroup(text)
    if svc is not None:
        for shown in (svc.label(), svc.stop_command() or ""):
            assert_escaped(shown)


@given(st.text(max_size=400))
def test_parse_list_sockets_never_raises(text: str) -> None:
    for entry in parse_list_sockets(text):
        entry.address()
    match_socket_unit(parse_list_sockets(text), 22)


LIST = """\
/run/dbus/system_bus_socket Stream dbus.socket dbus.service
[::]:22 Stream ssh.socket ssh.service
127.0.0.1:631 Stream cups.socket cups.service
0.0.0.0:53 Datagram dns.socket dns.service
0.0.0.0:53 Stream dns-tcp.socket dns.service other.service
/run/foo.sock foo.socket -
"""


def test_list_sockets_matching() -> None:
    entries = parse_list_sockets(LIST)
    assert [e.unit for e in entries][:3] == ["dbus.socket", "ssh.socket", "cups.socket"]
    assert match_socket_unit(entries, 22, "tcp", "::").unit == "ssh.socket"  # type: ignore[union-attr]
    assert match_socket_unit(entries, 22, "tcp", "10.0.0.1") is None  # bound elsewhere: another socket
    assert match_socket_unit(entries, 22, "tcp", "0.0.0.0").unit == "ssh.socket"  # type: ignore[union-attr]
    assert match_socket_unit(entries, 631, "tcp", "127.0.0.1").unit == "cups.socket"  # type: ignore[union-attr]
    assert match_socket_unit(entries, 631, "udp") is None
    assert match_socket_unit(entries, 53, "udp", "0.0.0.0").unit == "dns.socket"  # type: ignore[union-attr]
    tcp = match_socket_unit(entries, 53, "tcp", "::")
    assert tcp is not None and tcp.activates == ("dns.service", "other.service")
    assert entries[-1].activates == ()
    without_types = parse_list_sockets("[::]:22 ssh.socket ssh.service\n")
    assert without_types[0].type == "" and match_socket_unit(without_types, 22, "tcp") is not None
    svc = Service(SOCKET, "ssh.socket", unit="ssh.socket", activates=("ssh.service",))
    assert svc.stop_command() == "systemctl stop ssh.socket ssh.service"
