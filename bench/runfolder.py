"""One run's folder: its record, its checkpoint and its trained model, read and written safely.

File names come from `bench.layout`. Every write is atomic (a temporary file renamed into
place), so a kill at any moment leaves the previous file or the new one, never half of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras

from bench import records
from bench.layout import CHECKPOINT_FILE, MODEL_FILE, RECORD_FILE
from bench.records import Config, RecordError, RunRecord


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run (`bench.layout.Results.run_dir`)."""

    path: Path

    @property
    def record(self) -> Path:
        """The run's record."""
        return self.path / RECORD_FILE

    @property
    def checkpoint(self) -> Path:
        """The model after the last finished epoch, while the run is unfinished."""
        return self.path / CHECKPOINT_FILE

    @property
    def model(self) -> Path:
        """The trained model of a finished run."""
        return self.path / MODEL_FILE

    def load(self) -> RunRecord | None:
        """Return the folder's record, None if there is none; RecordError if it is bad."""
        return records.load(self.record) if self.record.exists() else None

    def completed(self, config: Config, data_digest: str) -> RunRecord | None:
        """Return the folder's completed record if it ran this configuration on this data."""
        try:
            previous = self.load()
        except RecordError:
            return None
        same = (
            previous is not None
            and previous.completed
            and previous.config == config
            and previous.provenance.data_digest == data_digest
        )
        return previous if same else None

    def resumable(self, config: Config) -> RunRecord | None:
        """Return the unfinished record to resume from, if any.

        Raises ValueError when the folder holds a run of another configuration.
        """
        previous = self.load()
        if previous is None:
            return None
        if previous.config != config:
            raise ValueError(
                f"{self.record} holds a run with another configuration; use another output "
                f"folder or delete it. Stored: {previous.config}; asked: {config}"
            )
        if previous.status != "running" or not self.checkpoint.exists():
            return None
        return previous

    def clear(self) -> None:
        """Remove the record, checkpoint and model (a fresh start was asked for)."""
        for path in (self.record, self.checkpoint, self.model):
            path.unlink(missing_ok=True)

    def _save_model(self, model: keras.Model, target: Path) -> None:
        temp = target.with_name(f".{target.name}.tmp.keras")
        model.save(temp)
        os.replace(temp, target)

    def save_epoch(self, model: keras.Model, record: RunRecord) -> None:
        """Write the checkpoint after a finished epoch, then the record that names it."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._save_model(model, self.checkpoint)
        records.save(record, self.record)

    def save_final(self, model: keras.Model, record: RunRecord) -> None:
        """Write the trained model and the final record; drop the checkpoint."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._save_model(model, self.model)
        records.save(record, self.record)
        self.checkpoint.unlink(missing_ok=True)
