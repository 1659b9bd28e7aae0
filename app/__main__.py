from app.cli.main import run

raise SystemExit(run())
