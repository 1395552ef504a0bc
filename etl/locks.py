"""One cross-process file lock, for state that parallel runs (scheduler tasks, test sessions, an
operator's CLI) could otherwise write at the same time."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def exclusive(lock_path: Path | str) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created with its folder if missing) for the block."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
