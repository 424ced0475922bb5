"""A lab another checkout left running is found by its lab dir and taken down; this lab's own
processes are never touched."""

import subprocess
import sys
import time

import pytest

from csolab import leftovers, paths

SLEEPER = "import sys, time; time.sleep(300)"


@pytest.fixture
def lab_process(tmp_path):
    """Start a process whose command line names a lab dir's relay socket, as a data-plane relay's does."""
    started = []

    def start(lab_dir):
        process = subprocess.Popen([sys.executable, "-c", SLEEPER, f"{lab_dir}/dataplane/i/0123456789/relay.sock"])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_foreign_lab_is_found_and_stopped_and_ours_is_kept(tmp_path, lab_process, monkeypatch):
    from csolab.hosts import podman

    foreign_dir = tmp_path / "old-clone" / ".lab"  # its clone is gone: no `csolab down` possible
    monkeypatch.setattr(podman, "CNI_IPAM_DIR", str(tmp_path / "cni"))
    reserved = tmp_path / "cni" / podman.network_name(foreign_dir) / "10.89.10.11"
    reserved.parent.mkdir(parents=True)
    reserved.write_text("a container the killed run never removed")
    foreign = lab_process(foreign_dir)
    ours = lab_process(paths.LAB_DIR)
    time.sleep(0.2)

    found = leftovers.find()
    assert found.get(str(foreign_dir)) == [foreign.pid]
    assert all(ours.pid not in pids for pids in found.values())

    # only this test's fake lab: a real one of another checkout may be running on this machine
    assert leftovers.clear(log=lambda _message: None, namespaces=(), only=[foreign_dir]) == [str(foreign_dir)]
    assert foreign.wait(timeout=15) is not None
    assert ours.poll() is None, "this lab dir's process was stopped"
    assert str(foreign_dir) not in leftovers.find()
    assert not reserved.exists(), "its containers' addresses are free again for a lab of that dir"
