"""``python -m console`` is ``wardwatch console`` (without loading the umbrella CLI)."""

from console.cli import main

main()
