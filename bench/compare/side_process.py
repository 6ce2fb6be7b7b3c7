"""One side of a paired comparison: a long-lived process that trains in blocks when told to.

The driver (`bench.compare.interleave`) starts this file with `runpy`, in the side's Python
environment, with the side's source tree first on `sys.path`: everything it trains with
(`archs`, `bench.training.trainer`) is that side's code, and this file imports nothing else
of the harness but the head's clock module (by path), so the same protocol drives a base
checked out at an older commit. It relies only on interfaces every commit since the
epoch-driven `Trainer` has had (`bench.training.trainer` states the contract): `get_budget`
(in `bench.budgets`, before that in `bench.training.budgets`), `Trainer(arch, budget, seed,
out_dir=None, precision=, data=, callbacks=, write=, learning_rate=)`, `BATCH_SIZE`,
`default_data` (and `bench.data.preprocess`), its
`callbacks` list, `x`, `y`, `xt`, `yt`, `model`, `precision`, `epochs_left`, `start`,
`train_epoch`, `evaluate_epoch`, `_evaluate`, `finish`, `record.epochs` and `record.final`;
and, where the trainer has one, its `clock`.

Protocol: JSON lines. The driver writes commands on standard input; this process answers on
standard output, each line prefixed with `MARK` (libraries may print there too):

* at start: ``{"event": "hello", "bench": <the bench package's file>, "versions": {...}}``;
* ``{"op": "start", "arch", "budget", "epochs", "train_samples", "seed", "precision",
  "block", "plant"}`` builds the run and answers ``ready`` (or ``error``);
* ``{"op": "go"}`` trains the next `block` steps and answers ``block`` with each step's wall
  and process-CPU seconds, then waits for the next ``go``; the ``go`` after the last block
  evaluates and finishes the run and answers ``done`` with the history, the final test
  metrics and the clock's seconds of each epoch's training and evaluation;
* then each ``{"op": "evaluate"}`` evaluates once more and answers ``evaluated`` with its
  seconds, and ``{"op": "full-test"}`` answers ``full-test`` with the final metrics on the
  whole test split (``full``, off the clock), until ``{"op": "end"}`` (answered ``ended``);
* ``{"op": "train", ...}`` (the fields of ``start`` but ``block``) trains one whole run at
  once, unpaced and untimed, and answers ``trained`` with its status, history, final test
  metrics on the budget's split and on the whole test split (``full``): the accuracy
  verdict's extra seeds (`bench.compare.accuracy`), run only when the histories part;
* ``{"op": "abandon"}``, in place of a ``go`` or an ``evaluate``, drops the run (the other
  side failed) and answers ``abandoned``;
* ``{"op": "quit"}`` ends the process.

Everything is timed by the training clock (`bench.training.clock`): the side's trainer's own,
or for an older trainer without one the head's, attached last to its callbacks. The wait for
the driver's ``go`` is a hook off that clock, so no step includes the other side's turn.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import math
import sys
import traceback
from typing import Any

MARK = "@cnnbench-compare "


def send(**message: Any) -> None:
    """Write one message for the driver."""
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


class Abandoned(Exception):
    """The driver gave up this architecture (the other side failed): back to the loop."""


def receive() -> dict[str, Any]:
    """Read the driver's next command; end the process when the driver has gone."""
    line = sys.stdin.readline()
    if not line:
        raise SystemExit(0)
    command = json.loads(line)
    if command.get("op") == "quit":
        raise SystemExit(0)
    if command.get("op") == "abandon":
        raise Abandoned
    return command


def wait_for_go() -> None:
    """Block until the driver says go (the other side trains meanwhile)."""
    command = receive()
    if command.get("op") != "go":
        raise RuntimeError(f"expected go, got {command}")


