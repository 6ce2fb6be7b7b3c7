"""Quality targets per budget: the test accuracy a run's time-to-accuracy is measured to.

The targets are data (`baselines/targets.json`, beside the baselines, each with why it was
chosen); this module reads them, typed, and says which one a budget uses: its own, or, for a
budget overridden from a named one (`ci-epochs1`), the named one's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.storage import layout, schema
from bench.storage.schema import SchemaError, bounds, one_of

SCHEMA = "cnn-mnist-bench/targets"


class TargetsError(ValueError):
    """The targets file is missing or malformed."""


@dataclass(frozen=True)
class Target:
    """One budget's quality target."""

    test_accuracy: float = field(metadata=bounds(0, 1))
    why: str = ""


@dataclass(frozen=True)
class Targets:
    """Every budget's target, as stored."""

    targets: dict[str, Target]
    why: str = ""
    schema: str = field(default=SCHEMA, metadata=one_of(SCHEMA))
    version: int = 1

    def for_budget(self, budget: str) -> Target | None:
        """Return the target of `budget` (or of the named budget it overrides), if any."""
        return self.targets.get(budget) or self.targets.get(budget.split("-", 1)[0])


def load() -> Targets:
    """Read the packaged targets."""
    path = layout.targets_path()
    document = schema.read_json(path, TargetsError, "targets file")
    try:
        return schema.load_versioned(Targets, document, {}, "restore it from the repository.")
    except SchemaError as error:
        raise TargetsError(f"{path}: {error}") from None
