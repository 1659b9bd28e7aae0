"""app.memtune: a long-running process gives freed large blocks back to the system (glibc)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.helpers import glibc_only

# A freed 16 MiB block raises glibc's mmap and trim thresholds (to 16 and 32 MiB): a later 8 MiB
# block then comes from the heap and stays resident once freed, unless the thresholds are fixed.
SCRIPT = textwrap.dedent(
    """
    import sys
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    if sys.argv[1] == "tune":
        from app.memtune import return_freed_memory
        assert return_freed_memory()
    big = bytearray(16 << 20); del big
    base = rss()
    block = bytearray(8 << 20); block[:] = b"\\1" * len(block); del block
    print(rss() - base)
    """
)


def _kept(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@glibc_only
def test_freed_large_blocks_are_returned_once_tuned() -> None:
    assert _kept("plain") >= 6 << 20  # the pattern does keep memory without the tuning
    assert _kept("tune") < 2 << 20
