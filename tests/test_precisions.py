"""`auto` precision: which policy each device gets, and that records never store `auto`."""

import keras
import pytest

from bench.training.precisions import AUTO, POLICIES, PRECISIONS, auto_policy, cpu_flags, resolve

CPUINFO = """processor\t: 0
model name\t: Some CPU
flags\t\t: fpu sse2 avx2 avx512f {extra}
processor\t: 1
"""


def test_cpu_flags_are_read_from_the_first_flags_line():
    flags = cpu_flags(CPUINFO.format(extra="avx512_bf16 amx_tile"))
    assert {"avx2", "avx512_bf16", "amx_tile"} <= flags
    assert cpu_flags("processor: 0\nmodel name: no flags line\n") == frozenset()


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("cpu", "avx512_bf16", "mixed_bfloat16"),
        ("cpu", "amx_bf16 amx_tile", "mixed_bfloat16"),
        ("cpu", "avx512_vnni", "float32"),
        ("gpu", "avx512_bf16", "float32"),
    ],
)
def test_auto_picks_bfloat16_only_on_cpus_with_bfloat16_arithmetic(kind, extra, expected):
    assert auto_policy(kind, cpu_flags(CPUINFO.format(extra=extra))) == expected


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_auto_is_float32_on_backends_where_bfloat16_was_not_shown_faster(backend):
    assert auto_policy("cpu", frozenset({"avx512_bf16", "amx_bf16"}), backend) == "float32"


def test_resolve_passes_explicit_policies_through_and_never_returns_auto(monkeypatch):
    for policy in POLICIES:
        assert resolve(policy) == policy
    assert {resolve(p) for p in PRECISIONS} <= set(POLICIES)
    assert resolve(AUTO, "gpu") == "float32"
    from bench.training import precisions

    monkeypatch.setattr(precisions, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    on_tensorflow = keras.backend.backend() == "tensorflow"
    assert resolve(AUTO, "cpu") == ("mixed_bfloat16" if on_tensorflow else "float32")
    monkeypatch.setattr(precisions, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve(AUTO, "cpu") == "float32"


def test_unknown_precision_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match=r"Unknown precision 'fp8'\. Valid: auto, float32"):
        resolve("fp8")
