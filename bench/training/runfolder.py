"""One run's folder: its record, checkpoints and trained model, read and written safely.

File names come from `bench.storage.layout`. Nothing here loses a result:

* every file is written atomically (a temporary file renamed into place);
* one commit per epoch: the checkpoint is named after the number of epochs it holds
  (`checkpoint-epoch3.keras`) and written before the record that counts those epochs, and
  older checkpoints are removed only after that; a stop at any moment leaves a record whose
  own checkpoint exists, so a resumed run never trains an epoch twice;
* a rerun of a folder that holds a result (`pytest bench`, `--force`) trains beside it, in
  `layout.rerun_dir`, and replaces it only once it has finished;
* a record or checkpoint that cannot be read is moved aside (`*.corrupt-<time>`), said, and
  the run starts afresh.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras

from bench.storage import layout, records
from bench.storage.atomic import CORRUPT_GLOB, set_aside, write_bytes
from bench.storage.records import Config, RecordError, RunRecord
from bench.training.progress import Writer


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run (`bench.storage.layout.Results.run_dir`)."""

    path: Path

    @property
    def record(self) -> Path:
        """The run's record."""
        return self.path / layout.RECORD_FILE

    @property
    def model(self) -> Path:
        """The trained model of a finished run."""
        return self.path / layout.MODEL_FILE

    def checkpoint(self, epochs: int) -> Path:
        """Return the checkpoint holding the model after `epochs` epochs."""
        return self.path / layout.checkpoint_file(epochs)

    @property
    def rerun(self) -> RunFolder:
        """Where a rerun trains until it replaces this folder."""
        return RunFolder(layout.rerun_dir(self.path))

    def load(self) -> RunRecord | None:
        """Return the folder's record, None if there is none; RecordError if it is bad."""
        return records.load(self.record) if self.record.exists() else None

    def load_or_set_aside(self, write: Writer) -> RunRecord | None:
        """Return the folder's record; one that cannot be read is moved aside (None).

        The trained model beside it goes aside with it, so that a retrain does not overwrite
        the model the set-aside record describes.
        """
        try:
            return self.load()
        except RecordError as error:
            moved = set_aside(self.record)
            companions = [set_aside(self.model)] if self.model.exists() else []
            kept = "".join(f" (its model to {path.name})" for path in companions)
            write(f"unreadable record moved aside to {moved}{kept}: {error}")
            return None

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

    def resume(self, previous: RunRecord, write: Writer) -> keras.Model | None:
        """Return the model to resume `previous` (an unfinished record of this folder) from.

        None when there is nothing to resume: the run is finished, or its checkpoint is
        missing or unreadable (then moved aside, and said).
        """
        if previous.status != "running":
            return None
        checkpoint = self.checkpoint(len(previous.epochs))
        if not checkpoint.exists():
            return None
        try:
            model = keras.models.load_model(checkpoint)
        except Exception as error:  # Keras raises many types for a damaged archive
            # Not Keras' message: for a truncated archive it says "File not found".
            moved = set_aside(checkpoint)
            write(f"unreadable checkpoint {checkpoint.name} (the file exists but is not a "
                  f"loadable .keras archive: {type(error).__name__}) moved aside to {moved}; "
                  "training from the start")  # fmt: skip
            return None
        if model.count_params() != previous.arch.params:  # another architecture's model
            moved = set_aside(checkpoint)
            write(f"checkpoint {checkpoint.name} holds a model of {model.count_params():,} "
                  f"parameters where {previous.arch.id} has {previous.arch.params:,} (another "
                  f"architecture's?); moved aside to {moved}; training from the start")  # fmt: skip
            return None
        return model

    def start_afresh(self) -> None:
        """Make this folder empty (for a rerun's own folder; never for a result)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)

    def _save_model(self, model: keras.Model, target: Path) -> None:
        temp = target.with_name(f".{target.name}.tmp.keras")
        model.save(temp)
        os.replace(temp, target)

    def _drop_checkpoints(self, keep: Path | None = None) -> None:
        for path in self.path.glob(layout.CHECKPOINT_GLOB):
            if path != keep:
                path.unlink(missing_ok=True)

    def save_epoch(self, model: keras.Model, record: RunRecord) -> None:
        """Commit a finished epoch: its checkpoint, then the record that counts it."""
        self.path.mkdir(parents=True, exist_ok=True)
        checkpoint = self.checkpoint(len(record.epochs))
        self._save_model(model, checkpoint)
        records.save(record, self.record)
        self._drop_checkpoints(keep=checkpoint)

    def save_final(self, model: keras.Model, record: RunRecord) -> None:
        """Write the trained model and the final record; drop the checkpoints."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._save_model(model, self.model)
        records.save(record, self.record)
        self._drop_checkpoints()

    def resumable(self) -> dict[str, bytes]:
        """Return the files another machine needs to keep or resume this run (Ray's tasks).

        The record, and the checkpoint it counts while the run is unfinished; nothing when
        the folder holds no readable record.
        """
        try:
            record = records.load(self.record)
        except (RecordError, OSError):
            return {}
        shipped = {self.record.name: self.record.read_bytes()}
        checkpoint = self.checkpoint(len(record.epochs))
        if record.status == "running" and checkpoint.exists():
            shipped[checkpoint.name] = checkpoint.read_bytes()
        return shipped

    def save_returned(self, model: bytes | None, record: RunRecord) -> None:
        """Write a run trained elsewhere: its model's bytes, then its record; as `save_final`.

        The checkpoints go once the run is no longer running.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if model is not None:
            write_bytes(self.model, model)
        records.save(record, self.record)
        if record.status != "running":
            self._drop_checkpoints()

    def replace_with(self, rerun: RunFolder) -> None:
        """Make a finished rerun this folder's result (the old one goes only then)."""
        replaced = self.path.with_name(f".{self.path.name}.replaced")
        shutil.rmtree(replaced, ignore_errors=True)
        for kept in self.path.glob(CORRUPT_GLOB):  # set aside for a person to look at: keep
            os.replace(kept, rerun.path / kept.name)
        if self.path.exists():
            os.replace(self.path, replaced)
        os.replace(rerun.path, self.path)
        shutil.rmtree(replaced, ignore_errors=True)

    def recover(self) -> None:
        """Finish a replacement that a stop interrupted between its two renames."""
        replaced = self.path.with_name(f".{self.path.name}.replaced")
        if self.path.exists() or not replaced.exists():
            return
        try:
            rerun = self.rerun.load()
        except RecordError:
            rerun = None
        finished = rerun is not None and rerun.status != "running"
        os.replace(self.rerun.path if finished else replaced, self.path)
        shutil.rmtree(replaced, ignore_errors=True)


