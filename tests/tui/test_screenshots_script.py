"""scripts/screenshots.py runs after the README's plain install: runtime dependencies only."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "screenshots.py"


def test_the_script_imports_neither_pytest_nor_the_tests() -> None:
    tree = ast.parse(SCRIPT.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert not names & {"pytest", "tests", "_pytest", "hypothesis"}, names


@pytest.mark.slow
def test_the_script_renders_every_view_without_pytest(tmp_path: Path) -> None:
    """The real script, real app and demo servers, with pytest made unimportable."""
    code = (
        "import runpy, sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None; "
        f"sys.argv = ['screenshots.py', '--out', {str(tmp_path)!r}, '--size', '100x30']; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    for name in ("listening", "filter", "connections", "interfaces", "detail", "help"):
        svg = (tmp_path / f"{name}.svg").read_text()
        assert "portscope" in svg, name
        if name not in ("help", "interfaces"):
            assert "demo-" in svg, name
        if shutil.which("rsvg-convert"):
            assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert "demo-web-w1" in (tmp_path / "detail.svg").read_text()  # the process tree of demo-web
