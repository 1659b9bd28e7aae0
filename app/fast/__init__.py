"""The Linux backend: netlink sock_diag (else /proc/net) with an incremental inode->pid map
(:mod:`app.fast.collector`), and every /proc read portscope makes (:mod:`app.fast.procfs`).

Nothing is imported here, so the light modules (procfs) can be used without loading the collector."""
