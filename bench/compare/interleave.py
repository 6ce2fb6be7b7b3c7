"""Drive a paired comparison: two long-lived side processes, trained in alternating blocks.

Both sides get the same architecture, budget, seed and precision, and each loads the same
verified MNIST. They train in blocks of `block` steps, one side at a time while the other
waits, in the order ABBA (base-head, then head-base, ...), so a machine that slows down or
speeds up over the comparison hits both sides alike, and a linear drift cancels within each
pair of pairs. `bench.compare.verdict` turns the blocks into a ratio and a verdict.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.compare.side_process import MARK
from bench.compare.sides import CompareError, Side

SIDE_SCRIPT = Path(__file__).with_name("side_process.py")
BOOT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
"""Run the side script by path, so `sys.path[0]` is the side's tree (the cwd), not ours."""
WAIT_SECONDS = 600.0
"""The longest a side may take to answer a command (one block, the final evaluation)."""
MAX_LINE = 16 * 2**20
"""The longest line read from a side (a `done` message of a full-budget run is ~1 MB)."""
START_SECONDS = 300.0
"""The longest a side may take to start (import its libraries) and say hello."""
FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hello": {"bench": str, "versions": dict, "device": dict},
    "ready": {"precision": str, "params": int, "data": str, "steps": int},
    "block": {"steps": list, "last": bool},
    "done": {"status": str, "epochs": list, "final": (list, type(None)),
             "train_seconds": list, "eval_seconds": list},
    "evaluated": {"seconds": (int, float)},
    "full-test": {"full": (list, type(None))},
    "trained": {"seed": int, "status": str, "epochs": list, "final": (list, type(None)),
                "full": (list, type(None))},
    "error": {"message": str},
}  # fmt: skip
"""What each message of the protocol must carry, and of which type: a side is another program
(another commit, another environment), so what it says is checked before it is used."""


