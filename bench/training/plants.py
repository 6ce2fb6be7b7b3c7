"""Planted regressions: faults the gate must catch, used by its tests and `--cnnbench-plant`.

Keras-free at import, so the options can check a plant's name before a backend is chosen.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.data import Arrays

PLANTS = ("none", "lr0", "shuffled-labels", "slow-step")
"""The plants by name; `slow-step:F` slows each step by the fraction F (slow-step: F = 2)."""


def check(name: str) -> str:
    """Return a valid plant name, or raise ValueError saying which are valid."""
    base, _, fraction = name.partition(":")
    if base in PLANTS and not fraction:
        return name
    if base == "slow-step":
        try:
            if float(fraction) > 0:
                return name
        except ValueError:
            pass
    raise ValueError(f"unknown plant {name!r}; valid: {', '.join(PLANTS)}, or slow-step:F "
                     "(each step slower by the fraction F > 0, e.g. slow-step:0.1)")  # fmt: skip


def slow_step(factor: float = 2.0) -> Any:
    """Return a callback that slows every training step.

    After each step it sleeps `factor` times as long as the step took (2.0: three times
    slower; 0.1: 10% slower).
    """
    import keras

    class SlowStep(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.started = 0.0

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            time.sleep(factor * (time.perf_counter() - self.started))

    return SlowStep()


def shuffled_labels(data: Arrays, seed: int = 1234) -> Arrays:
    """Return MNIST with the training labels permuted: nothing left to learn."""
    (x_train, y_train), test = data
    return (x_train, np.random.default_rng(seed).permutation(y_train)), test


def trainer_options(plant: str, data: Arrays) -> dict[str, Any]:
    """Return the Trainer keyword arguments that plant `plant` ('none' plants nothing)."""
    if plant == "none":
        return {"data": data}
    if plant == "lr0":
        return {"data": data, "learning_rate": 0.0}
    if plant == "shuffled-labels":
        return {"data": shuffled_labels(data)}
    if plant.startswith("slow-step"):
        fraction = check(plant).partition(":")[2]
        return {"data": data, "callbacks": [slow_step(float(fraction) if fraction else 2.0)]}
    return {"data": check(plant)}  # raises: every other valid name is handled above
