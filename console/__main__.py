"""`python -m console` runs the `wardwatch console` subcommand."""

import sys

from wardwatch.cli import main

main(["console", *sys.argv[1:]])
