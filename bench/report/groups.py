"""Run records grouped for the report: one architecture under one budget and precision.

Apart from `bench.report.document` and `bench.report.figures`, which both read groups, so that
neither imports the other for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from archs import REGISTRY
from bench.storage import records
from bench.storage.records import RunRecord


@dataclass
class Group:
    """The runs of one architecture under one budget and precision (one per seed).

    `budget` is the budget's name, suffixed with the precision when that is not float32
    (`ci-mixed_bfloat16`), so runs in different precisions are never pooled or compared.
    """

    arch_id: str
    budget: str
    runs: list[RunRecord]
    paths: list[Path] = field(default_factory=list)
    precision: str = "float32"
    budget_name: str = ""

    @property
    def completed(self) -> list[RunRecord]:
        """The runs that trained their whole budget."""
        return [r for r in self.runs if r.completed and r.final]

    @property
    def accuracies(self) -> list[float]:
        """Final test accuracies of the completed runs."""
        return [r.final.test_accuracy for r in self.completed if r.final]

    @property
    def losses(self) -> list[float]:
        """Final test losses of the completed runs."""
        return [r.final.test_loss for r in self.completed if r.final]


def group_records(paths: Sequence[Path]) -> tuple[list[Group], list[str]]:
    """Load records, grouped by (architecture, budget and precision); return groups, problems."""
    problems: list[str] = []
    groups: dict[tuple[str, str], Group] = {}
    for path in paths:
        try:
            record = records.load(path)
        except records.RecordError as error:
            problems.append(f"skipped {error}")
            continue
        precision, name = record.config.precision, record.config.budget.name
        budget = name if precision == "float32" else f"{name}-{precision}"
        key = (record.arch.id, budget)
        group = groups.setdefault(key, Group(key[0], budget, [], [], precision, name))
        group.runs.append(record)
        group.paths.append(Path(path))
    order = {arch_id: index for index, arch_id in enumerate(REGISTRY)}
    ordered = sorted(groups.values(), key=lambda g: (g.budget, order.get(g.arch_id, 99)))
    return ordered, problems
