"""`python -m device_sims` runs the `wardwatch sim` subcommand."""

import sys

from wardwatch.cli import main

main(["sim", *sys.argv[1:]])
