"""The contract: every registered model matches the notebook's printed summary, layer by layer."""

import keras
import numpy as np
import pytest

from archs import NOTEBOOK_IDS, REGISTRY
from archs._blocks import Conv, Drop, Norm, plan_params

SPECS = [REGISTRY[i] for i in NOTEBOOK_IDS]
IDS = list(NOTEBOOK_IDS)

NOTEBOOK_TOTALS = {
    "model_1_a": 113_162,
    "model_1_b": 124_682,
    "model_2_a": 1_344_522,
    "model_2_b": 717_930,
    "model_3_a": 1_378_570,
    "model_3_b": 1_378_570,
}


def test_registry_holds_the_six_notebook_models_in_order():
    assert IDS[:6] == list(NOTEBOOK_TOTALS)
    assert [REGISTRY[i].section for i in NOTEBOOK_TOTALS] == [
        "1.1",
        "1.2",
        "2.1",
        "2.2",
        "3.1",
        "3.2",
    ]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_total_parameters_match_notebook(spec):
    model = spec.build()
    assert spec.params == NOTEBOOK_TOTALS[spec.arch_id]
    assert model.count_params() == spec.params
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == spec.params


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_layer_matches_the_documented_summary_row(spec):
    model = spec.build()
    built = [
        (layer.name, tuple(layer.output.shape), layer.count_params()) for layer in model.layers
    ]
    documented = [(row.name, (None, *row.output_shape), row.params) for row in spec.layers]
    assert built == documented


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_builder_returns_an_uncompiled_named_sequential(spec):
    model = spec.build()
    assert isinstance(model, keras.Sequential)
    assert model.name == spec.arch_id
    assert not model.compiled
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_registry_facts_agree_with_the_plan(spec):
    convs = [step for step in spec.plan if isinstance(step, Conv)]
    assert len(convs) == spec.conv_layers
    assert spec.conv_layers in (3, 5, 7)
    assert spec.dropout == any(isinstance(step, Drop) for step in spec.plan)
    assert spec.batch_norm == any(isinstance(step, Norm) for step in spec.plan)


def test_no_notebook_model_has_batch_normalization_whatever_its_title():
    for arch_id in NOTEBOOK_TOTALS:
        model = REGISTRY[arch_id].build()
        assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    titled = [i for i in ("model_1_a", "model_2_b", "model_3_b") if REGISTRY[i].quirks]
    assert titled == ["model_1_a", "model_2_b", "model_3_b"]
    assert all("BatchNormalization" in " ".join(REGISTRY[i].quirks) for i in titled)


def test_pooling_padding_quirk_between_1_1_and_1_2_is_kept():
    pools_a = [
        layer.padding for layer in REGISTRY["model_1_a"].build().layers if "pool" in layer.name
    ]
    pools_b = [
        layer.padding for layer in REGISTRY["model_1_b"].build().layers if "pool" in layer.name
    ]
    assert pools_a == ["same", "valid"]
    assert pools_b == ["valid", "same"]


def test_unknown_id_lists_valid_ones():
    from archs import get

    with pytest.raises(KeyError, match="model_1_a, model_1_b"):
        get("model_9_z")


CONTROLLED = [spec for spec in REGISTRY.values() if not spec.faithful]


def test_controlled_variants_cover_every_depth_and_regulariser():
    combos = {(s.conv_layers, s.dropout, s.batch_norm) for s in CONTROLLED}
    assert combos == {
        (d, drop, bn) for d in (3, 5, 7) for drop in (False, True) for bn in (False, True)
    }
    assert len(CONTROLLED) == 12


@pytest.mark.parametrize("spec", CONTROLLED, ids=[s.arch_id for s in CONTROLLED])
def test_controlled_variant_differs_from_its_plain_stack_only_by_regularisers(spec):
    model = spec.build()
    plain = REGISTRY[f"ctrl_{spec.conv_layers}_plain"].build()
    convs = [
        (lay.filters, lay.kernel_size)
        for lay in model.layers
        if isinstance(lay, keras.layers.Conv2D)
    ]
    assert convs == [
        (lay.filters, lay.kernel_size)
        for lay in plain.layers
        if isinstance(lay, keras.layers.Conv2D)
    ]
    norms = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert len(norms) == (spec.conv_layers if spec.batch_norm else 0)
    assert any(isinstance(lay, keras.layers.Dropout) for lay in model.layers) == spec.dropout
    assert model.count_params() == spec.params
    assert model.output_shape == plain.output_shape == (None, 10)


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=list(REGISTRY))
def test_plan_parameter_count_matches_keras(spec):
    assert plan_params(spec.plan, (28, 28, 1), 10) == spec.build().count_params()
