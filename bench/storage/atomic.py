"""Atomic file writes: results, caches and baselines are either whole or absent."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a temporary file beside `path`; rename it over `path` only if the block succeeds.

    A crash or exception leaves the old file (or none) in place, never a half-written one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(temp_name, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


CORRUPT_GLOB = "*.corrupt-*"
"""Files set aside by `set_aside`."""


def set_aside(path: Path) -> Path:
    """Rename an unreadable file out of the way (never delete it); return where it went."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, target)
    return target


def write_json(path: str | os.PathLike[str], document: Any) -> None:
    """Write `document` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(document, handle, indent=2, sort_keys=False, allow_nan=False)
        handle.write("\n")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data`, atomically (a model file that came back from a remote worker)."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
