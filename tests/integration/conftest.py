"""conftest.py - pytest glue for the integration tests: shows ternd's
stderr when a test fails and makes sure nothing started here outlives the
session (every process is a direct child, stopped by PID)."""
import pytest

import harness


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for t in list(harness.INSTANCES):
            rep.sections.append(("%s stderr (%s)" % (t.name, t.log_path), t.log_tail(8000)))


@pytest.fixture(scope="session", autouse=True)
def _reap_leftovers():
    yield
    for t in list(harness.INSTANCES):
        t.kill()
    for s in list(harness.SLAPDS):
        s.kill()


@pytest.fixture(scope="module")
def env():
    """slapd + one ternd with the default test config, for a whole file."""
    e = harness.Env()
    yield e
    e.close()
