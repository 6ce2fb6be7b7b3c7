"""The record of one training run: a versioned JSON document, validated on load.

A record holds everything later steps need (benchmarks, the gate, the report): per-epoch
metrics and wall times, steady-state throughput, final test metrics, per-layer weight
summaries, and provenance. It is written atomically; loading rejects a document of another
schema version or a malformed one, saying which field is wrong.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.atomic import write_json

SCHEMA = "cnn-mnist-bench/run"
VERSION = 1
EPOCH_FIELDS = ("loss", "accuracy", "val_loss", "val_accuracy", "train_seconds", "eval_seconds")
STATUSES = ("completed", "diverged", "running")


class RecordError(ValueError):
    """A run record is malformed or of an unsupported version."""


_NUMBER = (int, float)

# Field -> expected type (a type, a tuple of types, or a nested dict for objects).
_SHAPE: dict[str, Any] = {
    "schema": str,
    "version": int,
    "status": str,
    "arch": {
        "id": str,
        "section": str,
        "params": int,
        "conv_layers": int,
        "dropout": bool,
        "batch_norm": bool,
    },
    "config": {
        "budget": {"name": str, "epochs": int},
        "seed": int,
        "batch_size": int,
        "eval_batch_size": int,
        "optimizer": str,
        "learning_rate": _NUMBER,
        "precision": str,
        "train_samples": int,
        "test_samples": int,
    },
    "epochs": list,
    "timing": dict,
    "final": dict,
    "weights": dict,
    "provenance": {
        "versions": dict,
        "backend": str,
        "device": {"kind": str, "name": str},
        "precision": str,
        "data_digest": str,
        "started_at": str,
        "command": str,
    },
}


def _check(document: Any, shape: dict[str, Any], where: str) -> None:
    if not isinstance(document, dict):
        raise RecordError(f"{where or 'record'}: expected an object, got {type(document).__name__}")
    for key, expected in shape.items():
        path = f"{where}.{key}" if where else key
        if key not in document:
            raise RecordError(f"{path}: missing")
        value = document[key]
        if isinstance(expected, dict):
            _check(value, expected, path)
        elif (
            isinstance(value, bool)
            and expected is not bool
            and bool not in (expected if isinstance(expected, tuple) else (expected,))
        ):
            raise RecordError(f"{path}: expected {expected}, got a boolean")
        elif not isinstance(value, expected):
            raise RecordError(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")


def validate(document: Any) -> dict[str, Any]:
    """Return `document` if it is a valid record of this version; raise RecordError otherwise."""
    if not isinstance(document, dict):
        raise RecordError(f"record: expected a JSON object, got {type(document).__name__}")
    if document.get("schema") != SCHEMA:
        raise RecordError(f"schema: expected {SCHEMA!r}, got {document.get('schema')!r}")
    if document.get("version") != VERSION:
        raise RecordError(
            f"version: this harness reads version {VERSION} records, got "
            f"{document.get('version')!r}; re-run the training to write a current record."
        )
    _check(document, _SHAPE, "")
    if document["status"] not in STATUSES:
        raise RecordError(f"status: expected one of {STATUSES}, got {document['status']!r}")
    for index, epoch in enumerate(document["epochs"]):
        for field in ("epoch", *EPOCH_FIELDS):
            if field not in epoch:
                raise RecordError(f"epochs[{index}].{field}: missing")
        if epoch["epoch"] != index + 1:
            raise RecordError(f"epochs[{index}].epoch: expected {index + 1}, got {epoch['epoch']}")
    if document["status"] == "completed":
        budget_epochs = document["config"]["budget"]["epochs"]
        if len(document["epochs"]) != budget_epochs:
            found = len(document["epochs"])
            raise RecordError(f"epochs: a completed run has {budget_epochs} epochs, found {found}")
        for field in ("test_loss", "test_accuracy"):
            value = document["final"].get(field)
            if not isinstance(value, _NUMBER) or not math.isfinite(value):
                raise RecordError(f"final.{field}: expected a finite number, got {value!r}")
    return document


def finite_or_none(value: Any) -> Any:
    """Return `value` with NaN and infinities (not valid JSON) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    return value


def save(document: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate and write a record atomically; NaN and infinities are stored as null."""
    clean = finite_or_none(document)
    validate(clean)
    write_json(path, clean)
    return Path(path)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a record; errors name the file and the faulty field."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as error:
        raise RecordError(f"{path}: not a readable JSON record ({error})") from error
    try:
        return validate(document)
    except RecordError as error:
        raise RecordError(f"{path}: {error}") from None
