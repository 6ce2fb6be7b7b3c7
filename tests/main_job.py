"""The README's main job at the smoke budget, as the end-to-end tests run it."""

import subprocess
import sys


def main_job(out, baselines, seeds="0"):
    """Run `python -m bench main` on model_1_a at smoke, accuracy gated; return the process."""
    return subprocess.run(
        [sys.executable, "-m", "bench", "main", "--budget", "smoke", "--archs", "model_1_a",
         "--seeds", seeds, "--gate", "accuracy", "--baselines", str(baselines),
         "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
