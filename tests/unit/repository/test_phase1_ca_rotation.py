"""Phase 1's step ca_rotation and phase1_ca_rotation_restart: the refusal only where the engine version cannot
rotate without a restart, and the choice reaches rds_hardened_instance (the host-lab tests run the step itself)."""

import pathlib

import jinja2
import pytest
import yaml
from ansible.module_utils.parsing.convert_bool import boolean

PLAYBOOK = pathlib.Path(__file__).resolve().parents[3] / "playbooks" / "phase1.yml"


def _tasks():
    for play in yaml.safe_load(PLAYBOOK.read_text()):
        for task in play.get("tasks", []):
            yield task


def _task(name):
    return next(task for task in _tasks() if task.get("name") == name)


@pytest.mark.parametrize("restart, supported, allowed", [
    (True, False, True), (True, True, True), (False, True, True), (False, False, False),
])
def test_rotation_without_restart_is_refused_only_where_the_engine_version_cannot(restart, supported, allowed):
    condition = _task("Refuse a rotation without restart the engine version cannot do")["ansible.builtin.assert"]["that"]
    environment = jinja2.Environment()
    environment.filters["bool"] = boolean
    result = environment.compile_expression(condition)(
        phase1_ca_rotation_restart=restart, __phase1_ca_without_restart_supported=supported)
    assert bool(result) is allowed


def test_the_rotation_sends_phase1_ca_rotation_restart_to_the_module():
    plan = _task("Plan the rotation (the instance with the new CA and nothing else)")
    args = plan["cso.rds_hardening.rds_hardened_instance"]
    assert args["ca_certificate_rotation_restart"] == "{{ phase1_ca_rotation_restart | bool }}"
    assert args["allow_reboot"] is True and args["apply"] == "immediately"