def _checked(name: str, message: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Return a side's message when it has the protocol's shape; CompareError saying how not."""
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise CompareError(f"{name} sent a message that is not an event: {str(message)[:200]}")
    wanted = fields.get(message["event"], {})
    wrong = [f"{key} ({type(message.get(key)).__name__})" for key, kind in wanted.items()
             if not isinstance(message.get(key), kind)]  # fmt: skip
    if wrong:
        raise CompareError(f"{name} sent {message['event']!r} without the protocol's "
                           f"fields: {', '.join(wrong)}; is its harness too old, or another "
                           "program?")  # fmt: skip
    return message


@dataclass
class SideRun:
    """What one side reported for one architecture."""

    ready: dict[str, Any] = field(default_factory=dict)
    blocks: list[list[list[float]]] = field(default_factory=list)
    done: dict[str, Any] = field(default_factory=dict)
    evaluations: list[float] = field(default_factory=list)
    """The seconds of each extra evaluation after training (`Task.eval_repeats`)."""
    full: list[float] | None = None
    """[loss, accuracy] on the whole test split, asked only when the two histories part."""


def parted(base: SideRun, head: SideRun) -> bool:
    """Whether the two sides' histories or final metrics differ (numerics changed)."""
    return (base.done.get("epochs") != head.done.get("epochs")
            or base.done.get("final") != head.done.get("final"))  # fmt: skip


class Worker:
    """A long-lived child process spoken to in JSON lines (`side_process`'s protocol).

    Args:
        name: who it is, for messages ("the base (HEAD~1 (abc1234))", "peer notebook").
        argv, cwd, env: how to start it.
        log: where its standard error (and stray standard output) goes.
        fields: what each event must carry (`FIELDS`, the comparison's protocol, by default).
    """

    def __init__(self, name: str, argv: Sequence[str], cwd: Path, env: dict[str, str],
                 log: Path, fields: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.name, self.log = name, log
        self.fields = FIELDS if fields is None else fields
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            list(argv), cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True,
        )  # fmt: skip
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self.waiting = False
        """Whether the process waits for `go` in the middle of a run."""
        self.waited = 0.0
        """Seconds spent in `expect` so far: the work it was waited for (a peer's limit)."""

    def send(self, **command: Any) -> None:
        """Write one command."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None

    def _died(self) -> CompareError:
        self.process.wait(timeout=30)
        self._log.flush()
        tail = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        return CompareError(
            f"{self.name} does not run: its process exited with status "
            f"{self.process.returncode}. Last lines of {self.log}:\n" + "\n".join(tail)
        )

    def expect(self, event: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        """Return the next message, which must be `event`.

        Raises TimedOut (after killing the process) when nothing comes in `timeout` seconds,
        WorkerError when the process reports an error, CompareError when it has died.
        """
        started = time.monotonic()
        try:
            return self._next(event, timeout)
        finally:
            self.waited += time.monotonic() - started

    def _next(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            if not self._selector.select(timeout=max(deadline - time.monotonic(), 0)):
                self.kill()
                raise TimedOut(f"{self.name} said nothing for {timeout:.0f} s, and was "
                               f"stopped; see {self.log}")  # fmt: skip
            line = self.process.stdout.readline(MAX_LINE)
            if not line:
                raise self._died()
            if len(line) >= MAX_LINE and not line.endswith("\n"):
                self.kill()
                raise CompareError(f"{self.name} wrote a line of over {MAX_LINE} characters "
                                   "(no message of the protocol is that long), and was "
                                   "stopped")  # fmt: skip
            if not line.startswith(MARK):
                self._log.write(line)  # a library printing on standard output
                continue
            try:
                message = _checked(self.name, json.loads(line[len(MARK) :]), self.fields)
            except ValueError:
                raise CompareError(f"{self.name} sent a line that is not JSON: "
                                   f"{line[:200]!r}") from None  # fmt: skip
            self.waiting = message["event"] in ("ready", "block", "done", "evaluated")
            if message["event"] == "error":
                self._log.write(message.get("traceback", "") + "\n")
                self._log.flush()
                raise WorkerError(f"{self.name}: {message['message']}")
            if message["event"] != event:
                raise CompareError(f"{self.name} said {message['event']!r} where {event!r} "
                                   "was due")  # fmt: skip
            return message

    def abandon(self) -> None:
        """Drop the run it is in the middle of (the other side failed)."""
        if self.waiting:
            self.send(op="abandon")
            self.expect("abandoned")

    def kill(self) -> None:
        """Stop the process now."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Tell the process to quit (kill it if it does not); close its pipes and log."""
        if self.process.poll() is None:
            try:
                self.send(op="quit")
                self.process.wait(timeout=30)
            except (CompareError, subprocess.TimeoutExpired):
                self.kill()
        self._selector.close()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a pipe the child broke
                    stream.close()
        self._log.close()


class WorkerError(CompareError):
    """A worker could not do what it was asked (it is still alive: the next task may run)."""


class TimedOut(CompareError):
    """A worker took longer than it was given, and was stopped."""


def side_worker(side: Side, backend: str, log: Path, data: Path | None) -> Worker:
    """Start one side's process: the side's interpreter, its tree first on the path."""
    env = {**os.environ, "PYTHONPATH": str(side.root), "KERAS_BACKEND": backend,
           "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
    if data is not None:
        env["CNNBENCH_DATA"] = str(data)
    return Worker(f"the {side.role} ({side.label})", [side.python, "-c", BOOT, str(SIDE_SCRIPT)],
                  side.root, env, log)  # fmt: skip


@dataclass(frozen=True)
class Task:
    """What both sides train for one architecture."""

    arch: str
    budget: str
    epochs: int | None
    train_samples: int | None
    seed: int
    precision: str
    block: int
    eval_repeats: int = 20
    """Evaluations each side repeats after training, interleaved, for the evaluation verdict."""

    def command(self, plant: str) -> dict[str, Any]:
        """Return the side's `start` command."""
        return {"op": "start", "arch": self.arch, "budget": self.budget, "epochs": self.epochs,
                "train_samples": self.train_samples, "seed": self.seed,
                "precision": self.precision, "block": self.block, "plant": plant}  # fmt: skip


Say = Callable[[str], None]


T = TypeVar("T")


def abba(turn: int, members: Sequence[T]) -> list[T]:
    """Return who goes in which order on this turn: as given, then reversed, alternately.

    ABBA (A B, B A, A B, ...): what the machine does between turns hits every member alike
    over each pair of turns. The comparison's two sides and the peers' rounds both take turns so.
    """
    return list(members) if turn % 2 == 0 else list(reversed(members))


def say_on_stderr(line: str) -> None:
    """Show a progress line on standard error (standard output keeps the table)."""
    print(line, file=sys.stderr, flush=True)


class Pair:
    """The base and head processes, started together and kept for every architecture."""

    def __init__(
        self, base: Side, head: Side, backend: str, logs: Path, data: Path | None = None,
        head_plant: str = "none", say: Say = say_on_stderr,
    ) -> None:  # fmt: skip
        self.head_plant, self.say = head_plant, say
        self.roots = (base.root, head.root)
        self.sides: list[Worker] = []
        try:
            for side in (base, head):
                self.sides.append(side_worker(side, backend, logs / f"{side.role}.log", data))
            self.hello = [
                self._hello(p, root) for p, root in zip(self.sides, self.roots, strict=True)
            ]
        except BaseException:
            self.close()
            raise

    def _hello(self, process: Worker, root: Path) -> dict[str, Any]:
        hello = process.expect("hello", timeout=START_SECONDS)
        imported = Path(hello["bench"]).resolve()
        if not imported.is_relative_to(root.resolve()):
            raise CompareError(f"{process.name} imported the harness from {imported}, not "
                               f"from its tree {root}: an installed copy shadows it; install "
                               "it editable (pip install -e .)")  # fmt: skip
        return hello

    def close(self) -> None:
        """End both processes."""
        for process in self.sides:
            process.close()

    def run(self, task: Task) -> tuple[SideRun, SideRun]:
        """Train one architecture on both sides, interleaved; return what each reported.

        WorkerError when a side cannot run it: the other side drops it too, and both are
        ready for the next architecture.
        """
        try:
            return self._run(task)
        except WorkerError:
            for process in self.sides:
                process.abandon()
            raise

    def _run(self, task: Task) -> tuple[SideRun, SideRun]:
        base, head = self.sides
        runs = (SideRun(), SideRun())
        base.send(**task.command("none"))
        head.send(**task.command(self.head_plant))
        failed = []
        for process, run in zip(self.sides, runs, strict=True):
            try:  # read both answers, so that neither is left unread
                run.ready = process.expect("ready")
            except WorkerError as error:
                failed.append(error)
        if failed:
            raise failed[0]
        if runs[0].ready["steps"] != runs[1].ready["steps"]:
            raise WorkerError(f"{head.name} trains {runs[1].ready['steps']} steps where the base "
                              f"trains {runs[0].ready['steps']}: not comparable")  # fmt: skip
        total = -(-runs[0].ready["steps"] // task.block)
        started = last = time.monotonic()
        for index in range(total):
            for which in abba(index, (0, 1)):
                self.sides[which].send(op="go")
                runs[which].blocks.append(self.sides[which].expect("block")["steps"])
            now = time.monotonic()
            if now - last >= 10 or index + 1 == total:
                last = now
                self.say(_progress(task.arch, index + 1, total, runs, now - started))
        for process, run in zip(self.sides, runs, strict=True):  # one at a time: its turn
            process.send(op="go")
            run.done = process.expect("done")
        for index in range(task.eval_repeats):
            for which in (0, 1) if index % 2 == 0 else (1, 0):
                self.sides[which].send(op="evaluate")
                runs[which].evaluations.append(self.sides[which].expect("evaluated")["seconds"])
        if parted(*runs):  # the accuracy verdict's first pair (`bench.compare.accuracy`)
            for process, run in zip(self.sides, runs, strict=True):
                process.send(op="full-test")
                run.full = process.expect("full-test")["full"]
        for process in self.sides:
            process.send(op="end")
            process.expect("ended")
        return runs

    def train(self, task: Task, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train one more seed of `task` on each side, whole and untimed; return what each said.

        The accuracy verdict's extra seeds: one side after the other (both at once would only
        share the same cores). WorkerError when a side cannot.
        """
        answers = []
        for process, plant in zip(self.sides, ("none", self.head_plant), strict=True):
            command = task.command(plant) | {"op": "train", "seed": seed}
            command.pop("block")
            process.send(**command)
            answers.append(process.expect("trained"))
        return answers[0], answers[1]


def _progress(arch: str, done: int, total: int, runs: Sequence[SideRun], elapsed: float) -> str:
    import statistics

    from bench.compare.verdict import timed_blocks

    def median_ms(run: SideRun) -> str:
        steps = [s for block in timed_blocks(run.blocks) for s in block]
        return f"{statistics.median(steps) * 1000:.1f} ms" if steps else "warming up"

    left = elapsed / done * (total - done)
    return (f"compare {arch}: block {done}/{total}, base {median_ms(runs[0])}, head "
            f"{median_ms(runs[1])} per step; {elapsed:.0f} s, ~{left:.0f} s left")  # fmt: skip
