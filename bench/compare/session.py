"""One paired comparison from start to end: the sides, the runs, the verdicts, the document.

Used by `python -m bench compare` and by `pytest bench --cnnbench-base=REF`; both print
`Comparison.summary()` and write `Comparison.document()` to `results/compare/comparison.json`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.compare import verdict
from bench.compare.interleave import Pair, Say, Task, WorkerError, say_on_stderr
from bench.compare.sides import Side, prepared
from bench.storage import layout
from bench.storage.atomic import write_json
from bench.training.request import RunRequest
from bench.vocabulary import OptionError

SCHEMA = "cnn-mnist-bench/comparison"
VERSION = 2
METHOD = ("paired blocks, ABBA order, every duration read by the training clock "
          "(bench.training.clock). Three verdicts. Typical step: per block the median step "
          "time (each side's first steps and partial batches left out); Hodges-Lehmann "
          "estimate of the head/base log ratio with the 95% interval of the inverted Wilcoxon "
          "signed-rank test. Training time: the ratio of the totals of every paired step after "
          "the first (compilation) and of each epoch's time outside its steps; Student's "
          f"interval of the summed paired differences, their spread {verdict.WINSORIZED:.0%}-"
          "winsorized. Evaluation time: the same over the evaluations after the first "
          "(compilation), each epoch's and the repeats after training (Task.eval_repeats). "
          "Each: regression when the interval lies above 1 and the estimate above 1 + "
          "threshold/2, else pass when the interval lies below "
          "1 + threshold, else cannot tell; the comparison regresses when any verdict "
          "does")  # fmt: skip


@dataclass(frozen=True)
class CompareOptions:
    """The comparison's own options: the two sides, the rule, where its files go."""

    base: str | None
    """A git ref, `merge-base:BRANCH`, or None (the working tree, with `base_python`)."""
    head: str | None = None
    """A git ref; None: this working tree."""
    base_python: str | None = None
    threshold: float = verdict.DEFAULT_THRESHOLD
    block: int = 1
    fail_on_improvement: bool = False
    out: Path = layout.DEFAULT_RESULTS
    baselines: Path | None = None
    """For the seed band of the numerics column (None: the packaged baselines)."""


