"""Name the commit that made training slower: bisection by paired comparisons against GOOD.

`python -m bench bisect --good REF --bad REF [--archs ...]`. The commits after GOOD up to BAD
on BAD's first-parent line are the candidates, oldest first; BAD is taken as bad, as `git
bisect` takes it. Each step compares one candidate (the head) with GOOD (the base), paired and
interleaved on this machine (`bench.compare.session`): a regression makes it bad, a pass good.
A candidate that cannot be compared (it does not build or cannot train) is skipped, as `git
bisect skip` does, and the next nearest to the middle is tried; one too noisy to tell is
compared once more first (`RETRIES`): noise passes, an error does not. The
first bad candidate is then confirmed by comparing it with its own parent: only a commit that
is slower than its parent is named. Exit 0 with the culprit; 2 when it cannot tell (every
candidate left was skipped, or the culprit is not slower than its parent: a slowdown spread
over several commits).

Why the comparison and not the stored gate: it measures the change on this machine, whatever
the machine's speed (docs/measurements: the stored gate's speed band is ~19% wide here).
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.compare.interleave import Say, say_on_stderr
from bench.compare.session import CompareOptions
from bench.compare.sides import CompareError, resolve_ref, source_root
from bench.storage import layout
from bench.storage.atomic import write_json
from bench.training.request import RunRequest
from bench.vocabulary import OptionError

SCHEMA = "cnn-mnist-bench/bisection"
VERSION = 1
BAD, GOOD, SKIP = "bad", "good", "skip"
RETRIES = 1
"""How often a comparison that could not tell (noise, no error) is made again before a skip."""


@dataclass(frozen=True)
class Step:
    """One comparison: which head against which base, and what it found."""

    head: str
    base: str
    outcome: str
    """'bad' (slower than the base), 'good', or 'skip' (could not tell or could not run)."""
    detail: str
    """The comparison's verdict line, or why it could not be made."""


@dataclass
class Bisection:
    """The candidates, every comparison made, and the culprit if one was found."""

    good: str
    bad: str
    candidates: list[str]
    subjects: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    culprit: str | None = None
    confirmed: bool = False
    reason: str = ""

    @property
    def exit_code(self) -> int:
        """0: the culprit, confirmed; 2: cannot tell."""
        return 0 if self.culprit and self.confirmed else 2

    def line(self, commit: str) -> str:
        """Return a commit as people read it: short hash and subject."""
        return f"{commit[:7]} {self.subjects.get(commit, '')}".rstrip()

    def summary(self) -> str:
        """Every step, then the culprit or why there is none."""
        lines = [f"bisect: {len(self.candidates)} commits after {self.good[:7]} up to "
                 f"{self.bad[:7]}; {len(self.steps)} comparisons"]  # fmt: skip
        for number, step in enumerate(self.steps, 1):
            lines.append(f"  {number}. {self.line(step.head)} against {step.base[:7]}: "
                         f"{step.outcome} ({step.detail})")  # fmt: skip
        if self.exit_code == 0 and self.culprit:
            lines.append(f"CULPRIT: {self.line(self.culprit)}")
        else:
            lines.append(f"CANNOT TELL: {self.reason}")
        return "\n".join(lines)

    def document(self) -> dict[str, Any]:
        """Return the bisection as JSON (`layout.Results.bisection_json`)."""
        steps = [dataclasses.asdict(s) for s in self.steps]
        return {"schema": SCHEMA, "version": VERSION, "good": self.good, "bad": self.bad,
                "candidates": self.candidates, "steps": steps,
                "culprit": self.culprit, "confirmed": self.confirmed, "reason": self.reason,
                "exit_status": self.exit_code}  # fmt: skip


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        raise CompareError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def candidates(repo: Path, good: str, bad: str) -> tuple[list[str], dict[str, str]]:
    """Return the commits after `good` up to `bad` (oldest first) and their subject lines."""
    listed = _git(repo, "log", "--first-parent", "--ancestry-path", "--reverse", "--format=%H %s",
                  f"{good}..{bad}").splitlines()  # fmt: skip
    subjects = dict(line.split(" ", 1) if " " in line else (line, "") for line in listed)
    return list(subjects), subjects


def _ancestor(repo: Path, good: str, bad: str) -> None:
    done = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor",
                           good, bad], capture_output=True, check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        raise OptionError(f"--good {good[:7]} is not an ancestor of --bad {bad[:7]}: give an "
                          "older commit as --good (bisect looks between them)")  # fmt: skip


Compare = Callable[[RunRequest, CompareOptions, Say], Any]


