"""``python -m registry`` is ``wardwatch registry`` (without loading the umbrella CLI)."""

from registry.cli import main

main()
