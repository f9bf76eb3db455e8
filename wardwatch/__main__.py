"""`python -m wardwatch` is the `wardwatch` command."""

from wardwatch.cli import main

main()
