"""Socket collectors. :mod:`app.backends.base` holds what every backend shares (the collector
protocol, snapshot assembly, the one display order); :mod:`app.backends.portable` is the psutil
backend and :mod:`app.fast` the Linux one. Neither backend imports the other or the factory above
them (:mod:`app.collector`), which picks one; import-linter checks this (pyproject.toml)."""
