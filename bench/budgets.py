"""Named training budgets: how much data and how many epochs a run gets.

A leaf of the harness (beside `bench.vocabulary`): records store a run's `Budget` as it is
here, the options, the gate and the trainer name budgets from this one table.

`full` is the notebook's recipe. The smaller tiers keep the recipe (Adam, batch 128, test-set
evaluation after each epoch) and shrink only the data and epochs, so that a CI machine with
2 CPU cores trains all six models in minutes while accuracy still separates a healthy model
(well above 90%) from a broken one (near the 10% of chance).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bench.storage.schema import bounds, safe_name


@dataclass(frozen=True)
class Budget:
    """A training budget. `None` for a sample count means the whole split."""

    name: str = field(metadata=safe_name())
    epochs: int = field(metadata=bounds(1))
    train_samples: int | None = field(default=None, metadata=bounds(1))
    test_samples: int | None = field(default=None, metadata=bounds(1))
    description: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"budget {self.name!r}: epochs must be >= 1. Received: {self.epochs}")
        for name in ("train_samples", "test_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"budget {self.name!r}: {name} must be >= 1. Received: {value}")

    def as_dict(self) -> dict[str, object]:
        """Return the budget as plain JSON-ready data."""
        return dataclasses.asdict(self)


BUDGETS: dict[str, Budget] = {
    budget.name: budget
    for budget in (
        Budget(
            "smoke",
            epochs=2,
            train_samples=512,
            test_samples=512,
            description="Seconds; for tests of the machinery, not of accuracy.",
        ),
        Budget(
            "ci",
            epochs=3,
            train_samples=4096,
            test_samples=2000,
            description="All six in about 3 minutes on 2 CPU cores; the CI gate's tier.",
        ),
        Budget(
            "small",
            epochs=5,
            train_samples=15_000,
            test_samples=None,
            description="About 20 minutes for all six on 2 CPU cores; closer to the notebook.",
        ),
        Budget(
            "full",
            epochs=15,
            train_samples=None,
            test_samples=None,
            description="The notebook's: 15 epochs on all 60,000 images, tested on all 10,000.",
        ),
    )
}
DEFAULT_BUDGET = "ci"
BATCH_SIZE = 128
"""The notebook's training batch: every budget keeps it."""
LEARNING_RATE = 0.001
"""The notebook's: Adam with Keras' default learning rate (every budget keeps it)."""
EVAL_BATCH_SIZE = 1024
"""The evaluation batch (any size gives the same metrics; this one is fast on CPU)."""
BASELINE_SEEDS = (0, 1, 2, 3, 4)
"""The seeds a stored baseline is made from (at least `MIN_SEEDS` of
`bench.storage.baselines`; five, as MLPerf and AlgoPerf ask of a reported spread), and the
seeds the main job picks its seeds from."""


def get_budget(name: str, *, epochs: int | None = None, train_samples: int | None = None) -> Budget:
    """Return the named budget, with optional explicit overrides, or raise listing valid names."""
    if name not in BUDGETS:
        raise ValueError(f"Unknown budget {name!r}. Valid budgets: {', '.join(BUDGETS)}")
    budget = BUDGETS[name]
    changes: dict[str, object] = {}
    if epochs is not None:
        changes["epochs"] = epochs
    if train_samples is not None:
        changes["train_samples"] = train_samples
    if changes:
        suffix = "".join(f"-{key.split('_')[0]}{value}" for key, value in changes.items())
        return dataclasses.replace(budget, name=f"{budget.name}{suffix}", **changes)
    return budget


def name_mismatch(name: str, epochs: int, train_samples: int | None,
                  test_samples: int | None) -> str | None:  # fmt: skip
    """Say how numbers stored under a budget's name differ from that budget's, or None.

    A stored name is either a budget's own (`ci`) or one with its overrides spelled out
    (`ci-epochs2`, `get_budget`); a record or baseline whose numbers do not match its name was
    edited or crafted, and must not be compared as that budget.
    """
    base, *overrides = name.split("-")
    if base not in BUDGETS:
        return None  # a budget of a test or a peer: nothing to check against
    changes: dict[str, int] = {}
    for part in overrides:
        key = next((k for k in ("epochs", "train") if part.startswith(k)), None)
        if key is None or not part[len(key) :].isdigit():
            return f"budget {name!r}: {part!r} is not an override (epochsN or trainN)"
        changes["epochs" if key == "epochs" else "train_samples"] = int(part[len(key) :])
    expected = dataclasses.replace(BUDGETS[base], **changes)
    found = {"epochs": epochs, "train_samples": train_samples, "test_samples": test_samples}
    wrong = [f"{k} {v} (the budget's: {getattr(expected, k)})" for k, v in found.items()
             if v != getattr(expected, k)]  # fmt: skip
    return f"budget {name!r} with other numbers: {', '.join(wrong)}" if wrong else None


def spec(budget: Budget) -> tuple[str, int | None, int | None]:
    """Return (named budget, epochs override, train_samples override) that make `budget`.

    `get_budget`'s inverse, for what travels as names and overrides (a worker's command line,
    a comparison side of an older commit).
    """
    base = BUDGETS[budget.name.split("-", 1)[0]]
    epochs = budget.epochs if budget.epochs != base.epochs else None
    samples = budget.train_samples if budget.train_samples != base.train_samples else None
    return base.name, epochs, samples
