"""The baselines shipped in baselines/measured: valid, filed under their own key, enough seeds.

The ci baselines (the gate's) cover the notebook's six over 5+ seeds each, for each precision
they are stored for: one file may hold some of them (a runner kind's file starts with the
architectures cheap to measure there) when other files of that precision hold the rest, as
the gate resolves each architecture to the closest file that has it. A baseline of another
budget holds what its study completed (the full budget's: three architectures, as many seeds
as finished), never fewer than a band needs.
"""

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
    gate = baseline.key.budget == "ci"
    for arch_id, entry in baseline.archs.items():
        assert entry.test_accuracy.n >= (5 if gate else baselines.MIN_SEEDS), arch_id
        assert len(entry.seeds) == entry.test_accuracy.n, arch_id
        assert entry.provenance.commands, arch_id
    assert baseline.provenance.versions["keras"]


@pytest.mark.parametrize("precision", sorted({baselines.load(p).key.precision for p in STORED
                                              if p.parent.name == "ci"}))  # fmt: skip
def test_every_notebook_architecture_has_a_ci_baseline_of_each_stored_precision(precision):
    """What the gate resolves per architecture: each of the six finds a file on any CPU."""
    held = set()
    for path in STORED:
        baseline = baselines.load(path)
        if baseline.key.budget == "ci" and baseline.key.precision == precision:
            held |= set(baseline.archs)
    assert set(NOTEBOOK_IDS) <= held
