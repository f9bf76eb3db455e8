"""Installed scoring-table files (TOML). A package only so the files ship with the wheel."""
