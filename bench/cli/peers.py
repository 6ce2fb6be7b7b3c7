"""Peer benchmark: the harness against the other ways one would train these models, one run.

Each peer runs in its own interpreter (a Keras backend is fixed per process) on the same
machine, data and architecture, and measures steady-state training samples/s (epochs after the
first, evaluation excluded) plus the matmul peak of its own process:

* ``notebook``: the notebook's way, ``model.fit`` on NumPy arrays with ``validation_data``,
  float32, TensorFlow backend (only the training part of each epoch is timed);
* ``harness``: the harness default (``bench.training.trainer.Trainer``, TensorFlow,
  precision ``auto``: ``mixed_bfloat16`` on a CPU with bfloat16 arithmetic, else float32);
* ``harness-fp32``: the same forced to float32, the faithful configuration;
* ``keras-jax`` / ``keras-torch``: the harness on Keras' JAX and PyTorch backends, float32;
* ``torch-fp32`` / ``torch-bf16``: a native PyTorch model with the same layer shapes and
  parameter count, plain loop with Adam, float32 and bfloat16 autocast.

All of an architecture's peers start together and stay alive; their epochs then run one at
a time in rounds whose order alternates (A B C, C B A, ...), as `python -m bench compare`
interleaves its two sides, so that a machine slowing down mid-benchmark hits every peer
alike. A line after each round shows progress. Each peer has `--peer-limit` seconds of its
own work per architecture; one that runs over is stopped and, like one that fails, is a row
with its error. A peer that computes in bfloat16 is skipped on a CPU without bfloat16
arithmetic (it would be emulated: ten times slower than float32 on an AVX2 EPYC, measured).

Run: ``python -m bench peers --arch model_1_a model_3_a``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bench.compare.interleave import Worker

PEERS = (
    "notebook",
    "harness",
    "harness-fp32",
    "keras-jax",
    "keras-torch",
    "torch-fp32",
    "torch-bf16",
)
_BACKEND = {"keras-jax": "jax", "keras-torch": "torch"}
REDUCED = {"torch-bf16": "bfloat16"}
"""Peers that compute in a reduced precision whatever the CPU: skipped without native support
(the harness's own `auto` falls back to float32 there by itself)."""


PEER_FIELDS = {"epoch": {"seconds": (int, float)}, "error": {"message": str}}
"""What a peer's messages must carry (`bench.compare.interleave.Worker`)."""


def _data(samples: int) -> tuple[np.ndarray, np.ndarray]:
    from bench.data import preprocess
    from bench.training.trainer import default_data

    (x_train, y_train), _ = default_data()
    return preprocess(x_train[:samples], y_train[:samples])


class _Harness:
    """The harness's own Trainer, one epoch per call (evaluation after it, off the clock)."""

    def __init__(self, arch_id: str, samples: int, epochs: int, precision: str) -> None:
        from bench.budgets import Budget
        from bench.training.trainer import Trainer

        budget = Budget("peer", epochs=epochs, train_samples=samples, test_samples=1000,
                        description="peer benchmark")  # fmt: skip
        self.trainer = Trainer(arch_id, budget, 0, precision=precision, write=lambda line: None)
        self.trainer.start()

    def epoch(self) -> float:
        self.trainer.train_epoch()
        self.trainer.evaluate_epoch()
        record = self.trainer.record
        assert record is not None
        return record.epochs[-1].train_seconds

    def result(self) -> dict[str, Any]:
        record = self.trainer.finish()
        self.trainer.close()
        if record.timing is None or record.final is None:
            raise RuntimeError(f"the harness run did not complete ({record.status})")
        return {"peak_flops": record.timing.peak_flops, "peak_dtype": record.timing.peak_dtype,
                "precision": record.config.precision, "params": record.arch.params,
                "test_accuracy": record.final.test_accuracy}  # fmt: skip


class _Notebook:
    """The notebook's way: `model.fit` with `validation_data`, float32; training part timed."""

    def __init__(self, arch_id: str, samples: int, epochs: int) -> None:
        import keras

        from archs import REGISTRY
        from bench.data import preprocess
        from bench.training.trainer import default_data

        (_, _), (x_test, y_test) = default_data()
        self.x, self.y = _data(samples)
        self.test = preprocess(x_test[:1000], y_test[:1000])
        keras.utils.set_random_seed(0)
        self.model = REGISTRY[arch_id].build()
        self.model.compile(loss="categorical_crossentropy", optimizer="adam",
                           metrics=["accuracy"])  # fmt: skip
        from bench.training.clock import TrainingClock

        self.clock = TrainingClock()
        self.accuracy = None

    def epoch(self) -> float:
        """Train one epoch the notebook's way; return its training seconds on the clock.

        From just before `fit` to its last step's end, as the harness's epoch: the validation
        `fit` runs after it is the notebook's evaluation, not its training.
        """
        self.clock.start_epoch()
        history = self.model.fit(self.x, self.y, validation_data=self.test, batch_size=128,
                                 epochs=1, verbose=0, callbacks=[self.clock])  # fmt: skip
        self.clock.stop_epoch()
        self.accuracy = float(history.history["val_accuracy"][-1])
        return self.clock.current.setup_seconds + sum(self.clock.current.wall)

    def result(self) -> dict[str, Any]:
        from bench.measurement.peak import matmul_peak

        return {"peak_flops": matmul_peak("float32"), "peak_dtype": "float32",
                "precision": "float32", "params": self.model.count_params(),
                "test_accuracy": self.accuracy}  # fmt: skip


def torch_model(arch_id: str) -> Any:
    """Build the native PyTorch twin of a registered plan (same layer shapes and parameters)."""
    import torch
    from torch import nn

    from archs import REGISTRY
    from archs._blocks import Conv, Drop, Norm, Pool, spatial_size

    plan = REGISTRY[arch_id].plan
    layers: list[nn.Module] = []
    channels = 1
    for step in plan:
        if isinstance(step, Conv):
            layers += [nn.Conv2d(channels, step.filters, step.kernel), nn.ReLU()]
            channels = step.filters
        elif isinstance(step, Pool):
            # Keras 'same' 2x2/2 pooling keeps ceil(n/2) rows: ceil_mode does the same.
            layers.append(nn.MaxPool2d(2, ceil_mode=step.padding == "same"))
        elif isinstance(step, Drop):
            layers.append(nn.Dropout(step.rate))
        elif isinstance(step, Norm):
            layers.append(nn.BatchNorm2d(channels))
    side = spatial_size(plan, 28)
    layers += [nn.Flatten(), nn.Linear(side * side * channels, 10)]
    torch.manual_seed(0)
    return nn.Sequential(*layers)


class _Torch:
    """A native PyTorch twin, plain loop with Adam; float32 or bfloat16 autocast."""

    def __init__(self, arch_id: str, samples: int, bf16: bool) -> None:
        import torch

        x, y = _data(samples)
        self.images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.labels = torch.from_numpy(y.argmax(axis=1))
        self.model = torch_model(arch_id)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.generator = torch.Generator().manual_seed(0)
        self.samples, self.bf16 = samples, bf16

    def epoch(self) -> float:
        import torch

        order = torch.randperm(self.samples, generator=self.generator)
        started = time.perf_counter()
        self.model.train()
        for start in range(0, self.samples, 128):
            index = order[start : start + 128]
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.loss(self.model(self.images[index]), self.labels[index])
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - started

    def result(self) -> dict[str, Any]:
        import torch

        a = torch.randn(2048, 2048, dtype=torch.bfloat16 if self.bf16 else torch.float32)
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(5))
        return {"peak_flops": 2 * 2048**3 / best,
                "peak_dtype": "bfloat16" if self.bf16 else "float32",
                "precision": "bfloat16 autocast" if self.bf16 else "float32",
                "params": sum(p.numel() for p in self.model.parameters()),
                "test_accuracy": None}  # fmt: skip


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def make_peer(peer: str, arch_id: str, samples: int, epochs: int) -> Any:
    """Build one peer in this process (the child interpreter): `epoch()`, then `result()`."""
    if peer == "notebook":
        return _Notebook(arch_id, samples, epochs)
    if peer == "harness":
        return _Harness(arch_id, samples, epochs, "auto")
    if peer in ("harness-fp32", "keras-jax", "keras-torch"):
        return _Harness(arch_id, samples, epochs, "float32")
    if peer in ("torch-fp32", "torch-bf16"):
        return _Torch(arch_id, samples, bf16=peer == "torch-bf16")
    raise ValueError(f"Unknown peer {peer!r}; valid: {', '.join(PEERS)}")


