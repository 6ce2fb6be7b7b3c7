"""One results folder, one writer: a second is refused by name; a killed one blocks nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli.commands import main as cli_main
from bench.storage import lock

HOLD = ("import sys, time; from pathlib import Path; from bench.storage import lock\n"
        "with lock.writer(Path(sys.argv[1]), 'python -m bench study --out X'):\n"
        "    print('held', flush=True); time.sleep(120)")  # fmt: skip


def holder(root):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert child.stdout.readline().strip() == "held"
    return child


def stop(child):
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_one_blocks_nothing(tmp_path):
    child = holder(tmp_path)
    try:
        with pytest.raises(lock.FolderBusy) as busy, lock.writer(tmp_path):
            pass
        message = str(busy.value)
        assert f"process {child.pid} (python -m bench study --out X, since" in message
        assert "give another --out" in message
    finally:
        stop(child)
    with lock.writer(tmp_path):  # the kernel released the killed holder's lock
        pass


def test_run_is_refused_while_another_command_writes_the_folder(tmp_path, capsys):
    child = holder(tmp_path)
    try:
        status = cli_main(["run", "--arch", "model_1_a", "--budget", "smoke", "--seeds", "0",
                           "--out", str(tmp_path)])  # fmt: skip
    finally:
        stop(child)
    assert status == 2
    assert f"is being written by process {child.pid}" in capsys.readouterr().err
    assert not list(Path(tmp_path).rglob("record.json"))


def _children(pid):
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_study_driver_takes_its_worker_with_it(tmp_path):
    driver = subprocess.Popen([sys.executable, "-m", "bench", "study", "--budget", "smoke",
                               "--archs", "model_1_a", "--seeds", "0", "--no-estimate",
                               "--out", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    workers = []
    while not workers and driver.poll() is None:
        assert time.monotonic() < deadline, "the driver never started a worker"
        workers = [p for p in _children(driver.pid)
                   if b"bench.study.worker" in Path(f"/proc/{p}/cmdline").read_bytes()]  # fmt: skip
        time.sleep(0.2)
    if not workers:
        pytest.skip("the run finished before its worker could be seen")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{workers[0]}") and time.monotonic() < deadline:
        time.sleep(0.2)
    state = Path(f"/proc/{workers[0]}/stat").read_text().split()[2] if os.path.exists(
        f"/proc/{workers[0]}") else "gone"  # fmt: skip
    assert state in ("gone", "Z"), "the worker trains on after its driver was killed"
