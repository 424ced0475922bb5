"""Host-key checking: on for every inventory a user runs against, off only for the lab's containers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def _env():
    """The repository's ansible.cfg alone decides (no ANSIBLE_HOST_KEY_CHECKING from the caller)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), HOME=str(REPO_ROOT / ".ansible"))
    env.pop("ANSIBLE_HOST_KEY_CHECKING", None)
    return env


def test_ansible_cfg_keeps_host_key_checking_on():
    dump = subprocess.run([str(BIN / "ansible-config"), "dump", "--format", "json"], cwd=REPO_ROOT, env=_env(),
                          capture_output=True, text=True, check=True).stdout
    setting = next(item for item in json.loads(dump) if item["name"] == "HOST_KEY_CHECKING")
    assert setting["value"] is True, setting


def _host_vars(inventory, host):
    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", f"inventories/{inventory}", "--host", host],
                            cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, check=True).stdout
    return json.loads(listed)


@pytest.mark.parametrize("inventory", ["prod", "dev"])
def test_real_inventories_do_not_turn_host_key_checking_off(inventory):
    hosts = subprocess.run([str(BIN / "ansible-inventory"), "-i", f"inventories/{inventory}", "--list"],
                           cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, check=True).stdout
    names = set(json.loads(hosts)["_meta"]["hostvars"])
    assert names, f"inventories/{inventory} lists no host"
    for host in names:
        host_vars = _host_vars(inventory, host)
        assert host_vars.get("ansible_host_key_checking", True) not in (False, "false", "False"), host
        assert "StrictHostKeyChecking=no" not in str(host_vars.get("ansible_ssh_common_args", "")), host


def test_only_the_lab_inventory_turns_it_off():
    assert _host_vars("lab", "keystone-1")["ansible_host_key_checking"] is False
