"""`python -m registry` runs the `wardwatch registry` subcommand."""

import sys

from wardwatch.cli import main

main(["registry", *sys.argv[1:]])
