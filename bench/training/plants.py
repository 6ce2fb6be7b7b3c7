"""Planted regressions: faults the gate must catch, used by its tests and `--cnnbench-plant`.

Two of accuracy (`lr0`, `shuffled-labels`) and one of speed per shape of slowdown a user pays
for, each sized by a fraction F of the time it slows (`NAME:F`; 0 < F <= `MAX_FRACTION`):

* `slow-step:F`: each step's own work takes F longer (a slower kernel);
* `between-steps:F`: work between steps, before each batch, of F times the previous step (a
  slower data pipeline or a per-batch callback);
* `stall:F`: once per epoch, before its middle step, a stall of F times the epoch's steps at
  their median pace (a re-trace, a periodic checkpoint, a slow logging call);
* `slow-eval:F`: every evaluation takes F longer.

The speed plants sleep, so accuracy and the history are unchanged by every one of them.
Keras-free at import, so the options can check a plant's name before a backend is chosen.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bench.data import Arrays

ACCURACY_PLANTS = ("lr0", "shuffled-labels")
SPEED_PLANTS = ("slow-step", "between-steps", "stall", "slow-eval")
PLANTS = ("none", *ACCURACY_PLANTS, *SPEED_PLANTS)
"""The plants by name; a speed plant takes a size, `NAME:F` (`NAME` alone: F = 2)."""
DEFAULT_FRACTION = 2.0
MAX_FRACTION = 10.0
"""The largest size: ten times slower is already unmistakable, and a bound keeps a typo
(`slow-step:100000`) from stalling a comparison for hours."""


def check(name: str) -> str:
    """Return a valid plant name, or raise ValueError saying which are valid."""
    base, colon, fraction = name.partition(":")
    if base in PLANTS and not colon:
        return name
    if base in SPEED_PLANTS:
        try:
            value = float(fraction)
        except ValueError:
            value = math.nan
        if 0 < value <= MAX_FRACTION:
            return name
    raise ValueError(
        f"unknown plant {name!r}; valid: {', '.join(PLANTS)}, each speed plant with a size "
        f"NAME:F, F a fraction in (0, {MAX_FRACTION:g}] (e.g. slow-step:0.1, stall:0.1)"
    )


def fraction_of(name: str) -> float:
    """Return a speed plant's size F."""
    fraction = check(name).partition(":")[2]
    return float(fraction) if fraction else DEFAULT_FRACTION


def _sleeper() -> Any:
    """Return a Keras callback base whose `sleep` also keeps what it slept in `slept`."""
    import keras

    class Sleeper(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.slept: list[float] = []

        def sleep(self, seconds: float) -> None:
            time.sleep(seconds)
            self.slept.append(seconds)

    return Sleeper


def slow_step(factor: float = DEFAULT_FRACTION) -> Any:
    """Return a callback that makes each step's own work `factor` longer.

    After each step it sleeps `factor` times as long as the step took (2.0: three times
    slower; 0.1: 10% slower).
    """

    class SlowStep(_sleeper()):
        def __init__(self) -> None:
            super().__init__()
            self.started = 0.0

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.sleep(factor * (time.perf_counter() - self.started))

    return SlowStep()


def between_steps(factor: float = DEFAULT_FRACTION) -> Any:
    """Return a callback that works `factor` times the previous step before each batch."""

    class BetweenSteps(_sleeper()):
        def __init__(self) -> None:
            super().__init__()
            self.previous, self.started = 0.0, 0.0

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.sleep(factor * self.previous)
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.previous = time.perf_counter() - self.started

    return BetweenSteps()


def stall(factor: float = DEFAULT_FRACTION) -> Any:
    """Return a callback that stalls once per epoch for `factor` of the epoch's training."""

    class Stall(_sleeper()):
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.durations: list[float] = []

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            steps = self.params.get("steps") or 1
            if batch == steps // 2 and self.durations:  # the typical step, times the epoch
                self.sleep(factor * float(np.median(self.durations)) * steps)
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.durations.append(time.perf_counter() - self.started)

    return Stall()


def slow_eval(factor: float = DEFAULT_FRACTION) -> Any:
    """Return an evaluation callback that makes each evaluation `factor` longer."""

    class SlowEval(_sleeper()):
        def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.began = time.perf_counter()

        def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
            self.sleep(factor * (time.perf_counter() - self.began))

    return SlowEval()


def shuffled_labels(data: Arrays, seed: int = 1234) -> Arrays:
    """Return MNIST with the training labels permuted: nothing left to learn."""
    (x_train, y_train), test = data
    return (x_train, np.random.default_rng(seed).permutation(y_train)), test


def trainer_options(plant: str, data: Arrays) -> dict[str, Any]:
    """Return the Trainer keyword arguments that plant `plant` ('none' plants nothing)."""
    base = check(plant).partition(":")[0]
    if base == "none":
        return {"data": data}
    if base == "lr0":
        return {"data": data, "learning_rate": 0.0, "plant": plant}
    if base == "shuffled-labels":
        return {"data": shuffled_labels(data), "plant": plant}
    factor = fraction_of(plant)
    if base == "slow-eval":
        return {"data": data, "eval_callbacks": [slow_eval(factor)], "plant": plant}
    callback = {"slow-step": slow_step, "between-steps": between_steps, "stall": stall}[base]
    return {"data": data, "callbacks": [callback(factor)], "plant": plant}
