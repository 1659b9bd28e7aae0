"""The connect-outcome table (app/outcome.py, README "Connect outcomes"), case by case, for both
`portscope test` and `portscope scan`, against the real kernel inside a private network namespace:
a listener, a refused port, nft drop rules, unreachable / prohibit / blackhole routes, UDP echo,
silent and closed ports, and a TCP connection to itself."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from tests.helpers import needs_netns, run_in_netns

# case -> (target host, port key, proto, expected state)
CASES: dict[str, tuple[str, str, str, str]] = {
    "tcp listening": ("127.0.0.1", "open", "tcp", "open"),
    "tcp refused": ("127.0.0.1", "closed", "tcp", "closed"),
    "tcp dropped by nft": ("127.0.0.1", "dropped", "tcp", "filtered"),
    "tcp unreachable route": ("10.1.0.1", "any", "tcp", "unreachable"),
    "tcp prohibit route": ("10.2.0.1", "any", "tcp", "filtered"),
    "tcp blackhole route": ("10.3.0.1", "any", "tcp", "error"),
    "udp echo": ("127.0.0.1", "uecho", "udp", "open"),
    "udp silent, bound here": ("127.0.0.1", "usilent", "udp", "open"),
    "udp closed": ("127.0.0.1", "uclosed", "udp", "closed"),
    "udp dropped by nft": ("127.0.0.1", "udropped", "udp", "open|filtered"),
    "udp unreachable route": ("10.1.0.1", "any", "udp", "unreachable"),
    "udp prohibit route": ("10.2.0.1", "any", "udp", "filtered"),
    "udp blackhole route": ("10.3.0.1", "any", "udp", "error"),
}

SCRIPT = r"""
from concurrent.futures import ThreadPoolExecutor
sh("ip route add unreachable 10.1.0.0/16")
sh("ip route add prohibit 10.2.0.0/16")
sh("ip route add blackhole 10.3.0.0/16")

def bound(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    return s

listener = bound(socket.SOCK_STREAM); listener.listen(64)
closed = bound(socket.SOCK_STREAM); closed_port = closed.getsockname()[1]; closed.close()
dropped = bound(socket.SOCK_STREAM); dropped.listen(8)  # a listener the firewall hides
uecho = bound(socket.SOCK_DGRAM)
usilent = bound(socket.SOCK_DGRAM)
uclosed = bound(socket.SOCK_DGRAM); uclosed_port = uclosed.getsockname()[1]; uclosed.close()
udropped = bound(socket.SOCK_DGRAM); udropped_port = udropped.getsockname()[1]; udropped.close()
ports = {"open": listener.getsockname()[1], "closed": closed_port, "dropped": dropped.getsockname()[1],
         "uecho": uecho.getsockname()[1], "usilent": usilent.getsockname()[1], "uclosed": uclosed_port,
         "udropped": udropped_port, "any": 9}
sh("nft add table inet t")
sh("nft add chain inet t in '{ type filter hook input priority 0; }'")
sh(f"nft add rule inet t in tcp dport {ports['dropped']} drop")
sh(f"nft add rule inet t in udp dport {ports['udropped']} drop")

def echo():
    while True:
        data, peer = uecho.recvfrom(2048)
        uecho.sendto(b"echo:" + data, peer)

threading.Thread(target=echo, daemon=True).start()

def accept():
    while True:
        listener.accept()[0].close()

threading.Thread(target=accept, daemon=True).start()

def one(item):
    name, (host, key, proto, _want) = item
    port = ports[key]
    udp = ["--udp"] if proto == "udp" else []
    target = f"{host}:{port}"
    t = cli_json("test", target, *udp, "--count", "1", "--timeout", "0.4")
    s = cli_json("scan", host, str(port), *udp, "--timeout", "0.4")
    return name, {
        "test": t["json"]["state"] if t["json"] else t["err"],
        "test_rc": t["rc"],
        "scan": s["json"]["results"][0]["state"] if s["json"] else s["err"],
        "scan_rc": s["rc"],
    }

with ThreadPoolExecutor(4) as pool:
    out = dict(pool.map(one, CASES_JSON.items()))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, Any]]:
    import json

    script = f"CASES_JSON = json.loads({json.dumps(json.dumps(CASES))})\n" + SCRIPT
    result = run_in_netns(script)
    assert isinstance(result, dict)
    return result


@needs_netns
@pytest.mark.parametrize("case", list(CASES))
def test_both_commands_give_the_tables_state(case: str, table: dict[str, dict[str, Any]]) -> None:
    want = CASES[case][3]
    got = table[case]
    assert got["test"] == want and got["scan"] == want, got
    rc = 0 if want == "open" else 1
    assert got["test_rc"] == rc and got["scan_rc"] == rc, got


@needs_netns
def test_a_connection_to_itself_is_closed_for_both_commands() -> None:
    """With a one-port ephemeral range, connecting to that unused port makes the kernel pick it as
    the source too: TCP simultaneous open, the socket connected to itself. Not an open port."""
    got = run_in_netns(
        """
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
            f.write("40000 40000")
        t = cli_json("test", "127.0.0.1:40000", "--count", "1", "--timeout", "0.5")
        print(json.dumps({"test": t["json"]["state"], "reason": t["json"]["tcp"][0]["attempts"][0]["error"],
                          "rc": t["rc"]}))
        """
    )
    assert got == {"test": "closed", "reason": "connected to itself: nothing listens", "rc": 1}
    # a fresh namespace: the port is free again (the first connection left it in TIME_WAIT)
    got = run_in_netns(
        """
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
            f.write("40000 40000")
        s = cli_json("scan", "127.0.0.1", "40000", "--timeout", "0.5")
        print(json.dumps({"scan": s["json"]["results"][0]["state"], "rc": s["rc"]}))
        """
    )
    assert got == {"scan": "closed", "rc": 1}


def test_the_classifier_decides_each_errno_once() -> None:
    """The same errno gives the same state whichever command met it (no kernel needed)."""
    from app.outcome import ConnectState, classify

    for proto in ("tcp", "udp"):
        assert classify(proto, errno.ECONNREFUSED).state == ConnectState.CLOSED
        for e in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN):
            assert classify(proto, e).state == ConnectState.UNREACHABLE
        for e in (errno.EACCES, errno.EPERM):
            assert classify(proto, e).state == ConnectState.FILTERED
        assert classify(proto, errno.EINVAL).state == ConnectState.ERROR
        assert classify(proto, 0).state == ConnectState.OPEN
    assert classify("tcp", timed_out=True).state == ConnectState.FILTERED
    assert classify("udp", timed_out=True).state == ConnectState.OPEN_FILTERED
    assert classify("udp", timed_out=True, bound_here=True).state == ConnectState.OPEN
    assert classify("tcp", self_connect=True).state == ConnectState.CLOSED
