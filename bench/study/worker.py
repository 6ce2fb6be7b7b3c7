"""One run of a study, trained in a process of its own; and the probe behind the estimate.

A fresh process per run keeps runs apart: Keras' backend, dtype policy and seeds are
process-wide, TensorFlow holds on to GPU memory until its process exits, and each run's
first epoch then pays for compilation the same way. The local executor starts
`python -m bench.study.worker SPEC FOLDER` for each run; the Ray executor calls `train` in a
Ray worker process that runs one task only (`max_calls=1`).

Exit status of the command: 0 completed (or kept), 1 diverged, 2 an error (one line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.storage.records import Placement, RunRecord
from bench.study.plan import RunSpec


def train(
    spec: RunSpec, folder: Path, *, data: Any = None, placement: Placement | None = None
) -> RunRecord:
    """Train (or resume, or keep) one run in `folder`; return its record.

    The Keras backend must be chosen (`KERAS_BACKEND`) before this process imports Keras.
    """
    from bench.training.trainer import train_run

    return train_run(
        spec.arch, spec.resolved_budget(), spec.seed, out_dir=folder, precision=spec.precision,
        data=data, keep_completed=True, resume=True, eval_every=spec.eval_every,
        placement=placement,
    )  # fmt: skip


def _costs(arch: str, precision: str) -> dict[str, float]:
    """Time a steady training step, the first step's extra, and an evaluation batch."""
    import keras
    import numpy as np

    from archs import REGISTRY
    from bench.training.trainer import BATCH_SIZE, EVAL_BATCH_SIZE, compile_model

    keras.config.set_dtype_policy(precision)
    model = REGISTRY[arch].build()
    compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH_SIZE, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH_SIZE)]
    began = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - began
    steps, began = 0, time.perf_counter()
    while steps < 3 or (time.perf_counter() - began < 1.0 and steps < 20):
        model.train_on_batch(x, y)
        steps += 1
    step = (time.perf_counter() - began) / steps
    batch = rng.random((EVAL_BATCH_SIZE, 28, 28, 1), dtype=np.float32)
    keras.ops.convert_to_numpy(model(batch, training=False))
    began = time.perf_counter()
    keras.ops.convert_to_numpy(model(batch, training=False))
    evaluate = time.perf_counter() - began
    return {"step": step, "compile": max(first - step, 0.0), "eval_batch": evaluate}


PROBE_EPOCHS = (1, 3)
"""The two tiny runs the probe trains (2 steps an epoch), whose difference is an epoch's cost."""


def _overheads(arch: str, precision: str, cost: dict[str, float],
               data: Any) -> tuple[float, float]:  # fmt: skip
    """Return what a run and an epoch cost beyond their steps, evaluations and compilation.

    Two real runs of `arch` through `train_run` (2 steps an epoch, one evaluation batch),
    of 1 and 3 epochs: what an epoch adds beyond its steps and evaluation (`fit`'s set-up and
    teardown, the checkpoint, the record) is their difference; what a run adds (building the
    model, the measurements after it, saving it) is the rest of the shorter one.
    """
    import tempfile

    from bench.budgets import Budget
    from bench.training.trainer import BATCH_SIZE, EVAL_BATCH_SIZE, train_run

    walls = []
    for epochs in PROBE_EPOCHS:
        budget = Budget("probe", epochs, 2 * BATCH_SIZE, EVAL_BATCH_SIZE)
        with tempfile.TemporaryDirectory(prefix="cnnbench-probe-") as folder:
            began = time.perf_counter()
            train_run(arch, budget, 0, out_dir=Path(folder), precision=precision, data=data,
                      write=lambda line: None)  # fmt: skip
            walls.append(time.perf_counter() - began)
    short, long = PROBE_EPOCHS
    inside = 2 * cost["step"] + cost["eval_batch"]  # an epoch's steps and its evaluation
    epoch = max((walls[1] - walls[0]) / (long - short) - inside, 0.0)
    run = max(walls[0] - cost["compile"] - short * (inside + epoch) - cost["eval_batch"], 0.0)
    return run, epoch


def probe(backend: str, precisions: list[str], archs: list[str]) -> dict[str, Any]:
    """Measure, in a fresh process like a run's, what runs cost on this machine.

    `startup_seconds` covers importing the backend and loading the data; `run_seconds` what a
    run adds beyond its epochs (building, the measurements after it, the matmul peaks among
    them, saving), `epoch_seconds` what an epoch adds beyond its steps and evaluation (`fit`'s
    set-up and teardown, the checkpoint); `costs` gives, per precision as asked and
    architecture, the seconds of a training step, of the first step's compilation and of an
    evaluation batch (`bench.study.estimate`).
    """
    started = time.perf_counter()
    os.environ["KERAS_BACKEND"] = backend
    import dataclasses

    from bench.measurement import provenance
    from bench.measurement.peak import matmul_peak
    from bench.training.precisions import resolve
    from bench.training.trainer import default_data

    data = default_data()
    startup = time.perf_counter() - started
    peaks = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    costs = {p: {arch: _costs(arch, resolve(p)) for arch in archs} for p in precisions}
    run, epoch = _overheads(archs[0], precisions[0], costs[precisions[0]][archs[0]], data)
    return {"startup_seconds": startup, "run_seconds": run, "epoch_seconds": epoch,
            "peaks": peaks, "costs": costs,
            "seconds": time.perf_counter() - started,
            "precisions": {p: resolve(p) for p in precisions},
            "device": dataclasses.asdict(provenance.device()),
            "versions": provenance.library_versions()}  # fmt: skip


def main(argv: list[str]) -> int:
    """`python -m bench.study.worker SPEC_JSON FOLDER`, or `--probe BACKEND PRECISIONS ARCH...`."""
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe(argv[1], argv[2].split(","), argv[3:])), flush=True)
        return 0
    spec = RunSpec.from_json(json.loads(argv[0]))
    os.environ["KERAS_BACKEND"] = spec.backend
    try:
        record = train(spec, Path(argv[1]), placement=Placement("local", 0, spec.command))
    except Exception as error:  # the study reports it and goes on with the other runs
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 2
    return 0 if record.completed else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))
