"""The ``portscope`` command line. Must never import Textual (only the bare command does, lazily)."""
