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
import resource
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
from bench.data import MNIST, Arrays, load_mnist, preprocess
from bench.flops import training_flops
from bench.peak import compute_dtype, matmul_peak

BATCH_SIZE = 128
EVAL_BATCH_SIZE = 1024
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
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
    """First (compiling) epochs apart from steady-state ones; throughput from steady epochs."""
    first = [e["train_seconds"] for e in epochs if e["compiled"]]
    steady = [e["train_seconds"] for e in epochs if not e["compiled"]]
    steady_median = statistics.median(steady) if steady else None
    return {
        "first_epoch_seconds": first[0] if first else None,
        "steady_epoch_seconds": steady_median,
        "steady_epochs": len(steady),
        "steady_samples_per_second": train_samples / steady_median if steady_median else None,
        "train_seconds_total": sum(e["train_seconds"] for e in epochs),
        "eval_seconds_total": sum(e["eval_seconds"] for e in epochs),
    }


_PEAKS: dict[str, float] = {}


def _efficiency(
    model: keras.Model, epochs: list[dict[str, Any]], train_samples: int, precision: str
) -> dict[str, Any]:
    """Achieved training FLOP/s and its fraction of the matmul peak measured in this process."""
    dtype = compute_dtype(precision)
    if dtype not in _PEAKS:
        _PEAKS[dtype] = matmul_peak(dtype)
    per_sample = training_flops(model)
    steady = [e["train_seconds"] for e in epochs if not e["compiled"]]
    achieved = per_sample * train_samples / statistics.median(steady) if steady else None
    return {
        "training_flops_per_sample": per_sample,
        "achieved_flops": achieved,
        "peak_flops": _PEAKS[dtype],
        "peak_dtype": dtype,
        "efficiency": achieved / _PEAKS[dtype] if achieved else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
    run_dir: Path, config: dict[str, Any], write: Writer
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
    write(f"resuming {config['seed']=} from {checkpoint} after epoch {len(epochs)}")
    return epochs, keras.models.load_model(checkpoint)


def _save_checkpoint(model: keras.Model, run_dir: Path) -> None:
    temp = run_dir / f".{CHECKPOINT}.tmp.keras"
    model.save(temp)
    os.replace(temp, run_dir / CHECKPOINT)


def train_run(
    arch_id: str,
    budget: str | Budget = DEFAULT_BUDGET,
    seed: int = 0,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    precision: str = "float32",
    learning_rate: float = 0.001,
    data: Arrays | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    write: Writer = stderr_writer,
    raise_on_divergence: bool = False,
) -> dict[str, Any]:
    """Train one architecture under one budget and seed; return (and write) its record.

    Args:
        arch_id: a registry id.
        budget: a budget name from `bench.budgets.BUDGETS`, or a Budget.
        seed: seeds weights, shuffling and dropout; the same seed gives the same history.
        out_dir: where the record, checkpoint and trained model go (`<out_dir>/record.json`).
            A run whose folder holds an unfinished record resumes after its last epoch.
        precision: a Keras dtype policy name (float32, mixed_bfloat16, mixed_float16).
        learning_rate: Adam's learning rate (Keras' default 0.001, as in the notebook).
        data: verified MNIST arrays; loaded with `load_mnist()` when omitted.
        callbacks: extra Keras callbacks for the training epochs.
        write: where progress lines go.
        raise_on_divergence: raise TrainingDiverged after recording a diverged run.
    """
    spec: ArchSpec = REGISTRY[arch_id] if arch_id in REGISTRY else _unknown_arch(arch_id)
    plan = get_budget(budget) if isinstance(budget, str) else budget
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}. Valid: {', '.join(PRECISIONS)}")
    (x_train, y_train), (x_test, y_test) = data if data is not None else default_data()
    x, y = _subset(x_train, y_train, plan.train_samples)
    xt, yt = _subset(x_test, y_test, plan.test_samples)
    config = {
        "budget": plan.as_dict(),
        "seed": seed,
        "batch_size": BATCH_SIZE,
        "eval_batch_size": EVAL_BATCH_SIZE,
        "optimizer": "adam",
        "learning_rate": learning_rate,
        "precision": precision,
        "train_samples": len(x),
        "test_samples": len(xt),
    }
    run_dir = Path(out_dir) if out_dir is not None else None
    label = f"[{arch_id} {plan.name} seed={seed}]"
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)

    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        configure_determinism(seed)
        epochs, model = _resume_state(run_dir, config, write) if run_dir else ([], None)
        if model is None:
            epochs = []
            model = spec.build()
            _compile(model, learning_rate)
        document = {
            "schema": records.SCHEMA,
            "version": records.VERSION,
            "status": "running",
            "arch": {
                "id": spec.arch_id,
                "section": spec.section,
                "params": model.count_params(),
                "conv_layers": spec.conv_layers,
                "dropout": spec.dropout,
                "batch_norm": spec.batch_norm,
            },
            "config": config,
            "epochs": epochs,
            "timing": {},
            "final": {},
            "weights": {},
            "divergence": None,
            "provenance": {
                **provenance.collect(seed=seed, precision=precision),
                "data_digest": MNIST.fingerprint() if data is None else "caller-supplied",
            },
        }
        guard = DivergenceGuard()
        steps = math.ceil(len(x) / BATCH_SIZE)
        compiled = True
        for epoch in range(len(epochs) + 1, plan.epochs + 1):
            order = np.random.default_rng([seed, epoch]).permutation(len(x))
            _reseed_dropout(model, seed, epoch)
            progress = LiveProgress(label, epoch, plan.epochs, steps, write)
            started = time.perf_counter()
            history = model.fit(
                x[order],
                y[order],
                batch_size=BATCH_SIZE,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[guard, progress, *callbacks],
            )
            train_seconds = time.perf_counter() - started
            logs = {key: float(values[-1]) for key, values in history.history.items()}
            if guard.at is not None:
                guard.at["epoch"] = epoch
                document["status"] = "diverged"
                document["divergence"] = guard.at
                break
            started = time.perf_counter()
            evaluated = model.evaluate(
                xt, yt, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True
            )
            eval_seconds = time.perf_counter() - started
            epochs.append(
                {
                    "epoch": epoch,
                    "loss": logs["loss"],
                    "accuracy": logs["accuracy"],
                    "val_loss": float(evaluated["loss"]),
                    "val_accuracy": float(evaluated["accuracy"]),
                    "train_seconds": train_seconds,
                    "eval_seconds": eval_seconds,
                    "compiled": compiled,
                }
            )
            compiled = False
            write(
                f"{label} epoch {epoch}/{plan.epochs} loss {logs['loss']:.4f} "
                f"acc {logs['accuracy']:.4f} val_loss {evaluated['loss']:.4f} "
                f"val_acc {evaluated['accuracy']:.4f} train {train_seconds:.1f}s "
                f"~{(plan.epochs - epoch) * (train_seconds + eval_seconds):.0f}s left"
            )
            if run_dir is not None and epoch < plan.epochs:
                _save_checkpoint(model, run_dir)
                records.save(document, run_dir / RECORD)
        document["timing"] = _timing(epochs, len(x)) | _efficiency(model, epochs, len(x), precision)
        if document["status"] == "running":
            final = model.evaluate(xt, yt, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
            document["final"] = {
                "test_loss": float(final["loss"]),
                "test_accuracy": float(final["accuracy"]),
            }
            document["status"] = "completed"
        document["weights"] = {
            "file": MODEL_FILE if run_dir is not None else None,
            "layers": weight_summaries(model),
        }
        if run_dir is not None:
            model.save(run_dir / f".{MODEL_FILE}.tmp.keras")
            os.replace(run_dir / f".{MODEL_FILE}.tmp.keras", run_dir / MODEL_FILE)
            records.save(document, run_dir / RECORD)
            (run_dir / CHECKPOINT).unlink(missing_ok=True)
        else:
            records.validate(records._finite_or_none(document))
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if document["status"] == "diverged":
        write(f"{label} DIVERGED at {document['divergence']}")
        if raise_on_divergence:
            raise TrainingDiverged(f"{label} diverged: {document['divergence']}")
    return document


def _unknown_arch(arch_id: str) -> ArchSpec:
    raise ValueError(f"Unknown architecture {arch_id!r}. Valid ids: {', '.join(REGISTRY)}")