def _head_clock() -> Any:
    """Return the head's `TrainingClock` class, loaded by path (an older side has none)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "training" / "clock.py"
    spec = importlib.util.spec_from_file_location("cnnbench_head_clock", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.TrainingClock


class Pacer:
    """An off-the-clock hook: after every `block` steps, report them and wait for `go`."""

    def __init__(self, clock: Any, block: int, steps_per_epoch: int, epochs: int,
                 partial: bool) -> None:  # fmt: skip
        self.clock, self.block, self.steps_per_epoch = clock, block, steps_per_epoch
        self.total, self.partial = steps_per_epoch * epochs, partial
        self.steps: list[list[float]] = []
        self.done = 0

    def __call__(self, batch: int) -> None:
        current = self.clock.current
        last_in_epoch = batch + 1 == self.steps_per_epoch
        self.steps.append([current.wall[-1], current.cpu[-1], int(self.partial and last_in_epoch)])
        self.done += 1
        if len(self.steps) == self.block or self.done == self.total:
            send(event="block", steps=self.steps, last=self.done == self.total)
            self.steps = []
            wait_for_go()  # after the last block too: the evaluation then runs in its turn


def _plant(name: str) -> dict[str, Any]:
    """Return the head's planted regression's Trainer options (`bench.training.plants`)."""
    if name == "none":
        return {}
    from bench.training.plants import trainer_options
    from bench.training.trainer import default_data

    return trainer_options(name, default_data())


def _digest(*arrays: Any) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class Side:
    """One run on one side, timed by the trainer's clock or, for an older trainer, the head's.

    A trainer that has a clock (`trainer.clock`) times its own epochs and evaluations, and its
    clock already runs last in `fit`. An older trainer has none: the head's clock is appended
    to its callbacks and brackets its `train_epoch` and `evaluate_epoch` from here.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.own = getattr(trainer, "clock", None) is not None
        self.clock = trainer.clock if self.own else _head_clock()()
        if not self.own:
            trainer.callbacks = [*trainer.callbacks, self.clock]

    def train_epoch(self) -> None:
        if self.own:
            self.trainer.train_epoch()
            return
        self.clock.start_epoch()
        try:
            self.trainer.train_epoch()
        finally:
            self.clock.stop_epoch()
            gc.collect()  # as the trainer that has a clock does (`settle_garbage`)
            gc.freeze()

    def evaluate_epoch(self) -> None:
        if self.own:
            self.trainer.evaluate_epoch()
            return
        with self.clock.evaluation():
            self.trainer.evaluate_epoch()

    def evaluate(self) -> float:
        """Evaluate once more on the test set; return its seconds on the clock."""
        if self.own:
            self.trainer.evaluate()
        else:
            with self.clock.evaluation():
                self.trainer._evaluate()
        return float(self.clock.evaluations[-1])


def build(command: dict[str, Any]) -> tuple[Any, Any]:
    """Return the side's `Trainer` and budget for a `start` or `train` command, planted."""
    try:
        from bench.budgets import get_budget
    except ImportError:  # a commit from before the budgets left bench.training
        from bench.training.budgets import get_budget  # type: ignore[no-redef]
    from bench.training.trainer import Trainer

    budget = get_budget(command["budget"], epochs=command.get("epochs"),
                        train_samples=command.get("train_samples"))  # fmt: skip
    planted = _plant(command.get("plant", "none"))
    extra = planted.pop("callbacks", [])
    trainer = Trainer(command["arch"], budget, command["seed"], precision=command["precision"],
                      write=lambda line: None, **planted)  # fmt: skip
    trainer.callbacks = [*trainer.callbacks, *extra]
    return trainer, budget


EVAL_BATCH = 1024


def full_test(trainer: Any) -> list[float] | None:
    """Return [loss, accuracy] of the trained model on the whole MNIST test split (10,000).

    The accuracy verdict judges this, not the budget's split: at `ci` the first 2,000 test
    images alone made most of a run's spread of test accuracy (docs/comparison.md). Inference
    only, the loss as Keras' categorical cross-entropy (probabilities clipped at 1e-7), so a
    side of any commit computes it alike. None when the side cannot load the test split.
    """
    import keras
    import numpy as np

    try:
        from bench.data import preprocess
        from bench.training.trainer import default_data

        (_, _), (x, y) = default_data()
        images, labels = preprocess(x, y)
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    probs = np.concatenate([
        keras.ops.convert_to_numpy(trainer.model(images[start : start + EVAL_BATCH],
                                                 training=False))
        for start in range(0, len(images), EVAL_BATCH)]).astype(np.float64)  # fmt: skip
    return figures(probs, labels)


