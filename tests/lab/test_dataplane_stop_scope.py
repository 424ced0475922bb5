"""Taking down a lab that never ran a data plane (an AWS-only lab, e.g. `make test`'s controller
lane) must not touch the namespace's firewall or /etc/hosts names: they belong to the bridge of
another lab (the host lab). Seen in CI: the controller lane's `csolab down` removed the host lab's
names, and the host tests that connect by name failed with "Name or service not known". The same
for a lab whose data plane ran once and was stopped: a later `csolab down` of it (seen in a rehearsal:
an AWS-only lab of another checkout that had run data-plane tests earlier) must not touch them either."""

import pytest

from csolab import dataplane
from csolab.dataplane import layout, net

pytestmark = pytest.mark.lab


@pytest.fixture
def shared_resources_touched(monkeypatch):
    touched = []
    monkeypatch.setattr(net, "remove_etc_hosts_block", lambda name, *a, **k: touched.append(("names", name)))
    monkeypatch.setattr(net, "remove_firewall", lambda name: touched.append(("firewall", name)))
    monkeypatch.setattr(net, "remove_address", lambda name, address: touched.append(("address", name)))
    return touched


def test_stopping_a_lab_without_a_data_plane_leaves_other_labs_names_and_firewall(tmp_path, shared_resources_touched):
    (layout.root(tmp_path) / "pki").mkdir(parents=True)  # e.g. a CA bundle path was asked for

    dataplane.stop(tmp_path)

    assert shared_resources_touched == []


def test_stopping_a_lab_whose_bridge_ran_cleans_its_namespace(tmp_path, shared_resources_touched):
    layout.root(tmp_path).mkdir(parents=True)
    (layout.root(tmp_path) / "netns").write_text("csolab-own")  # what start() records

    dataplane.stop(tmp_path)

    assert ("names", "csolab-own") in shared_resources_touched
    assert ("firewall", "csolab-own") in shared_resources_touched
    assert all(name == "csolab-own" for _, name in shared_resources_touched)


def test_stopping_a_lab_again_after_its_bridge_was_stopped_touches_nothing(tmp_path, shared_resources_touched):
    layout.root(tmp_path).mkdir(parents=True)
    (layout.root(tmp_path) / "netns").write_text("csolab")
    dataplane.stop(tmp_path)  # the bridge's own stop: cleans its namespace
    shared_resources_touched.clear()

    dataplane.stop(tmp_path)  # `csolab down` later, when another lab's bridge owns "csolab"

    assert shared_resources_touched == []
