"""portscope: who owns this port, and what do I do about it?

Everything under ``app`` except ``app.tui`` is plain Python and must never import Textual:
the CLI starts fast and runs headless.
"""

__version__ = "0.1.0"
