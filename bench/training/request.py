"""What to train, said once: the typed request every front end builds and every runner takes.

The command line and the pytest plugin build a `RunRequest` from their options
(`bench.cli.options.Settings.request`), with the budget resolved once; a study's plan, the
main job, `python -m bench run`, the benchmark suite and the paired comparison all take it,
and none of them reads options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.budgets import Budget, spec


@dataclass(frozen=True)
class RunRequest:
    """The runs asked for: architectures x seeds under one budget, one way of training."""

    archs: tuple[str, ...]
    budget: Budget
    """The budget with its overrides applied (its name says them: `ci-epochs2`)."""
    seeds: tuple[int, ...]
    precision: str
    """As asked: `auto` or a Keras policy (each run resolves `auto` for its device)."""
    backend: str
    """The Keras backend the runs use ($KERAS_BACKEND, else TensorFlow, unless asked)."""
    data: Path | None = None
    """MNIST from this file or folder; None: the verified default sources."""
    eval_every: int | None = None
    plant: str = "none"

    @property
    def budget_spec(self) -> tuple[str, int | None, int | None]:
        """The named budget and its overrides, as they travel to other processes."""
        return spec(self.budget)
