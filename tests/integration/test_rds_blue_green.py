"""cso.rds_hardening.rds_blue_green against the lab (AWS API only): a green with its own instance class and parameter
group, the second run without a write, the switchover that keeps production's name and endpoint and renames the old
instance -old1, the deletion of the deployment with the old instance, and refusals before any write.

The lab's blue/green periods are set short (PROVISIONING 2 s, switchover 1 s); the module polls every 5 s."""

import json

import pytest

pytestmark = pytest.mark.lab

DB = "cso-lab-db"  # seeded: MySQL 8.0.42, db.t3.large, gp3 50 GiB, default.mysql8.0, backups 7 days
NAME = "cso-lab-db-m5"
GROUP = "cso-green-mysql80"


@pytest.fixture
def lab_bg(aws_lab):
    aws_lab.set_blue_green(provisioning_seconds=2, switchover_seconds=1)
    rds = aws_lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName=GROUP, DBParameterGroupFamily="mysql8.0",
                                  Description="the green's own group")
    rds.modify_db_parameter_group(DBParameterGroupName=GROUP, Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    aws_lab.clear_calls()
    return aws_lab


def _playbook(args, name="Blue/green"):
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: {name}
      cso.rds_hardening.rds_blue_green: {json.dumps(args)}
      register: out
"""


def _ok(run, name="Blue/green"):
    results = [r for r in run.results() if r["_task"] == name]
    assert run.returncode == 0, f"{results[-1].get('msg') if results else None} {run}"
    return results[-1]


def _refused(run, name="Blue/green"):
    assert run.returncode != 0, run
    return run.result(name)["msg"]


def _instance(lab, identifier):
    return lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _identifiers(lab):
    return sorted(i["DBInstanceIdentifier"] for i in lab.boto3("rds").describe_db_instances()["DBInstances"])


def _made(lab):
    return [call["action"] for call in lab.mutating_calls()]


def test_create_switch_over_and_delete_with_the_old_instance(lab_bg, run_playbook):
    lab = lab_bg
    rds = lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=True, ApplyImmediately=True)
    blue = _instance(lab, DB)
    task = {"db_instance_identifier": DB, "blue_green_deployment_name": NAME,
            "target_db_instance_class": "db.m5.large", "target_db_parameter_group_name": GROUP}
    lab.clear_calls()

    planned = _ok(run_playbook(_playbook(task), check=True, diff=True))
    assert [(e["what"], e["impact"]) for e in planned["plan"]] == [(f"create blue/green deployment {NAME} of {DB}", "none")]
    assert planned["plan"][0]["after"]["db_instance_class"] == "db.m5.large"
    assert planned["changed"] is True and _made(lab) == []

    created = _ok(run_playbook(_playbook(task)))
    assert created["changed"] is True and created["plan"] == planned["plan"]
    assert _made(lab) == ["CreateBlueGreenDeployment"]
    green_name = created["green_instance_identifier"]
    assert green_name.startswith(f"{DB}-green-") and created["blue_green_deployment"]["status"] == "AVAILABLE"
    green = _instance(lab, green_name)
    assert (green["DBInstanceStatus"], green["DBInstanceClass"], green["DBParameterGroups"][0]["DBParameterGroupName"]) == (
        "available", "db.m5.large", GROUP)
    assert _instance(lab, DB)["DBInstanceClass"] == "db.t3.large"

    lab.clear_calls()
    again = _ok(run_playbook(_playbook(task)))
    assert again["changed"] is False and again["plan"] == [] and _made(lab) == []

    switch = dict(task, state="switched_over", switchover_timeout=60)
    planned = _ok(run_playbook(_playbook(switch), check=True))
    assert [(e["impact"], e["before"]["db_instance_class"], e["after"]["db_instance_class"]) for e in planned["plan"]] == [
        ("brief-interruption", "db.t3.large", "db.m5.large")]
    assert "at most switchover_timeout (60 s)" in planned["plan"][0]["effect"] and _made(lab) == []

    switched = _ok(run_playbook(_playbook(switch)))
    assert switched["changed"] is True and _made(lab) == ["SwitchoverBlueGreenDeployment"]
    production, old = _instance(lab, DB), _instance(lab, f"{DB}-old1")
    assert production["DbiResourceId"] == green["DbiResourceId"] and production["DBInstanceClass"] == "db.m5.large"
    assert production["Endpoint"] == blue["Endpoint"]
    assert old["DbiResourceId"] == blue["DbiResourceId"]
    assert switched["blue_green_deployment"]["status"] == "SWITCHOVER_COMPLETED"
    assert switched["blue_green_deployment"]["source"] == old["DBInstanceArn"]
    assert green_name not in _identifiers(lab)

    lab.clear_calls()
    for state in ("switched_over", "present"):
        settled = _ok(run_playbook(_playbook(dict(task, state=state))))
        assert settled["changed"] is False and settled["plan"] == []
    assert _made(lab) == []

    removal = dict(task, state="absent", delete_old_blue=True, old_blue_final_snapshot_identifier="cso-lab-db-before-m5")
    planned = _ok(run_playbook(_playbook(removal), check=True))
    assert [(e["what"], e["impact"]) for e in planned["plan"]] == [
        (f"deletion_protection of old blue {DB}-old1", "none"), (f"delete old blue instance {DB}-old1", "data-loss"),
        (f"delete blue/green deployment {NAME}", "none")]
    assert _made(lab) == []

    removed = _ok(run_playbook(_playbook(removal)))
    assert removed["changed"] is True and removed["blue_green_deployment"] is None
    assert _made(lab) == ["ModifyDBInstance", "DeleteDBInstance", "DeleteBlueGreenDeployment"]
    assert _identifiers(lab) == [DB]
    snapshots = rds.describe_db_snapshots(DBSnapshotIdentifier="cso-lab-db-before-m5")["DBSnapshots"]
    assert [s["DBInstanceIdentifier"] for s in snapshots] == [f"{DB}-old1"]
    assert rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []

    lab.clear_calls()
    for args in (removal, task, dict(task, state="switched_over")):  # production has the targets: nothing to deploy
        settled = _ok(run_playbook(_playbook(args)))
        assert settled["changed"] is False and settled["plan"] == []
    assert _made(lab) == [] and _identifiers(lab) == [DB]


def test_delete_with_the_green_before_the_switchover_leaves_the_blue(lab_bg, run_playbook):
    lab = lab_bg
    task = {"db_instance_identifier": DB, "blue_green_deployment_name": NAME, "target_db_instance_class": "db.m5.large"}
    green_name = _ok(run_playbook(_playbook(task)))["green_instance_identifier"]

    lab.clear_calls()
    refused = _refused(run_playbook(_playbook(dict(task, state="absent", delete_old_blue=True))))
    assert refused.startswith("Nothing was changed: ") and f"its blue {DB} is still production" in refused
    assert _made(lab) == []

    removed = _ok(run_playbook(_playbook(dict(task, state="absent", delete_target=True))))
    assert [(e["what"], e["impact"]) for e in removed["plan"]] == [
        (f"delete blue/green deployment {NAME} and its green instance", "none")]
    assert _made(lab) == ["DeleteBlueGreenDeployment"]
    assert _identifiers(lab) == [DB] and green_name not in _identifiers(lab)
    assert _instance(lab, DB)["DBInstanceClass"] == "db.t3.large"


def test_refusals_come_before_any_write(lab_bg, run_playbook):
    lab = lab_bg
    task = {"db_instance_identifier": DB, "blue_green_deployment_name": NAME}

    older = _refused(run_playbook(_playbook(dict(task, target_engine_version="8.0.40"))))
    assert "target_engine_version 8.0.40 is older than cso-lab-db's 8.0.42" in older
    storage = _refused(run_playbook(_playbook(dict(task, target_storage_type="io1", target_allocated_storage=100,
                                                   target_iops=6000))))
    assert "iops 6,000 for 100 GiB of io1 is 60 IOPS per GiB; AWS allows 0.5 to 50." in storage
    missing = _refused(run_playbook(_playbook(dict(task, target_db_parameter_group_name="no-such-group"))))
    assert "DB parameter group no-such-group does not exist" in missing
    lab.boto3("rds").modify_db_parameter_group(DBParameterGroupName=GROUP, Parameters=[
        {"ParameterName": "event_scheduler", "ParameterValue": "ON", "ApplyMethod": "immediate"}])
    lab.clear_calls()
    events = _refused(run_playbook(_playbook(dict(task, target_db_parameter_group_name=GROUP))))
    assert f"DB parameter group {GROUP} sets event_scheduler=ON" in events
    assert _made(lab) == []
    assert lab.boto3("rds").describe_blue_green_deployments()["BlueGreenDeployments"] == []
