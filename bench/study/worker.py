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


def probe(backend: str, archs: list[str]) -> dict[str, Any]:
    """Measure, in a fresh process like a run's, its fixed start-up cost and the matmul peaks.

    `startup_seconds` covers importing the backend, loading the data and probing the peaks
    after the run (what every run pays besides its epochs); the peaks and FLOP counts turn
    into seconds in `bench.study.estimate`.
    """
    started = time.perf_counter()
    os.environ["KERAS_BACKEND"] = backend
    from bench.measurement.flops import arch_flops
    from bench.measurement.peak import matmul_peak
    from bench.training.precisions import resolve
    from bench.training.trainer import default_data

    default_data()
    peaks = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    startup = time.perf_counter() - started
    return {"startup_seconds": startup, "peaks": peaks, "auto_precision": resolve("auto"),
            "flops": {arch: arch_flops(arch) for arch in archs}}  # fmt: skip


def main(argv: list[str]) -> int:
    """`python -m bench.study.worker SPEC_JSON FOLDER` or `--probe BACKEND`."""
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe(argv[1], argv[2:])), flush=True)
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
