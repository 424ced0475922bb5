"""Phase 1's variables: defaults in roles/phase1, the inventories only what differs per environment.

phase1_resolved/<inventory>.json holds every phase1_* variable per host as the inventories resolved
it when each of them still listed all ~40 variables (captured before the defaults moved into
roles/phase1). The test resolves them now, through the role's defaults as every play of
phase1.yml / rollback_tls.yml imports them, and requires the same values. No lab, no host: the
playbook runs on the controller only.
"""

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), HOME=str(REPO_ROOT / ".ansible"))
    for name in list(env):
        if name.startswith("ANSIBLE_") and name != "ANSIBLE_CONFIG":
            env.pop(name)
    return env


def _resolve(inventory, out, *extra):
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(HERE / "files" / "phase1_resolve.yml"),
         "-e", f"resolve_phase1_out={out}", *extra],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, check=False)
    return result


@pytest.mark.parametrize("inventory", ["prod", "dev", "lab"])
def test_phase1_variables_resolve_as_before_the_defaults_moved(inventory, tmp_path):
    out = tmp_path / "resolved.json"
    result = _resolve(f"inventories/{inventory}", out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    resolved = json.loads(out.read_text().replace(f"-phase1-{today}", "-phase1-YYYYMMDD"))
    expected = json.loads((HERE / "phase1_resolved" / f"{inventory}.json").read_text())
    assert sorted(resolved) == sorted(expected), "the inventory's hosts changed"
    for host, values in expected.items():
        differences = {name: (value, resolved[host].get(name, "<undefined>"))
                       for name, value in values.items() if resolved[host].get(name, "<undefined>") != value}
        added = sorted(set(resolved[host]) - set(values))
        assert not differences and not added, f"{host}: (before, now) {differences}; new variables {added}"


@pytest.mark.parametrize("inventory", ["prod", "dev", "lab"])
def test_inventories_hold_only_what_differs(inventory):
    """Every phase1_* variable an inventory sets either has no default or differs from it."""
    import yaml

    defaults = yaml.safe_load((REPO_ROOT / "roles/phase1/defaults/main.yml").read_text())
    if inventory == "lab":
        inventory_vars = yaml.safe_load((REPO_ROOT / "inventories/lab/phase1.yml").read_text())["all"]["vars"]
    else:
        inventory_vars = yaml.safe_load((REPO_ROOT / f"inventories/{inventory}/group_vars/all/phase1.yml").read_text())
    same = sorted(name for name, value in inventory_vars.items() if name in defaults and defaults[name] == value)
    assert not same, f"inventories/{inventory} repeats defaults of roles/phase1: {same}"


def test_argument_validation_names_what_is_missing_or_wrong(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    x-db:\n      ansible_connection: local\n"
        "  vars:\n    phase1_db_instance_identifier: x-db\n    phase1_region: eu-west-2\n"
        "    phase1_multi_az: maybe\n    phase1_stop_after: tls\n")
    result = _resolve(inventory, tmp_path / "resolved.json")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "missing required arguments: phase1_backup_retention_period, phase1_dr_region" in output, output[-3000:]
    assert "phase1_multi_az" in output and "phase1_stop_after" in output, output[-3000:]


def _write(inventories=("prod", "dev", "lab")):
    """Record the values as they resolve now (only after reviewing an intended change)."""
    import tempfile

    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    for inventory in inventories:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "resolved.json"
            result = _resolve(f"inventories/{inventory}", out)
            if result.returncode != 0:
                raise SystemExit(result.stdout[-3000:] + result.stderr[-2000:])
            values = json.loads(out.read_text().replace(f"-phase1-{today}", "-phase1-YYYYMMDD"))
        target = HERE / "phase1_resolved" / f"{inventory}.json"
        target.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
        print("wrote", target)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        _write(tuple(sys.argv[2:]) or ("prod", "dev", "lab"))
