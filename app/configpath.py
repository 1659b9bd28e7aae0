"""Where the config file is (``$XDG_CONFIG_HOME/portscope/config.toml``): the path alone, without
the parser, so a command's fast path can tell whether there is a file at all for the cost of one
``stat``."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # on the CLI's start-up path (who): collections costs a millisecond there
if TYPE_CHECKING:
    from collections.abc import Mapping

FILE_NAME = "config.toml"


def config_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CONFIG_HOME/portscope``; ``~/.config/portscope`` when it is unset, empty or relative
    (the spec says to ignore a relative one)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".config")
    return os.path.join(base, "portscope")


def config_path(environ: Mapping[str, str] | None = None) -> str:
    return os.path.join(config_dir(environ), FILE_NAME)
