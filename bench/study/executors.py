"""Where a study's runs train: `local` (one at a time, each in its own process) or `ray`.

Both report to a `bench.study.runner.Progress` and return one `Outcome` per run; a run that
fails is an outcome with its error, never the end of the study.

`ray` uses Ray's core tasks, as ML users already run them: each run is a task asking for
`cpus_per_run` CPUs and `gpus_per_run` GPUs (Ray then sets CUDA_VISIBLE_DEVICES, so each run
gets its own GPU), in a worker process that runs that one task and exits (`max_calls=1`:
TensorFlow releases GPU memory only with its process), with thread limits from its CPU share.
Without an address it starts a local instance; with one (`--address` or `RAY_ADDRESS`) it
joins that cluster, whose nodes need this package installed. The verified MNIST arrays go
to the object store once; a run's record and model come back to the driver, which writes
them atomically into the results layout, so no shared file system is needed. A task whose
worker dies is retried by Ray (`retries`), from the state the driver shipped with it (an
unfinished run's last checkpoint). A small actor counts the runs each node trains at once,
so that a run that shared its machine says so in its record (`concurrent_runs`) and its
timings are not gated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.storage import layout, records
from bench.storage.records import Placement, RecordError, RunRecord
from bench.study.plan import RunSpec

BACKEND_CHATTER = re.compile(
    r"(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog)"
)
"""TensorFlow's C++ start-up log lines (info, warning, error; never fatal), which it prints
before TF_CPP_MIN_LOG_LEVEL takes effect: kept for a failed run's error, not echoed."""
INSTALL_RAY = 'pip install -e ".[cluster]"  (or: pip install "ray>=2.9")'


@dataclass(frozen=True)
class Outcome:
    """How one run of a study ended: completed, kept (already completed), diverged, failed."""

    spec: RunSpec
    status: str
    record: RunRecord | None = None
    error: str | None = None
    seconds: float = 0.0
    attempts: int = 1


class Progress(Protocol):
    """What an executor tells the study's progress display."""

    def started(self, spec: RunSpec) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...
    def tick(self) -> None: ...


def completed_before(folder: Path) -> str | None:
    """Return the start time of the folder's completed record, if it has one."""
    record = existing(folder)
    return record.provenance.started_at if record and record.completed else None


def existing(folder: Path) -> RunRecord | None:
    """Return the record a run's folder holds already (None: none, or unreadable)."""
    try:
        return records.load(folder / layout.RECORD_FILE)
    except (RecordError, OSError):
        return None


def _outcome(spec: RunSpec, record: RunRecord, kept_since: str | None, seconds: float,
             attempts: int = 1) -> Outcome:  # fmt: skip
    if record.completed and kept_since == record.provenance.started_at:
        return Outcome(spec, "kept", record, seconds=seconds, attempts=attempts)
    status = "completed" if record.completed else record.status
    error = f"diverged: {record.divergence}" if record.status == "diverged" else None
    return Outcome(spec, status, record, error, seconds, attempts)


def die_with_parent() -> None:
    """In a child just forked: ask Linux to kill it when its parent dies (PR_SET_PDEATHSIG).

    A study driver that is killed outright must not leave its worker training on into a
    folder nobody watches; the worker's writes are atomic, so its folder stays consistent
    and the next study resumes it. Elsewhere than Linux, nothing (the worker ends at its next
    write to the closed pipe).
    """
    if sys.platform != "linux":
        return
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


@dataclass
class LocalExecutor:
    """One run at a time, each in a fresh `python -m bench.study.worker` process.

    One at a time so that every run has the machine to itself and its timings can be
    gated; its progress lines stream through as they come.
    """

    name = "local"
    slots = 1

    def run(self, specs: Sequence[RunSpec], results: layout.Results,
            progress: Progress) -> list[Outcome]:  # fmt: skip
        """Train each run in turn; return their outcomes."""
        return [self._one(spec, results, progress) for spec in specs]

    def _one(self, spec: RunSpec, results: layout.Results, progress: Progress) -> Outcome:
        folder = spec.folder(results)
        kept_since = completed_before(folder)
        progress.started(spec)
        began = time.perf_counter()
        command = [sys.executable, "-m", "bench.study.worker", json.dumps(spec.to_json()),
                   str(folder)]  # fmt: skip
        env = dict(os.environ, KERAS_BACKEND=spec.backend)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tail: deque[str] = deque(maxlen=20)
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env,
                              preexec_fn=die_with_parent) as child:  # fmt: skip
            assert child.stderr is not None
            for line in child.stderr:
                tail.append(line.rstrip())
                if not BACKEND_CHATTER.match(line):
                    print(line, end="", file=sys.stderr, flush=True)
                progress.tick()
        seconds = time.perf_counter() - began
        try:
            record = records.load(folder / layout.RECORD_FILE)
        except (RecordError, OSError) as error:
            record, unreadable = None, str(error)
        else:
            unreadable = None
        if child.returncode in (0, 1) and record is not None:
            outcome = _outcome(spec, record, kept_since, seconds)
        else:
            said = [line for line in tail if line.startswith("error:")]
            why = (said or list(tail) or [unreadable or "no output"])[-1]
            outcome = Outcome(spec, "failed", None, f"exit {child.returncode}: {why}", seconds)
        progress.finished(outcome)
        return outcome


