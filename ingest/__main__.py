"""``python -m ingest`` is ``wardwatch ingest`` (without loading the umbrella CLI)."""

from ingest.cli import main

main()
