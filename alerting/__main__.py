"""``python -m alerting`` is ``wardwatch alerting`` (without loading the umbrella CLI)."""

from alerting.cli import main

main()
