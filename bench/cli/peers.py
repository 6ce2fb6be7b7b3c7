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

Run: ``python -m bench peers --arch model_1_a model_3_a``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def _data(samples: int) -> tuple[np.ndarray, np.ndarray]:
    from bench.data import preprocess
    from bench.training.trainer import default_data

    (x_train, y_train), _ = default_data()
    return preprocess(x_train[:samples], y_train[:samples])


def _keras_harness(arch_id: str, samples: int, epochs: int, precision: str) -> dict[str, Any]:
    from bench.measurement import metrics
    from bench.training.budgets import Budget
    from bench.training.trainer import train_run

    budget = Budget("peer", epochs=epochs, train_samples=samples, test_samples=1000,
                    description="peer benchmark")  # fmt: skip
    record = train_run(arch_id, budget, 0, precision=precision, write=lambda line: None)
    derived = metrics.of(record)
    if record.timing is None or record.final is None:
        raise RuntimeError(f"{arch_id}: the harness run did not complete ({record.status})")
    return {
        "samples_per_second": derived.median_samples_per_second,
        "peak_flops": record.timing.peak_flops,
        "peak_dtype": record.timing.peak_dtype,
        "precision": record.config.precision,
        "params": record.arch.params,
        "test_accuracy": record.final.test_accuracy,
    }


def _keras_notebook(arch_id: str, samples: int, epochs: int) -> dict[str, Any]:
    import keras

    from archs import REGISTRY
    from bench.data import preprocess
    from bench.measurement.peak import matmul_peak
    from bench.training.trainer import default_data

    (_, _), (x_test, y_test) = default_data()
    x, y = _data(samples)
    xt, yt = preprocess(x_test[:1000], y_test[:1000])
    keras.utils.set_random_seed(0)
    model = REGISTRY[arch_id].build()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    spans: list[float] = []

    class TrainClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_test_begin(self, logs: Any = None) -> None:
            spans.append(time.perf_counter() - self.started)

    history = model.fit(x, y, validation_data=(xt, yt), batch_size=128, epochs=epochs,
                        verbose=0, callbacks=[TrainClock()])  # fmt: skip
    return {
        "samples_per_second": samples / float(np.median(spans[1:])),
        "peak_flops": matmul_peak("float32"),
        "peak_dtype": "float32",
        "precision": "float32",
        "params": model.count_params(),
        "test_accuracy": float(history.history["val_accuracy"][-1]),
    }


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


def _torch_native(arch_id: str, samples: int, epochs: int, bf16: bool) -> dict[str, Any]:
    import torch

    x, y = _data(samples)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(y.argmax(axis=1))
    model = torch_model(arch_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    spans = []
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(samples, generator=generator)
        started = time.perf_counter()
        model.train()
        for start in range(0, samples, 128):
            index = order[start : start + 128]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(images[index]), labels[index])
            loss.backward()
            optimizer.step()
        spans.append(time.perf_counter() - started)
    a = torch.randn(2048, 2048, dtype=torch.bfloat16 if bf16 else torch.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return {
        "samples_per_second": samples / float(np.median(spans[1:])),
        "peak_flops": 2 * 2048**3 / best,
        "peak_dtype": "bfloat16" if bf16 else "float32",
        "precision": "bfloat16 autocast" if bf16 else "float32",
        "params": sum(p.numel() for p in model.parameters()),
        "test_accuracy": None,
    }


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run_peer(peer: str, arch_id: str, samples: int, epochs: int) -> dict[str, Any]:
    """Run one peer in this process (called in the child interpreter)."""
    if peer == "notebook":
        return _keras_notebook(arch_id, samples, epochs)
    if peer == "harness":
        return _keras_harness(arch_id, samples, epochs, "auto")
    if peer in ("harness-fp32", "keras-jax", "keras-torch"):
        return _keras_harness(arch_id, samples, epochs, "float32")
    if peer in ("torch-fp32", "torch-bf16"):
        return _torch_native(arch_id, samples, epochs, bf16=peer == "torch-bf16")
    raise ValueError(f"Unknown peer {peer!r}; valid: {', '.join(PEERS)}")


def available(peer: str) -> str | None:
    """Return why a peer cannot run here, or None when it can."""
    needs = {
        "keras-jax": "jax",
        "keras-torch": "torch",
        "torch-fp32": "torch",
        "torch-bf16": "torch",
    }
    module = needs.get(peer, "tensorflow")
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install '.[backends]')"
    return None


def spawn(peer: str, arch_id: str, samples: int, epochs: int) -> dict[str, Any]:
    """Run one peer in a fresh interpreter; return its measurements (or why it failed)."""
    reason = available(peer)
    if reason:
        return {"peer": peer, "arch": arch_id, "error": reason}
    env = {**os.environ, "KERAS_BACKEND": _BACKEND.get(peer, "tensorflow"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    code = (
        "import json, sys; from bench.cli.peers import run_peer; "
        f"print('PEER ' + json.dumps(run_peer({peer!r}, {arch_id!r}, {samples}, {epochs})))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=False, timeout=3600)  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("PEER ")]
    if result.returncode != 0 or not lines:
        return {"peer": peer, "arch": arch_id, "error": result.stderr.strip()[-500:]}
    return {"peer": peer, "arch": arch_id, **json.loads(lines[-1][5:])}


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """Say, per architecture, how the harness default compares with the fastest other peer."""
    lines = []
    for arch_id in dict.fromkeys(r["arch"] for r in results):
        rows = [r for r in results if r["arch"] == arch_id and "error" not in r]
        harness = next((r for r in rows if r["peer"] == "harness"), None)
        others = [r for r in rows if r["peer"] not in ("harness", "harness-fp32")]
        if harness is None or not others:
            lines.append(f"{arch_id}: no verdict (the harness or every other peer failed)")
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


def run_all(
    archs: list[str],
    samples: int,
    epochs: int,
    out: Path,
    peers: tuple[str, ...] = PEERS,
) -> list[dict[str, Any]]:
    """Run the peers for every architecture; write JSON; print and return the table rows.

    Ratios are to the harness default when it is among `peers`.
    """
    from tabulate import tabulate

    from bench.measurement.flops import arch_flops
    from bench.storage.atomic import write_json

    results = []
    for arch_id in archs:
        per_sample = arch_flops(arch_id)["training"]
        rows = [spawn(peer, arch_id, samples, epochs) for peer in peers]
        harness = next((r for r in rows if r["peer"] == "harness" and "error" not in r), None)
        for row in rows:
            if "error" in row:
                continue
            row["achieved_flops"] = row["samples_per_second"] * per_sample
            row["fraction_of_peak"] = row["achieved_flops"] / row["peak_flops"]
            if harness:
                row["ratio_to_harness"] = row["samples_per_second"] / harness["samples_per_second"]
        results += rows
        print(f"{arch_id}: {samples} samples x {epochs} epochs (first epoch not timed)", flush=True)
    table = [
        [r["arch"], r["peer"], r.get("precision"), r.get("params"), r.get("samples_per_second"),
         r.get("ratio_to_harness"), r.get("peak_dtype"), r.get("fraction_of_peak"),
         r.get("error", "")[:60]]
        for r in results
    ]  # fmt: skip
    headers = ["arch", "peer", "precision", "params", "samples/s", "x harness", "peak dtype",
               "fraction of peak", "error"]  # fmt: skip
    print(tabulate(table, headers=headers, floatfmt=".2f"))
    summary = verdicts(results)
    print("\n".join(summary))
    write_json(out, {"samples": samples, "epochs": epochs, "results": results, "verdicts": summary})
    return results
