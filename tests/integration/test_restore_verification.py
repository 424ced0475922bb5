"""Restore verification (rds_restore_verification + the role's block/always) against the lab.

The orchestration (restore -> wait -> verify hook -> cleanup, also after a failure) runs on the
AWS lab alone; the tests that run queries need the data plane (``dataplane``).
"""

import datetime
import json
import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

SOURCE = "cso-lab-db"
TEMP = "cso-lab-db-restore-verify"


def play(hook=None, checks=None, extra=None):
    role_vars = {
        "rds_backup_replication_db_instance_identifier": SOURCE,
        "rds_backup_replication_verify_restore": True,
        "rds_backup_replication_verify_db_subnet_group_name": "cso-db-private",
        "rds_backup_replication_verify_login_user": "admin",
        "rds_backup_replication_verify_login_password": "lab-master-password-1",
        "rds_backup_replication_verify_checks": checks or [],
        "rds_backup_replication_verify_wait_timeout": 120,
    }
    if hook:
        role_vars["rds_backup_replication_verify_hook_tasks"] = str(hook)
    role_vars.update(extra or {})
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: cso.rds_hardening.rds_backup_replication
      vars: {json.dumps(role_vars)}
"""


def step(run, name):
    """The result of a role task (the callback prefixes the role's name)."""
    return run.result(f"cso.rds_hardening.rds_backup_replication : {name}")


def temp_instance(lab, region=None):
    try:
        return lab.boto3("rds", region).describe_db_instances(DBInstanceIdentifier=TEMP)["DBInstances"][0]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "DBInstanceNotFound"
        return None


def actions(lab, name):
    return [c for c in lab.calls() if c["action"] == name and not c["faulted"]]


@pytest.fixture
def hook_file(tmp_path):
    def write(text):
        path = tmp_path / "hook.yml"
        path.write_text(text)
        return path

    return write


def test_restore_wait_hook_cleanup(aws_lab, run_playbook, hook_file):
    # The hook records what the temporary instance looked like while it existed.
    hook = hook_file("""
- name: Look at the temporary instance
  amazon.aws.rds_instance_info:
    db_instance_identifier: cso-lab-db-restore-verify
  register: seen
- name: Keep it
  ansible.builtin.set_fact:
    seen_during_hook: "{{ seen.instances[0] }}"
""")
    latest = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0][
        "LatestRestorableTime"]
    started = time.monotonic()
    run = run_playbook(play(hook=hook))
    finished_at, wall = datetime.datetime.now(datetime.timezone.utc), time.monotonic() - started
    assert run.returncode == 0, run
    restore = step(run, "Restore the latest restorable time into a temporary instance")
    assert restore["changed"] is True
    # the lab's latest restorable time is "now" when asked (AWS's lags up to ~5 minutes): the one
    # the module read lies within the run, and the recovery point is its age when the restore
    # was asked, at most the rest of the run
    read = datetime.datetime.fromisoformat(restore["restored_from"]["latest_restorable_time"])
    assert latest <= read <= finished_at, (latest, read, finished_at)
    assert 0 <= restore["rpo_seconds"] <= (finished_at - read).total_seconds() + 1, restore["rpo_seconds"]
    # the recovery time is measured inside the run, around the restore and its wait
    assert 0 <= restore["rto_seconds"] <= wall, (restore["rto_seconds"], wall)
    assert restore["restored_from"]["source"] == SOURCE
    seen = step(run, "Look at the temporary instance")["instances"][0]
    assert seen["publicly_accessible"] is False and seen["deletion_protection"] is False
    assert {"key": "cso:restore-verification", "value": "true"} in [
        {"key": k, "value": v} for k, v in seen["tags"].items()]
    cleanup = step(run, "Delete the temporary instance")
    assert cleanup["changed"] is True
    assert temp_instance(aws_lab) is None
    deletes = actions(aws_lab, "DeleteDBInstance")
    assert len(deletes) == 1
    report = step(run, "Report the restore test")["ansible_facts"]["rds_backup_replication_restore_report"]
    assert report["cleaned_up"] is True
    assert (report["rto_seconds"], report["rpo_seconds"]) == (restore["rto_seconds"], restore["rpo_seconds"])


