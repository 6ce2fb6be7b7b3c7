"""One results folder, one writer: an advisory lock held while a command writes runs there.

`run`, `study`, `main` and `pytest bench` hold it for as long as they may write run folders;
a second writer is refused at once with the holder's process, command and start time, and
what to do. The lock is `fcntl.flock` on `results/.lock`: the kernel releases it when its
holder ends in any way (a SIGKILL included), so a killed command never blocks the next one;
the holder's description in the file is only for the message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"


class FolderBusy(RuntimeError):
    """Another process writes to this results folder now."""


@contextlib.contextmanager
def writer(root: Path, command: str | None = None) -> Iterator[None]:
    """Hold the results folder `root` for writing; FolderBusy when another process holds it."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(2000).strip()
            try:
                said = json.loads(holder)
                who = (f"process {said['pid']} ({said['command']}, since "
                       f"{said['since']})")  # fmt: skip
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise FolderBusy(
                f"the results folder {root} is being written by {who}; wait for it to "
                "finish, or give another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(),
            "command": command or " ".join(sys.argv)[:500],
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }))  # fmt: skip
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
