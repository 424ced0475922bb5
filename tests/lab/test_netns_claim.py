"""A leftover namespace of the lab's name must not stop the host lab from coming up, and a live
one of another lab must not be torn down by it."""

import os
import subprocess

import pytest

pytestmark = pytest.mark.hosts

if os.geteuid() != 0:
    pytest.skip("needs root (network namespaces)", allow_module_level=True)

from csolab import netns  # noqa: E402
from csolab.hosts import _claim_netns, topology  # noqa: E402


@pytest.fixture
def foreign_netns():
    if netns.exists():
        pytest.skip(f"namespace {netns.NAME} is in use (a lab is up)")
    subprocess.run(["ip", "netns", "add", netns.NAME], check=True)
    subprocess.run(["ip", "-n", netns.NAME, "addr", "add", f"{topology.KEYSTONE_LB[0]}/32", "dev", "lo"], check=True)
    yield
    netns.delete()


def test_a_leftover_namespace_nothing_runs_in_is_replaced(foreign_netns):
    _claim_netns()

    assert not netns.exists()


def test_a_namespace_another_lab_runs_in_is_refused(foreign_netns):
    sleeper = subprocess.Popen(netns.nsenter(["sleep", "60"]))
    try:
        with pytest.raises(RuntimeError, match=f"{sleeper.pid}.*CSO_LAB_NETNS"):
            _claim_netns()
        assert netns.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
