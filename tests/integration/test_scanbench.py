"""bench/scanbench.py's machinery: both commands run, the open set is checked against ss, the ratio
and verdict are reported (no timing is asserted: bench/ holds the numbers)."""

from __future__ import annotations

import importlib.util
import shutil
import socket
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _scanbench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("portscope_bench_scanbench", BENCH / "scanbench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_round_measures_both_and_checks_the_open_set() -> None:
    sb = _scanbench()
    with socket.socket() as s:  # one listener we know of, on loopback
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        assert port in sb.reachable_listeners()
        res = sb.measure_scan(1)
    assert res["rounds"] == 1 and len(res["samples_ms"]["portscope"]) == 1
    check = res["open_set"]
    # (other listeners may come and go on a shared machine: only ours is asserted on)
    assert set(check) == {"listening", "open", "extra", "missing", "came_and_went", "same"}
    assert port not in check["missing"] and check["open"] >= 1
    if shutil.which("nmap"):
        assert len(res["samples_ms"]["nmap"]) == 1 and res["portscope_over_nmap"] > 0
        assert isinstance(res["target_met"], bool)
    else:
        assert res["nmap"] is False and res["target_met"] is None
