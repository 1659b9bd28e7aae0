"""The import contracts (pyproject.toml, checked by ``lint-imports`` in .ci/run) cover every module:
a new domain module cannot escape the "no Textual" rule by being left off the list."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Packages that are allowed to import Textual (the dashboard) or that have a contract of their own.
NOT_DOMAIN = {"app.tui", "app.cli", "app.__main__"}


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]  # type: ignore[no-any-return]


def top_modules() -> set[str]:
    """app's direct submodules and subpackages (``app.kill``, ``app.fast``, ...)."""
    out = set()
    for path in (ROOT / "app").iterdir():
        if path.name.startswith("_") and path.name != "__main__.py":
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            out.add(f"app.{path.name}")
        elif path.suffix == ".py":
            out.add(f"app.{path.stem}")
    return out


def test_every_domain_module_is_in_the_no_textual_contract() -> None:
    domain = next(c for c in contracts() if str(c["name"]).startswith("Domain modules"))
    listed = set(domain["source_modules"])  # type: ignore[arg-type]
    assert {"textual", "app.tui", "widgets"} <= set(domain["forbidden_modules"])  # type: ignore[arg-type]
    missing = sorted(top_modules() - NOT_DOMAIN - listed)
    assert not missing, f"add these to the domain contract in pyproject.toml: {missing}"
    stale = sorted(listed - top_modules())
    assert not stale, f"these are listed but do not exist: {stale}"


def test_ci_runs_the_import_contracts() -> None:
    assert "lint-imports" in (ROOT / ".ci" / "run").read_text()
