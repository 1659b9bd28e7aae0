"""Which programs may forward a port (ssh -L/-R, socat, docker-proxy, kubectl port-forward, ...):
the cheap per-process check that decides whether :mod:`app.forwarders` (the argv parsers, a
larger module) is needed at all. Kept apart so that ``who`` and ``list`` import the parsers only
for a host that runs one of these programs."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

KUBECTL_PROGS = frozenset({"kubectl", "oc", "k3s", "microk8s", "microk8s.kubectl", "minikube"})
PROGRAMS = frozenset(
    {"ssh", "autossh", "docker-proxy", "rootlessport", "rootlessport-child", "pasta", "pasta.avx2"}
    | {"slirp4netns", "socat"}
)


def base(arg0: str) -> str:
    return arg0.rsplit("/", 1)[-1]


def might_forward(cmdline: Sequence[str] | None) -> bool:
    """Whether :func:`app.forwarders.forward_of` can find a forward in this argv at all (its
    program is a known forwarder): a cheap check per process, so that the per-socket parse runs
    only for those."""
    if not cmdline or isinstance(cmdline, str | bytes) or not isinstance(cmdline[0], str):
        return False
    arg0 = cmdline[0]
    if arg0.startswith(("sshd: ", "sshd-session: ")):
        return True
    prog = base(arg0)
    return prog in PROGRAMS or (prog in KUBECTL_PROGS and "port-forward" in cmdline)
