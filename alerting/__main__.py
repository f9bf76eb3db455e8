"""`python -m alerting` runs the `wardwatch alerting` subcommand."""

import sys

from wardwatch.cli import main

main(["alerting", *sys.argv[1:]])
