"""One training run: the notebook's recipe under a named budget, deterministic and resumable.

The recipe is the notebook's: Adam with Keras' defaults, categorical cross-entropy, accuracy,
batch size 128, evaluation on the test set after every epoch, then a final evaluation.

Training and evaluation are timed apart (Keras' printed step time includes validation, keras
issue 16286). Each epoch's shuffle and each dropout layer's random state are derived from
(seed, epoch), so an interrupted run that resumes from its last checkpoint replays exactly the
epochs it has left and ends with the same history as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from archs import REGISTRY, ArchSpec
from bench import provenance, records
from bench.budgets import DEFAULT_BUDGET, Budget, get_budget
from bench.data import Arrays, dataset_fingerprint, load_mnist, preprocess
from bench.flops import training_flops
from bench.memory import device_peak_mb, host_peak_rss_mb, reset_device_peak
from bench.peak import compute_dtype, matmul_peak
from bench.precisions import DEFAULT_PRECISION, resolve

BATCH_SIZE = 128
EVAL_BATCH_SIZE = 1024
CHECKPOINT = "checkpoint.keras"
RECORD = "record.json"
MODEL_FILE = "model.keras"

Writer = Callable[[str], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run was stopped and recorded as diverged."""


class DivergenceGuard(keras.callbacks.Callback):
    """Stop training at the first batch whose loss is not finite, and remember where."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.at: dict[str, Any] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.at = {"epoch": self.epoch + 1, "batch": batch + 1, "loss": str(float(loss))}
            self.model.stop_training = True


class LiveProgress(keras.callbacks.Callback):
    """Print a line every few seconds within an epoch: epoch x/N, batch, loss, accuracy, ETA."""

    def __init__(self, label: str, epoch: int, epochs: int, steps: int, write: Writer) -> None:
        super().__init__()
        self.label, self.epoch, self.epochs, self.steps, self.write = (
            label,
            epoch,
            epochs,
            steps,
            write,
        )
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


def stderr_writer(line: str) -> None:
    """Write a progress line to standard error, flushed."""
    print(line, file=sys.stderr, flush=True)


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


def weight_summaries(model: keras.Model) -> list[dict[str, Any]]:
    """Summarise each conv and dense kernel: moments, quantiles and a histogram, for violins.

    Non-finite weights (a diverged run) are counted and left out of the statistics.
    """
    quantile_levels = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    layers = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = keras.ops.convert_to_numpy(kernel).astype(np.float64).ravel()
        finite = values[np.isfinite(values)]
        summary: dict[str, Any] = {
            "name": layer.name,
            "kind": type(layer).__name__,
            "shape": list(kernel.shape),
            "count": int(values.size),
            "non_finite": int(values.size - finite.size),
        }
        if finite.size:
            counts, edges = np.histogram(finite, bins=64)
            quantiles = np.quantile(finite, quantile_levels)
            summary |= {
                "mean": float(finite.mean()),
                "std": float(finite.std()),
                "min": float(finite.min()),
                "max": float(finite.max()),
                "quantiles": {
                    str(q): float(v) for q, v in zip(quantile_levels, quantiles, strict=True)
                },
                "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            }
        layers.append(summary)
    return layers


def _timing(epochs: list[dict[str, Any]], train_samples: int) -> dict[str, Any]:
    """Return first (compiling) epochs apart from steady-state ones, and steady throughput.

    `best_*` uses the fastest steady epoch: on shared machines a whole epoch is sometimes
    throttled (seen here: 3.1's epochs at either ~11 s or ~20.5 s), and the fastest epoch is
    the robust estimate of what the code achieves, as pytest-benchmark's `min` is.
    """
    first = [e["train_seconds"] for e in epochs if e["compiled"]]
    steady = [e["train_seconds"] for e in epochs if not e["compiled"]]
    median = statistics.median(steady) if steady else None
    best = min(steady) if steady else None
    return {
        "first_epoch_seconds": first[0] if first else None,
        "steady_epoch_seconds": median,
        "best_epoch_seconds": best,
        "steady_epochs": len(steady),
        "steady_samples_per_second": train_samples / median if median else None,
        "best_samples_per_second": train_samples / best if best else None,
        "train_seconds_total": sum(e["train_seconds"] for e in epochs),
        "eval_seconds_total": sum(e["eval_seconds"] for e in epochs),
    }


def _efficiency(
    model: keras.Model, epochs: list[dict[str, Any]], train_samples: int, precision: str
) -> dict[str, Any]:
    """Return achieved training FLOP/s (fastest steady epoch) and its fraction of the peak.

    The peak is probed right after each run, in the same process, so that both numbers see
    the same machine state (another job starting later on a shared machine moves both).
    `peaks` also holds float32's and bfloat16's, so that runs in either precision can be set
    against the device's two main limits.
    """
    dtype = compute_dtype(precision)
    peaks = {name: matmul_peak(name) for name in dict.fromkeys((dtype, "float32", "bfloat16"))}
    peak = peaks[dtype]
    per_sample = training_flops(model)
    steady = [e["train_seconds"] for e in epochs if not e["compiled"]]
    achieved = per_sample * train_samples / min(steady) if steady else None
    return {
        "training_flops_per_sample": per_sample,
        "achieved_flops": achieved,
        "peak_flops": peak,
        "peak_dtype": dtype,
        "peaks": peaks,
        "efficiency": achieved / peak if achieved else None,
        "peak_rss_mb": host_peak_rss_mb(),
        "peak_device_memory_mb": device_peak_mb(),
    }


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )


def _subset(x: np.ndarray, y: np.ndarray, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    if count is not None and count > len(x):
        raise ValueError(f"budget asks for {count} samples but the split has {len(x)}")
    return preprocess(x[:count], y[:count])


_DATA_CACHE: dict[str, Arrays] = {}


def default_data() -> Arrays:
    """Load verified MNIST once per process (from the cache after the first time)."""
    if "mnist" not in _DATA_CACHE:
        _DATA_CACHE["mnist"] = load_mnist(os.environ.get("CNNBENCH_DATA") or None)
    return _DATA_CACHE["mnist"]


def _resume_state(
    run_dir: Path, config: dict[str, Any], write: Writer, label: str
) -> tuple[list[dict[str, Any]], keras.Model | None]:
    record_path, checkpoint = run_dir / RECORD, run_dir / CHECKPOINT
    if not record_path.exists():
        return [], None
    previous = records.load(record_path)
    if previous["config"] != config:
        raise ValueError(
            f"{record_path} holds a run with another configuration; use another output folder "
            f"or delete it. Stored: {previous['config']}; asked: {config}"
        )
    if previous["status"] != "running" or not checkpoint.exists():
        return [], None
    epochs = previous["epochs"]
    write(f"{label} resuming from {checkpoint} after epoch {len(epochs)}")
    return epochs, keras.models.load_model(checkpoint)


def _save_checkpoint(model: keras.Model, run_dir: Path) -> None:
    temp = run_dir / f".{CHECKPOINT}.tmp.keras"
    model.save(temp)
    os.replace(temp, run_dir / CHECKPOINT)


class Trainer:
    """One run, driven epoch by epoch: `start`, then `train_epoch` / `evaluate_epoch`, `finish`.

    `train_run` drives it in a loop; the benchmark drives it from pytest-benchmark, timing
    only `train_epoch` and evaluating between rounds, off the clock.

    Args:
        arch_id: a registry id.
        budget: a budget name from `bench.budgets.BUDGETS`, or a Budget.
        seed: seeds weights, shuffling and dropout; the same seed gives the same history.
        out_dir: where the record, checkpoint and trained model go (`<out_dir>/record.json`).
            A run whose folder holds an unfinished record resumes after its last epoch.
        precision: a Keras dtype policy name (float32, mixed_bfloat16, mixed_float16), or
            `auto` (the default): the fastest policy measured to keep float32's accuracy on
            this kind of device (`bench.precisions`). The record stores the resolved policy.
        learning_rate: Adam's learning rate (Keras' default 0.001, as in the notebook).
        data: verified MNIST arrays; loaded with `load_mnist()` when omitted.
        callbacks: extra Keras callbacks for the training epochs.
        write: where progress lines go.
        resume: resume an unfinished run found in `out_dir` (else start afresh).
    """

    def __init__(
        self,
        arch_id: str,
        budget: str | Budget = DEFAULT_BUDGET,
        seed: int = 0,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        precision: str = DEFAULT_PRECISION,
        learning_rate: float = 0.001,
        data: Arrays | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        write: Writer = stderr_writer,
        resume: bool = True,
    ) -> None:
        if arch_id not in REGISTRY:
            raise ValueError(f"Unknown architecture {arch_id!r}. Valid ids: {', '.join(REGISTRY)}")
        precision = resolve(precision)
        self.spec: ArchSpec = REGISTRY[arch_id]
        self.budget = get_budget(budget) if isinstance(budget, str) else budget
        self.seed, self.precision, self.learning_rate = seed, precision, learning_rate
        self.callbacks, self.write, self.resume = list(callbacks), write, resume
        self.run_dir = Path(out_dir) if out_dir is not None else None
        arrays = data if data is not None else default_data()
        self.data_digest = dataset_fingerprint(arrays)
        (x_train, y_train), (x_test, y_test) = arrays
        self.x, self.y = _subset(x_train, y_train, self.budget.train_samples)
        self.xt, self.yt = _subset(x_test, y_test, self.budget.test_samples)
        self.config = {
            "budget": self.budget.as_dict(),
            "seed": seed,
            "batch_size": BATCH_SIZE,
            "eval_batch_size": EVAL_BATCH_SIZE,
            "optimizer": "adam",
            "learning_rate": learning_rate,
            "precision": precision,
            "train_samples": len(self.x),
            "test_samples": len(self.xt),
        }
        self.label = f"[{arch_id} {self.budget.name} seed={seed}]"
        self.model: keras.Model | None = None
        self.epochs: list[dict[str, Any]] = []
        self.guard = DivergenceGuard()
        self.pending: dict[str, Any] | None = None
        self.compiled = True
        self.document: dict[str, Any] = {}
        self._previous_policy: Any = None

    @property
    def diverged(self) -> bool:
        """Whether the loss has become NaN or infinite."""
        return self.guard.at is not None

    @property
    def next_epoch(self) -> int:
        """The 1-based number of the epoch `train_epoch` would train next."""
        return len(self.epochs) + (self.pending is not None) + 1

    @property
    def epochs_left(self) -> int:
        """How many epochs remain (0 once diverged)."""
        return 0 if self.diverged else self.budget.epochs - self.next_epoch + 1

    def __enter__(self) -> Trainer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Set the precision policy and seeds; resume from a checkpoint or build afresh."""
        self._previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)
        configure_determinism(self.seed)
        reset_device_peak()
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                for name in (RECORD, CHECKPOINT, MODEL_FILE):
                    (self.run_dir / name).unlink(missing_ok=True)
            self.epochs, self.model = _resume_state(
                self.run_dir, self.config, self.write, self.label
            )
        if self.model is None:
            self.epochs = []
            self.model = self.spec.build()
            _compile(self.model, self.learning_rate)
        self.document = {
            "schema": records.SCHEMA,
            "version": records.VERSION,
            "status": "running",
            "arch": {
                "id": self.spec.arch_id,
                "section": self.spec.section,
                "params": self.model.count_params(),
                "conv_layers": self.spec.conv_layers,
                "dropout": self.spec.dropout,
                "batch_norm": self.spec.batch_norm,
            },
            "config": self.config,
            "epochs": self.epochs,
            "timing": {},
            "final": {},
            "weights": {},
            "divergence": None,
            "provenance": {
                **provenance.collect(seed=self.seed, precision=self.precision),
                "data_digest": self.data_digest,
            },
        }

    def _started(self) -> keras.Model:
        if self.model is None:
            raise RuntimeError(f"{self.label}: call start() (or use `with Trainer(...)`) first")
        return self.model

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
        model = self._started()
        epoch = self.next_epoch
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
        _reseed_dropout(model, self.seed, epoch)
        steps = math.ceil(len(self.x) / BATCH_SIZE)
        progress = LiveProgress(self.label, epoch, self.budget.epochs, steps, self.write)
        started = time.perf_counter()
        history = model.fit(
            self.x[order],
            self.y[order],
            batch_size=BATCH_SIZE,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[self.guard, progress, *self.callbacks],
        )
        seconds = time.perf_counter() - started
        if self.guard.at is not None:
            self.guard.at["epoch"] = epoch
            self.document["status"] = "diverged"
            self.document["divergence"] = self.guard.at
            self.write(f"{self.label} DIVERGED at {self.guard.at}")
            return
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        self.pending = {"epoch": epoch, "logs": logs, "train_seconds": seconds}

    def evaluate_epoch(self) -> None:
        """Evaluate on the test set after the last trained epoch; record it; checkpoint."""
        if self.pending is None:
            return
        model = self._started()
        pending, self.pending = self.pending, None
        started = time.perf_counter()
        evaluated = model.evaluate(
            self.xt, self.yt, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True
        )
        eval_seconds = time.perf_counter() - started
        epoch, logs = pending["epoch"], pending["logs"]
        self.epochs.append(
            {
                "epoch": epoch,
                "loss": logs["loss"],
                "accuracy": logs["accuracy"],
                "val_loss": float(evaluated["loss"]),
                "val_accuracy": float(evaluated["accuracy"]),
                "train_seconds": pending["train_seconds"],
                "eval_seconds": eval_seconds,
                "compiled": self.compiled,
            }
        )
        self.compiled = False
        left = (self.budget.epochs - epoch) * (pending["train_seconds"] + eval_seconds)
        self.write(
            f"{self.label} epoch {epoch}/{self.budget.epochs} loss {logs['loss']:.4f} "
            f"acc {logs['accuracy']:.4f} val_loss {evaluated['loss']:.4f} "
            f"val_acc {evaluated['accuracy']:.4f} train {pending['train_seconds']:.1f}s "
            f"~{left:.0f}s left"
        )
        if self.run_dir is not None and epoch < self.budget.epochs:
            _save_checkpoint(model, self.run_dir)
            records.save(self.document, self.run_dir / RECORD)

    def finish(self) -> dict[str, Any]:
        """Evaluate the final model, fill in timing and weights, write the record; return it."""
        self.evaluate_epoch()
        model = self._started()
        document = self.document
        document["timing"] = _timing(self.epochs, len(self.x)) | _efficiency(
            model, self.epochs, len(self.x), self.precision
        )
        if document["status"] == "running" and self.epochs_left == 0:
            final = model.evaluate(
                self.xt, self.yt, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True
            )
            document["final"] = {
                "test_loss": float(final["loss"]),
                "test_accuracy": float(final["accuracy"]),
            }
            document["status"] = "completed"
        document["weights"] = {
            "file": MODEL_FILE if self.run_dir is not None else None,
            "layers": weight_summaries(model),
        }
        if self.run_dir is not None:
            temp = self.run_dir / f".{MODEL_FILE}.tmp.keras"
            model.save(temp)
            os.replace(temp, self.run_dir / MODEL_FILE)
            records.save(document, self.run_dir / RECORD)
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        else:
            records.validate(records.finite_or_none(document))
        return document


