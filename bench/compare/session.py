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

from bench.compare import accuracy, verdict
from bench.compare.interleave import Pair, Say, SideRun, Task, WorkerError, say_on_stderr
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
          "does. Accuracy: identical histories are the verdict; when they part, the same "
          "seeds on both sides (the compared one and the next), each run's test accuracy and "
          "loss on all 10,000 test images, the mean paired change with Student's 95% "
          "interval, the same rule on the harm against its threshold "
          "(bench.compare.accuracy)")  # fmt: skip


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
    accuracy_seeds: int = accuracy.DEFAULT_SEEDS
    """Seeds a side for the accuracy verdict when the histories part (0: no verdict; the
    table then says the histories parted and nothing more, and the comparison cannot pass)."""
    accuracy_threshold: float = accuracy.ACCURACY_THRESHOLD
    loss_threshold: float = accuracy.LOSS_THRESHOLD


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
    accuracy_seeds: int = accuracy.DEFAULT_SEEDS
    accuracy_threshold: float = accuracy.ACCURACY_THRESHOLD
    loss_threshold: float = accuracy.LOSS_THRESHOLD

    @property
    def accuracy_rule(self) -> str:
        """The accuracy verdict's thresholds in words."""
        points = self.accuracy_threshold * 100
        return (f"accuracy threshold {points:g} point{'' if points == 1 else 's'}, loss "
                f"{self.loss_threshold:.0%}, {self.accuracy_seeds} seeds a side when the "
                "histories part")  # fmt: skip

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
            f"{task.block} steps, threshold {self.threshold:.0%}; {self.accuracy_rule} "
            f"({self.seconds:.0f} s)",
            verdict.table(self.results),
        ]
        if regressions:
            which = "; ".join(f"{r.arch} ({', '.join(r.failed)})" for r in self.results
                              if r.status == "regression")  # fmt: skip
            lines.append(f"REGRESSION: significantly slower by more than "
                         f"{self.threshold / 2:.0%}, or learns significantly worse by more than "
                         f"half its threshold: {which}")  # fmt: skip
        if unclear:
            said = "; ".join(
                f"{r.arch}: {r.accuracy.describe() if r.accuracy else r.accuracy_error}"
                for r in self.results if r.accuracy_unclear)  # fmt: skip
            lines.append(
                f"CANNOT COMPARE: {', '.join(unclear)} (an error, too noisy "
                f"to rule out a {self.threshold:.0%} slowdown: train more steps, or an accuracy "
                f"verdict that cannot tell: more seeds{'; ' + said if said else ''})"
            )
        if faster:
            which = "; ".join(f"{r.arch} ({', '.join(r.improved)})" for r in faster)
            fails = (" (fails: --fail-on-improvement; update the baseline)"
                     if self.fail_on_improvement else "")  # fmt: skip
            lines.append(f"IMPROVED: significantly faster by more than "
                         f"{self.threshold / 2:.0%}, or better learnt: {which}{fails}")  # fmt: skip
        if not regressions and not unclear:
            lines.append(f"ok: no typical step, training time or evaluation time slower by "
                         f"{self.threshold:.0%}, and no model learns worse")  # fmt: skip
        return "\n".join(lines)

    def markdown(self) -> str:
        """Return the comparison as GitHub-flavoured Markdown (for a CI job's summary)."""
        mark = {0: "✅ passed", 1: "❌ failed", 2: "⚠️ cannot compare"}[self.exit_code]
        if self.exit_code == 0 and any(r.status == "improvement" for r in self.results):
            mark += " (faster)"
        table = verdict.table(self.results, "github")
        return (f"### cnnbench paired comparison: {mark}\n\nbase `{self.base.label}`, head "
                f"`{self.head.label}`, threshold {self.threshold:.0%}; {self.accuracy_rule}; "
                f"same machine, interleaved.\n\n{table}\n")  # fmt: skip

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
                    "summary": result.numerics.describe()}  # fmt: skip
            entry["accuracy"] = (asdict(result.accuracy) | {
                "status": result.accuracy.status, "summary": result.accuracy.describe()}
                if result.accuracy else None)  # fmt: skip
            entry["accuracy_error"] = result.accuracy_error
            entry["diverged"] = list(result.diverged)
            entry |= self.raw.get(result.arch, {})
            archs.append(entry)
        hello = self.hello or [{}, {}]
        return {
            "schema": SCHEMA, "version": VERSION,
            "base": side(self.base, hello[0]), "head": side(self.head, hello[1]),
            "task": {k: v for k, v in asdict(self.tasks[0]).items() if k != "arch"},
            "backend": self.backend, "plant": self.plant, "threshold": self.threshold,
            "confidence": verdict.CONFIDENCE, "method": METHOD, "seconds": self.seconds,
            "accuracy_seeds": self.accuracy_seeds,
            "accuracy_threshold": self.accuracy_threshold,
            "loss_threshold": self.loss_threshold,
            "fail_on_improvement": self.fail_on_improvement,
            "exit_status": self.exit_code, "archs": archs,
        }  # fmt: skip


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
                                options.fail_on_improvement, hello=pair.hello,
                                accuracy_seeds=options.accuracy_seeds,
                                accuracy_threshold=options.accuracy_threshold,
                                loss_threshold=options.loss_threshold)  # fmt: skip
        for task in todo:
            comparison.results.append(_one(options, pair, task, backend, comparison))
            say(verdict.table(comparison.results[-1:]).splitlines()[-1])
    comparison.seconds = time.monotonic() - started
    write_json(results.comparison_json, comparison.document())
    return comparison


