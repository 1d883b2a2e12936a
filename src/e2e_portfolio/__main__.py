"""``python -m e2e_portfolio`` runs the ``e2e`` command line."""

from e2e_portfolio.apps.cli import app

app(prog_name="e2e")
