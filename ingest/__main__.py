"""`python -m ingest` runs the `wardwatch ingest` subcommand."""

import sys

from wardwatch.cli import main

main(["ingest", *sys.argv[1:]])
