"""Phase 2's step iam without a lab: where it sits among the steps, that CSO is rendered once per run,
that the rollback moves both services back to their password users before anything but unlocking them, and that
every playbook renders the same database logins from the inventory (the lab's derives them from
phase2_iam; prod and dev are unchanged). The host-lab test runs the step itself
(tests/integration/test_phase2.py).
"""

import json
import os
import pathlib
import subprocess
import sys

import jinja2
import pytest
import yaml

from ansible_collections.cso.rds_hardening.tests.unit.repository.playbook_steps import steps_in_plays
from ansible.module_utils.parsing.convert_bool import boolean

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(sys.executable).parent
PHASE2 = REPO_ROOT / "playbooks" / "phase2.yml"
ROLLBACK = REPO_ROOT / "playbooks" / "rollback_phase2.yml"
AGREEMENT_TASK = "Refuse an inventory whose database login for this host disagrees with phase2_iam"


def _plays(path):
    return yaml.safe_load(path.read_text())


def _tasks(play):
    for task in play.get("tasks", []):
        yield from task.get("block", [task])


def _included_roles(play):
    return [task["ansible.builtin.include_role"]["name"].split(".")[-1] for task in _tasks(play)
            if "ansible.builtin.include_role" in task]


def _expression(name):
    environment = jinja2.Environment()
    environment.filters["bool"] = boolean
    return environment.compile_expression(name)


def test_the_steps_run_in_the_documented_order():
    steps = yaml.safe_load((REPO_ROOT / "playbooks/vars/phase2_steps.yml").read_text())["__phase2_steps"]
    assert steps == ["preflight", "replica", "audit", "iam", "read_split", "lock_password_users", "monitoring", "verify"]
    assert steps_in_plays(PHASE2, "__phase2_step") == steps
    spec = yaml.safe_load((REPO_ROOT / "roles/phase2/meta/argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["phase2_stop_after"]["choices"] == [""] + steps
    runbook = (REPO_ROOT / "docs/runbook-phase2.md").read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in runbook.splitlines() if line.startswith("| `")]
    assert [row for row in rows if row in steps] == steps


def test_the_iam_step_converges_users_and_policies_before_keystone_moves_one_host_at_a_time():
    database, keystone = [play for play in _plays(PHASE2) if play["vars"]["__phase2_step"] == "iam"]
    assert database["hosts"] == "{{ phase1_db_group | default('rds') }}" and _included_roles(database) == ["rds_iam_auth"]
    assert keystone["hosts"] == "{{ phase1_keystone_group | default('keystone') }}"
    assert (keystone["serial"], keystone["max_fail_percentage"], keystone["vars"]["__phase2_disruptive"]) == (1, 0, True)
    move = next(task for task in _tasks(keystone) if "ansible.builtin.include_role" in task)
    assert move["vars"]["keystone_db_auth"] == "iam"
    assert move["vars"]["keystone_db_user"] == "{{ phase2_iam_keystone_user }}"
    users = next(task for task in _tasks(database) if "ansible.builtin.include_role" in task)["vars"]["rds_iam_auth_users"]
    assert [user["name"] for user in users] == ["{{ phase2_iam_keystone_user }}", "{{ phase2_iam_cso_user }}"]


def test_cso_and_keystone_are_rendered_once_per_phase2_run():
    """Two cso_db runs with different settings in one phase-2 run restart CSO twice and leave the
    second run of the playbook something to change."""
    included = [role for play in _plays(PHASE2) for role in _included_roles(play)]
    assert included.count("cso_db") == 1 and included.count("keystone_db") == 1, included
    read_split = next(play for play in _plays(PHASE2) if play["vars"]["__phase2_step"] == "read_split")
    render = next(task for task in _tasks(read_split) if "ansible.builtin.include_role" in task)["vars"]
    assert set(render) == {"cso_db_read_host", "cso_db_auth", "cso_db_username"}


@pytest.mark.parametrize("iam, auth, user, expected", [
    (True, "iam", "cso_iam", "iam"), (False, "password", "ssp_user", "password"), (False, "iam", "cso_iam", "iam")])
def test_read_split_takes_the_login_from_phase2_iam_or_else_the_inventory(iam, auth, user, expected):
    read_split = next(play for play in _plays(PHASE2) if play["vars"]["__phase2_step"] == "read_split")
    choose = next(task for task in _tasks(read_split) if task["name"] == "Choose this host's database settings for this run")
    facts = choose["ansible.builtin.set_fact"]
    strip = lambda template: template.strip()[2:-2]  # noqa: E731  ("{{ x }}" -> "x")
    values = dict(phase2_iam=iam, phase2_iam_cso_user="cso_iam", phase2_iam_cso_password_user="ssp_user",
                  cso_db_auth=auth, cso_db_username=user)
    assert _expression(strip(facts["__phase2_cso_auth"]))(**values) == expected
    assert _expression(strip(facts["__phase2_cso_username"]))(**values) == ("cso_iam" if iam else user)


def test_the_rollback_moves_both_services_to_their_password_users_before_anything_else():
    plays = _plays(ROLLBACK)
    # plays[0] unlocks the password users (test_phase2_iam_lock.py), on the database alone
    keystone, cso = plays[1], plays[2]
    assert keystone["hosts"] == "{{ phase1_keystone_group | default('keystone') }}" and keystone["serial"] == 1
    assert cso["hosts"] == "{{ phase1_cso_group | default('cso') }}" and cso["serial"] == 1
    keystone_move = next(task for task in _tasks(keystone) if "ansible.builtin.include_role" in task)["vars"]
    cso_move = next(task for task in _tasks(cso) if "ansible.builtin.include_role" in task)["vars"]
    assert (keystone_move["keystone_db_auth"], keystone_move["keystone_db_user"]) == (
        "password", "{{ phase2_iam_keystone_password_user }}")
    assert (cso_move["cso_db_auth"], cso_move["cso_db_username"], cso_move["cso_db_read_host"]) == (
        "password", "{{ phase2_iam_cso_password_user }}", "")
    # nothing in the rollback drops the IAM users or policies, or turns IAM authentication off
    text = ROLLBACK.read_text()
    assert "rds_iam_auth" not in text and "rds_iam_db_auth" not in text and "DROP USER" not in text


def _env(iam=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), HOME=str(REPO_ROOT / ".ansible"))
    for name in list(env):
        if name.startswith("ANSIBLE_") and name != "ANSIBLE_CONFIG" or name == "CSO_LAB_PHASE2_IAM":
            env.pop(name)
    if iam is not None:
        env["CSO_LAB_PHASE2_IAM"] = iam
    return env


