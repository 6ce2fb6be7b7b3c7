"""The shared vocabularies: the words every layer checks values against, and OptionError.

A leaf (it imports nothing of the harness, and nothing heavy), so that records, baselines,
options, the gate and the trainer can all name the same backends, precisions and gate modes
without importing each other. What each word does is said where it is used:
`bench.training.precisions` (what `auto` resolves to), `bench.training.backends` (which
backend Keras will use), `bench.gate` (what each mode gates).
"""

from __future__ import annotations

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

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
"""The Keras dtype policies a run may use."""
AUTO = "auto"
"""The precision measured fastest for the device (`bench.training.precisions.resolve`)."""
PRECISIONS = (AUTO, *POLICIES)
DEFAULT_PRECISION = AUTO

GATE_MODES = ("all", "accuracy", "off")
"""What the gate checks: accuracy and speed, accuracy only, or nothing."""
DEFAULT_THRESHOLD = 0.10
"""The slowdown a paired comparison must catch (`bench.compare.verdict` says the rule)."""


class OptionError(ValueError):
    """Options that are valid one by one but not together, or a request that cannot run."""


def relevant_libraries(backend: str) -> frozenset[str]:
    """Return the libraries whose versions can change a run on `backend`."""
    return frozenset((*COMMON_LIBRARIES, *LIBRARIES.get(backend, ())))