def import_ray() -> Any:
    """Return the `ray` module, or say how to install it."""
    from bench.vocabulary import OptionError

    try:
        import ray
    except ImportError:
        raise OptionError(
            f"the ray executor needs Ray, which is not installed here; install it with "
            f"{INSTALL_RAY}"
        ) from None
    return ray


class _Ledger:
    """Which runs trained on the same node at the same time (a Ray actor; see `RayExecutor`).

    Each attempt of a run is a span on one node, from `begin` to `end`, kept alive by a
    heartbeat (`seen`, every HEARTBEAT_SECONDS); an attempt whose worker died ends at its
    last heartbeat, so it counts as a neighbour only of runs that overlapped it. Times are
    this actor's own clock, one clock for every node.
    """

    def __init__(self) -> None:
        self.spans: dict[str, list[Any]] = {}  # token -> [label, node, start, last, ended]
        self.attempts: dict[str, int] = {}
        self.clock = time.time

    def begin(self, token: str, label: str, node: str) -> None:
        now = self.clock()
        self.spans[token] = [label, node, now, now, False]
        self.attempts[label] = self.attempts.get(label, 0) + 1

    def seen(self, token: str) -> None:
        if token in self.spans and not self.spans[token][4]:
            self.spans[token][3] = self.clock()

    def end(self, token: str) -> int:
        """End an attempt; return how many other runs shared its node while it ran."""
        span = self.spans[token]
        label, node, start = span[:3]
        span[3], span[4] = self.clock(), True
        return len({other for other, n, s, last, _ in self.spans.values()
                    if other != label and n == node and s < span[3] and last > start})  # fmt: skip

    def running(self) -> dict[str, int]:
        """Return the runs alive now (a heartbeat within 3 beats), with their attempt count."""
        now = self.clock()
        return {label: self.attempts[label] for label, _, _, last, ended in self.spans.values()
                if not ended and now - last < 3 * HEARTBEAT_SECONDS}  # fmt: skip

    def attempts_of(self, label: str) -> int:
        return self.attempts.get(label, 1)


HEARTBEAT_SECONDS = 2.0


def _train_task(spec: RunSpec, data: Any, ledger: Any, shipped: dict[str, bytes]) -> dict:
    """Train one run in a scratch folder (a Ray task); return its record and model bytes."""
    import ray

    from bench.study import worker

    began = time.perf_counter()
    token = uuid.uuid4().hex
    # Not waited for: a task blocked in ray.get lends its CPUs to another task meanwhile.
    ledger.begin.remote(token, spec.label, ray.get_runtime_context().get_node_id())
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            ledger.seen.remote(token)

    threading.Thread(target=beat, daemon=True).start()
    os.environ["KERAS_BACKEND"] = spec.backend
    with tempfile.TemporaryDirectory(prefix="cnnbench-") as scratch:
        folder = Path(scratch) / "run"
        folder.mkdir()
        for name, blob in shipped.items():
            (folder / name).write_bytes(blob)
        record = worker.train(spec, folder, data=data,
                              placement=Placement("ray", None, spec.command))  # fmt: skip
        stop.set()
        others = ray.get(ledger.end.remote(token))
        model = folder / layout.MODEL_FILE
        seconds = time.perf_counter() - began
        if layout.RECORD_FILE in shipped and not model.exists():  # kept: nothing new
            return {"record": record.to_json(), "model": None, "seconds": seconds}
        record = dataclasses.replace(
            record, provenance=dataclasses.replace(record.provenance, concurrent_runs=others)
        )
        return {"record": record.to_json(), "seconds": seconds,
                "model": model.read_bytes() if model.exists() else None}  # fmt: skip


