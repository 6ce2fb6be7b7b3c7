"""The baselines shipped in baselines/measured: valid, filed under their own key, 5+ seeds."""

import pytest

from archs import NOTEBOOK_IDS
from bench.storage import baselines, layout

ROOT = layout.default_baselines()
STORED = sorted(ROOT.glob("*/*.json"))


def test_there_are_stored_baselines_for_both_precisions():
    names = {path.name.split("-cpu-")[0] for path in STORED}
    assert {"tensorflow-float32", "tensorflow-mixed_bfloat16"} <= names


@pytest.mark.parametrize("path", STORED, ids=[f"{p.parent.name}/{p.name}" for p in STORED])
def test_stored_baseline_is_valid_and_filed_under_its_key(path):
    baseline = baselines.load(path)
    assert baseline.key.path(ROOT) == path
    assert set(NOTEBOOK_IDS) <= set(baseline.archs)
    for arch_id, entry in baseline.archs.items():
        assert entry.test_accuracy.n >= 5 and len(entry.seeds) == entry.test_accuracy.n, arch_id
        assert entry.provenance.commands, arch_id
    assert baseline.provenance.versions["keras"]
