"""playbooks/phase3.yml and rollback_phase3.yml as files (no lab): the steps in one order everywhere (the steps
file, the plays, phase3_stop_after's choices, docs/phases.md), every play importing the variables of phases 1-3
first, blue/green before the DR replica, only the switchover behind the maintenance-window gate, and the lab
inventory holding only what differs from roles/phase3's defaults. The behaviour against the lab's AWS API:
tests/integration/test_phase3.py."""

import pathlib

import yaml

from ansible_collections.cso.rds_hardening.tests.unit.repository.playbook_steps import steps_in_plays

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
PHASE3 = REPO_ROOT / "playbooks" / "phase3.yml"
ROLLBACK = REPO_ROOT / "playbooks" / "rollback_phase3.yml"
STEPS = ["preflight", "storage", "blue_green", "iam_policies", "dr_replica"]
VARIABLE_ROLES = ["cso.rds_hardening.phase1", "cso.rds_hardening.phase2", "cso.rds_hardening.phase3"]


def _plays(path):
    return yaml.safe_load(path.read_text())


def _tasks(tasks):
    for task in tasks:
        yield task
        yield from _tasks(task.get("block", []))
        yield from _tasks(task.get("rescue", []))


def _modules(play):
    return [next(key for key in task if "." in key and key != "ansible.builtin.import_role") for task in _tasks(play["tasks"])
            if "block" not in task and any("." in key for key in task) and "ansible.builtin.import_role" not in task]


def test_the_steps_run_in_the_documented_order():
    steps = yaml.safe_load((REPO_ROOT / "playbooks/vars/phase3_steps.yml").read_text())["__phase3_steps"]
    assert steps == STEPS
    assert steps_in_plays(PHASE3, "__phase3_step") == steps
    spec = yaml.safe_load((REPO_ROOT / "roles/phase3/meta/argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["phase3_stop_after"]["choices"] == [""] + steps
    phases = (REPO_ROOT / "docs/phases.md").read_text()
    section = phases[phases.index("## Phase 3"):phases.index("## Assumptions that did not hold")]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert [row for row in rows if row in steps] == steps


def test_every_play_imports_the_variables_of_the_three_phases_first():
    for path in (PHASE3, ROLLBACK):
        for play in _plays(path):
            imported = [task["ansible.builtin.import_role"]["name"] for task in play["tasks"]
                        if "ansible.builtin.import_role" in task]
            first = [task.get("ansible.builtin.import_role", {}).get("name") for task in play["tasks"][:len(imported)]]
            assert first == imported, (path.name, play["name"])
            wanted = VARIABLE_ROLES[:1] if play["hosts"].startswith("{{ phase1_service_hosts") else VARIABLE_ROLES
            assert imported == wanted, (path.name, play["name"])


def test_blue_green_runs_before_the_dr_replica_and_the_refusal_before_any_change():
    plays = _plays(PHASE3)
    order = [module for play in plays for module in _modules(play)]
    assert order.index("cso.rds_hardening.rds_blue_green") < order.index("cso.rds_hardening.rds_hardened_replica")
    assert order.index("cso.rds_hardening.rds_iam_db_auth") < order.index("cso.rds_hardening.rds_hardened_replica")
    preflight = plays[0]
    tasks = list(_tasks(preflight["tasks"]))
    refusal = next(i for i, t in enumerate(tasks) if t.get("name") == "Refuse blue/green while a cross-Region read replica exists")
    probe = next(t for t in tasks if "cso.rds_hardening.rds_blue_green" in t)
    assert probe["check_mode"] is True and probe["cso.rds_hardening.rds_blue_green"]["state"] == "absent"
    # nothing before the refusal may change AWS: only info modules and the check-mode probe
    for task in tasks[:refusal]:
        module = next((key for key in task if "." in key), "")
        assert (module.startswith("ansible.builtin.") or module.endswith("_info") or task is probe), module


def test_only_the_switchover_waits_for_the_maintenance_window():
    blue_green = [play for play in _plays(PHASE3) if play["vars"]["__phase3_step"] == "blue_green"]
    task = next(t for t in _tasks(blue_green[0]["tasks"])
                if "switched_over" in str(t.get("cso.rds_hardening.rds_blue_green", {}).get("state")))
    assert "__phase3_bg_switching" in task["cso.rds_hardening.rds_blue_green"]["state"]
    assert "__phase3_window_closed" in blue_green[0]["vars"]["__phase3_bg_switching"]
    for play in _plays(PHASE3):
        if play["vars"]["__phase3_step"] in ("storage", "iam_policies", "dr_replica"):
            assert "window" not in str([t.get("when") for t in _tasks(play["tasks"])]), play["name"]


def test_the_lab_inventory_holds_only_what_differs_from_the_defaults():
    defaults = yaml.safe_load((REPO_ROOT / "roles/phase3/defaults/main.yml").read_text())
    spec = yaml.safe_load((REPO_ROOT / "roles/phase3/meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(spec)
    assert all(spec[name].get("default") == value for name, value in defaults.items())
    lab = yaml.safe_load((REPO_ROOT / "inventories/lab/phase3.yml").read_text())["all"]["vars"]
    assert all(name.startswith("phase3_") for name in lab)
    assert not sorted(name for name, value in lab.items() if defaults.get(name) == value)


def test_dr_failover_has_keystone_and_cso_sign_iam_tokens_for_the_dr_region():
    """A token signed for another Region than the database's is refused ("Connecting to your DB instance using IAM
    authentication"): after the failover Keystone and CSO sign for the promoted instance's Region, whatever the
    inventory says for the primary's (the lab inventory sets keystone_db_iam_region to the primary's)."""
    plays = _plays(REPO_ROOT / "playbooks" / "dr_failover.yml")
    recorded = {key: value for play in plays for task in _tasks(play.get("tasks", []))
                for key, value in task.get("ansible.builtin.set_fact", {}).items()}
    assert recorded["__dr_failover_region"] == "{{ __dr_failover_promoted.instances[0].db_instance_arn.split(':')[3] }}"
    regions = {role: play["vars"].get(f"{role}_iam_region") for play in plays for role in ("keystone_db", "cso_db")
               if any(task.get("ansible.builtin.include_role", {}).get("name") == f"cso.rds_hardening.{role}"
                      for task in play.get("tasks", []))}
    assert regions == {"keystone_db": "{{ __dr_failover_db.__dr_failover_region }}",
                       "cso_db": "{{ __dr_failover_db.__dr_failover_region }}"}
