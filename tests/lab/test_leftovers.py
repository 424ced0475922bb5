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


def test_address_reservations_of_a_deleted_lab_dir_are_released_when_a_lab_comes_up_there(tmp_path, monkeypatch):
    """A killed run whose checkout was then deleted leaves no process to find, only the CNI reservations under its
    network name: a new clone at the same path must not fail `podman run --ip` ("requested IP address ... is not
    available"). `up` begins with `down`, whose container cleanup releases them when the lab dir holds no podman
    state (so no container of it can exist)."""
    from csolab.hosts import podman

    lab_dir = tmp_path / "ci-clone" / ".lab"
    monkeypatch.setattr(paths, "LAB_DIR", lab_dir)
    monkeypatch.setattr(podman, "NETWORK", podman.network_name(lab_dir))
    monkeypatch.setattr(podman, "CNI_IPAM_DIR", str(tmp_path / "cni"))
    reserved = tmp_path / "cni" / podman.network_name(lab_dir) / "10.89.10.11"
    reserved.parent.mkdir(parents=True)
    reserved.write_text("a container of the deleted clone")
    other = tmp_path / "cni" / podman.network_name(tmp_path / "other" / ".lab") / "10.89.10.11"
    other.parent.mkdir(parents=True)
    other.write_text("another lab dir's container")
    assert not podman.has_state()

    podman.remove_all()

    assert not reserved.exists()
    assert other.exists(), "another lab dir's reservations are left alone"
