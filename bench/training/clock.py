"""The training clock: the one place a run's time is read, for every consumer.

What a user waits for is on it; only the harness's own interruptions are off it:

* **a step** runs from the end of the previous step (or the start of its epoch) to the end of
  this one, read in `on_train_batch_end` of the clock, which is the last callback of `fit`. So
  the batch fetch (the PyTorch backend draws each batch before `on_train_batch_begin`), every
  callback's work before and after the step, and the step itself are on it, wall and
  process-CPU seconds;
* **an epoch's training** runs from just before `fit` to the clock's `on_epoch_end`:
  compilation, any re-tracing, the steps, the work between them, `fit`'s set-up and every
  callback's `on_epoch_end` (a checkpoint). What `fit` does after that (`on_train_end`, and
  dropping the epoch's data iterator) is `teardown_seconds`, off the clock: the harness calls
  `fit` once per epoch where the notebook calls it once, so the notebook's user never waits
  for it, and it took from 0.01 s to 2.5 s here, at random (TensorFlow's iterator);
* **an evaluation** runs from the call to `model.evaluate` to the clock's `on_test_end` (its
  compilation the first time included; the data iterator's teardown after it left out);
* **off the clock**: the hooks registered with `between_steps` (the harness's evaluations
  inside an epoch, `--eval-every`, and a paired comparison's wait for its turn). Each runs
  after a step's reading; the next step is timed from its end, and the epoch's training
  seconds leave it out.

Python's garbage collector is settled between epochs (`bench.training.trainer.settle_garbage`),
off the clock, so that its full collections do not land at random inside the clock's readings.

The trainer (`bench.training.trainer.Trainer`) owns one clock and writes its readings into the
run's record (per epoch: `train_seconds`, `eval_seconds`, the median steady step); the stored
gate, the report, the benchmark JSON and the study's estimate read the record; the paired
comparison's side process reads the clock itself, block by block.

On a GPU the clock reads the time only after the device has finished a step: its reading
follows the divergence guard's read-back of that step's loss (`StopOnNonFinite`), which the
trainer makes on every backend (the notebook's `fit` with its progress bar converts each
step's logs too, except where Keras dispatches them on a thread: then the guard is the one
sync per step the harness adds). The epoch's reading follows `fit`'s return, after its logs
have come back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras

Hook = Callable[[int], None]
"""Off-the-clock work after a step: called with the 0-based batch index within the epoch."""


def now() -> tuple[float, float]:
    """Return (wall, process CPU) seconds: the two readings the clock takes."""
    return time.perf_counter(), time.process_time()


@dataclass
class EpochTimes:
    """The clock's readings of one epoch's training."""

    wall: list[float] = field(default_factory=list)
    """Each step's wall seconds, in order."""
    cpu: list[float] = field(default_factory=list)
    """Each step's process-CPU seconds (all threads), in order."""
    seconds: float | None = None
    """The epoch's training seconds, off-clock work left out (None until it ends)."""
    off_seconds: float = 0.0
    """Seconds spent off the clock during the epoch."""
    setup_seconds: float = 0.0
    """From `start_epoch` to the epoch's first step's start (`fit`'s set-up)."""
    end_seconds: float = 0.0
    """From the last step's end to the clock's `on_epoch_end` (every callback's before it)."""
    teardown_seconds: float = 0.0
    """From the clock's `on_epoch_end` to `stop_epoch`: off the clock (see the module)."""


class TrainingClock(keras.callbacks.Callback):
    """Time training steps, epochs and evaluations as the module docstring says.

    Place it last in `fit`'s callbacks: whatever runs after it in a step would be off the
    clock. `start_epoch` / `stop_epoch` bracket the `fit` call of one epoch; `evaluation()`
    brackets an evaluation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []
        self.epochs: list[EpochTimes] = []
        self.evaluations: list[float] = []
        self._mark = (0.0, 0.0)
        self._epoch_began = 0.0
        self._epoch_ended: float | None = None
        self._test_ended: float | None = None

    def between_steps(self, hook: Hook) -> None:
        """Run `hook` after every step, off the clock."""
        self.hooks.append(hook)

    @property
    def current(self) -> EpochTimes:
        """The epoch being trained (or the last one trained)."""
        if not self.epochs:
            raise RuntimeError("the training clock has not started an epoch")
        return self.epochs[-1]

    def start_epoch(self) -> None:
        """Start an epoch's clock: call just before `fit`."""
        self.epochs.append(EpochTimes())
        self._epoch_began, self._epoch_ended = time.perf_counter(), None
        self._mark = now()

    def stop_epoch(self) -> float:
        """Stop the epoch's clock: call just after `fit` returns; return its training seconds."""
        epoch, stopped = self.current, time.perf_counter()
        ended = self._epoch_ended if self._epoch_ended is not None else stopped
        epoch.seconds = ended - self._epoch_began - epoch.off_seconds
        epoch.teardown_seconds = stopped - ended
        self._epoch_ended = None
        return epoch.seconds

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._mark = now()  # the first step's clock starts here, not at `start_epoch`
        self.current.setup_seconds = self._mark[0] - self._epoch_began

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_ended = time.perf_counter()
        self.current.end_seconds = self._epoch_ended - self._mark[0]

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        wall, cpu = now()
        current = self.current
        current.wall.append(wall - self._mark[0])
        current.cpu.append(cpu - self._mark[1])
        if self.hooks:
            for hook in self.hooks:
                hook(batch)
            resumed = now()
            current.off_seconds += resumed[0] - wall
            self._mark = resumed
        else:
            self._mark = (wall, cpu)

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self._test_ended = time.perf_counter()

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[None]:
        """Time the evaluation run inside the block (kept in `evaluations`).

        When the clock is among `evaluate`'s callbacks (last), the evaluation ends at its
        `on_test_end`, leaving out the teardown of `evaluate`'s data iterator, as for epochs.
        """
        began, self._test_ended = time.perf_counter(), None
        try:
            yield
        finally:
            ended = self._test_ended if self._test_ended is not None else time.perf_counter()
            self.evaluations.append(ended - began)
