"""The pinned environment: check that what is installed is exactly what `constraints.txt` pins.

`constraints.txt` (pip's constraints format, written by `./run.sh lock`) pins every package
of the gate's environment, so a new TensorFlow or Keras release changes the gate only when
someone refreshes the file. `./run.sh` installs through it; `.ci/run` then runs
`python -m bench pins` to show the versions and fail if any differs.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


@dataclass(frozen=True)
class Pin:
    """One pinned package, and what is installed."""

    name: str
    pinned: str
    installed: str | None

    @property
    def ok(self) -> bool:
        """Whether the installed version is exactly the pinned one (or it is not installed)."""
        return self.installed is None or self.installed == self.pinned


def read(path: Path) -> dict[str, str]:
    """Return name -> version of every `name==version` line (comments and blanks skipped)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = PIN.match(text)
        if match is None:
            raise ValueError(f"{path}:{number}: not a name==version pin: {line!r}")
        pins[match.group(1)] = match.group(2)
    return pins


def check(path: Path) -> list[Pin]:
    """Compare every pin with the installed distribution (None where not installed)."""
    found = []
    for name, version in read(path).items():
        try:
            installed: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        found.append(Pin(name, version, installed))
    return found
