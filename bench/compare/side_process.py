"""One side of a paired comparison: a long-lived process that trains in blocks when told to.

The driver (`bench.compare.interleave`) starts this file with `runpy`, in the side's Python
environment, with the side's source tree first on `sys.path`: everything it trains with
(`archs`, `bench.training.trainer`) is that side's code, and this file imports nothing else
of the harness, so the same protocol drives a base checked out at an older commit. It relies
only on interfaces every commit since the epoch-driven `Trainer` has had: `Trainer(arch,
budget, seed, out_dir=None, precision=, data=, callbacks=, write=, learning_rate=)`, `start`,
`train_epoch`, `evaluate_epoch`, `finish`, `record.epochs` and `record.final`.

Protocol: JSON lines. The driver writes commands on standard input; this process answers on
standard output, each line prefixed with `MARK` (libraries may print there too):

* at start: ``{"event": "hello", "bench": <the bench package's file>, "versions": {...}}``;
* ``{"op": "start", "arch", "budget", "epochs", "train_samples", "seed", "precision",
  "block", "plant"}`` builds the run and answers ``ready`` (or ``error``);
* ``{"op": "go"}`` trains the next `block` steps and answers ``block`` with each step's wall
  and process-CPU seconds, then waits for the next ``go``; after the last step it also
  evaluates, finishes and answers ``done`` with the history and final test metrics;
* ``{"op": "abandon"}``, in place of a ``go``, drops the run (the other side failed) and
  answers ``abandoned``;
* ``{"op": "quit"}`` ends the process.

A step is timed from the start of its batch to its end, after its loss has been read back
(so on a GPU, after the device has finished); pauses between blocks and the evaluations
after each epoch are off the clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
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


def _pacer(block: int, steps_per_epoch: int, epochs: int, partial: bool) -> Any:
    import keras

    class Pacer(keras.callbacks.Callback):
        """Times each step; after every `block` steps reports them and waits for `go`."""

        def __init__(self) -> None:
            super().__init__()
            self.steps: list[list[float]] = []
            self.done = 0
            self.began = (0.0, 0.0)

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self.began = (time.perf_counter(), time.process_time())

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None:  # read back: the step has finished on the device
                float(keras.ops.convert_to_numpy(loss))
            wall, cpu = time.perf_counter() - self.began[0], time.process_time() - self.began[1]
            last_in_epoch = batch + 1 == steps_per_epoch
            self.steps.append([wall, cpu, int(partial and last_in_epoch)])
            self.done += 1
            if len(self.steps) == block or self.done == steps_per_epoch * epochs:
                send(event="block", steps=self.steps, last=self.done == steps_per_epoch * epochs)
                self.steps = []
                if self.done < steps_per_epoch * epochs:
                    wait_for_go()

    return Pacer()


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


def run(command: dict[str, Any]) -> None:
    """Build one run, answer `ready`, then train it block by block as the driver says."""
    from bench.training.budgets import get_budget
    from bench.training.trainer import BATCH_SIZE, Trainer

    budget = get_budget(command["budget"], epochs=command.get("epochs"),
                        train_samples=command.get("train_samples"))  # fmt: skip
    planted = _plant(command.get("plant", "none"))
    extra = planted.pop("callbacks", [])
    trainer = Trainer(command["arch"], budget, command["seed"], precision=command["precision"],
                      write=lambda line: None, **planted)  # fmt: skip
    samples = len(trainer.x)
    steps_per_epoch = math.ceil(samples / BATCH_SIZE)
    pacer = _pacer(command["block"], steps_per_epoch, budget.epochs, samples % BATCH_SIZE != 0)
    trainer.callbacks = [*trainer.callbacks, *extra, pacer]  # the pacer last: it times them
    with trainer:
        send(event="ready", precision=trainer.precision, params=trainer.model.count_params(),
             data=_digest(trainer.x, trainer.y, trainer.xt, trainer.yt),
             steps=steps_per_epoch * budget.epochs)  # fmt: skip
        wait_for_go()
        while trainer.epochs_left > 0:
            trainer.train_epoch()
            trainer.evaluate_epoch()
        record = trainer.finish()
    epochs = [[e.loss, e.accuracy, e.val_loss, e.val_accuracy] for e in record.epochs]
    final = [record.final.test_loss, record.final.test_accuracy] if record.final else None
    send(event="done", status=record.status, epochs=epochs, final=final)


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
            run(command)
        except SystemExit:
            raise
        except Abandoned:
            send(event="abandoned")
        except BaseException as error:
            send(event="error", message=f"{type(error).__name__}: {error}",
                 traceback=traceback.format_exc()[-3000:])  # fmt: skip


if __name__ == "__main__":
    main()
