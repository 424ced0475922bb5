"""A leftover namespace of the lab's name must not stop the host lab from coming up, and a live
one of another lab must not be torn down by it."""

import os
import subprocess
import time

import pytest

from support import unavailable

pytestmark = pytest.mark.lab

if os.geteuid() != 0:
    unavailable("needs root (network namespaces)", "run as root", allow_module_level=True)

from csolab import netns  # noqa: E402
from csolab.hosts import _claim_netns, topology  # noqa: E402

# not the lab's own name: the test must not depend on (or disturb) a lab that is up
NAME = "csolab-claimtest"


@pytest.fixture
def foreign_netns():
    netns.delete(NAME)
    subprocess.run(["ip", "netns", "add", NAME], check=True)
    subprocess.run(["ip", "-n", NAME, "addr", "add", f"{topology.KEYSTONE_LB[0]}/32", "dev", "lo"], check=True)
    yield
    netns.delete(NAME)


def test_a_leftover_namespace_nothing_runs_in_is_replaced(foreign_netns):
    _claim_netns(NAME)

    assert not netns.exists(NAME)


def _wait_until_inside(pid, deadline_s=10):
    # nsenter joins the namespace after Popen returns: claim only once the process is listed
    deadline = time.monotonic() + deadline_s
    while pid not in netns.pids(NAME):
        assert time.monotonic() < deadline, f"process {pid} never entered namespace {NAME}"
        time.sleep(0.05)


def test_a_namespace_another_lab_runs_in_is_refused(foreign_netns):
    sleeper = subprocess.Popen(netns.nsenter(["sleep", "60"], NAME))
    try:
        _wait_until_inside(sleeper.pid)
        with pytest.raises(RuntimeError, match=f"{sleeper.pid}.*CSO_LAB_NETNS"):
            _claim_netns(NAME)
        assert netns.exists(NAME)
    finally:
        sleeper.kill()
        sleeper.wait()
