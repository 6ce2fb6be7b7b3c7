"""Where a result came from: library versions, backend, device, precision, commit, time."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import keras

from bench.storage.records import Device, Provenance
from bench.vocabulary import LIBRARIES as BACKEND_LIBRARIES

LIBRARIES = ("keras", *(name for names in BACKEND_LIBRARIES.values() for name in names), "numpy")


def library_versions() -> dict[str, str]:
    """Return the installed versions of the libraries that change numbers or speed."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    """Return the CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerator() -> str | None:
    """Return the name of the GPU the current Keras backend uses, or None on CPU."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return str(details.get("device_name", gpus[0].name))
        elif backend == "jax":
            import jax

            devices = [d for d in jax.devices() if d.platform != "cpu"]
            if devices:
                return str(devices[0].device_kind)
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return str(torch.cuda.get_device_name(0))
    except Exception:
        return None
    return None


def device() -> Device:
    """Describe the device training runs on: kind ('gpu' or 'cpu'), name, and core count."""
    gpu = accelerator()
    return Device(
        kind="gpu" if gpu else "cpu",
        name=gpu or cpu_model(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
    )


def git_commit() -> str | None:
    """Return the current git commit, with '-dirty' when the tree has changes, or None."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def collect(
    seed: int | None,
    precision: str,
    data_digest: str,
    *,
    executor: str | None = None,
    concurrent_runs: int | None = None,
    command: str | None = None,
) -> Provenance:
    """Return the provenance stored with every record: versions, device, commit, time, command.

    `executor` and `concurrent_runs` come from a study (`bench.study`); `command` replaces
    this process's own command line (a study's workers record the study's command).
    """
    return Provenance(
        versions=library_versions(),
        backend=keras.backend.backend(),
        device=device(),
        precision=precision,
        data_digest=data_digest,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        command=command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        seed=seed,
        git_commit=git_commit(),
        host=platform.node(),
        executor=executor,
        concurrent_runs=concurrent_runs,
    )
