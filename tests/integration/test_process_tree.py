"""The detail pane's process tree (app.procdetail.descendants) over real child processes."""

from __future__ import annotations

import subprocess
import sys

import psutil

from app.procdetail import descendants, process_detail
from tests.helpers import kill_quietly, wait_for

TREE = r"""
import os, sys, time
def child(depth):
    if os.fork() == 0:
        if depth < 2:
            child(depth + 1)
        time.sleep(60)
        os._exit(0)
child(1)
child(1)
print("ready", flush=True)
time.sleep(60)
"""


def test_descendants_of_a_real_parent_depth_first() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        wait_for(lambda: len(psutil.Process(proc.pid).children(recursive=True)) == 4)  # grandchildren too
        tree, more = descendants(proc.pid)
        real = psutil.Process(proc.pid).children(recursive=True)
        assert {pid for _, pid, _ in tree} == {p.pid for p in real} and more == 0
        assert [d for d, _, _ in tree] == [1, 2, 1, 2]  # each child, then its own child
        for depth, pid, _name in tree:
            parent = psutil.Process(pid).ppid()
            assert (parent == proc.pid) == (depth == 1)
        limited, more = descendants(proc.pid, limit=1)
        assert len(limited) == 1 and more == 3
        detail = process_detail(proc.pid, cpu_interval=0.01)
        assert detail.children == tree
    finally:
        for p in psutil.Process(proc.pid).children(recursive=True):
            kill_quietly(p.pid)
        proc.kill()
        proc.wait(timeout=10)


def test_a_process_without_children_has_an_empty_tree() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert descendants(proc.pid) == ((), 0)
    finally:
        proc.kill()
        proc.wait(timeout=10)
