"""Analytic FLOPs against a hand count, and the peak probe's contract."""

import math

import pytest

from archs import REGISTRY
from bench.measurement.flops import arch_flops, layer_flops
from bench.measurement.peak import compute_dtype, matmul_peak


def test_model_1_a_forward_flops_match_a_hand_count():
    # conv1: 26*26 outputs x 32 filters x (3*3*1) MACs; conv2: 11*11 x 64 x (3*3*32);
    # conv3: 9*9 x 128 x (3*3*64); dense: 2048 x 10. Two FLOPs per multiply-add.
    hand = {
        "conv1": 2 * 26 * 26 * 32 * 9 * 1,
        "conv2": 2 * 11 * 11 * 64 * 9 * 32,
        "conv3": 2 * 9 * 9 * 128 * 9 * 64,
        "predictions": 2 * 2048 * 10,
    }
    counted = {item.name: item.forward for item in layer_flops(REGISTRY["model_1_a"].build())}
    assert counted == hand
    flops = arch_flops("model_1_a")
    assert flops["forward"] == sum(hand.values()) == 16_834_816
    assert flops["training"] == 3 * sum(hand.values()) - hand["conv1"]


@pytest.mark.parametrize("arch_id", list(REGISTRY))
def test_training_costs_about_three_forward_passes(arch_id):
    flops = arch_flops(arch_id)
    assert 2 * flops["forward"] < flops["training"] < 3 * flops["forward"]


def test_dropout_and_pooling_cost_nothing_in_the_count():
    assert arch_flops("model_3_a") == arch_flops("model_3_b")


def test_peak_probe_reports_a_finite_positive_rate():
    rate = matmul_peak("float32", size=256, repeats=2)
    assert math.isfinite(rate) and rate > 0


def test_compute_dtype_of_policies():
    assert compute_dtype("float32") == "float32"
    assert compute_dtype("mixed_bfloat16") == "bfloat16"


def test_conv_ceiling_counts_three_convolutions_and_measures_each_dtype():
    conv_ceiling = investigation("conv_ceiling")

    shape = conv_ceiling.ConvShape("tiny", 5, 3, 4, 2)
    # 4x4 outputs, 4 filters of 2x2x3: forward 2*2*16*4*12 = 3,072 FLOPs; training 3x that.
    assert conv_ceiling.training_flops(shape, batch=2) == 9_216
    rows = conv_ceiling.main((shape,), batch=8)
    assert [(r["conv"], r["dtype"]) for r in rows] == [("tiny", "float32"), ("tiny", "bfloat16")]
    for row in rows:
        assert row["flops"] > 0 and row["fraction_of_peak"] == row["flops"] / row["peak_flops"]


def investigation(name):
    """Import a one-off investigation (not part of the installed harness) by its file."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "investigations" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
