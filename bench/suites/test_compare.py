"""The paired comparison inside `pytest bench`: base against head on this machine, interleaved.

Run: pytest bench -k compare --cnnbench-base=HEAD~1 [--cnnbench-archs=...] [--benchmark-json
out.json]. Skipped without --cnnbench-base or --cnnbench-base-python. One test for all the
architectures: both sides' processes live through the whole comparison. The comparison is in
the benchmark JSON (top-level `cnnbench_comparison`, and this benchmark's `extra_info`) and in
the gate's section of the summary. What pytest-benchmark times here is the whole comparison,
one round (its wall time, for the record); the step times are in the comparison.
"""

import pytest

from bench.compare.session import compare


def test_compare_with_base(benchmark, cnnbench, live_write):
    settings = cnnbench.settings
    if settings.base is None and settings.base_python is None:
        pytest.skip("no base to compare with: --cnnbench-base=REF or --cnnbench-base-python=PY")
    benchmark.group = "compare"
    cnnbench.comparison = benchmark.pedantic(
        compare, (cnnbench.request, settings.comparison()), {"say": live_write},
        rounds=1, iterations=1)  # fmt: skip
    benchmark.extra_info["comparison"] = cnnbench.comparison.document()
    if cnnbench.comparison.exit_code:
        pytest.fail(cnnbench.comparison.summary(), pytrace=False)
