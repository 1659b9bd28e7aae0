"""Free ports: the ones returned really bind, used ones are skipped, ephemeral ones come last."""

from __future__ import annotations

import json
import random
import socket

import pytest

from app import freeport
from app.collector import PsutilCollector
from app.errors import UsageError
from app.ports import ephemeral_range, in_ephemeral
from tests.helpers import child_listener, needs_ipv6, run_cli


def _binds(port: int, proto: str = "tcp", host: str = "127.0.0.1") -> bool:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(fam, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_returned_ports_really_bind(proto: str) -> None:
    ports = freeport.find_free(
        1024, 65535, count=5, proto=proto, host="127.0.0.1", collector=PsutilCollector()
    )
    assert len(ports) == 5 and len(set(ports)) == 5
    assert all(_binds(p, proto) for p in ports)


def test_outside_the_ephemeral_range_first() -> None:
    lo, hi = ephemeral_range()
    ports = freeport.find_free(1024, 65535, count=20, host="127.0.0.1", collector=PsutilCollector())
    if lo > 1024 or hi < 65535:
        assert not any(in_ephemeral(p) for p in ports)


def test_a_used_port_is_never_returned() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        assert freeport.find_free(child.port, child.port, host="127.0.0.1") == []
        res = run_cli("free", "--range", f"{child.port}-{child.port}", "--host", "127.0.0.1")
    assert res.returncode == 1 and res.stdout == "" and "no free tcp port" in res.stderr


def test_a_port_in_use_by_an_unseen_socket_fails_the_bind_test() -> None:
    """The bind test catches what the socket list missed (here: the list is told nothing is used)."""

    class Nothing:
        def collect(self, *, port: int | None = None):  # type: ignore[no-untyped-def]
            from app.model import empty_snapshot

            return empty_snapshot()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert freeport.find_free(port, port, host="127.0.0.1", collector=Nothing()) == []


def test_candidates_order() -> None:
    lo, _hi = ephemeral_range()
    cands = freeport.candidates(lo - 5, lo + 5, {lo - 1}, random.Random(1))
    assert lo - 1 not in cands
    assert sorted(cands[:4]) == [lo - 5, lo - 4, lo - 3, lo - 2]
    assert all(in_ephemeral(p) for p in cands[4:])


@needs_ipv6
def test_ipv6_host() -> None:
    [port] = freeport.find_free(40000, 50000, proto="udp", host="::1")
    assert _binds(port, "udp", "::1")


def test_cli() -> None:
    res = run_cli("free", "--count", "3", "--range", "dynamic", "--host", "127.0.0.1")
    assert res.returncode == 0, res.stderr
    ports = [int(x) for x in res.stdout.split()]
    assert len(ports) == 3 and all(49152 <= p <= 65535 and _binds(p) for p in ports)
    for bad in (["--range", "9-3"], ["--range", "nope"], ["--host", "10.255.255.1"], ["--count", "0"]):
        res = run_cli("free", *bad)
        assert res.returncode == 2, bad
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_bad_proto() -> None:
    with pytest.raises(UsageError):
        freeport.find_free(1, 2, proto="sctp")


def test_cli_json_shape() -> None:
    res = run_cli("free", "--count", "2", "--range", "20000-30000", "--host", "127.0.0.1", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"proto", "host", "range", "count", "ports"}
    assert data["proto"] == "tcp" and data["host"] == "127.0.0.1"
    assert data["range"] == [20000, 30000] and data["count"] == 2
    assert len(data["ports"]) == 2 and all(20000 <= p <= 30000 and _binds(p) for p in data["ports"])
    assert data["ports"] == sorted(data["ports"])


def test_cli_json_when_none_is_free_exits_1_with_an_empty_list() -> None:
    with child_listener("tcp", "127.0.0.1") as child:
        res = run_cli("free", "--range", f"{child.port}-{child.port}", "--host", "127.0.0.1", "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["ports"] == [] and "no free tcp port" in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "fe80::1%"],
        ["--host", "fe80::1%no-such-interface"],
        ["--host", "::1%99999999999999999999"],
        ["--host", "1.2.3.4.5"],
        ["--host", "\x1b]0;title\x07"],
        ["--host", "x" * 5000],
        ["--range", "1-99999999999999999999"],
        ["--count", "1_0"],
        ["--proto", "sctp"],
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str]) -> None:
    res = run_cli("free", *args)
    assert res.returncode == 2, (args, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "\x1b" not in res.stderr and len(res.stderr) < 400