def _write_back(folder: Path, returned: dict) -> RunRecord:
    """Write a task's model, then its record, atomically (`RunFolder.save_returned`)."""
    from bench.training.runfolder import RunFolder

    record = records.from_json(returned["record"])
    RunFolder(folder).save_returned(returned["model"], record)
    return record


@dataclass
class RayExecutor:
    """Runs as Ray core tasks, on a local instance or the cluster at `address`.

    Args:
        address: a cluster to join (`ray://...`, `host:port` or `auto`); None: $RAY_ADDRESS,
            else a new local instance.
        cpus_per_run: CPUs each run asks for (its thread limit too).
        gpus_per_run: GPUs each run asks for; None: 1 where the cluster has GPUs, else 0.
        retries: how often Ray retries a run whose worker died.
        local_cpus: CPUs of a new local instance (None: all of this machine's).
    """

    address: str | None = None
    cpus_per_run: int = 1
    gpus_per_run: float | None = None
    retries: int = 3
    local_cpus: int | None = None
    name = "ray"

    @property
    def slots(self) -> int:
        """How many runs may train at once (known once Ray has started)."""
        return getattr(self, "_slots", 1)

    def run(self, specs: Sequence[RunSpec], results: layout.Results,
            progress: Progress) -> list[Outcome]:  # fmt: skip
        """Submit every run as a task; collect them as they finish; return their outcomes."""
        ray = import_ray()
        from bench.training.trainer import default_data

        address = self.address or os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address is None:
            options["num_cpus"] = self.local_cpus or len(os.sched_getaffinity(0))
        ray.init(address=address, **options)
        try:
            return self._run(ray, specs, results, progress, default_data())
        finally:
            ray.shutdown()

    def _run(self, ray: Any, specs: Sequence[RunSpec], results: layout.Results,
             progress: Progress, data: Any) -> list[Outcome]:  # fmt: skip
        from bench.training.runfolder import RunFolder

        resources = ray.cluster_resources()
        gpus = self.gpus_per_run
        if gpus is None:
            gpus = 1 if resources.get("GPU", 0) >= 1 else 0
        self._slots = max(1, int(resources.get("CPU", 1) // self.cpus_per_run))
        if gpus:
            self._slots = min(self._slots, int(resources.get("GPU", 0) // gpus) or 1)
        threads = str(self.cpus_per_run)
        task = ray.remote(max_calls=1)(_train_task).options(
            num_cpus=self.cpus_per_run, num_gpus=gpus, max_retries=self.retries,
            retry_exceptions=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads,
                                      "TF_NUM_INTRAOP_THREADS": threads,
                                      "TF_CPP_MIN_LOG_LEVEL": "2"}},
        )  # fmt: skip
        ledger = ray.remote(num_cpus=0)(_Ledger).remote()
        data_ref = ray.put(data)
        pending: dict[Any, tuple[RunSpec, Path, str | None, float]] = {}
        for spec in specs:
            folder = spec.folder(results)
            ref = task.remote(spec, data_ref, ledger, RunFolder(folder).resumable())
            pending[ref] = (spec, folder, completed_before(folder), time.perf_counter())
        outcomes: dict[RunSpec, Outcome] = {}
        seen: set[str] = set()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            running = ray.get(ledger.running.remote())
            for spec, *_ in pending.values():
                if spec.label in running and spec.label not in seen:
                    seen.add(spec.label)
                    progress.started(spec)
            for ref in ready:
                spec, folder, kept_since, began = pending.pop(ref)
                attempts = ray.get(ledger.attempts_of.remote(spec.label))
                outcomes[spec] = dataclasses.replace(
                    self._collect(ray, ref, spec, folder, kept_since, began), attempts=attempts
                )
                progress.finished(outcomes[spec])
            progress.tick()
        return [outcomes[spec] for spec in specs]

    def _collect(self, ray: Any, ref: Any, spec: RunSpec, folder: Path, kept_since: str | None,
                 began: float) -> Outcome:  # fmt: skip
        seconds = time.perf_counter() - began
        try:
            returned = ray.get(ref)
            record = _write_back(folder, returned)
            seconds = returned["seconds"]
        except Exception as error:  # a task's error or a worker that died too often
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            return Outcome(spec, "failed", None, f"{type(error).__name__}: "
                           f"{lines[-1] if lines else error}", seconds)  # fmt: skip
        return _outcome(spec, record, kept_since, seconds)
