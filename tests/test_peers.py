"""Peer benchmark: the verdict against the fastest other peer, and one real tiny run."""

import json
import subprocess
import sys

import pytest

from bench.cli.peers import available, verdicts
from bench.training.precisions import resolve


def row(peer, speed, **extra):
    return {"arch": "model_1_a", "peer": peer, "samples_per_second": speed,
            "precision": "mixed_bfloat16", "peak_dtype": "bfloat16",
            "fraction_of_peak": 0.25, **extra}  # fmt: skip


def test_verdict_compares_the_default_with_the_fastest_other_peer_only():
    rows = [
        row("harness", 900.0),
        row("harness-fp32", 2000.0),
        row("notebook", 400.0),
        row("torch-bf16", 600.0),
        row("keras-jax", 0.0, error="jax is not installed"),
    ]
    (line,) = verdicts(rows)
    assert "1.50x the fastest other peer (torch-bf16, 600 samples/s): meets" in line
    rows[3]["samples_per_second"] = 1000.0
    (line,) = verdicts(rows)
    assert "0.90x" in line and "MISSES the 1.0x target" in line


def test_no_verdict_without_the_harness():
    (line,) = verdicts([row("notebook", 400.0), row("harness", 1.0, error="boom")])
    assert line == "model_1_a: no verdict (failed: harness)"
    (line,) = verdicts([row("notebook", 400.0), row("harness-fp32", 1.0)])  # nothing failed
    assert "needs the `harness` peer" in line and "none of them failed" in line


def test_a_bfloat16_peer_is_skipped_where_the_cpu_would_emulate_it():
    pytest.importorskip("torch")
    reason = available("torch-bf16", flags=frozenset({"avx2", "fma"}))
    assert reason.startswith("skipped: this CPU has no bfloat16 arithmetic")
    assert available("torch-bf16", flags=frozenset({"avx512_bf16"})) is None
    assert available("torch-fp32", flags=frozenset({"avx2"})) is None


def run_peers(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "bench", "peers", "--arch", "model_1_a", "--samples", "512",
         "--out", str(tmp_path), *args],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_a_peer_over_its_time_limit_is_a_row_with_its_error(tmp_path):
    # 60,000 images an epoch: more than a second's work on any machine, start-up aside.
    result = run_peers(tmp_path, "--epochs", "3", "--samples", "60000", "--peers", "harness",
                       "--peer-limit", "1")  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    (row,) = json.loads((tmp_path / "peers.json").read_text())["results"]
    assert row["timed_out"] and row["error"] == "timed out: over its limit of 1 s (--peer-limit)"
    assert "timed out: over its limit" in result.stdout  # in the table, not silently gone


@pytest.mark.slow
@pytest.mark.real_data
def test_peers_command_runs_each_peer_in_its_own_process(tmp_path):
    out = tmp_path / "peers.json"  # bench.storage.layout.Results(tmp_path).peers_json
    # Two code paths (the notebook's fit, the harness's Trainer), each in its own interpreter;
    # the other peers differ only in backend or precision (budgeted: each costs an interpreter).
    peers = ["notebook", "harness"]
    result = subprocess.run(
        [sys.executable, "-m", "bench", "peers", "--arch", "model_1_a", "--samples", "512",
         "--epochs", "2", "--out", str(tmp_path), "--peers", *peers],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "peers model_1_a: epoch 1/2" in result.stdout  # progress while it runs
    assert "peers model_1_a: epoch 2/2" in result.stdout
    document = json.loads(out.read_text())
    rows = {r["peer"]: r for r in document["results"]}
    assert list(rows) == peers
    assert document["interleaved"]
    for name, peer in rows.items():
        assert "error" not in peer, (name, peer)
        assert len(peer["epoch_seconds"]) == 2
        assert peer["params"] == 113_162
        assert peer["samples_per_second"] > 0 and 0 < peer["fraction_of_peak"] < 1.5
    assert rows["harness"]["ratio_to_harness"] == 1.0
    assert rows["harness"]["precision"] == resolve("auto")
    assert rows["notebook"]["precision"] == "float32"
    assert document["verdicts"][0].startswith("model_1_a: harness default")
    assert "x harness" in result.stdout and "fraction of peak" in result.stdout
