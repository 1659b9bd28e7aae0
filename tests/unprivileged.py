"""Run portscope as an unprivileged user (nobody) from a world-readable copy of the code.

The checkout and its venv may sit in a private directory (CI clones into ``mktemp -d``, mode 0700),
so the user ``nobody`` could not even import the package from there. We copy ``app`` and the compiled
dependencies it needs into a fresh 0755 directory and run the real interpreter on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOBODY = 65534


def _module_dir(name: str) -> Path:
    module = __import__(name)
    path = Path(module.__file__ or "")
    return path.parent if path.name == "__init__.py" else path


def _candidates() -> list[str]:
    seen: list[str] = []
    for exe in (os.path.realpath(sys.executable), sys.executable, "/usr/bin/python3"):
        if exe and exe not in seen and os.path.exists(exe):
            seen.append(exe)
    return seen


def why_not() -> str | None:
    """None when the unprivileged run is possible here, else the reason to skip."""
    if not sys.platform.startswith("linux"):
        return "setpriv is Linux-only"
    if os.geteuid() != 0:
        return "needs root to switch to the user nobody (the suite is not running as root)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    return None


@contextmanager
def unprivileged_runner() -> Iterator[list[str]]:
    """Yield a command prefix that runs ``python -m app`` as nobody."""
    root = Path(tempfile.mkdtemp(prefix="portscope-nobody-"))
    try:
        os.chmod(root, 0o755)
        shutil.copytree(_module_dir("app"), root / "app", ignore=shutil.ignore_patterns("__pycache__"))
        for dep in ("psutil", "netifaces"):
            src = _module_dir(dep)
            if src.is_dir():
                shutil.copytree(src, root / dep, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, root / src.name)
        # netifaces-plus ships its C extension beside the package
        for so in _module_dir("netifaces").parent.glob("_netifaces*"):
            shutil.copy2(so, root / so.name)
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        base = [
            *("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"),
            *("env", f"PYTHONPATH={root}"),
        ]
        for exe in _candidates():
            probe = subprocess.run(
                [*base, exe, "-s", "-c", "import app.cli.main, psutil, netifaces"],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=root,
            )
            if probe.returncode == 0:
                yield [*base, exe, "-s", "-m", "app"]
                return
        raise RuntimeError(f"no interpreter could import portscope as nobody: {probe.stderr.strip()[-300:]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