@dataclass
class Comparison:
    """The outcome: per architecture, speed and numerics; the sides; how long it took."""

    base: Side
    head: Side
    tasks: list[Task]
    threshold: float
    backend: str
    plant: str
    fail_on_improvement: bool = False
    results: list[verdict.ArchResult] = field(default_factory=list)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    hello: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 pass, 1 a regression (or an improvement, asked), 2 something could not be compared."""
        return verdict.exit_code(self.results, self.fail_on_improvement)

    def summary(self) -> str:
        """Return the human table, what was compared, and the verdict in one line."""
        task = self.tasks[0]
        budget = task.budget + (f" epochs={task.epochs}" if task.epochs else "") + (
            f" train_samples={task.train_samples}" if task.train_samples else "")  # fmt: skip
        regressions = [r.arch for r in self.results if r.status == "regression"]
        unclear = [r.arch for r in self.results if r.status == "cannot compare"]
        faster = [r for r in self.results if r.status == "improvement"]
        lines = [
            f"base: {self.base.label}",
            f"head: {self.head.label}"
            + (f" with planted {self.plant}" if self.plant != "none" else ""),
            f"{budget}, seed {task.seed}, {self.backend}, precision {task.precision}, blocks of "
            f"{task.block} steps, threshold {self.threshold:.0%} ({self.seconds:.0f} s)",
            verdict.table(self.results),
        ]
        if regressions:
            which = "; ".join(f"{r.arch} ({', '.join(r.failed)})" for r in self.results
                              if r.status == "regression")  # fmt: skip
            lines.append(f"REGRESSION: significantly slower, by more than "
                         f"{self.threshold / 2:.0%}: {which}")  # fmt: skip
        if unclear:
            lines.append(
                f"CANNOT COMPARE: {', '.join(unclear)} (an error, or too noisy "
                f"to rule out a {self.threshold:.0%} slowdown: train more steps)"
            )
        if faster:
            which = "; ".join(f"{r.arch} ({', '.join(r.improved)})" for r in faster)
            fails = (" (fails: --fail-on-improvement; update the baseline)"
                     if self.fail_on_improvement else "")  # fmt: skip
            lines.append(f"FASTER: significantly faster, by more than {self.threshold / 2:.0%}: "
                         f"{which}{fails}")  # fmt: skip
        if not regressions and not unclear:
            lines.append(f"ok: no typical step, training time or evaluation time slower by "
                         f"{self.threshold:.0%}")  # fmt: skip
        return "\n".join(lines)

    def markdown(self) -> str:
        """Return the comparison as GitHub-flavoured Markdown (for a CI job's summary)."""
        mark = {0: "✅ passed", 1: "❌ failed", 2: "⚠️ cannot compare"}[self.exit_code]
        if self.exit_code == 0 and any(r.status == "improvement" for r in self.results):
            mark += " (faster)"
        return (f"### cnnbench paired comparison: {mark}\n\nbase `{self.base.label}`, head "
                f"`{self.head.label}`, threshold {self.threshold:.0%}, same machine, "
                f"interleaved.\n\n{verdict.table(self.results, 'github')}\n")  # fmt: skip

    def document(self) -> dict[str, Any]:
        """Return the machine-readable comparison (`results/compare/comparison.json`)."""

        def side(s: Side, hello: dict[str, Any]) -> dict[str, Any]:
            return {"label": s.label, "commit": s.commit, "root": str(s.root),
                    "python": s.python, "versions": hello.get("versions", {})}  # fmt: skip

        archs = []
        for result in self.results:
            entry: dict[str, Any] = {"arch": result.arch, "status": result.status,
                                     "error": result.error, "note": result.note}  # fmt: skip
            entry["failed"] = result.failed
            entry["improved"] = result.improved
            if result.speed:
                entry["speed"] = asdict(result.speed) | {"change": result.speed.change}
            for name, total in (("training", result.training),
                                ("evaluation", result.evaluation)):  # fmt: skip
                if total:
                    entry[name] = asdict(total) | {"change": total.change}
            if result.compile_seconds:
                entry["compile_seconds"] = dict(zip(("base", "head"), result.compile_seconds,
                                                    strict=True))  # fmt: skip
            if result.numerics:
                entry["numerics"] = asdict(result.numerics) | {
                    "difference": result.numerics.difference,
                    "outside_band": result.numerics.outside_band,
                    "summary": result.numerics.describe()}  # fmt: skip
            entry |= self.raw.get(result.arch, {})
            archs.append(entry)
        hello = self.hello or [{}, {}]
        return {
            "schema": SCHEMA, "version": VERSION,
            "base": side(self.base, hello[0]), "head": side(self.head, hello[1]),
            "task": {k: v for k, v in asdict(self.tasks[0]).items() if k != "arch"},
            "backend": self.backend, "plant": self.plant, "threshold": self.threshold,
            "confidence": verdict.CONFIDENCE, "method": METHOD, "seconds": self.seconds,
            "fail_on_improvement": self.fail_on_improvement,
            "exit_status": self.exit_code, "archs": archs,
        }  # fmt: skip


def _seed_band(options: CompareOptions, task: Task, backend: str, hello: dict[str, Any],
               precision: str) -> float | None:  # fmt: skip
    """Half-width of the gate's accuracy band for this run's baseline, None if there is none."""
    from bench.budgets import get_budget
    from bench.measurement import bands
    from bench.storage.baselines import BaselineError, Key, resolve
    from bench.storage.records import Device

    if not hello.get("device"):
        return None
    try:
        budget = get_budget(task.budget, epochs=task.epochs, train_samples=task.train_samples)
        key = Key.on(Device(**hello["device"]), budget.name, backend, precision)
        found = resolve(key, hello.get("versions", {}),
                        options.baselines or layout.default_baselines())  # fmt: skip
    except (BaselineError, TypeError, ValueError):
        return None
    entry = found.baseline.archs.get(task.arch)
    if entry is None:
        return None
    tolerance = found.baseline.tolerance_for(task.arch)
    return entry.test_accuracy.mean - bands.bound("test_accuracy", tolerance,
                                                  entry.test_accuracy)  # fmt: skip


def tasks(request: RunRequest, block: int) -> list[Task]:
    """One task per architecture: the request's run, in blocks of `block` steps; one seed."""
    if len(request.seeds) != 1:
        raise OptionError(f"a comparison trains one seed on both sides; got {list(request.seeds)}")
    name, epochs, train_samples = request.budget_spec
    return [Task(arch, name, epochs, train_samples, request.seeds[0], request.precision, block)
            for arch in request.archs]  # fmt: skip


def compare(request: RunRequest, options: CompareOptions,
            say: Say = say_on_stderr) -> Comparison:  # fmt: skip
    """Run the comparison of `request`'s runs on the two sides; write its JSON; return it.

    Raises CompareError (exit 2) when it cannot start: a missing ref, a side that does not
    run. An architecture one side cannot train is a row with its error.
    """
    if options.base is None and options.base_python is None:
        raise OptionError("give the base to compare against: --base REF (a git ref, e.g. "
                          "HEAD~1) and/or --base-python PATH (another environment)")  # fmt: skip
    if request.eval_every:
        raise OptionError("a comparison does not evaluate inside epochs (--eval-every): it "
                          f"times each epoch's evaluation and {Task.eval_repeats} more after "
                          "training; drop --eval-every")  # fmt: skip
    todo = tasks(request, options.block)
    backend = request.backend
    results = layout.Results(options.out)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(prepared("base", options.base, options.base_python,
                                            options.head))  # fmt: skip
        head = stack.enter_context(prepared("head", options.head, None))
        say(f"compare: base {base.label} against head {head.label}: "
            f"{', '.join(t.arch for t in todo)}")  # fmt: skip
        pair = Pair(base, head, backend, results.compare_dir, request.data, request.plant, say)
        stack.callback(pair.close)
        comparison = Comparison(base, head, todo, options.threshold, backend, request.plant,
                                options.fail_on_improvement, hello=pair.hello)  # fmt: skip
        for task in todo:
            comparison.results.append(_one(options, pair, task, backend, comparison))
            say(verdict.table(comparison.results[-1:]).splitlines()[-1])
    comparison.seconds = time.monotonic() - started
    write_json(results.comparison_json, comparison.document())
    return comparison


def _one(options: CompareOptions, pair: Pair, task: Task, backend: str,
         comparison: Comparison) -> verdict.ArchResult:  # fmt: skip
    try:
        base, head = pair.run(task)
    except WorkerError as error:
        return verdict.ArchResult(task.arch, None, None, str(error))
    comparison.raw[task.arch] = {
        "precision": {"base": base.ready["precision"], "head": head.ready["precision"]},
        "same_data": base.ready["data"] == head.ready["data"],
        "blocks": {"base": base.blocks, "head": head.blocks},
        "history": {"base": base.done["epochs"], "head": head.done["epochs"]},
        "final": {"base": base.done["final"], "head": head.done["final"]},
        "train_seconds": {"base": base.done["train_seconds"], "head": head.done["train_seconds"]},
        "eval_seconds": {
            "base": base.done["eval_seconds"] + base.evaluations,
            "head": head.done["eval_seconds"] + head.evaluations,
        },
        "clock": {"base": base.ready.get("clock"), "head": head.ready.get("clock")},
        "off_seconds": {"base": base.done.get("off_seconds"), "head": head.done.get("off_seconds")},
        "setup_end": {"base": base.done.get("setup_end"), "head": head.done.get("setup_end")},
    }
    band = _seed_band(options, task, backend, pair.hello[1], head.ready["precision"])
    numerics = verdict.numerics(base.done["epochs"], head.done["epochs"], base.done["final"],
                                head.done["final"], band)  # fmt: skip
    notes = []
    if base.ready["precision"] != head.ready["precision"]:
        notes.append(f"precisions differ: base {base.ready['precision']}, head "
                     f"{head.ready['precision']}")  # fmt: skip
    if base.ready["data"] != head.ready["data"]:
        notes.append("the sides trained on different data")
    errors = []
    try:
        speed = verdict.speed(base.blocks, head.blocks, options.threshold)
    except ValueError as too_few:
        errors.append(str(too_few))
        speed = None
    try:
        training = verdict.paired_total(
            "training", verdict.training_durations(base.blocks, base.done["train_seconds"]),
            verdict.training_durations(head.blocks, head.done["train_seconds"]),
            options.threshold)  # fmt: skip
    except ValueError as too_few:
        errors.append(str(too_few))
        training = None
    try:  # the first evaluation compiles: one pair, left out like the first steps
        evaluation = verdict.paired_total(
            "evaluation", (base.done["eval_seconds"] + base.evaluations)[1:],
            (head.done["eval_seconds"] + head.evaluations)[1:], options.threshold)  # fmt: skip
    except ValueError as too_few:
        errors.append(str(too_few))
        evaluation = None
    error = "; ".join(errors) or None
    compiled = (verdict.compile_seconds(base.blocks), verdict.compile_seconds(head.blocks))
    return verdict.ArchResult(task.arch, speed, numerics, error, "; ".join(notes) or None,
                              training, evaluation, compiled)  # fmt: skip
