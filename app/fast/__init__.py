"""The fast Linux collector (netlink sock_diag, incremental owners); see :mod:`app.fast.collector`."""

from app.fast.collector import FastCollector

__all__ = ["FastCollector"]
