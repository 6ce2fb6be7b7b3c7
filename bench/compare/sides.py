"""The two sides of a comparison: which source tree and which Python each runs.

The head is this working tree by default; a side given as a git ref is checked out, detached,
in a git worktree of this repository (removed afterwards); a side given a Python is run by
that interpreter (another virtual environment: a library upgrade). Nothing is built: the
harness is pure Python, so a side that cannot import or run is found when its process starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class CompareError(RuntimeError):
    """The comparison cannot be made: a missing ref, a side that does not run, a bad input."""


@dataclass(frozen=True)
class Side:
    """One side: its role, what it is (for people), its source tree and its interpreter."""

    role: str
    """'base' or 'head'."""
    label: str
    root: Path
    python: str
    commit: str | None = None


def source_root() -> Path:
    """Return the working tree this harness runs from (the folder of `bench/`, `archs/`)."""
    return Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False, timeout=120)  # fmt: skip
    except FileNotFoundError:
        raise CompareError("git is not installed: a ref needs git (--base-python compares "
                           "another Python environment without one)") from None  # fmt: skip


def resolve_ref(ref: str, repo: Path) -> str:
    """Return the commit a ref names in `repo`, or raise CompareError saying what is wrong."""
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        inside = _git(repo, "rev-parse", "--is-inside-work-tree")
        if inside.returncode != 0:
            raise CompareError(f"{repo} is not a git repository, so ref {ref!r} cannot be "
                               "checked out; compare from a clone")  # fmt: skip
        raise CompareError(
            f"the ref {ref!r} does not exist in {repo} (git rev-parse found "
            "no commit); give a branch, tag or commit, e.g. HEAD~1 or main"
        )
    return found.stdout.strip()


MERGE_BASE = "merge-base:"
"""A base given as `merge-base:BRANCH` is the merge base of the head and BRANCH (a pull
request's base: what the branch forked from, as GitHub's pull-request diff shows)."""


def resolve_base(ref: str, repo: Path, head: str | None) -> tuple[str, str]:
    """Return (commit, label) of a base ref; `merge-base:BRANCH` is the head's merge base.

    CompareError when the branch is missing or the two have no merge base in this clone (a
    shallow clone: fetch the full history).
    """
    if not ref.startswith(MERGE_BASE):
        commit = resolve_ref(ref, repo)
        return commit, f"{ref} ({commit[:7]})"
    branch = ref.removeprefix(MERGE_BASE)
    if not branch:
        raise CompareError(f"{ref!r} names no branch: give {MERGE_BASE}BRANCH, e.g. "
                           f"{MERGE_BASE}origin/main")  # fmt: skip
    target = resolve_ref(branch, repo)
    tip = resolve_ref(head or "HEAD", repo)
    found = _git(repo, "merge-base", tip, target)
    if found.returncode != 0 or not found.stdout.strip():
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        why = ("this clone is shallow: fetch the full history (git fetch --unshallow; in "
               "GitHub Actions, actions/checkout with fetch-depth: 0)" if shallow
               else "they share no history")  # fmt: skip
        raise CompareError(f"no merge base of {head or 'HEAD'} ({tip[:7]}) and {branch} "
                           f"({target[:7]}): {why}")  # fmt: skip
    commit = found.stdout.split()[0]
    return commit, f"merge base of {head or 'HEAD'} and {branch} ({commit[:7]})"


def _python(python: str | None) -> str:
    if python is None:
        return sys.executable
    found = shutil.which(python) or (python if Path(python).is_file() else None)
    if found is None:
        raise CompareError(f"the Python {python!r} does not exist; give the interpreter of the "
                           "other environment, e.g. ../env-new/bin/python")  # fmt: skip
    return found


OWNER = "owner.pid"
"""The file, beside a comparison's worktree, that names the process that made it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sweep_abandoned(repo: Path) -> list[Path]:
    """Remove the worktrees of comparisons whose process has died (killed); return them.

    A comparison removes its worktree when it ends, however it ends, except when it is killed
    outright (SIGKILL): then its checkout stays registered in the repository and on disk. The
    next comparison finds it by its folder's name and owner file, and removes it.
    """
    listed = _git(repo, "worktree", "list", "--porcelain")
    removed = []
    for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
        tree = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
        if tree is None or tree.name != "tree" or not tree.parent.name.startswith("cnnbench-"):
            continue
        try:
            owner = int((tree.parent / OWNER).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours to judge
        if _alive(owner):
            continue
        _git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(tree.parent, ignore_errors=True)
        removed.append(tree)
    if removed:
        _git(repo, "worktree", "prune")
    return removed


@contextlib.contextmanager
def prepared(role: str, ref: str | None, python: str | None,
             head: str | None = None) -> Iterator[Side]:  # fmt: skip
    """Yield a side: a ref checked out in a temporary worktree, else this working tree.

    `head` is the head's ref (None: this working tree's HEAD), for a base of `merge-base:B`.
    """
    interpreter = _python(python)
    who = "" if python is None else f" with {interpreter}"
    if ref is None:
        yield Side(role, f"working tree{who}", source_root(), interpreter)
        return
    repo = source_root()
    commit, label = resolve_base(ref, repo, head)
    sweep_abandoned(repo)
    folder = Path(tempfile.mkdtemp(prefix=f"cnnbench-{role}-"))
    (folder / OWNER).write_text(str(os.getpid()))
    added = _git(repo, "worktree", "add", "--detach", "--force", str(folder / "tree"), commit)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise CompareError(f"could not check out {ref} ({commit[:7]}): {added.stderr.strip()}")
    try:
        yield Side(role, f"{label}{who}", folder / "tree", interpreter, commit)
    finally:
        _git(repo, "worktree", "remove", "--force", str(folder / "tree"))
        shutil.rmtree(folder, ignore_errors=True)
        _git(repo, "worktree", "prune")