def test_failing_verification_query_still_deletes_the_instance(aws_lab, dataplane, run_playbook):
    """The restored instance is served, so the query really runs and fails for its own reason."""
    dataplane.wait_ready(SOURCE, timeout=60)
    checks = [{"name": "missing table", "query": "SELECT COUNT(*) FROM no_such_schema.no_such_table", "min": 1}]
    run = run_playbook(play(checks=checks, extra={
        "rds_backup_replication_verify_ca_cert": str(dataplane.ca_bundle_path())}))
    assert run.returncode != 0
    failed = step(run, "Run the verification queries on the restored instance")
    assert failed.get("failed") is True
    assert "no_such_table" in json.dumps(failed) and "doesn't exist" in json.dumps(failed), failed
    assert step(run, "Delete the temporary instance")["changed"] is True
    assert temp_instance(aws_lab) is None


def test_lab_faults_and_a_failing_hook_mid_way_still_delete_the_instance(aws_lab, run_playbook, hook_file):
    # Mid-way (instance restored, not yet verified) the lab starts throttling half of the calls the
    # cleanup makes, and the hook fails: the cleanup must get through and delete the instance.
    hook = hook_file(f"""
- name: Throttle the AWS lab from now on
  ansible.builtin.uri:
    url: "{aws_lab.endpoint_url}/_lab/faults"
    method: POST
    body_format: json
    body: {{"rate": 0.5, "seed": 3, "actions": ["DescribeDBInstances", "DeleteDBInstance"]}}
- name: Fail mid-way
  ansible.builtin.fail:
    msg: injected failure after the restore
""")
    run = run_playbook(play(hook=hook))
    faults_were_on = any(c["faulted"] for c in aws_lab.calls())
    aws_lab.set_faults(0)
    assert run.returncode != 0
    assert step(run, "Fail mid-way")["msg"] == "injected failure after the restore"
    assert step(run, "Delete the temporary instance")["changed"] is True
    assert faults_were_on, json.dumps(step(run, "Throttle the AWS lab from now on"))[:1500]
    assert temp_instance(aws_lab) is None