def figures(probs: Any, labels: Any) -> list[float]:
    """Return [loss, accuracy] of predicted probabilities against one-hot labels.

    The one definition of the accuracy verdict's figures (`full_test`, and the tally in
    `bench.investigations.accuracy_power`).
    """
    import numpy as np

    loss = -(labels * np.log(np.clip(probs, 1e-7, 1 - 1e-7))).sum(axis=1).mean()
    return [float(loss), float((probs.argmax(axis=1) == labels.argmax(axis=1)).mean())]


def _history(record: Any) -> list[list[float]]:
    return [[e.loss, e.accuracy, e.val_loss, e.val_accuracy] for e in record.epochs]


def train(command: dict[str, Any]) -> None:
    """Train one whole run, unpaced and untimed; answer `trained` with its results.

    The accuracy verdict's extra seeds: what the model learned is all they are for, so the
    run ends without `finish`'s measurements (its probes and weight summaries); the final
    test metrics on the budget's split are the last epoch's evaluation (the same model).
    """
    trainer, budget = build(command)
    with trainer:
        while trainer.epochs_left > 0:
            trainer.train_epoch()
            trainer.evaluate_epoch()
        record = trainer.record
        diverged = len(record.epochs) < budget.epochs
        last = record.epochs[-1] if record.epochs and not diverged else None
        send(event="trained", seed=command["seed"],
             status="diverged" if diverged else "completed", epochs=_history(record),
             final=[last.val_loss, last.val_accuracy] if last else None,
             full=full_test(trainer) if last else None)  # fmt: skip


def run(command: dict[str, Any]) -> None:
    """Build one run, answer `ready`, then train it block by block as the driver says.

    After the last block and a `go`, it evaluates and finishes, answers `done` with the
    history and the clock's epoch and evaluation seconds, then evaluates once per `evaluate`
    (answering `evaluated`), or on the whole test split once per `full-test` (answering
    `full-test`), until `end`.
    """
    from bench.training.trainer import BATCH_SIZE

    trainer, budget = build(command)
    side = Side(trainer)
    samples = len(trainer.x)
    steps_per_epoch = math.ceil(samples / BATCH_SIZE)
    pacer = Pacer(side.clock, command["block"], steps_per_epoch, budget.epochs,
                  samples % BATCH_SIZE != 0)  # fmt: skip
    side.clock.between_steps(pacer)
    with trainer:
        send(event="ready", precision=trainer.precision, params=trainer.model.count_params(),
             data=_digest(trainer.x, trainer.y, trainer.xt, trainer.yt),
             steps=pacer.total, clock="trainer's" if side.own else "head's")  # fmt: skip
        wait_for_go()
        while trainer.epochs_left > 0:
            side.train_epoch()
            side.evaluate_epoch()
        record = trainer.finish()
        final = [record.final.test_loss, record.final.test_accuracy] if record.final else None
        clock = side.clock
        send(event="done", status=record.status, epochs=_history(record), final=final,
             train_seconds=[e.seconds for e in clock.epochs],
             off_seconds=[e.off_seconds for e in clock.epochs],
             setup_end=[[e.setup_seconds, e.end_seconds, e.teardown_seconds]
                       for e in clock.epochs],
             eval_seconds=clock.evaluations[: len(clock.epochs)])  # fmt: skip
        while True:
            command = receive()
            if command.get("op") == "end":
                send(event="ended")
                return
            if command.get("op") == "full-test":  # the histories parted: the accuracy verdict's
                send(event="full-test", full=full_test(trainer) if final else None)
                continue
            if command.get("op") != "evaluate":
                raise RuntimeError(f"expected evaluate or end, got {command}")
            send(event="evaluated", seconds=side.evaluate())


def main() -> None:
    """Say hello, then serve `start` commands until told to quit."""
    import bench

    try:
        from bench.measurement.provenance import device, library_versions

        versions, machine = library_versions(), dataclasses.asdict(device())
    except Exception:  # an older side may lack them; only the head's are used (seed band)
        versions, machine = {}, {}
    send(event="hello", bench=bench.__file__, versions=versions, device=machine)
    while True:
        command = receive()
        try:
            train(command) if command.get("op") == "train" else run(command)
        except SystemExit:
            raise
        except Abandoned:
            send(event="abandoned")
        except BaseException as error:
            send(event="error", message=f"{type(error).__name__}: {error}",
                 traceback=traceback.format_exc()[-3000:])  # fmt: skip


if __name__ == "__main__":
    main()
