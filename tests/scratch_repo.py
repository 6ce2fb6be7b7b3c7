"""Scratch git repositories holding this harness, for the bisection and workflow tests.

`harness_repo` copies the harness (its sources, pins and stored baselines) into a new
repository as its first commit; `commit` adds one more. `PLANT` is a slowdown written as a
commit would: the divergence guard sleeps after every training step, in proportion to
the step, so that it is the same share of a step on a fast machine and on a slow one.
"""

import os
import shutil
import subprocess
from pathlib import Path

from bench.compare.sides import source_root

SOURCES = ("archs", "bench", "baselines", "conftest.py", "pyproject.toml", "constraints.txt",
           "run.sh", ".github")  # fmt: skip
GUARD = Path("bench/training/trainer.py")
PLANT = """

# A planted slowdown, as a commit would make one: after each step the guard sleeps {fraction:g}
# times as long as the step took, so the step is that much slower on any machine.
import time as _planted_time  # noqa: E402

_planted_on_batch_end = StopOnNonFinite.on_batch_end


def _planted_step_begins(self, batch, logs=None):
    self._planted_started = _planted_time.perf_counter()


def _planted_slow_guard(self, batch, logs=None):
    started = getattr(self, "_planted_started", None)
    if started is not None:
        _planted_time.sleep({fraction} * (_planted_time.perf_counter() - started))
    _planted_on_batch_end(self, batch, logs)


StopOnNonFinite.on_batch_begin = _planted_step_begins
StopOnNonFinite.on_batch_end = _planted_slow_guard
"""


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in `repo`; return its output (raises on failure)."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, timeout=120, env=env).stdout.strip()  # fmt: skip


def commit(repo: Path, subject: str, planted_fraction: float | None = None,
           when: str | None = None) -> str:  # fmt: skip
    """Commit one change: a line in NOTES.txt, or the planted slowdown; return its hash.

    `when` (ISO 8601) dates the commit, so that histories order commits made in one second.
    """
    if planted_fraction is None:
        with (repo / "NOTES.txt").open("a") as notes:
            notes.write(f"{subject}\n")
    else:
        with (repo / GUARD).open("a") as source:
            source.write(PLANT.format(fraction=planted_fraction))
    git(repo, "add", "-A")
    dated = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else {}
    git(repo, "commit", "-q", "-m", subject, env={**os.environ, **dated})
    return git(repo, "rev-parse", "HEAD")


def harness_repo(repo: Path, when: str | None = None) -> str:
    """Make `repo` a git repository whose first commit is this harness; return its hash.

    Its `.venv` is a link to this checkout's, so `./run.sh` there finds it set up.
    """
    source = source_root()
    repo.mkdir(parents=True)
    for name in SOURCES:
        if (source / name).is_dir():
            shutil.copytree(source / name, repo / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        else:
            shutil.copy2(source / name, repo / name)
    (repo / ".gitignore").write_text(".venv\nresults/\n__pycache__/\n")
    (repo / ".venv").symlink_to(source / ".venv")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "scratch@example.com")
    git(repo, "config", "user.name", "scratch")
    git(repo, "config", "commit.gpgsign", "false")
    return commit(repo, "the harness", when=when)
