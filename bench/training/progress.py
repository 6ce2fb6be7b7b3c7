"""Live progress of a training run: a line every few seconds, also under pytest's capture."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import keras

Writer = Callable[[str], None]


def stderr_writer(line: str) -> None:
    """Write a progress line to standard error, flushed."""
    print(line, file=sys.stderr, flush=True)


class LiveProgress(keras.callbacks.Callback):
    """Print a line every 10 s within an epoch: epoch x/N, batch, loss, accuracy, time left."""

    def __init__(self, label: str, epoch: int, epochs: int, steps: int, write: Writer) -> None:
        super().__init__()
        self.label, self.epoch, self.epochs, self.steps = label, epoch, epochs, steps
        self.write = write
        self.started = self.last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        if now - self.last < 10 or batch + 1 == self.steps:
            return
        self.last = now
        logs = logs or {}
        left = (now - self.started) / (batch + 1) * (self.steps - batch - 1)
        self.write(
            f"{self.label} epoch {self.epoch}/{self.epochs} batch {batch + 1}/{self.steps} "
            f"loss {float(logs.get('loss', math.nan)):.4f} "
            f"acc {float(logs.get('accuracy', math.nan)):.4f} ~{left:.0f}s left in epoch"
        )
