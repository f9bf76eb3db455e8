"""``python -m alerting.pews``: the same commands as ``wardwatch pews``."""

from alerting.pews.cli import app

if __name__ == "__main__":
    app()
