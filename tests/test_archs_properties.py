"""Properties that must hold for any input: shapes, probabilities, input limits, independence."""

import functools

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archs import REGISTRY

IDS = list(REGISTRY)


@functools.cache
def built(arch_id: str) -> keras.Sequential:
    return REGISTRY[arch_id].build()


@settings(max_examples=12, deadline=None)
@given(
    arch_id=st.sampled_from(IDS),
    batch=st.integers(min_value=1, max_value=64),
    seed=st.integers(0, 2**16),
)
def test_any_batch_maps_to_probability_rows(arch_id, batch, seed):
    images = np.random.default_rng(seed).random((batch, 28, 28, 1), dtype=np.float32)
    probs = keras.ops.convert_to_numpy(built(arch_id)(images, training=False))
    assert probs.shape == (batch, 10)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(arch_id=st.sampled_from(IDS), side=st.integers(min_value=1, max_value=40))
def test_inputs_below_the_minimum_raise_a_clear_value_error(arch_id, side):
    spec = REGISTRY[arch_id]
    if side < spec.min_input_side:
        with pytest.raises(
            ValueError, match=rf"{arch_id}.*at least {spec.min_input_side}x{spec.min_input_side}"
        ):
            spec.build(input_shape=(side, side, 1))
    else:
        model = spec.build(input_shape=(side, side, 1))
        assert model.output_shape == (None, 10)


@pytest.mark.parametrize("arch_id", IDS)
def test_minimum_side_is_tight(arch_id):
    spec = REGISTRY[arch_id]
    spec.build(input_shape=(spec.min_input_side, spec.min_input_side, 1))
    with pytest.raises(ValueError, match=arch_id):
        spec.build(input_shape=(spec.min_input_side - 1, spec.min_input_side, 1))


@pytest.mark.parametrize(
    "bad", [dict(input_shape=(28, 28)), dict(input_shape=(28, 0, 1)), dict(num_classes=1)]
)
def test_bad_arguments_name_what_was_received(bad):
    with pytest.raises(ValueError, match="Received"):
        REGISTRY["model_1_a"].build(**bad)


@pytest.mark.parametrize("arch_id", IDS)
def test_two_builds_share_no_state(arch_id):
    first, second = REGISTRY[arch_id].build(), REGISTRY[arch_id].build()
    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    first_ids = {id(v) for v in first.weights}
    assert not first_ids & {id(v) for v in second.weights}
    before = [w.copy() for w in second.get_weights()]
    first.set_weights([np.zeros_like(w) for w in first.get_weights()])
    for old, new in zip(before, second.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@settings(max_examples=10, deadline=None)
@given(num_classes=st.integers(min_value=2, max_value=50), arch_id=st.sampled_from(IDS))
def test_num_classes_sets_the_output_width(num_classes, arch_id):
    assert REGISTRY[arch_id].build(num_classes=num_classes).output_shape == (None, num_classes)
