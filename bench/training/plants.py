"""Planted regressions: faults the gate must catch, used by its tests and `--cnnbench-plant`."""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from bench.data import Arrays


class SlowStep(keras.callbacks.Callback):
    """Slow every training step: sleep `factor` times as long as the step took (3x slower)."""

    def __init__(self, factor: float = 2.0) -> None:
        super().__init__()
        self.factor = factor
        self.started = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        time.sleep(self.factor * (time.perf_counter() - self.started))


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
    if plant == "slow-step":
        return {"data": data, "callbacks": [SlowStep()]}
    raise ValueError(f"Unknown plant {plant!r}; valid: none, lr0, shuffled-labels, slow-step")
