"""A Ctrl-C that lands in a finalizer (the process cache's, the netlink reader's) prints no
``Exception ignored`` traceback (a fresh-clone CI run caught `portscope list` interrupted as it
ended doing that); the program goes on as Python would have it go on."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import time
from app.fast.netlink import NetlinkReader
from app.processes import ProcessCache

def interrupted():
    raise KeyboardInterrupt  # (where a Ctrl-C's handler would raise it)

obj = {kind}()
obj.{meth} = interrupted
try:
    del obj
    for _ in range(1000):  # (an interrupt handed on would land here, outside the finalizer)
        time.monotonic()
    print("lost")
except KeyboardInterrupt:
    print("delivered")
"""


@pytest.mark.parametrize(("kind", "meth"), [("ProcessCache", "clear"), ("NetlinkReader", "close")])
def test_a_ctrl_c_inside_a_finalizer_prints_no_traceback(kind: str, meth: str) -> None:
    res = subprocess.run(
        [sys.executable, "-c", CODE.format(kind=kind, meth=meth)], capture_output=True, text=True, timeout=60
    )
    assert res.stdout.strip() == "lost", res  # (dropped, as Python drops it)
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr, res.stderr
