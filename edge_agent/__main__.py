"""`python -m edge_agent` runs the `wardwatch edge` subcommand."""

import sys

from wardwatch.cli import main

main(["edge", *sys.argv[1:]])
