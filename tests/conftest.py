from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Iterator

import pytest

# A developer's own ~/.config/portscope/config.toml must not change what the tests see: the tests
# (and every portscope they start) read an empty config directory unless a test sets its own.
# Searchable by everyone: the unprivileged tests run portscope as nobody, which must find no file
# there (not be refused the directory).
_CONFIG_HOME = tempfile.mkdtemp(prefix="portscope-test-config-")
os.chmod(_CONFIG_HOME, 0o755)
os.environ["XDG_CONFIG_HOME"] = _CONFIG_HOME
atexit.register(shutil.rmtree, _CONFIG_HOME, True)


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test (screens that show start times must not depend on the host)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()