def _resolve(inventory, tmp_path, iam=None, *extra):
    out = tmp_path / "resolved.json"
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", f"inventories/{inventory}", str(HERE / "files" / "phase2_iam_resolve.yml"),
         "-e", f"resolve_phase2_out={out}", *extra],
        cwd=REPO_ROOT, env=_env(iam), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(out.read_text())


def _agrees(values):
    """The preflight's check, evaluated on a host's resolved variables."""
    play = next(play for play in _plays(PHASE2) if play["name"].startswith("Phase 2 / preflight: TLS"))
    condition = next(task for task in _tasks(play) if task["name"] == AGREEMENT_TASK)["ansible.builtin.assert"]["that"]
    resolved = {name: value for name, value in values.items() if value != "<undefined>"}
    host = "keystone-1" if values["keystone_host"] else "cso-1"
    return bool(_expression(condition)(inventory_hostname=host, groups={"keystone": ["keystone-1"], "cso": ["cso-1"]},
                                       **resolved))


@pytest.mark.parametrize("iam", [None, "true"])
def test_the_lab_inventory_derives_the_services_logins_from_phase2_iam(iam, tmp_path):
    resolved = _resolve("lab", tmp_path, iam)
    on = iam == "true"
    logins = {host: (values["phase2_iam"], values["keystone_db_auth"], values["keystone_db_user"])
              if values["keystone_host"] else (values["phase2_iam"], values["cso_db_auth"], values["cso_db_username"])
              for host, values in resolved.items()}
    assert logins == {
        "keystone-1": (on, "iam", "keystone_iam") if on else (False, "password", "keystone"),
        "keystone-2": (on, "iam", "keystone_iam") if on else (False, "password", "keystone"),
        "cso-1": (on, "iam", "cso_iam") if on else (False, "password", "ssp_user"),
    }
    assert {host: _agrees(values) for host, values in resolved.items()} == dict.fromkeys(resolved, on)
    # the lock of the password users stays off (test_phase2 turns it on for its IAM converge)
    assert {values["phase2_iam_lock_password_users"] for values in resolved.values()} == {False}


@pytest.mark.parametrize("inventory", ["prod", "dev"])
def test_prod_and_dev_are_unchanged_and_phase2_iam_alone_is_refused(inventory, tmp_path):
    resolved = _resolve(inventory, tmp_path)
    for host, values in resolved.items():
        assert values["phase2_iam"] is False, host
        assert (values["keystone_db_auth"], values["cso_db_auth"]) == ("<undefined>", "<undefined>"), host
        assert (values["keystone_db_user"], values["cso_db_username"]) == ("keystone", "ssp_user"), host
        assert values["phase2_iam_lock_password_users"] is False, host
    # phase2_iam on without the inventory deriving the logins: the preflight refuses every service host
    turned_on = _resolve(inventory, tmp_path, None, "-e", "phase2_iam=true")
    assert {host: _agrees(values) for host, values in turned_on.items()} == dict.fromkeys(turned_on, False)