def migrate_legacy(results: layout.Results, write: Writer) -> list[Path]:
    """Move run folders of the layout before variants into their variant; return where to.

    Before a run's identity held its backend, precision and plant, a run lay in
    `runs/<budget>/<arch>/seed<n>`; its record says all three (a version 5 record is honest
    unless its learning rate was 0: `records._migrate_v5`), so the folder moves, whole and
    atomically, to `runs/<budget>/<arch>/<variant>/seed<n>`. A folder whose record cannot be
    read stays where it is, said, and is read by nothing.
    """
    moved = []
    for old in results.legacy_run_dirs():
        try:
            record = records.load(old / layout.RECORD_FILE)
        except RecordError as error:
            write(f"left {old} in the layout before run variants (its record cannot be read: "
                  f"{error}); move or delete it by hand")  # fmt: skip
            continue
        variant = layout.variant(record.provenance.backend, record.config.precision,
                                 record.config.plant)  # fmt: skip
        target = old.parent / variant / old.name
        if target.exists():
            write(f"left {old}: {target} exists already; move or delete one by hand")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, target)
        rerun = layout.rerun_dir(old)
        if rerun.exists() and not layout.rerun_dir(target).exists():
            os.replace(rerun, layout.rerun_dir(target))
        write(f"moved {old} to {target} (a run's folder now names its variant)")
        moved.append(target)
    return moved
