"""Freed memory given back to the system by the processes that run for long (dashboard, watch,
serve), on glibc.

glibc's allocator raises its trim threshold each time a large block it had mapped is freed (up
to 64 MiB on 64-bit), and keeps that much free memory at the top of each heap (the main one and
each thread's) instead of returning it. A poll at 100k sockets frees lists and dicts of several
MiB, so after a few polls the dashboard held about 60 MB it no longer used (bench/dashcpu.py:
423 -> 353 MB resident at 100k sockets after 10 polls). Setting the thresholds explicitly
(``mallopt``) turns that adjustment off and keeps glibc's start values.

Loaded only by the long-running commands: ``ctypes`` costs a few ms to import, and a one-shot
command ends before its heap matters.
"""

from __future__ import annotations

import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 128 * 1024  # glibc's own start values (DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MIN)
MMAP_THRESHOLD = 128 * 1024

_done: bool | None = None


def return_freed_memory() -> bool:
    """Fix glibc's trim and mmap thresholds at their start values (once per process). True when
    the allocator took them; False elsewhere (not Linux, not glibc: musl's ``mallopt`` does
    nothing and says so)."""
    global _done
    if _done is None:
        _done = _tune()
    return _done


def _tune() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    try:
        # both: setting either turns off glibc's adjustment of the two; the mmap threshold at its
        # start value sends each block of 128 KiB or more to its own mapping, unmapped when freed
        return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        )
    except (OSError, ValueError):  # (a libc whose mallopt is not callable this way)
        return False