def serve(peer: str, arch_id: str, samples: int, epochs: int) -> None:
    """Serve one peer in a child interpreter: ready, an epoch per `go`, then its result."""
    from bench.compare.side_process import receive, send

    try:
        run = make_peer(peer, arch_id, samples, epochs)
        send(event="ready")
        while receive().get("op") == "go":
            send(event="epoch", seconds=run.epoch())
        send(event="result", **run.result())
    except Exception as error:
        send(event="error", message=f"{type(error).__name__}: {error}")
    receive()  # wait for quit (raises SystemExit)


def available(peer: str, flags: frozenset[str] | None = None) -> str | None:
    """Return why a peer does not run here (not installed, no native precision), or None."""
    from bench.training.precisions import BF16_CPU_FLAGS, cpu_flags

    needs = {"keras-jax": "jax", "keras-torch": "torch", "torch-fp32": "torch",
             "torch-bf16": "torch"}  # fmt: skip
    module = needs.get(peer, "tensorflow")
    if importlib.util.find_spec(module) is None:
        return f"skipped: {module} is not installed (pip install '.[backends]')"
    if peer in REDUCED and not (cpu_flags() if flags is None else flags) & BF16_CPU_FLAGS:
        return ("skipped: this CPU has no bfloat16 arithmetic (AVX512_BF16 or AMX), so "
                f"{REDUCED[peer]} would be emulated: many times slower than float32, and its "
                "fraction of an emulated peak means nothing")  # fmt: skip
    return None


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """Say, per architecture, how the harness default compares with the fastest other peer."""
    lines = []
    for arch_id in dict.fromkeys(r["arch"] for r in results):
        rows = [r for r in results if r["arch"] == arch_id and "error" not in r]
        harness = next((r for r in rows if r["peer"] == "harness"), None)
        others = [r for r in rows if r["peer"] not in ("harness", "harness-fp32")]
        if harness is None or not others:
            failed = sorted({r["peer"] for r in results if r["arch"] == arch_id and "error" in r})
            why = (f"failed: {', '.join(failed)}" if failed else "the verdict needs the `harness` "
                   "peer and one that is not the harness; none of them failed")  # fmt: skip
            lines.append(f"{arch_id}: no verdict ({why})")
            continue
        fastest = max(others, key=lambda r: r["samples_per_second"])
        ratio = harness["samples_per_second"] / fastest["samples_per_second"]
        meets = "meets" if ratio >= 1.0 else "MISSES"
        lines.append(
            f"{arch_id}: harness default ({harness['precision']}) is {ratio:.2f}x the fastest "
            f"other peer ({fastest['peer']}, {fastest['samples_per_second']:.0f} samples/s): "
            f"{meets} the 1.0x target; {harness['fraction_of_peak']:.0%} of its "
            f"{harness['peak_dtype']} matmul peak"
        )
    return lines


