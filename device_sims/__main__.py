"""``python -m device_sims`` is ``wardwatch sim`` (without loading the umbrella CLI)."""

from device_sims.cli import main

main()
