"""A study's grid: which runs it has, each a `RunSpec`, checked before anything starts.

Keras-free: a bad grid (an unknown architecture, no seeds, a bad budget) is refused in
milliseconds, before a process is spawned or a Ray instance started.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.budgets import Budget, get_budget
from bench.storage import layout
from bench.training.precisions import PRECISIONS, resolve
from bench.training.request import RunRequest
from bench.vocabulary import OptionError


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: everything a worker needs to train it, as plain data."""

    arch: str
    seed: int
    budget: str
    epochs: int | None
    train_samples: int | None
    precision: str
    backend: str
    eval_every: int | None = None
    command: str | None = None

    @property
    def label(self) -> str:
        """A short name for progress lines."""
        return f"{self.arch} seed={self.seed} {self.precision}"

    def resolved_budget(self) -> Budget:
        """Return the budget, with the study's overrides (in the worker: the spec is plain data)."""
        return get_budget(self.budget, epochs=self.epochs, train_samples=self.train_samples)

    def folder(self, results: layout.Results) -> Path:
        """Return the run's folder in the results layout."""
        variant = layout.variant(self.backend, resolve(self.precision))
        return results.run_dir(self.resolved_budget().name, self.arch, self.seed, variant)

    def to_json(self) -> dict[str, Any]:
        """Return the spec as JSON-ready data (for a worker's command line)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        """Return the spec from `to_json`'s data."""
        return cls(**data)


@dataclass(frozen=True)
class Plan:
    """A study: its runs, in the order they start.

    Seed-major, so that every architecture gets seeds early and a study stopped part-way
    still has a spread for each.
    """

    runs: tuple[RunSpec, ...]
    budget: Budget

    @classmethod
    def of(
        cls,
        request: RunRequest,
        precisions: tuple[str, ...] | None = None,
        command: str | None = None,
    ) -> Plan:
        """Build the grid of a request (x `precisions`); OptionError says what is wrong."""
        from archs import REGISTRY

        unknown = [a for a in request.archs if a not in REGISTRY]
        if unknown:
            raise OptionError(f"unknown architecture(s) {unknown}; valid: {', '.join(REGISTRY)}")
        if not request.archs:
            raise OptionError("the study has no architectures; give --archs")
        if not request.seeds:
            raise OptionError("the study has no seeds; give --seeds, e.g. --seeds 0,1,2")
        chosen = precisions or (request.precision,)
        bad = [p for p in chosen if p not in PRECISIONS]
        if bad or len(set(chosen)) != len(chosen):
            raise OptionError(
                f"precisions must be distinct, from {', '.join(PRECISIONS)}; got {list(chosen)}"
            )
        name, epochs, train_samples = request.budget_spec
        runs = tuple(
            RunSpec(arch, seed, name, epochs, train_samples, precision, request.backend,
                    request.eval_every, command)
            for seed in request.seeds
            for precision in chosen
            for arch in request.archs
        )  # fmt: skip
        return cls(runs, request.budget)

    def with_seeds(self, seeds: tuple[int, ...]) -> Plan:
        """Return the plan's runs of these seeds only."""
        return Plan(tuple(r for r in self.runs if r.seed in seeds), self.budget)

    def describe(self) -> str:
        """Say what the study will run, in one line."""
        archs = list(dict.fromkeys(r.arch for r in self.runs))
        seeds = list(dict.fromkeys(r.seed for r in self.runs))
        precisions = list(dict.fromkeys(r.precision for r in self.runs))
        return (
            f"{len(self.runs)} runs: {len(archs)} architecture(s) ({','.join(archs)}) x "
            f"{len(seeds)} seed(s) ({','.join(map(str, seeds))}) x precision "
            f"{','.join(precisions)}; budget {self.budget.name} ({self.budget.epochs} epochs, "
            f"{self.budget.train_samples or 'all'} training images)"
        )
