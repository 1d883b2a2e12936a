"""``python -m e2e_portfolio`` runs the ``e2e`` command line."""

from e2e_portfolio.apps.cli import app

if __name__ == "__main__":  # importing the module (the API reference does) runs nothing
    app(prog_name="e2e")