def test_absent_never_deletes_an_instance_it_did_not_create(aws_lab, run_playbook):
    run = run_playbook("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Try to remove the real database
      cso.rds_hardening.rds_restore_verification:
        db_instance_identifier: cso-lab-db
        state: absent
""")
    assert run.returncode != 0
    assert "Refusing" in run.result("Try to remove the real database")["msg"]
    assert [c for c in aws_lab.mutating_calls()] == []


def test_restore_from_the_replicated_backups_in_the_dr_region(aws_lab, run_playbook):
    kms = aws_lab.boto3("kms", "eu-west-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    rds_dr = aws_lab.boto3("rds", "eu-west-1")
    source_arn = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]["DBInstanceArn"]
    backup = rds_dr.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, KmsKeyId=key, SourceRegion="eu-west-2")["DBInstanceAutomatedBackup"]
    probe = rds_dr.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=backup["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier="probe-restore", UseLatestRestorableTime=True)["DBInstance"]
    assert probe["KmsKeyId"] == key
    rds_dr.delete_db_instance(DBInstanceIdentifier="probe-restore", SkipFinalSnapshot=True)
    aws_lab.clear_calls()
    run = run_playbook(play(extra={"rds_backup_replication_verify_from": "replicated",
                                   "rds_backup_replication_kms_key_id": key}))
    assert run.returncode == 0, run
    restore = step(run, "Restore the latest restorable time into a temporary instance")
    assert restore["restored_from"]["region"] == "eu-west-1"
    restores = actions(aws_lab, "RestoreDBInstanceToPointInTime")
    assert [c["region"] for c in restores] == ["eu-west-1"]
    assert temp_instance(aws_lab, "eu-west-1") is None




# a data-plane test (marked `dataplane` through its fixture): it runs before the host lab exists
def test_rows_written_to_the_source_come_back_in_the_restored_instance(aws_lab, dataplane, run_playbook):
    dataplane.wait_ready(SOURCE, timeout=60)
    dataplane.sql(SOURCE, "CREATE DATABASE IF NOT EXISTS restore_check")
    dataplane.sql(SOURCE, "CREATE TABLE IF NOT EXISTS restore_check.canary (id INT PRIMARY KEY, note VARCHAR(64))")
    dataplane.sql(SOURCE, "DELETE FROM restore_check.canary")
    dataplane.sql(SOURCE, "INSERT INTO restore_check.canary VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")
    checks = [
        {"name": "canary rows", "query": "SELECT COUNT(*) FROM restore_check.canary", "expected": 3},
        {"name": "canary content", "query": "SELECT GROUP_CONCAT(note ORDER BY id) FROM restore_check.canary",
         "compare_with_source": True},
    ]
    run = run_playbook(play(checks=checks, extra={
        "rds_backup_replication_verify_ca_cert": str(dataplane.ca_bundle_path())}))
    assert run.returncode == 0, run
    report = step(run, "Report the restore test")["ansible_facts"]["rds_backup_replication_restore_report"]
    assert report["checks"] == {"canary rows": "3", "canary content": "alpha,beta,gamma"}
    assert temp_instance(aws_lab) is None


def leave_a_temporary_instance(lab):
    """What an earlier restore test whose cleanup never ran leaves: the tagged temporary instance."""
    lab.boto3("rds").restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=SOURCE, TargetDBInstanceIdentifier=TEMP, UseLatestRestorableTime=True,
        DBSubnetGroupName="cso-db-private", Tags=[{"Key": "cso:restore-verification", "Value": "true"}])
    lab.clear_calls()


def test_a_leftover_temporary_instance_fails_the_test_and_stays_for_inspection(aws_lab, run_playbook):
    """Before: the module returned the leftover unchanged with no RPO/RTO and the role passed."""
    leave_a_temporary_instance(aws_lab)
    run = run_playbook(play())
    assert run.returncode != 0
    refused = step(run, "Restore the latest restorable time into a temporary instance")
    assert refused["failed"] is True and refused["leftover"] == TEMP
    assert "state=absent" in refused["msg"] and "rds_backup_replication_verify_replace_leftover=true" in refused["msg"]
    assert actions(aws_lab, "RestoreDBInstanceToPointInTime") == [] and actions(aws_lab, "DeleteDBInstance") == []
    assert temp_instance(aws_lab) is not None, "kept for inspection"
    report = step(run, "Report the restore test")["ansible_facts"]["rds_backup_replication_restore_report"]
    assert report["leftover"] == TEMP and report["rpo_seconds"] is None and report["cleaned_up"] is False


def test_a_leftover_is_replaced_on_request_and_the_new_restore_measured(aws_lab, run_playbook):
    leave_a_temporary_instance(aws_lab)
    started = time.monotonic()
    run = run_playbook(play(extra={"rds_backup_replication_verify_replace_leftover": True}))
    wall = time.monotonic() - started
    assert run.returncode == 0, run
    restore = step(run, "Restore the latest restorable time into a temporary instance")
    assert restore["replaced"] == TEMP
    assert 0 <= restore["rto_seconds"] <= wall and restore["rpo_seconds"] >= 0
    calls = [c["action"] for c in aws_lab.calls()
             if c["action"] in ("DeleteDBInstance", "RestoreDBInstanceToPointInTime") and not c["faulted"]]
    assert calls == ["DeleteDBInstance", "RestoreDBInstanceToPointInTime", "DeleteDBInstance"], calls
    assert temp_instance(aws_lab) is None