def completed_record(trainer: Trainer) -> dict[str, Any] | None:
    """Return the completed record in the trainer's folder if it ran this very configuration.

    Same configuration (budget, seed, precision as resolved, recipe) and the same data digest;
    anything else is None, and the run trains (or resumes) as usual.
    """
    if trainer.run_dir is None or not (trainer.run_dir / RECORD).exists():
        return None
    try:
        previous = records.load(trainer.run_dir / RECORD)
    except records.RecordError:
        return None
    same = (
        previous["status"] == "completed"
        and previous["config"] == trainer.config
        and previous["provenance"]["data_digest"] == trainer.data_digest
    )
    return previous if same else None


def train_run(
    arch_id: str,
    budget: str | Budget = DEFAULT_BUDGET,
    seed: int = 0,
    *,
    raise_on_divergence: bool = False,
    keep_completed: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Train one architecture under one budget and seed; return (and write) its record.

    Keyword options are those of `Trainer`. With `raise_on_divergence`, a run whose loss
    becomes NaN or infinite raises TrainingDiverged after its record has been written. With
    `keep_completed`, a folder that already holds the completed record of this configuration
    is returned as it is instead of being trained again.
    """
    trainer = Trainer(arch_id, budget, seed, **options)
    if keep_completed:
        kept = completed_record(trainer)
        if kept is not None:
            trainer.write(f"{trainer.label} kept {trainer.run_dir / RECORD}: already completed")
            return kept
    with trainer:
        while trainer.epochs_left > 0:
            trainer.train_epoch()
            trainer.evaluate_epoch()
        document = trainer.finish()
    if document["status"] == "diverged" and raise_on_divergence:
        raise TrainingDiverged(f"{trainer.label} diverged: {document['divergence']}")
    return document
