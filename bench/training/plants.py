"""Planted regressions: faults the gate must catch, used by its tests and `--cnnbench-plant`.

Two that break training outright (`lr0`, `shuffled-labels`); three that change the numbers a
model learns, each with a size (`NAME:F`), to measure how small a change of accuracy the
gates catch and how often they cry wolf:

* `lr-scale:F`: Adam's learning rate times F (a wrong default, a changed schedule);
* `wrong-labels:F`: a fraction F of the training labels replaced by another class (a data
  pipeline bug; the same images and labels every run);
* `jitter:F`: an **honest control**: each initial weight moved by F of its layer's spread
  (Gaussian, a fixed stream), which changes every number trained after it but not the recipe,
  as another kernel, library or CPU does. At `ci` the two runs stay close (measured: a few
  hundredths of a point apart), as after a change of rounding;
* `data-order:N`: the **strong honest control**: the training images in another order each
  epoch (shuffle stream N, a positive integer), the same recipe; the two runs of a seed end as
  far apart as two seeds. A gate that fails either cries wolf.

And one of speed per shape of slowdown a user pays for, each sized by a fraction F of the
time it slows (`NAME:F`; 0 < F <= `MAX_FRACTION`):

* `slow-step:F`: each step's own work takes F longer (a slower kernel);
* `between-steps:F`: work between steps, before each batch, of F times the previous step (a
  slower data pipeline or a per-batch callback);
* `stall:F`: once per epoch, before its middle step, a stall of F times the epoch's steps at
  their median pace (a re-trace, a periodic checkpoint, a slow logging call);
* `slow-eval:F`: every evaluation takes F longer.

The speed plants sleep, so accuracy and the history are unchanged by every one of them; the
numeric plants must change them (`tests/test_plants.py` checks both).
Keras-free at import, so the options can check a plant's name before a backend is chosen.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from bench.budgets import LEARNING_RATE
from bench.data import Arrays

ACCURACY_PLANTS = ("lr0", "shuffled-labels")
NUMERIC_PLANTS = ("lr-scale", "wrong-labels", "jitter", "data-order")
CONTROL_PLANTS = ("jitter", "data-order")
"""Numeric plants that change numbers but not the recipe: an honest change, to pass."""
SPEED_PLANTS = ("slow-step", "between-steps", "stall", "slow-eval")
PLANTS = ("none", *ACCURACY_PLANTS, *NUMERIC_PLANTS, *SPEED_PLANTS)
"""The plants by name; a sized plant takes a size, `NAME:F` (`NAME` alone: its default)."""
DEFAULT_FRACTION = 2.0
MAX_FRACTION = 10.0
"""The largest speed plant: ten times slower is already unmistakable, and a bound keeps a typo
(`slow-step:100000`) from stalling a comparison for hours."""
SIZES: dict[str, tuple[float, float]] = {
    **{name: (DEFAULT_FRACTION, MAX_FRACTION) for name in SPEED_PLANTS},
    "lr-scale": (0.8, MAX_FRACTION),
    "wrong-labels": (0.05, 1.0),
    "jitter": (1e-4, 0.01),
    "data-order": (1, 2**31 - 1),
}
"""Each sized plant's (default size, largest size); every size is above 0. A jitter above 1%
of a layer's spread would change the initialisation's distribution, not just its draw; a
shuffle stream is a whole number."""
_NUMBER = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
"""A size as plain ASCII digits (Python's float() also takes `1_0` and other scripts' digits)."""
LABEL_SEED = 20261203
"""The fixed stream that picks the wrong labels: the same images mislabelled in every run."""


def check(name: str) -> str:
    """Return a valid plant name, or raise ValueError saying which are valid."""
    base, colon, size = name.partition(":")
    if base in PLANTS and not colon:
        return name
    whole = base != "data-order" or size.isdigit()
    if base in SIZES and _NUMBER.fullmatch(size) and 0 < float(size) <= SIZES[base][1] and whole:
        return name
    bounds = ", ".join(f"{n}:F with F in (0, {top:g}]" for n, (_, top) in SIZES.items())
    raise ValueError(
        f"unknown plant {name!r}; valid: {', '.join(PLANTS)}; sized: {bounds} "
        f"(e.g. slow-step:0.1, lr-scale:0.8, wrong-labels:0.05, jitter:0.0001, data-order:1; "
        f"a data-order stream is a whole number)"
    )


def fraction_of(name: str) -> float:
    """Return a sized plant's size F (its default when none is given)."""
    base, _, size = check(name).partition(":")
    return float(size) if size else SIZES[base][0]


def is_numeric(name: str) -> bool:
    """Whether the plant changes the numbers a model learns (the history cannot be identical)."""
    return check(name).partition(":")[0] in (*ACCURACY_PLANTS, *NUMERIC_PLANTS)


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


def wrong_labels(data: Arrays, fraction: float) -> Arrays:
    """Return MNIST with `fraction` of the training labels replaced by another class.

    Which images, and the wrong class of each, come from a fixed stream (`LABEL_SEED`): every
    run and every seed sees the same mislabelled set. The images are drawn from the whole
    split, so a budget's first N images hold about `fraction` of N of them.
    """
    (x_train, y_train), test = data
    rng = np.random.default_rng(LABEL_SEED)
    chosen = rng.permutation(len(y_train))[: round(fraction * len(y_train))]
    labels = np.array(y_train, copy=True)
    labels[chosen] = (labels[chosen] + rng.integers(1, 10, size=len(chosen))) % 10
    return (x_train, labels), test


def jitter(scale: float) -> Any:
    """Return a callback that moves each initial weight by `scale` of its variable's spread.

    Once, as training begins (before the first step; a resumed run is not moved again):
    w + scale * sd(w) * N(0, 1), from a fixed stream. The recipe is unchanged; every number
    trained after it differs, as after a change of kernel, library or CPU.
    """
    import keras

    class Jitter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.moved = 0

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            if self.moved:
                return
            rng = np.random.default_rng(LABEL_SEED + 1)
            for variable in self.model.trainable_variables:
                value = keras.ops.convert_to_numpy(variable).astype(np.float64)
                spread = float(value.std()) or 1.0
                moved = value + scale * spread * rng.standard_normal(value.shape)
                variable.assign(moved.astype(variable.dtype))
                self.moved += 1

    return Jitter()


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
    if base == "lr-scale":
        return {"data": data, "learning_rate": LEARNING_RATE * factor, "plant": plant}
    if base == "wrong-labels":
        return {"data": wrong_labels(data, factor), "plant": plant}
    if base == "jitter":
        return {"data": data, "callbacks": [jitter(factor)], "plant": plant}
    if base == "data-order":
        return {"data": data, "order_stream": int(factor), "plant": plant}
    if base == "slow-eval":
        return {"data": data, "eval_callbacks": [slow_eval(factor)], "plant": plant}
    callback = {"slow-step": slow_step, "between-steps": between_steps, "stall": stall}[base]
    return {"data": data, "callbacks": [callback(factor)], "plant": plant}
