"""The harness's options, declared once and shared by the pytest plugin and the command line.

`pytest bench` registers them as `--cnnbench-<name>`, `python -m bench` as `--<name>`, from the
same declarations (pytest-benchmark shares its option declarations between its plugin and its
CLI this way), so names, syntax, defaults and checks cannot drift apart. Lists are
comma-separated in both (`--seeds 0,1,2`); on the command line they may also be given as
several words (`--seeds 0 1 2`). Keras-free: `--help` imports no backend.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.budgets import BUDGETS, DEFAULT_BUDGET
from bench.compare import accuracy as verdict_accuracy
from bench.storage.layout import DEFAULT_RESULTS
from bench.storage.records import EXECUTORS, MAX_SEED
from bench.vocabulary import (
    BACKENDS,
    DEFAULT_PRECISION,
    DEFAULT_THRESHOLD,
    GATE_MODES,
    PRECISIONS,
    OptionError,
)

if TYPE_CHECKING:
    from bench.compare.session import CompareOptions
    from bench.training.request import RunRequest

__all__ = ["GATE_MODES", "OPTIONS", "OptionError", "Settings", "add_options"]

PYTEST_PREFIX = "cnnbench-"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _flatten(values: Sequence[Any]) -> list[Any]:
    """Join the lists of several words (`--seeds 0,1 2`) into one list."""
    return [item for value in values for item in (value if isinstance(value, list) else [value])]


def _among(text: str, valid: Iterable[str], what: str) -> list[str]:
    """Parse comma-separated words, each one of `valid`; say which are not, and the valid."""
    words, valid = _split(text), list(valid)
    unknown = [w for w in words if w not in valid]
    if not words or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}(s) {unknown or [text]}; valid: {','.join(valid)}"
        )
    return words


def archs(text: str) -> list[str]:
    """Parse comma-separated architecture ids, each checked against the registry."""
    from archs import REGISTRY

    return _among(text, REGISTRY, "architecture")


def _digits(text: str) -> int:
    """Parse a whole number written in ASCII digits (int() also takes `1_0` and `٣`)."""
    if not re.fullmatch(r"-?[0-9]+", text.strip()):
        raise ValueError(text)
    return int(text)


def seeds(text: str) -> list[int]:
    """Parse comma-separated seeds: integers in [0, 2**32 - 1], in ASCII digits."""
    try:
        values: list[int] | None = [_digits(part) for part in _split(text)]
    except ValueError:
        values = None
    if values and all(0 <= s <= MAX_SEED for s in values):
        return values
    what = ("seeds are comma-separated non-negative integers" if values is None
            else f"a seed is an integer from 0 to {MAX_SEED} (2**32 - 1)")  # fmt: skip
    raise argparse.ArgumentTypeError(f"{what}, got {text!r}")


def precisions(text: str) -> list[str]:
    """Parse comma-separated precisions (a study's grid)."""
    return _among(text, PRECISIONS, "precision")


def plant(text: str) -> str:
    """Parse a plant's name (`bench.training.plants`)."""
    from bench.training.plants import check

    try:
        return check(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def fraction(text: str) -> float:
    """Parse a fraction in (0, 1), also written as a percentage: 0.1 or 10%."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction like 0.1 or 10%, got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a fraction in (0, 1) like 0.1 or 10%, got {text!r}"
        )
    return value


def points(text: str) -> float:
    """Parse accuracy points in (0, 100], as a fraction: 1 or 1pt is 0.01."""
    number = text[:-2] if text.endswith("pt") else text
    try:
        value = float(number) if re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", number) else math.nan
    except ValueError:
        value = math.nan
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(
            f"expected accuracy points in (0, 100] like 1 or 0.5, got {text!r}"
        )
    return value / 100


def accuracy_seeds(text: str) -> int:
    """Parse the accuracy verdict's seeds a side: 0 (no verdict) or at least its minimum."""
    value = _integer(text, 0, "an integer >= 0")
    if 0 < value < verdict_accuracy.MIN_SEEDS:
        raise argparse.ArgumentTypeError(
            f"the accuracy verdict needs at least {verdict_accuracy.MIN_SEEDS} seeds a side "
            "(or 0 for none), "
            f"got {value}"
        )
    return value


def minutes(text: str) -> float:
    """Parse a positive number of minutes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {value}")
    return value


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = _digits(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def non_negative(text: str) -> int:
    """Parse an integer >= 0."""
    return _integer(text, 0, "an integer >= 0")


def positive(text: str) -> int:
    """Parse a positive integer."""
    return _integer(text, 1, "a positive integer")


@dataclass(frozen=True)
class Option:
    """One option: its name (without prefix), converter or choices, default and help."""

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    flag: bool = False
    listed: bool = False
    """A comma-separated list; on the command line, several words are accepted too."""
    aliases: tuple[str, ...] = ()
    """Older command-line spellings that still work (e.g. --arch)."""

    @property
    def dest(self) -> str:
        """The attribute name in a parsed namespace."""
        return self.name.replace("-", "_")


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("budget", f"training budget (default {DEFAULT_BUDGET})", DEFAULT_BUDGET,
               choices=tuple(BUDGETS)),
        Option("archs", "architecture ids, comma-separated (default: the notebook's six)",
               type=archs, listed=True, aliases=("arch",)),
        Option("seeds", "seeds, comma-separated and distinct (default 0); 5+ for a baseline",
               [0], type=seeds, listed=True),
        Option("epochs", "override the budget's epochs", type=positive),
        Option("train-samples", "override the budget's training images", type=positive),
        Option("eval-every", "also evaluate every N training steps inside an epoch (off the "
               "training clock), for time-to-accuracy finer than an epoch", type=positive),
        Option("backend", "Keras backend (default: $KERAS_BACKEND, else tensorflow)",
               choices=BACKENDS),
        Option("precision", "Keras dtype policy; auto (default) = the fastest measured to keep "
               "float32's accuracy: mixed_bfloat16 for TensorFlow on CPUs with AVX512_BF16/AMX, "
               "else float32", DEFAULT_PRECISION, choices=PRECISIONS),
        Option("out", f"results folder: runs/, benchmark.json, report/ (default "
               f"{DEFAULT_RESULTS})", DEFAULT_RESULTS, type=Path),
        Option("data", "an mnist.npz or a folder of the four IDX .gz files (default: "
               "$CNNBENCH_DATA, else the verified cache or download)", type=Path),
        Option("force", "train again runs whose folder holds a completed record of the same "
               "configuration (kept by default; unfinished runs always resume)", flag=True),
        Option("gate", "what to gate: accuracy and speed (all), accuracy only, or nothing",
               "all", choices=GATE_MODES),
        Option("baselines", "measured-baselines folder (default: $CNNBENCH_BASELINES, else "
               "the packaged baselines/measured)", type=Path),
        Option("summary", "also write the gate's summary as Markdown to this file (default: "
               "$GITHUB_STEP_SUMMARY when set)", type=Path),
        Option("regen", "write this session's results as the baseline (2+ seeds)", flag=True),
        Option("allow-fewer-seeds", "let a regenerated baseline replace entries measured "
               "over more seeds", flag=True),
        Option("plant", "plant a regression to prove the gate fails on it: none, lr0, "
               "shuffled-labels; a change of what the model learns: lr-scale:F (Adam's "
               "learning rate times F), wrong-labels:F (that fraction of the training labels "
               "wrong), jitter:F and data-order:N (honest controls: initial weights moved by F "
               "of their spread; the images in shuffle stream N); or a slowdown of one shape "
               "by the fraction F (0 < F <= 10): "
               "slow-step:F (each step's own work), between-steps:F (work before each "
               "batch), stall:F (once per epoch), slow-eval:F (each evaluation); `compare` "
               "plants it in the head", "none", type=plant),
        Option("precisions", "a study's precisions, comma-separated (default: --precision)",
               type=precisions, listed=True),
        Option("executor", "where a study's runs train: local (one at a time, each in its own "
               "process) or ray (Ray tasks, local instance or cluster)", "local",
               choices=EXECUTORS),
        Option("address", "the Ray cluster to join (default: $RAY_ADDRESS, else a new local "
               "instance)"),
        Option("cpus-per-run", "CPUs each Ray run asks for, also its thread limit (default 1)",
               1, type=positive),
        Option("gpus-per-run", "GPUs each Ray run asks for (default: 1 where the cluster has "
               "GPUs, else 0)", type=non_negative),
        Option("retries", "how often Ray retries a run whose worker died (default 3)", 3,
               type=non_negative),
        Option("baseline", "also write the study's completed runs as their measured baseline",
               flag=True),
        Option("no-estimate", "study: start at once, without the probe that estimates the "
               "runs' time here; the time left is then the finished runs' mean", flag=True),
        Option("minutes", "the main job picks as many seeds (of 0-4) as its estimate fits in "
               "this many minutes, when --seeds is not given (default 15)", 15.0, type=minutes),
        Option("base", "compare: the base, a git ref of this repository (a branch, tag or "
               "commit, e.g. HEAD~1), checked out in a temporary worktree; "
               "merge-base:BRANCH is the merge base of the head and BRANCH (a pull request's "
               "base, e.g. merge-base:origin/main)"),
        Option("head", "compare: the head, a git ref (default: this working tree)"),
        Option("base-python", "compare: the base's Python interpreter, another environment "
               "(a library upgrade); with no --base, both sides run this working tree"),
        Option("threshold", "compare: the slowdown of the typical step, the training time or "
               "the evaluation time the comparison must catch (default 10%%): fails when a "
               "significant slowdown of any exceeds half of it",
               DEFAULT_THRESHOLD, type=fraction),
        Option("good", "bisect: a commit that was fast (the base of every comparison)"),
        Option("bad", "bisect: a later commit that is slow"),
        Option("fail-on-improvement", "compare: a significant speed-up fails too (exit 1), "
               "for those who keep baselines tight (default: said as FASTER, passes)",
               flag=True),
        Option("block", "compare: steps each side trains before the other takes its turn "
               "(default 1: the closest pairs, the narrowest intervals)", 1, type=positive),
        Option("accuracy-seeds", "compare: seeds a side for the accuracy verdict when the "
               "histories part, the compared seed and the next ones (default "
               f"{verdict_accuracy.DEFAULT_SEEDS}; {verdict_accuracy.EXTEND}x as many, once, "
               "when it cannot tell at that many; 0: no verdict, and the comparison cannot "
               "pass a change of numerics)", verdict_accuracy.DEFAULT_SEEDS,
               type=accuracy_seeds),
        Option("accuracy-threshold", "compare: the drop of test accuracy, in points, the "
               "accuracy verdict must catch (default "
               f"{verdict_accuracy.ACCURACY_THRESHOLD * 100:g}): fails when a significant drop "
               "exceeds half of it", verdict_accuracy.ACCURACY_THRESHOLD, type=points),
        Option("loss-threshold", "compare: the rise of test loss the accuracy verdict must "
               f"catch (default {verdict_accuracy.LOSS_THRESHOLD * 100:g}%%): fails when a "
               "significant rise exceeds half of it", verdict_accuracy.LOSS_THRESHOLD,
               type=fraction),
    )
}  # fmt: skip

TRAINING = ("archs", "budget", "seeds", "epochs", "train-samples", "eval-every", "backend",
            "precision", "data")  # fmt: skip
"""The options that say which runs to train and how."""

COMPARISON = ("plant", "base", "head", "base-python", "threshold", "fail-on-improvement", "block",
              "accuracy-seeds", "accuracy-threshold", "loss-threshold")  # fmt: skip
"""The options of a paired comparison (`python -m bench compare`, `pytest bench`)."""


def add_options(add: Callable[..., Any], names: Iterable[str], *, prefix: str = "") -> None:
    """Declare the named options through `add` (argparse's or pytest's `addoption`).

    With a prefix (pytest), lists are one comma-separated word; without (the command line),
    they may also be several words.
    """
    for name in names:
        option = OPTIONS[name]
        flags = [f"--{prefix}{option.name}"]
        if not prefix:
            flags += [f"--{alias}" for alias in option.aliases]
        kwargs: dict[str, Any] = {"dest": option.dest, "help": option.help}
        if option.flag:
            kwargs |= {"action": "store_true", "default": False}
        else:
            kwargs |= {"default": None}
            if option.choices:
                kwargs["choices"] = option.choices
            if option.type:
                kwargs["type"] = option.type
            if option.listed and not prefix:
                kwargs |= {"nargs": "+", "action": "extend"}
        add(*flags, **kwargs)


@dataclass(frozen=True)
class Settings:
    """Parsed options, defaults applied and checked together."""

    budget: str
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int | None
    train_samples: int | None
    eval_every: int | None
    backend: str | None
    precision: str
    out: Path
    data: Path | None
    force: bool
    gate: str
    baselines: Path | None
    summary: Path | None
    regen: bool
    allow_fewer_seeds: bool
    plant: str
    precisions: tuple[str, ...] | None
    executor: str
    address: str | None
    cpus_per_run: int
    gpus_per_run: int | None
    retries: int
    baseline: bool
    no_estimate: bool
    minutes: float
    base: str | None
    head: str | None
    base_python: str | None
    threshold: float
    fail_on_improvement: bool
    block: int
    accuracy_seeds: int
    accuracy_threshold: float
    loss_threshold: float
    good: str | None
    bad: str | None

    @classmethod
    def parse(cls, value: Callable[[str], Any], **defaults: Any) -> Settings:
        """Build settings from `value(dest)` (None when unset); `defaults` overrides defaults.

        Raises OptionError for options that conflict.
        """
        from archs import NOTEBOOK_IDS
        from bench.storage.baselines import MIN_SEEDS

        found: dict[str, Any] = {}
        for option in OPTIONS.values():
            given = value(option.dest)
            if given is None or (option.flag and not given):
                given = defaults.get(option.dest, option.default)
            if option.listed and given is not None:
                given = _flatten(given)
            found[option.dest] = given
        found["archs"] = tuple(found["archs"] or NOTEBOOK_IDS)
        found["seeds"] = tuple(found["seeds"])
        found["precisions"] = tuple(found["precisions"]) if found["precisions"] else None
        settings = cls(**found)
        if len(set(settings.seeds)) != len(settings.seeds):
            raise OptionError(f"seeds must be distinct, got {list(settings.seeds)}")
        if (settings.regen or settings.baseline) and len(settings.seeds) < MIN_SEEDS:
            raise OptionError(
                f"regenerating a baseline needs at least {MIN_SEEDS} seeds (5 recommended) so "
                "the band has a spread; e.g. seeds 0,1,2,3,4"
            )
        if settings.regen and settings.plant != "none":
            raise OptionError("regenerating with a planted regression would store it")
        if settings.summary is not None and Path(settings.summary).is_dir():
            raise OptionError(f"--summary {settings.summary} is a folder; give the Markdown "
                              "file to append to, e.g. results/ci/summary.md")  # fmt: skip
        return settings

    def request(self) -> RunRequest:
        """Return the runs these options ask for, the budget resolved once (OptionError)."""
        from bench.budgets import get_budget
        from bench.training.backends import requested
        from bench.training.request import RunRequest

        try:
            budget = get_budget(self.budget, epochs=self.epochs, train_samples=self.train_samples)
        except ValueError as error:
            raise OptionError(str(error)) from None
        return RunRequest(self.archs, budget, self.seeds, self.precision,
                          self.backend or requested(), self.data, self.eval_every,
                          self.plant)  # fmt: skip

    def comparison(self) -> CompareOptions:
        """Return the paired comparison's own options (`bench.compare.session`)."""
        from bench.compare.session import CompareOptions

        return CompareOptions(self.base, self.head, self.base_python, self.threshold,
                              self.block, self.fail_on_improvement, self.out,
                              self.accuracy_seeds, self.accuracy_threshold,
                              self.loss_threshold)  # fmt: skip

    def pytest_args(self, names: Sequence[str]) -> list[str]:
        """Return these settings as `--cnnbench-*` arguments (for the main job's pytest run)."""
        args = []
        for name in names:
            option, value = OPTIONS[name], getattr(self, OPTIONS[name].dest)
            if option.flag:
                args += [f"--{PYTEST_PREFIX}{name}"] if value else []
            elif value is not None:
                text = ",".join(map(str, value)) if option.listed else str(value)
                args.append(f"--{PYTEST_PREFIX}{name}={text}")
        return args
