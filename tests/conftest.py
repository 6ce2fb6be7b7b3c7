"""Set-up for the tests: what a test's child processes inherit."""

import pytest

XDIST_VARIABLES = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.fixture(autouse=True)
def _children_are_not_xdist_workers(monkeypatch):
    """A pytest a test starts is a session of its own, not a worker of this one's xdist.

    pytest-benchmark switches itself off in any process that sees PYTEST_XDIST_WORKER, so a
    child `pytest bench` run by a test on an xdist worker would write no benchmark JSON.
    """
    for name in XDIST_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """Keep together, on one xdist worker, the tests that share a module's fixture.

    Under `--dist loadgroup` (./run.sh test) the other tests are handed out one at a time,
    which balances the two workers; a module-scoped fixture (a study, a baseline trained for
    real) is still built once, not once per worker that gets one of its tests.
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        chains = info.name2fixturedefs.values() if info else ()
        shared = [d for chain in chains for d in chain if d.scope == "module"]
        if any(d.baseid.startswith("tests") for d in shared):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
