"""The README's isolated installs: ``pipx install .`` and ``uv tool install .`` each into temp
directories, then the installed ``portscope --version``, ``config path`` and ``completion bash``
run. pipx and uv are installed with pip into a throwaway venv from the package index this machine
already uses; where that fails (no index reachable), the test skips with pip's reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__

ROOT = Path(__file__).resolve().parents[2]


def _tool(tmp: Path, package: str) -> Path:
    venv = tmp / "tool-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    res = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", package],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"cannot install {package} with pip here: {last}")
    return venv / "bin" / package


def _check_installed(bin_dir: Path, env: dict[str, str]) -> None:
    portscope = bin_dir / "portscope"
    assert portscope.exists(), sorted(p.name for p in bin_dir.iterdir())
    res = subprocess.run([str(portscope), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert (res.returncode, res.stdout.strip()) == (0, f"portscope {__version__}"), res.stderr
    res = subprocess.run(
        [str(portscope), "config", "path"], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.stdout.strip() == f"{env['XDG_CONFIG_HOME']}/portscope/config.toml", res.stderr
    res = subprocess.run(
        [str(portscope), "completion", "bash"], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0 and "complete -o bashdefault -F _shtab_portscope portscope" in res.stdout


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), **extra)
    return env


@pytest.mark.slow
def test_pipx_install(tmp_path: Path) -> None:
    pipx = _tool(tmp_path, "pipx")
    env = _env(
        tmp_path,
        PIPX_HOME=str(tmp_path / "pipx-home"),
        PIPX_BIN_DIR=str(tmp_path / "bin"),
        PIPX_MAN_DIR=str(tmp_path / "man"),
    )
    res = subprocess.run(
        [str(pipx), "install", "--python", sys.executable, str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    _check_installed(tmp_path / "bin", env)
    # isolated: the tool's own venv holds app/ and widgets/, nothing was added to this interpreter's
    assert list((tmp_path / "pipx-home" / "venvs" / "portscope").glob("lib/python3*/site-packages/app"))


@pytest.mark.slow
def test_uv_tool_install(tmp_path: Path) -> None:
    uv = _tool(tmp_path, "uv")
    env = _env(
        tmp_path,
        UV_TOOL_DIR=str(tmp_path / "uv-tools"),
        UV_TOOL_BIN_DIR=str(tmp_path / "bin"),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",  # use this machine's Python, never fetch one
    )
    # uv does not read pip's configuration: hand it the same extra indexes and wheel directories.
    for pip_name, uv_name in (
        ("PIP_FIND_LINKS", "UV_FIND_LINKS"),
        ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"),
    ):
        if os.environ.get(pip_name):
            env[uv_name] = os.environ[pip_name]
    res = subprocess.run(
        [str(uv), "tool", "install", "--python", sys.executable, str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    _check_installed(tmp_path / "bin", env)
    assert list((tmp_path / "uv-tools" / "portscope").glob("lib/python3*/site-packages/app"))
