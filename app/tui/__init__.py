"""The Textual dashboard (the only part of app/ that imports textual).

app.py (the app: data and polling), main_screen.py (layout and view keys), actions.py (every key),
poller.py (the poll cycle, no Textual), state.py / rows.py / columns.py / formatting.py (the
tables' data side, no Textual), detail.py (the detail pane), help.py (the help screen).
"""
