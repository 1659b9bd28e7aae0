"""The dashboard's domain helpers: process detail (real child processes) and background reverse DNS."""

from __future__ import annotations

import os
import threading

import psutil
import pytest

from app.collector import PsutilCollector
from app.procdetail import process_detail, sockets_of
from app.rdns import ReverseDNS, system_resolver
from tests.helpers import child_listener, spawn_listener, wait_for


def test_detail_of_a_real_listener() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-tui-detail") as child:
        detail = process_detail(child.pid, cpu_interval=0.01)
        assert detail.name == "ps-tui-detail"
        assert not detail.gone
        assert detail.parents[0] == (os.getpid(), psutil.Process().name())
        assert detail.memory_rss and detail.memory_rss > 0
        assert any("ps-tui-detail" in part for part in detail.cmdline)
        snap = PsutilCollector().collect()
        held = sockets_of(snap, child.pid)
        assert [s.laddr.port for s in held.listening] == [child.port]


def test_detail_of_an_exited_process_says_gone() -> None:
    child = spawn_listener("tcp", "127.0.0.1")
    pid = child.pid
    child.stop()
    assert process_detail(pid, cpu_interval=0.01).gone


def test_denied_fields_are_listed_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(self: psutil.Process) -> str:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "cwd", deny)
    monkeypatch.setattr(psutil.Process, "exe", deny)
    with child_listener("tcp", "127.0.0.1") as child:
        detail = process_detail(child.pid, cpu_interval=0.01)
    assert {"cwd", "exe"} <= set(detail.denied)
    assert detail.cwd == "" and detail.name


def test_reverse_dns_resolves_in_the_background_and_caches() -> None:
    gate = threading.Event()
    calls: list[str] = []
    resolved: list[str] = []

    def resolver(ip: str) -> str | None:
        gate.wait(10)
        calls.append(ip)
        return "loopback.example" if ip == "127.0.0.1" else None

    rdns = ReverseDNS(resolver, on_resolved=resolved.append)
    assert rdns.name("127.0.0.1") is None  # never blocks: queued
    assert rdns.state("127.0.0.1") == "pending"
    assert rdns.name("127.0.0.1") is None  # not queued twice
    gate.set()
    wait_for(lambda: rdns.state("127.0.0.1") == "resolved")
    assert rdns.name("127.0.0.1") == "loopback.example"
    assert rdns.name("::1") is None
    wait_for(lambda: rdns.state("::1") == "resolved")
    assert rdns.name("::1") is None  # no name, cached as such
    assert calls == ["127.0.0.1", "::1"]
    assert resolved == ["127.0.0.1", "::1"]


def test_system_resolver_gives_none_for_a_bad_address() -> None:
    assert system_resolver("not an address") is None
