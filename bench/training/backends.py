"""The Keras backends the harness runs on, and the libraries whose versions move each one.

Keras-free: option parsing, provenance and the gate's version crossings all read this table.
"""

from __future__ import annotations

import os

LIBRARIES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow",),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}
"""Backend -> the Python distributions it computes with (beyond keras and numpy)."""

BACKENDS: tuple[str, ...] = tuple(LIBRARIES)
DEFAULT_BACKEND = "tensorflow"
COMMON_LIBRARIES = ("python", "keras", "numpy")
"""Libraries whose versions move the numbers on every backend."""


def requested() -> str:
    """Return the backend Keras will use: $KERAS_BACKEND, else TensorFlow (Keras' default)."""
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def relevant_libraries(backend: str) -> frozenset[str]:
    """Return the libraries whose versions can change a run on `backend`."""
    return frozenset((*COMMON_LIBRARIES, *LIBRARIES.get(backend, ())))
