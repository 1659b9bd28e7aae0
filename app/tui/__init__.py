"""The Textual dashboard (the only part of app/ that imports textual)."""