def _judge(request: RunRequest, options: CompareOptions, compare: Compare, base: str,
           head: str, out: Path, say: Say) -> Step:  # fmt: skip
    """Compare `head` with `base`; bad on a regression, good on a pass, else skip."""
    for attempt in range(RETRIES + 1):
        each = dataclasses.replace(options, base=base, head=head, base_python=None,
                                   out=out / f"try{attempt + 1}",
                                   fail_on_improvement=False)  # fmt: skip
        try:
            comparison = compare(request, each, say)
        except CompareError as error:
            return Step(head, base, SKIP, f"cannot run: {error}")
        verdicts = "; ".join(f"{r.arch} {r.status}" + (f" ({', '.join(r.failed)})" if r.failed
                             else "") for r in comparison.results)  # fmt: skip
        verdicts = (verdicts or "no architecture compared") + (
            f", try {attempt + 1}" if attempt else "")  # fmt: skip
        outcome = {0: GOOD, 1: BAD}.get(comparison.exit_code, SKIP)
        if outcome != SKIP or any(r.error for r in comparison.results):
            break
        say(f"bisect: {head[:7]} against {base[:7]}: cannot tell ({verdicts})"
            + (": once more" if attempt < RETRIES else ""))  # fmt: skip
    return Step(head, base, outcome, verdicts)


def _next(lo: int, hi: int, skipped: set[int]) -> int | None:
    """Return the untried candidate between lo and hi nearest their middle (None: none)."""
    middle = (lo + hi) / 2
    left = [i for i in range(lo + 1, hi) if i not in skipped]
    return min(left, key=lambda i: (abs(i - middle), i)) if left else None


def bisect(request: RunRequest, options: CompareOptions, good: str | None, bad: str | None,
           say: Say = say_on_stderr, compare: Compare | None = None,
           repo: Path | None = None) -> Bisection:  # fmt: skip
    """Bisect between `good` and `bad` (refs); write bisection.json; return it.

    `options` are each comparison's (their base and head are set per step).

    `repo` is the repository whose commits are compared (default: this harness's own, which
    the comparison checks out); `compare` runs one comparison (default: the session's).
    """
    if compare is None:
        from bench.compare.session import compare as compare_session

        compare = compare_session
    if not good or not bad:
        raise OptionError("give both ends: --good REF (a commit that was fast) and --bad REF "
                          "(one that is slow), e.g. --good v1.2 --bad main")  # fmt: skip
    if len(request.seeds) != 1:
        raise OptionError(f"a bisection compares one seed; got {list(request.seeds)}")
    repo = repo or source_root()
    good, bad = resolve_ref(good, repo), resolve_ref(bad, repo)
    _ancestor(repo, good, bad)
    found, subjects = candidates(repo, good, bad)
    if not found:
        raise OptionError(f"--good and --bad are the same commit ({good[:7]}): nothing between")
    results = layout.Results(options.out)
    folder = results.bisect_dir
    result = Bisection(good, bad, found, subjects)
    lo, hi, skipped = -1, len(found) - 1, set()
    say(f"bisect: {len(found)} candidates after {good[:7]}, at most "
        f"{max(len(found) - 1, 1).bit_length() + 1} comparisons")  # fmt: skip
    while hi - lo > 1:
        index = _next(lo, hi, skipped)
        if index is None:
            break
        step = _judge(request, options, compare, good, found[index],
                      folder / f"{len(result.steps) + 1:02d}-{found[index][:7]}", say)  # fmt: skip
        result.steps.append(step)
        say(f"bisect: {result.line(step.head)}: {step.outcome} ({step.detail})")
        if step.outcome == BAD:
            hi = index
        elif step.outcome == GOOD:
            lo = index
        else:
            skipped.add(index)
    if hi - lo > 1:
        left = [result.line(found[i]) for i in range(lo + 1, hi + 1)]
        result.reason = ("every candidate between the last good and the first bad was skipped; "
                         f"the first slow commit is one of: {'; '.join(left)}")  # fmt: skip
    else:
        culprit = found[hi]
        parent = _git(repo, "rev-parse", f"{culprit}^").strip()
        where = folder / f"{len(result.steps) + 1:02d}-{culprit[:7]}-parent"
        step = _judge(request, options, compare, parent, culprit, where, say)
        result.steps.append(step)
        result.culprit, result.confirmed = culprit, step.outcome == BAD
        if not result.confirmed:
            result.reason = (
                f"{result.line(culprit)} is the first commit slower than {good[:7]}, but not "
                f"slower than its parent ({step.outcome}: {step.detail}): the slowdown may be "
                "spread over several commits"
            )
    write_json(results.bisection_json, result.document())
    return result
