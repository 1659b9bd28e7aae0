"""read_process reads /proc directly on Linux (no psutil on the CLI's path): every field is what
psutil says, for every process on this machine (kernel threads, zombies, long names included)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from app import processes
from app.model import ProcessInfo
from tests.helpers import spawn_listener, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


def via_psutil(pid: int) -> ProcessInfo | None:
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            cmd = tuple(p.cmdline())
            while len(cmd) > 1 and not cmd[-1]:
                cmd = cmd[:-1]
            return ProcessInfo(pid, p.ppid(), p.name(), p.exe(), cmd, p.username(), p.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


def test_every_process_reads_as_psutil_reads_it() -> None:
    long_name = spawn_listener("tcp", "127.0.0.1", name="a-very-long-process-name")
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # a zombie by the time it is compared (it exits; it is not reaped until the end): once
        # psutil read it alive and read_process as the zombie a moment later
        wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, timeout=30)
        compared = 0
        for pid in psutil.pids():
            want = via_psutil(pid)
            got = processes.read_process(pid)
            if want is None or got is None or got.pid != want.pid:
                continue  # exited between the two reads
            if got != want and via_psutil(pid) != want:
                continue  # it changed between the reads (exec, exit): psutil disagrees with itself
            if "\r" in " ".join(got.cmdline):
                continue  # psutil's universal newlines (a known psutil difference)
            assert got == want, pid
            compared += 1
        assert compared >= 10
        got = processes.read_process(long_name.pid)
        assert (got is not None and got.name == "a-very-long-pr"[:15]) or got.name.startswith(
            "a-very-long-pr"
        )
    finally:
        long_name.stop()
        zombie.wait()


def test_a_gone_pid_reads_as_none() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert processes.read_process(p.pid) is None
    assert processes.create_time(p.pid) is None


def test_the_cli_start_up_path_imports_no_psutil() -> None:
    code = (
        "import sys\n"
        "from app.collector import default_collector\n"
        "from app.processes import read_process\n"
        "import os\n"
        "snap = default_collector().collect(port=1)\n"
        "assert read_process(os.getpid()) is not None\n"
        "print('psutil' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
