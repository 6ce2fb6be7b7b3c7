"""Every architecture builds and runs a forward pass on each Keras 3 backend.

Each backend runs in its own interpreter, because Keras fixes its backend at import time.
A backend whose library is not installed is skipped, visibly, with the command to install it.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from archs import REGISTRY
from bench.training.backends import BACKENDS

SCRIPT = """
import json
import numpy as np
import keras
from archs import REGISTRY
out = {"backend": keras.backend.backend(), "models": {}}
images = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
for arch_id, spec in REGISTRY.items():
    model = spec.build()
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    out["models"][arch_id] = {
        "params": model.count_params(),
        "shape": list(probs.shape),
        "row_sums": probs.sum(axis=1).tolist(),
    }
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_all_architectures_run_on_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed: pip install '.[backends]' to test it")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    assert set(report["models"]) == set(REGISTRY)
    for arch_id, facts in report["models"].items():
        assert facts["params"] == REGISTRY[arch_id].params, arch_id
        assert facts["shape"] == [3, 10], arch_id
        assert facts["row_sums"] == pytest.approx([1.0] * 3, rel=1e-5), arch_id


@pytest.mark.parametrize("arch_id", list(REGISTRY)[:6])
def test_native_torch_twin_has_the_same_parameters_and_output(arch_id):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: pip install '.[backends]' to test the peer twin")
    import torch

    from bench.cli.peers import torch_model

    model = torch_model(arch_id)
    assert sum(p.numel() for p in model.parameters()) == REGISTRY[arch_id].params
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
