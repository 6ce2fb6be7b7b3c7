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


PROBE_EPOCHS = 3
"""The probe's tiny real run: the `ci` budget's epochs, 2 steps each, one evaluation batch."""


def _overhead(arch: str, precision: str, cost: dict[str, float], data: Any) -> float:
    """Return what a run costs beyond its steps, evaluations and compilation.

    One tiny real run of `arch` through `train_run`, as a study's worker trains: building the
    model, each epoch's `fit` set-up and teardown and checkpoint, the measurements after the
    run (the matmul peaks among them) and saving it. Counted per run: at the `ci` budget's
    epoch count it is exact, and where epochs are long it is small beside them.
    """
    import tempfile

    from bench.budgets import Budget
    from bench.training.trainer import BATCH_SIZE, EVAL_BATCH_SIZE, train_run

    budget = Budget("probe", PROBE_EPOCHS, 2 * BATCH_SIZE, EVAL_BATCH_SIZE)
    with tempfile.TemporaryDirectory(prefix="cnnbench-probe-") as folder:
        began = time.perf_counter()
        train_run(arch, budget, 0, out_dir=Path(folder), precision=precision, data=data,
                  write=lambda line: None)  # fmt: skip
        wall = time.perf_counter() - began
    inside = cost["compile"] + PROBE_EPOCHS * 2 * cost["step"]
    return max(wall - inside - (PROBE_EPOCHS + 1) * cost["eval_batch"], 0.0)


def probe(backend: str, precisions: list[str], archs: list[str]) -> dict[str, Any]:
    """Measure, in a fresh process like a run's, what runs cost on this machine.

    `startup_seconds` covers importing the backend and loading the data; `run_seconds` what a
    run adds beyond its steps, evaluations and compilation (building, each epoch's `fit` set-up
    and teardown and checkpoint, the measurements after it, the matmul peaks among them,
    saving); `costs` gives, per precision as asked and
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
    run = _overhead(archs[0], resolve(precisions[0]), costs[precisions[0]][archs[0]], data)
    return {"startup_seconds": startup, "run_seconds": run,
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
