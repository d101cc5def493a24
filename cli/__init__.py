"""The `zero2one` command line (`cli/app.py` assembles the commands). Imports flows, never the other way round."""
