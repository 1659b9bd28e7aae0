"""Textual widgets used by the portscope dashboard."""
