"""README stays true: the test command is the one CI runs, every command, key, filter term and
screenshot it shows exists."""

from __future__ import annotations

import re
from pathlib import Path

from app.cli.main import command_names

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def code_after(heading_text: str) -> str:
    start = README.index(heading_text)
    block = re.search(r"```sh\n(.*?)\n```", README[start:], re.S)
    assert block is not None
    return block.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = code_after("Run the tests")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci, f"{command!r} is not a line of .ci/run"
    assert "pytest" in command and "[test]" in command


def test_quick_start_installs_and_launches() -> None:
    command = code_after("Install and run the dashboard")
    assert "pip install" in command and command.endswith("portscope")


def test_every_command_is_documented() -> None:
    for name in command_names():
        assert f"### `portscope {name}" in README, name


def test_the_key_table_is_the_action_table() -> None:
    """README's key table is exactly what the action table generates (scripts/readme_keys.py
    writes it), and every filter term the help lists is documented."""
    from app.tui.actions import ACTIONS, key_label, readme_key_table
    from app.tui.help import FILTER_TERMS

    begin = README.index("<!-- keys:begin")
    start = README.index("\n", begin) + 1
    end = README.index("<!-- keys:end -->")
    assert README[start:end].strip("\n") == readme_key_table()
    for a in ACTIONS:
        for key in a.keys:
            assert f"`{key_label(key)}`" in README[start:end], key
    for term, _what in FILTER_TERMS:
        first = term.split()[0]
        assert f"`{first}" in README, term


def test_screenshots_exist_and_are_generated_by_the_script() -> None:
    images = re.findall(r"\]\((screenshots/[^)]+)\)", README)
    assert len(images) >= 6
    for image in images:
        assert (ROOT / image).is_file(), image
        svg = (ROOT / image).with_suffix(".svg")
        assert svg.is_file(), svg
        assert "portscope" in svg.read_text(), svg
    script = (ROOT / "scripts" / "screenshots.py").read_text()
    for image in images:
        assert f'shot("{Path(image).stem}")' in script, image
