"""acquire/release: one host lab shared by every test layer and Molecule scenario, reset between
users, brought up (and taken down) only by a user that found none. The bring-up, reset and
teardown themselves are replaced by recorders here; tests/integration/test_hostlab.py proves the
real reset."""

import json

import pytest

from csolab import aws, client, hosts, paths


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """A lab dir of its own, and the lab's actions recorded instead of run."""
    monkeypatch.setattr(paths, "LAB_DIR", tmp_path)
    monkeypatch.setattr(paths, "HOSTS_PRISTINE_MARKER", tmp_path / "hosts-pristine")
    state = {"up": False, "actions": [], "lab_dir": tmp_path}

    def up():
        state["up"] = True
        state["actions"].append("up")
        hosts.mark_pristine()
        return {"total": 1.0}

    def reset():
        state["actions"].append("reset")
        hosts.mark_pristine()
        return {"total": 0.5}

    def down(keep_aws=False):
        state["up"] = False
        state["actions"].append(f"down(keep_aws={keep_aws})")
        (tmp_path / "hosts-owner.json").unlink(missing_ok=True)
        paths.HOSTS_PRISTINE_MARKER.unlink(missing_ok=True)

    monkeypatch.setattr(hosts, "up", up)
    monkeypatch.setattr(hosts, "reset", reset)
    monkeypatch.setattr(hosts, "down", down)
    def wait_ready(timeout=90):
        if not state.get("ready", True):
            raise RuntimeError("not ready after 0s: keystone-1")

    monkeypatch.setattr(hosts, "wait_ready", wait_ready)
    monkeypatch.setattr(hosts, "is_running", lambda: state["up"])
    monkeypatch.setattr(aws, "is_up", lambda: True)

    class AwsLab:
        def reset(self, seed_database=True):
            state["actions"].append("aws reset")

    monkeypatch.setattr(client, "LabClient", AwsLab)
    return state


def test_a_user_that_finds_no_lab_brings_it_up_and_takes_it_down(recorded):
    lease = hosts.acquire("molecule-keystone_db")
    assert (lease["started"], lease["reset"]) == (True, False)
    assert json.loads((paths.LAB_DIR / "hosts-owner.json").read_text()) == {
        "owner": "molecule-keystone_db", "aws_was_up": True}

    assert hosts.release("molecule-keystone_db")["action"] == "down"
    # the AWS lab was up: whatever an earlier user left there is reset before the hosts come up
    assert recorded["actions"] == ["aws reset", "up", "down(keep_aws=True)"]


def test_users_of_a_running_lab_share_it_with_one_reset_between_them(recorded):
    hosts.acquire("make-test", hold_only=True)  # brings it up and keeps it pristine
    assert hosts.acquire("pytest")["reset"] is False, "nobody used it since the bring-up"
    assert hosts.release("pytest")["action"] == "reset"
    first = hosts.acquire("molecule-cso_db")
    assert first["reset"] is False, "the release already reset it"
    hosts.release("molecule-cso_db")
    hosts.acquire("molecule-keystone_db")
    hosts.release("molecule-keystone_db")
    assert hosts.release("make-test")["action"] == "down"
    assert recorded["actions"] == ["aws reset", "up", "reset", "reset", "reset", "down(keep_aws=True)"]


def test_a_release_without_an_acquire_since_the_last_reset_keeps_the_pristine_lab(recorded):
    hosts.acquire("make-test", hold_only=True)
    # Molecule's destroy runs before its create: that user never took the lab
    assert hosts.release("molecule-default")["action"] == "none (pristine)"
    hosts.acquire("molecule-default")
    assert hosts.release("molecule-default")["action"] == "reset"
    recorded["ready"] = False  # pristine by its marker, but a fixture is down: reset anyway
    assert hosts.release("molecule-cso_db")["action"] == "reset"
    assert recorded["actions"] == ["aws reset", "up", "reset", "reset"]


def test_a_user_that_reset_the_lab_itself_and_used_it_again_is_reset_on_release(recorded):
    hosts.acquire("make-test", hold_only=True)
    hosts.acquire("pytest")
    hosts.reset()  # a test module's teardown, for the next module, which then changes the hosts
    assert hosts.release("pytest")["action"] == "reset"
    assert recorded["actions"] == ["aws reset", "up", "reset", "reset"]


def test_a_lab_used_without_a_release_is_reset_before_the_next_user(recorded):
    hosts.acquire("make-test", hold_only=True)
    hosts.acquire("a-test-that-crashed")  # takes the pristine lab, never releases it
    assert hosts.acquire("molecule-default")["reset"] is True
    assert recorded["actions"] == ["aws reset", "up", "reset"]


def test_an_aws_reset_makes_the_lab_need_a_reset(recorded, monkeypatch):
    hosts.acquire("make-test", hold_only=True)
    monkeypatch.undo()  # the real LabClient and lab functions from here on ...
    monkeypatch.setattr(paths, "LAB_DIR", recorded["lab_dir"])
    monkeypatch.setattr(paths, "HOSTS_PRISTINE_MARKER", recorded["lab_dir"] / "hosts-pristine")
    assert paths.HOSTS_PRISTINE_MARKER.exists()
    aws_lab = client.LabClient({"endpoint_url": "http://127.0.0.1:9", "region": "eu-west-2"})
    monkeypatch.setattr(aws_lab, "set_faults", lambda rate: None)
    with pytest.raises(OSError):  # nothing listens there: the marker went before the call
        aws_lab.reset()
    assert not paths.HOSTS_PRISTINE_MARKER.exists(), "the next acquire resets the hosts"


def test_a_running_lab_whose_fixtures_fail_is_reset_not_rebuilt(recorded):
    hosts.acquire("make-test", hold_only=True)
    recorded["ready"] = False  # e.g. a test left Keystone stopped
    assert hosts.release("pytest")["action"] == "reset"
    lease = hosts.acquire("molecule-default")
    assert lease["reset"] is True and lease["why"].startswith("fixtures not ready"), lease
    assert recorded["actions"] == ["aws reset", "up", "reset", "reset"]