def _one(options: CompareOptions, pair: Pair, task: Task, backend: str,
         comparison: Comparison) -> verdict.ArchResult:  # fmt: skip
    started = time.monotonic()
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
    numerics = verdict.numerics(base.done["epochs"], head.done["epochs"], base.done["final"],
                                head.done["final"])  # fmt: skip
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
    judged: tuple[accuracy.Accuracy | None, str | None, tuple[int, ...]] = (None, None, ())
    if not numerics.identical:
        judged = _accuracy(options, pair, task, (base, head), comparison,
                           (time.monotonic() - started) / 2)  # fmt: skip
    return verdict.ArchResult(task.arch, speed, numerics, error, "; ".join(notes) or None,
                              training, evaluation, compiled, *judged)  # fmt: skip


def _figures(value: Any) -> list[float] | None:
    """Return a side's [loss, accuracy] when it is two finite numbers (not bools), else None."""
    import math

    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value)):  # fmt: skip
        return [float(v) for v in value]
    return None


def _accuracy(options: CompareOptions, pair: Pair, task: Task, first: tuple[SideRun, SideRun],
              comparison: Comparison, each: float,
              ) -> tuple[accuracy.Accuracy | None, str | None, tuple[int, ...]]:  # fmt: skip
    """Train the accuracy verdict's seeds on both sides and judge them (the histories parted).

    Returns (the verdict, None, ()), or (None, why there is none, the seeds the head did not
    finish where the base did: a regression). Its cost, said before it starts (from `each`,
    a side's share of the interleaved run, its repeated evaluations included: an upper
    guess), is paid only here: when numerics changed.
    """
    wanted = options.accuracy_seeds
    if wanted == 0:
        return None, ("histories parted; no accuracy verdict (--accuracy-seeds 0): cannot "
                      "tell whether the head learns worse"), ()  # fmt: skip
    most = wanted * accuracy.EXTEND
    seeds = [(task.seed + i) % 2**32 for i in range(most)]
    pair.say(f"compare {task.arch}: the histories part, so {wanted - 1} more seeds a side for "
             f"the accuracy verdict (seeds {seeds[1]}-{seeds[wanted - 1]}; about "
             f"{2 * (wanted - 1) * each:.0f} s here; {most - wanted} more if it cannot tell "
             "at that many)")  # fmt: skip
    runs: list[tuple[int, list[float] | None, list[float] | None]] = [
        (task.seed, _figures(first[0].full), _figures(first[1].full))
    ]
    started = time.monotonic()
    for seed in seeds[1:]:
        if len(runs) == wanted:
            judged = _judged(runs, options)[0]
            if judged is None or judged.status != "unclear":
                break
            pair.say(f"compare {task.arch}: cannot tell at {wanted} seeds a side "
                     f"({judged.describe()}); {most - wanted} more a side")  # fmt: skip
        try:
            base, head = pair.train(task, seed)
        except WorkerError as error:
            return None, f"histories parted; the accuracy verdict's seed {seed}: {error}", ()
        runs.append((seed, _figures(base["full"]), _figures(head["full"])))
        pair.say(f"compare {task.arch}: accuracy seed {seed}: base {runs[-1][1]}, head "
                 f"{runs[-1][2]} ({time.monotonic() - started:.0f} s)")  # fmt: skip
    comparison.raw.setdefault(task.arch, {})["accuracy_runs"] = [
        {"seed": s, "base": b, "head": h} for s, b, h in runs]  # fmt: skip
    return _judged(runs, options)


def _judged(runs: list[tuple[int, list[float] | None, list[float] | None]],
            options: CompareOptions,
            ) -> tuple[accuracy.Accuracy | None, str | None, tuple[int, ...]]:  # fmt: skip
    """Judge the accuracy verdict's runs so far (`_accuracy`'s return shape)."""
    missing = [s for s, b, h in runs if b is None or h is None]
    if missing:
        lost = tuple(s for s, b, h in runs if b is not None and h is None)
        if lost:
            return None, f"the head diverged at seeds {list(lost)}, the base did not", lost
        return None, f"histories parted; no test metrics for seeds {missing} (diverged)", ()
    try:
        judged = accuracy.judge([b for _, b, _ in runs], [h for _, _, h in runs],  # type: ignore[misc]
                                [s for s, _, _ in runs], options.accuracy_threshold,
                                options.loss_threshold)  # fmt: skip
    except ValueError as error:
        return None, f"histories parted; no accuracy verdict: {error}", ()
    return judged, None, ()
