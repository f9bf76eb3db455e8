"""Files that hold something private (a cached unit context with dates of birth, a replay's
state, a credential): written whole or not at all, readable by their owner only.

:func:`write_private` writes a temporary file in the same directory, mode 0600 from its
creation (whatever the umask), fsynced, then renamed over ``path``: a reader sees the old file
or the new one, never half of one, and never a moment in which others may read it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 (replacing an older file). Raises
    ``OSError`` (nothing is left behind: the temporary file is removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
