"""``python -m edge_agent`` is ``wardwatch edge`` (without loading the umbrella CLI)."""

from edge_agent.cli import main

main()
