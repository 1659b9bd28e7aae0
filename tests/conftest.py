"""Fixtures shared by test modules: a real container engine's API (podman) and a real sshd, both
on this machine only (a unix socket, 127.0.0.1), made and removed per module."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    SSHD,
    Engine,
    connects,
    engine_answers,
    free_port,
    podman_base,
    stop_process,
    tiny_image_tar,
    wait_for,
)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian package podman)")
    if os.geteuid() != 0:
        pytest.skip("the test runs podman as root with its own storage")
    tmp = Path(tempfile.mkdtemp(prefix="portscope-podman-"))
    podman = podman_base(tmp)
    sock = str(tmp / "api.sock")
    service: subprocess.Popen[bytes] | None = None
    image = "localhost/portscope-test:1"
    created = False
    try:
        (tmp / "image.tar").write_bytes(tiny_image_tar())
        res = subprocess.run(
            [*podman, "import", str(tmp / "image.tar"), image], capture_output=True, timeout=120
        )
        if res.returncode != 0:
            pytest.skip(f"podman import failed here: {res.stderr.decode()[-200:]}")
        port = free_port()
        res = subprocess.run(
            [*podman, "create", "--name", "web", "-p", f"127.0.0.1:{port}:80", image, "/hello.txt"],
            capture_output=True,
            timeout=120,
        )
        if res.returncode != 0:
            pytest.skip(f"podman create failed here: {res.stderr.decode()[-200:]}")
        created = True
        cid = res.stdout.decode().strip().splitlines()[-1]
        service = subprocess.Popen(
            [*podman, "system", "service", "--time=0", f"unix://{sock}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: service.poll() is not None or engine_answers(sock), timeout=30)
        if service.poll() is not None:
            pytest.skip(f"podman system service did not start: {service.stderr.read().decode()[-200:]}")  # type: ignore[union-attr]
        yield Engine(sock, podman, cid, image, port)
    finally:
        if service is not None and service.poll() is None:
            service.kill()
            service.wait(timeout=10)
        if created:
            subprocess.run([*podman, "rm", "--force", "web"], capture_output=True, timeout=60)
        subprocess.run([*podman, "rmi", "--force", image], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd() -> Iterator[tuple[int, str]]:
    """(port, client key path) of a real sshd on 127.0.0.1 that lets root in with that key only."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server and openssh-client are needed (sshd, ssh, ssh-keygen)")
    if os.geteuid() != 0:
        pytest.skip("sshd must start as root to log a user in")
    tmp = Path(tempfile.mkdtemp(prefix="portscope-sshd-"))
    made_privsep = False
    proc: subprocess.Popen[bytes] | None = None
    try:
        for name in ("hostkey", "clientkey"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)],
                check=True,
                capture_output=True,
            )
        (tmp / "authorized_keys").write_text((tmp / "clientkey.pub").read_text())
        port = free_port()
        (tmp / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {tmp / 'hostkey'}",
                    f"PidFile {tmp / 'sshd.pid'}",
                    f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",  # the temp dir's modes are not sshd's business here
                    "AllowTcpForwarding yes",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        if not os.path.isdir("/run/sshd"):  # Debian's sshd needs its privilege separation dir
            os.mkdir("/run/sshd", 0o755)
            made_privsep = True
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(tmp / "sshd_config")], stderr=subprocess.PIPE)
        wait_for(lambda: proc.poll() is not None or connects(port), timeout=15)
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.skip(f"sshd did not start: {err.strip()[:200]}")
        yield port, str(tmp / "clientkey")
    finally:
        if proc is not None:
            stop_process(proc)  # type: ignore[arg-type]
        if made_privsep:
            os.rmdir("/run/sshd")
        shutil.rmtree(tmp, ignore_errors=True)


# A developer's own ~/.config/portscope/config.toml must not change what the tests see: the tests
# (and every portscope they start) read an empty config directory unless a test sets its own.
# Searchable by everyone: the unprivileged tests run portscope as nobody, which must find no file
# there (not be refused the directory).
_CONFIG_HOME = tempfile.mkdtemp(prefix="portscope-test-config-")
os.chmod(_CONFIG_HOME, 0o755)
os.environ["XDG_CONFIG_HOME"] = _CONFIG_HOME
atexit.register(shutil.rmtree, _CONFIG_HOME, True)


@pytest.fixture(autouse=True)
def _empty_config_home() -> Iterator[None]:
    """Whatever a test wrote there (the dashboard saves a switched theme) is gone before the next."""
    yield
    for entry in os.listdir(_CONFIG_HOME):
        path = os.path.join(_CONFIG_HOME, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


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


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home() -> Iterator[None]:
    """`who` keeps owner hints in $XDG_CACHE_HOME/portscope: the tests' (and the CLI runs they
    start) go to a directory of their own, never the user's cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    tmp = tempfile.mkdtemp(prefix="portscope-cache-")
    os.environ["XDG_CACHE_HOME"] = tmp
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
    shutil.rmtree(tmp, ignore_errors=True)
