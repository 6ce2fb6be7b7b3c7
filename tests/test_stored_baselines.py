"""The baselines shipped in baselines/measured: valid, filed under their own key, 5+ seeds."""

import pytest

from archs import NOTEBOOK_IDS
from bench import gate

STORED = sorted(gate.BASELINE_ROOT.glob("*/*.json"))


def test_there_are_stored_baselines_for_both_precisions():
    names = {path.name.split("-cpu-")[0] for path in STORED}
    assert {"tensorflow-float32", "tensorflow-mixed_bfloat16"} <= names


@pytest.mark.parametrize("path", STORED, ids=[f"{p.parent.name}/{p.name}" for p in STORED])
def test_stored_baseline_is_valid_and_filed_under_its_key(path):
    document = gate.load(path)
    key = gate.Key(**document["key"])
    assert key.path(gate.BASELINE_ROOT) == path
    assert set(NOTEBOOK_IDS) <= set(document["archs"])
    for arch_id, entry in document["archs"].items():
        accuracy = entry["test_accuracy"]
        assert accuracy["n"] >= 5 and len(entry["seeds"]) == accuracy["n"], arch_id
        assert accuracy["min"] <= accuracy["mean"] <= accuracy["max"], arch_id
        assert entry["provenance"]["commands"], arch_id
    assert document["provenance"]["versions"]["keras"]
    assert document["provenance"]["device"]["name"]
