"""One training run: the notebook's recipe under a named budget, deterministic and resumable.

The recipe is the notebook's: Adam with Keras' defaults, categorical cross-entropy, accuracy,
batch size 128, evaluation on the test set after every epoch, then a final evaluation.

`Trainer` drives one run epoch by epoch; its folder (`bench.training.runfolder`) keeps the
checkpoint and the record, and `bench.measurement.after_run` takes the measurements after the
run. Training and evaluation are timed apart (Keras' printed step time includes validation,
keras issue 16286). Each epoch's shuffle and each dropout layer's random state derive from (seed,
epoch), so a run that resumes from its last checkpoint replays exactly the epochs it has
left and ends with the same history as an uninterrupted one.

The contract with other commits. A paired comparison or a bisection drives the `Trainer` of
another commit of this repository (the base's tree, with the head's
`bench/compare/side_process.py`), so these stay as they are, or that file learns both forms:
`Trainer(arch_id, budget, seed, *, out_dir=None, precision=..., data=..., callbacks=...,
write=..., learning_rate=...)` (budget a `Budget` or its name), the attributes `callbacks`
(a list the side process appends to; the training clock must stay last, and the side
process attaches the head's clock last where a trainer has none), `x`, `y`, `xt`, `yt`,
`model`, `precision`, `epochs_left`, `clock` (optional), the methods `start`, `train_epoch`,
`evaluate_epoch`, `evaluate` (older: `_evaluate`), `finish` and its record's `epochs` and
`final`, and the module's `BATCH_SIZE` and `default_data` (with `bench.data.preprocess`: the
accuracy verdict's metrics on the whole test split). Tested against a commit from before the
training clock (`tests/test_compare.py`) and by every bisection across commits.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from archs import REGISTRY
from bench.budgets import (
    BATCH_SIZE,
    DEFAULT_BUDGET,
    EVAL_BATCH_SIZE,
    LEARNING_RATE,
    Budget,
    get_budget,
)
from bench.data import Arrays, dataset_fingerprint, load_mnist, preprocess
from bench.measurement import after_run as measure
from bench.measurement import metrics, provenance
from bench.measurement.memory import reset_device_peak
from bench.storage import targets
from bench.storage.records import (
    ArchInfo,
    BudgetInfo,
    Config,
    Divergence,
    Epoch,
    Evaluation,
    Final,
    Placement,
    RunRecord,
    Weights,
)
from bench.training.clock import EpochTimes, TrainingClock
from bench.training.precisions import DEFAULT_PRECISION, resolve
from bench.training.progress import LiveProgress, Writer, stderr_writer
from bench.training.runfolder import RunFolder


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run was stopped and recorded as diverged."""


