"""`python -m cli ...` is `zero2one ...` (the tests run the command line this way)."""

from cli.app import app

app()