def _start(peer: str, arch_id: str, samples: int, epochs: int, logs: Path) -> Worker:
    """Start one peer's process: the comparison's `Worker`, speaking its protocol."""
    from bench.compare.interleave import Worker

    env = {**os.environ, "KERAS_BACKEND": _BACKEND.get(peer, "tensorflow"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    code = ("import sys; from bench.cli.peers import serve; "
            f"serve({peer!r}, {arch_id!r}, {samples}, {epochs})")  # fmt: skip
    return Worker(f"peer {peer}", [sys.executable, "-c", code], Path.cwd(), env,
                  logs / f"{arch_id}-{peer}.log", fields=PEER_FIELDS)  # fmt: skip


def _measure(arch_id: str, peers: tuple[str, ...], samples: int, epochs: int, limit: float,
             logs: Path, say: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Run the peers of one architecture, their epochs interleaved; return their rows."""
    from bench.compare.interleave import TimedOut, abba
    from bench.compare.sides import CompareError

    rows: dict[str, dict[str, Any]] = {}
    running: dict[str, Worker] = {}
    spans: dict[str, list[float]] = {}  # peer -> the seconds of each epoch it trained
    for peer in peers:
        reason = available(peer)
        if reason:
            rows[peer] = {"peer": peer, "arch": arch_id, "error": reason, "skipped": True}
        else:
            running[peer], spans[peer] = _start(peer, arch_id, samples, epochs, logs), []

    def expect(peer: str, event: str) -> dict[str, Any]:
        """Return the peer's next message, waiting only what is left of its `limit`."""
        worker = running[peer]
        return worker.expect(event, timeout=max(limit - worker.waited, 0.0))

    def fail(peer: str, error: Exception) -> None:
        timed_out = isinstance(error, TimedOut)
        text = (f"timed out: over its limit of {limit:.0f} s (--peer-limit)" if timed_out
                else str(error).strip()[-500:])  # fmt: skip
        rows[peer] = {"peer": peer, "arch": arch_id, "error": text, "timed_out": timed_out}
        running.pop(peer).close()

    started = time.monotonic()
    try:
        for peer in list(running):  # all start at once; their start-up is not timed
            try:
                expect(peer, "ready")
            except CompareError as error:
                fail(peer, error)
        for index in range(epochs):  # rounds in alternating order: drift hits all alike
            for peer in abba(index, list(running)):
                try:
                    running[peer].send(op="go")
                    spans[peer].append(expect(peer, "epoch")["seconds"])
                except CompareError as error:
                    fail(peer, error)
            speeds = ", ".join(f"{p} {samples / spans[p][-1]:.0f}" for p in running)
            say(f"peers {arch_id}: epoch {index + 1}/{epochs} (first untimed) samples/s: "
                f"{speeds or 'none running'}; {time.monotonic() - started:.0f} s")  # fmt: skip
        for peer, worker in list(running.items()):
            try:
                worker.send(op="result")
                result = expect(peer, "result")
            except CompareError as error:
                fail(peer, error)
                continue
            result.pop("event")
            rows[peer] = {"peer": peer, "arch": arch_id, **result,
                          "samples_per_second": samples / float(np.median(spans[peer][1:])),
                          "epoch_seconds": spans[peer]}  # fmt: skip
    finally:
        for worker in running.values():
            worker.close()
    return [rows[peer] for peer in peers]


def run_all(
    archs: list[str],
    samples: int,
    epochs: int,
    results_folder: Any,
    peers: tuple[str, ...] = PEERS,
    limit: float = 1800.0,
    say: Any = print,
) -> list[dict[str, Any]]:
    """Run the peers for every architecture; write JSON; print and return the table rows.

    Each peer has `limit` seconds of its own work (start-up, epochs, result) per
    architecture; one that exceeds it is stopped and is a row with its error, as is one that
    fails. Ratios are to the harness default when it is among `peers`. `results_folder` is a
    `bench.storage.layout.Results`: the JSON goes to its `peers_json`, each peer's log under
    its `peers_logs`.
    """
    from tabulate import tabulate

    from bench.measurement.flops import arch_flops
    from bench.storage.atomic import write_json

    out, logs = results_folder.peers_json, results_folder.peers_logs
    results = []
    for arch_id in archs:
        per_sample = arch_flops(arch_id)["training"]
        say(f"peers {arch_id}: {', '.join(peers)}; {samples} samples x {epochs} epochs, "
            f"interleaved (first epoch not timed)")  # fmt: skip
        rows = _measure(arch_id, peers, samples, epochs, limit, logs, say)
        harness = next((r for r in rows if r["peer"] == "harness" and "error" not in r), None)
        for row in rows:
            if "error" in row:
                continue
            row["achieved_flops"] = row["samples_per_second"] * per_sample
            row["fraction_of_peak"] = row["achieved_flops"] / row["peak_flops"]
            if harness:
                row["ratio_to_harness"] = row["samples_per_second"] / harness["samples_per_second"]
        results += rows
    table = [
        [r["arch"], r["peer"], r.get("precision"), r.get("params"), r.get("samples_per_second"),
         r.get("ratio_to_harness"), r.get("peak_dtype"), r.get("fraction_of_peak"),
         r.get("error", "")[:90]]
        for r in results
    ]  # fmt: skip
    headers = ["arch", "peer", "precision", "params", "samples/s", "x harness", "peak dtype",
               "fraction of peak", "error"]  # fmt: skip
    print(tabulate(table, headers=headers, floatfmt=".2f"))
    summary = verdicts(results)
    print("\n".join(summary))
    write_json(out, {"samples": samples, "epochs": epochs, "limit_seconds": limit,
                     "interleaved": True, "results": results, "verdicts": summary})  # fmt: skip
    return results