class StopOnNonFinite(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN, remembering the batch and loss where it stopped the run."""

    def __init__(self) -> None:
        super().__init__()
        self.at: tuple[int, str] | None = None

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if self.at is None and loss is not None and not math.isfinite(float(loss)):
            self.at = (batch + 1, str(float(loss)))
        super().on_batch_end(batch, logs)


def test_metrics(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return (loss, accuracy) on the test set by inference alone.

    Unlike `model.evaluate`, this leaves the model's metric state alone, so it can run in the
    middle of an epoch without changing what the epoch reports. The loss is Keras'
    categorical cross-entropy (probabilities clipped at 1e-7).
    """
    losses, hits = [], 0
    for start in range(0, len(x), EVAL_BATCH_SIZE):
        probs = keras.ops.convert_to_numpy(model(x[start : start + EVAL_BATCH_SIZE],
                                                 training=False)).astype(np.float64)  # fmt: skip
        truth = y[start : start + EVAL_BATCH_SIZE]
        losses.append(-(truth * np.log(np.clip(probs, 1e-7, 1 - 1e-7))).sum(axis=1))
        hits += int((probs.argmax(axis=1) == truth.argmax(axis=1)).sum())
    return float(np.concatenate(losses).mean()), hits / len(x)


class IntervalEvaluation:
    """Evaluate on the test set every `every` steps inside an epoch, off the training clock.

    A hook of the clock (`TrainingClock.between_steps`): it runs after a step's reading, and
    the clock leaves its time out of the next step and of the epoch.
    """

    def __init__(self, model: keras.Model, every: int, data: tuple[np.ndarray, np.ndarray],
                 epoch: int, steps: int, trained_before: float,
                 clock: TrainingClock) -> None:  # fmt: skip
        self.model, self.every, self.data, self.epoch, self.steps = model, every, data, epoch, steps
        self.trained_before, self.clock = trained_before, clock
        self.found: list[Evaluation] = []

    def __call__(self, batch: int) -> None:
        step = batch + 1
        if step % self.every or step >= self.steps:
            return
        with self.clock.evaluation():
            loss, accuracy = test_metrics(self.model, *self.data)
        seconds = self.clock.evaluations[-1]
        trained = self.trained_before + sum(self.clock.current.wall)
        self.found.append(Evaluation(position=self.epoch - 1 + step / self.steps,
                                     train_seconds=trained, seconds=seconds, val_loss=loss,
                                     val_accuracy=accuracy))  # fmt: skip


def steady_medians(times: EpochTimes, skip: int,
                   partial: bool) -> tuple[float | None, float | None]:  # fmt: skip
    """Return the median wall and CPU seconds of an epoch's steady steps (None when none).

    The first `skip` steps (compilation and warm-up, in a process's first epoch) and a partial
    last batch (another shape) are left out.
    """
    count = len(times.wall) - (1 if partial else 0)
    wall, cpu = times.wall[skip:count], times.cpu[skip:count]
    if not wall:
        return None, None
    return float(np.median(wall)), float(np.median(cpu))


def settle_garbage() -> None:
    """Collect garbage, then freeze what survives (`gc.freeze`), between epochs.

    Keras and TensorFlow keep large object graphs alive; Python's cyclic collector rescans
    them in every full collection, which took 0.2 s here at moments of its choosing (inside a
    step, or between two) and made the same epoch 20% slower one time than the next. Frozen,
    they are not rescanned: a collection then takes about a millisecond.
    """
    gc.collect()
    gc.freeze()


def configure_determinism(seed: int) -> None:
    """Seed Python, NumPy and the backend; make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch]).integers(0, 2**31 - 1))


def _reseed_dropout(model: keras.Model, seed: int, epoch: int) -> None:
    """Set every layer's random state from (seed, epoch), so a resumed epoch replays exactly."""
    for index, layer in enumerate(model.layers):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            value = _epoch_seed(seed, epoch * 1000 + index)
            generator.state.assign(np.array([value, 0], dtype=generator.state.dtype))


def compile_model(model: keras.Model, learning_rate: float = LEARNING_RATE) -> None:
    """Compile a model with the notebook's recipe (Adam, cross-entropy, accuracy)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )


def _subset(x: np.ndarray, y: np.ndarray, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    if count is not None and count > len(x):
        raise ValueError(
            f"the budget asks for {count} samples but the split has {len(x)}; "
            f"use --train-samples {len(x)} or fewer"
        )
    return preprocess(x[:count], y[:count])


_DATA_CACHE: dict[str, Arrays] = {}


def default_data() -> Arrays:
    """Load verified MNIST once per process (from the cache after the first time)."""
    if "mnist" not in _DATA_CACHE:
        _DATA_CACHE["mnist"] = load_mnist(os.environ.get("CNNBENCH_DATA") or None)
    return _DATA_CACHE["mnist"]


class Trainer:
    """One run, driven epoch by epoch: `start`, then `train_epoch` / `evaluate_epoch`, `finish`.

    `train_run` drives it in a loop; the benchmark drives it from pytest-benchmark, timing
    only `train_epoch` and evaluating between rounds, off the clock.

    Args:
        arch_id: a registry id.
        budget: a budget name from `bench.budgets.BUDGETS`, or a Budget.
        seed: seeds weights, shuffling and dropout; the same seed gives the same history.
        out_dir: the run's folder (record, checkpoint, trained model); None keeps nothing.
            A folder that holds an unfinished run of this configuration resumes it.
        precision: a Keras dtype policy name, or `auto` (`bench.training.precisions`); the record
            stores the resolved policy.
        learning_rate: Adam's learning rate (Keras' default 0.001, as in the notebook).
        data: verified MNIST arrays; loaded with `load_mnist()` when omitted.
        callbacks: extra Keras callbacks for the training epochs (they run on the clock,
            before it: `bench.training.clock`).
        eval_callbacks: extra Keras callbacks for every evaluation (on its clock).
        write: where progress lines go.
        resume: resume an unfinished run found in `out_dir`; False starts afresh, keeping
            the folder's result until the new run finishes.
        eval_every: also evaluate on the test set every this many steps inside an epoch (off
            the training clock), so that time-to-accuracy is not rounded up to whole epochs.
        placement: for the record's provenance, how a study ran this run (`bench.study`).
        plant: the regression planted in this run, for its record (`bench.training.plants`
            gives the options that plant it, this among them).
        order_stream: 0 (the seed's own order); N > 0 shuffles the training images from
            another stream each epoch (the `data-order:N` plant, an honest change).
    """

    def __init__(
        self,
        arch_id: str,
        budget: str | Budget = DEFAULT_BUDGET,
        seed: int = 0,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        precision: str = DEFAULT_PRECISION,
        learning_rate: float = LEARNING_RATE,
        data: Arrays | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        eval_callbacks: Sequence[keras.callbacks.Callback] = (),
        write: Writer = stderr_writer,
        resume: bool = True,
        eval_every: int | None = None,
        placement: Placement | None = None,
        plant: str = "none",
        order_stream: int = 0,
    ) -> None:
        if arch_id not in REGISTRY:
            raise ValueError(f"Unknown architecture {arch_id!r}. Valid ids: {', '.join(REGISTRY)}")
        self.spec = REGISTRY[arch_id]
        self.budget = get_budget(budget) if isinstance(budget, str) else budget
        self.seed, self.precision = seed, resolve(precision)
        self.learning_rate, self.callbacks = learning_rate, list(callbacks)
        self.order_stream = order_stream
        self.eval_callbacks = list(eval_callbacks)
        self.clock = TrainingClock()
        """The run's one clock (`bench.training.clock`): steps, epochs and evaluations."""
        self.write, self.resume = write, resume
        self.placement = placement or Placement()
        self.folder = RunFolder(Path(out_dir)) if out_dir is not None else None
        self.replaces: RunFolder | None = None
        arrays = data if data is not None else default_data()
        self.data_digest = dataset_fingerprint(arrays)
        (x_train, y_train), (x_test, y_test) = arrays
        self.x, self.y = _subset(x_train, y_train, self.budget.train_samples)
        self.xt, self.yt = _subset(x_test, y_test, self.budget.test_samples)
        self.config = Config(
            budget=BudgetInfo(**self.budget.as_dict()),
            seed=seed,
            batch_size=BATCH_SIZE,
            eval_batch_size=EVAL_BATCH_SIZE,
            optimizer="adam",
            learning_rate=learning_rate,
            precision=self.precision,
            train_samples=len(self.x),
            test_samples=len(self.xt),
            eval_every=eval_every,
            plant=plant,
        )
        self.label = f"[{arch_id} {self.budget.name} seed={seed}]"
        self.target = targets.load().for_budget(self.budget.name)  # a bad file fails now
        self.model: keras.Model | None = None
        self.record: RunRecord | None = None
        self.guard = StopOnNonFinite()
        self.divergence: Divergence | None = None
        self.pending: dict[str, Any] | None = None
        self.compiled = True
        self._previous_policy: Any = None

    @property
    def diverged(self) -> bool:
        """Whether the loss has become NaN or infinite."""
        return self.guard.at is not None

    @property
    def done_epochs(self) -> int:
        """How many epochs have been trained and evaluated."""
        return len(self.record.epochs) if self.record else 0

    @property
    def next_epoch(self) -> int:
        """The 1-based number of the epoch `train_epoch` would train next."""
        return self.done_epochs + (self.pending is not None) + 1

    @property
    def epochs_left(self) -> int:
        """How many epochs remain (0 once diverged)."""
        return 0 if self.diverged else self.budget.epochs - self.next_epoch + 1

    def __enter__(self) -> Trainer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def completed_record(self) -> RunRecord | None:
        """Return the folder's completed record of this very configuration and data, if any."""
        if self.folder is None:
            return None
        self.folder.recover()
        return self.folder.completed(self.config, self.data_digest)

    def start(self) -> None:
        """Set the precision policy and seeds; resume from a checkpoint or build afresh.

        A folder's record is resumed from (same configuration, `resume`) or kept: the run
        then trains in the folder's rerun folder and replaces it only when it finishes.
        """
        self._previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)
        configure_determinism(self.seed)
        reset_device_peak()
        if self.folder is not None:
            self.folder.path.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now
            self.folder.recover()
            previous = self.folder.load_or_set_aside(self.write)
            if previous is not None and self.resume:
                if previous.config != self.config:
                    raise ValueError(
                        f"{self.folder.record} holds a run with another configuration; use "
                        f"another output folder, or --force to replace it once this run "
                        f"finishes. Stored: {previous.config}; asked: {self.config}"
                    )
                self.model = self.folder.resume(previous, self.write)
                if self.model is not None:
                    self.write(f"{self.label} resuming from "
                               f"{self.folder.checkpoint(len(previous.epochs))} after epoch "
                               f"{len(previous.epochs)}")  # fmt: skip
                    self.record = previous
                    settle_garbage()
                    return
            if previous is not None:  # a result to keep until this run finishes
                self.replaces, self.folder = self.folder, self.folder.rerun
                self.folder.start_afresh()
        configure_determinism(self.seed)  # again: a rejected checkpoint's load drew from it
        self.model = self.spec.build()
        compile_model(self.model, self.learning_rate)
        arch = ArchInfo(
            id=self.spec.arch_id,
            section=self.spec.section,
            params=self.model.count_params(),
            conv_layers=self.spec.conv_layers,
            dropout=self.spec.dropout,
            batch_norm=self.spec.batch_norm,
        )
        prov = provenance.collect(self.seed, self.precision, self.data_digest,
                                  **dataclasses.asdict(self.placement))  # fmt: skip
        self.record = RunRecord.start(arch, self.config, prov)
        settle_garbage()

    def _started(self) -> tuple[keras.Model, RunRecord]:
        if self.model is None or self.record is None:
            raise RuntimeError(f"{self.label}: call start() (or use `with Trainer(...)`) first")
        return self.model, self.record

    def close(self) -> None:
        """Restore the dtype policy that was in force before `start`."""
        if self._previous_policy is not None:
            keras.config.set_dtype_policy(self._previous_policy)
            self._previous_policy = None

    def train_epoch(self) -> None:
        """Train the next epoch (and nothing else, so that timing it times training only)."""
        if self.pending is not None:
            self.evaluate_epoch()
        if self.epochs_left <= 0:
            return
        model, _ = self._started()
        epoch = self.next_epoch
        stream = [self.seed, epoch] + ([self.order_stream] if self.order_stream else [])
        order = np.random.default_rng(stream).permutation(len(self.x))
        _reseed_dropout(model, self.seed, epoch)
        steps = math.ceil(len(self.x) / BATCH_SIZE)
        progress = LiveProgress(self.label, epoch, self.budget.epochs, steps, self.write)
        interval = None
        if self.config.eval_every:
            trained = sum(e.train_seconds for e in self._started()[1].epochs)
            interval = IntervalEvaluation(model, self.config.eval_every, (self.xt, self.yt),
                                          epoch, steps, trained, self.clock)  # fmt: skip
            self.clock.between_steps(interval)
        self.clock.start_epoch()
        try:
            history = model.fit(
                self.x[order],
                self.y[order],
                batch_size=BATCH_SIZE,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[self.guard, progress, *self.callbacks, self.clock],  # the clock last
            )
        finally:
            seconds = self.clock.stop_epoch()
            if interval is not None:
                self.clock.hooks.remove(interval)
            settle_garbage()
        if self.guard.at is not None:
            self.write(f"{self.label} DIVERGED in epoch {epoch} at batch {self.guard.at[0]}")
            self.divergence = Divergence(epoch, *self.guard.at)
            return
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        skip = metrics.WARMUP_STEPS if self.compiled else 0
        steps_timed = steady_medians(self.clock.current, skip, len(self.x) % BATCH_SIZE != 0)
        self.pending = {"epoch": epoch, "logs": logs, "train_seconds": seconds,
                        "evaluations": interval.found if interval else [],
                        "steps": steps_timed}  # fmt: skip

    def evaluate(self) -> dict[str, float]:
        """Evaluate the model on the test set, on the clock; return Keras' logs (loss, accuracy).

        Part of the contract the paired comparison relies on (`bench.compare.side_process`).
        """
        model, _ = self._started()
        with self.clock.evaluation():
            return model.evaluate(self.xt, self.yt, batch_size=EVAL_BATCH_SIZE, verbose=0,
                                  return_dict=True,
                                  callbacks=[*self.eval_callbacks, self.clock])  # fmt: skip

    _evaluate = evaluate  # the name older comparison scripts call

    def evaluate_epoch(self) -> None:
        """Evaluate on the test set after the last trained epoch; record it; checkpoint."""
        if self.pending is None:
            return
        model, record = self._started()
        pending, self.pending = self.pending, None
        evaluated = self.evaluate()
        epoch, logs, train_seconds = pending["epoch"], pending["logs"], pending["train_seconds"]
        for evaluation in pending["evaluations"]:
            record = record.with_evaluation(evaluation)
        self.record = record.with_epoch(
            Epoch(
                epoch=epoch,
                loss=logs["loss"],
                accuracy=logs["accuracy"],
                val_loss=float(evaluated["loss"]),
                val_accuracy=float(evaluated["accuracy"]),
                train_seconds=train_seconds,
                eval_seconds=self.clock.evaluations[-1],
                compiled=self.compiled,
                step_seconds=pending["steps"][0],
                step_cpu_seconds=pending["steps"][1],
            )
        )
        self.compiled = False
        left = (self.budget.epochs - epoch) * (train_seconds + self.record.epochs[-1].eval_seconds)
        self.write(
            f"{self.label} epoch {epoch}/{self.budget.epochs} loss {logs['loss']:.4f} "
            f"acc {logs['accuracy']:.4f} val_loss {evaluated['loss']:.4f} "
            f"val_acc {evaluated['accuracy']:.4f} train {train_seconds:.1f}s ~{left:.0f}s left"
        )
        if self.folder is not None and epoch < self.budget.epochs:
            self.folder.save_epoch(model, self.record)

    def run_to_end(self) -> RunRecord:
        """Train and evaluate every epoch left, then `finish`: one run's loop, written once.

        The side process of a comparison keeps its own loop (it must drive older trainers,
        which lack this method, and brackets each epoch with the head's clock).
        """
        while self.epochs_left > 0:
            self.train_epoch()
            self.evaluate_epoch()
        return self.finish()

    def finish(self) -> RunRecord:
        """Evaluate the final model, measure, write the record and model; return the record."""
        self.evaluate_epoch()
        model, record = self._started()
        weights = Weights(
            file=self.folder.model.name if self.folder else None,
            layers=measure.weight_summaries(model),
        )
        timing = measure.timing(model, self.precision)
        target = self.target
        reached = metrics.time_to_target(record, target.test_accuracy) if target else None
        if self.diverged:
            record = record.finished(timing, weights, divergence=self.divergence,
                                     time_to_target=reached)  # fmt: skip
        elif self.epochs_left == 0:
            final = self.evaluate()
            result = Final(test_loss=float(final["loss"]), test_accuracy=float(final["accuracy"]))
            record = record.finished(timing, weights, final=result, time_to_target=reached)
        self.record = record
        if self.folder is not None:
            self.folder.save_final(model, record)
            if self.replaces is not None:
                self.replaces.replace_with(self.folder)
                self.folder, self.replaces = self.replaces, None
        return record


def train_run(
    arch_id: str,
    budget: str | Budget = DEFAULT_BUDGET,
    seed: int = 0,
    *,
    raise_on_divergence: bool = False,
    keep_completed: bool = False,
    **options: Any,
) -> RunRecord:
    """Train one architecture under one budget and seed; return (and write) its record.

    Keyword options are those of `Trainer`. With `raise_on_divergence`, a run whose loss
    becomes NaN or infinite raises TrainingDiverged after its record has been written. With
    `keep_completed`, a folder that already holds the completed record of this configuration
    is returned as it is instead of being trained again.
    """
    trainer = Trainer(arch_id, budget, seed, **options)
    if keep_completed:
        kept = trainer.completed_record()
        if kept is not None and trainer.folder is not None:
            trainer.write(f"{trainer.label} kept {trainer.folder.record}: already completed")
            return kept
    with trainer:
        record = trainer.run_to_end()
    if record.status == "diverged" and raise_on_divergence:
        raise TrainingDiverged(f"{trainer.label} diverged: {record.divergence}")
    return record
