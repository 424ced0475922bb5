"""rds_backup_replication (module and role) against the AWS lab: primary eu-west-2, DR eu-west-1."""

import json

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

SOURCE = "cso-lab-db"
DR_REGION = "eu-west-1"


@pytest.fixture
def lab_has_replication(aws_lab):
    """The lab's moto extension for Start/StopDBInstanceAutomatedBackupsReplication."""
    rds = aws_lab.boto3("rds", DR_REGION)
    try:
        rds.stop_db_instance_automated_backups_replication(SourceDBInstanceArn="arn:aws:rds:eu-west-2:123456789012:db:none")
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        if status >= 500:  # the extension is part of the lab: a 5xx is a broken lab, never a skip
            pytest.fail(f"the lab answered StopDBInstanceAutomatedBackupsReplication with HTTP {status} "
                        f"({error}): see lab/csolab/moto_ext/backup_replication.py and .lab/moto.log", pytrace=False)
    aws_lab.clear_calls()
    return aws_lab


@pytest.fixture
def dr_key(lab_has_replication):
    kms = lab_has_replication.boto3("kms", DR_REGION)
    arn = kms.create_key(Description="replicated backups")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/cso-dr-backups", TargetKeyId=arn)
    lab_has_replication.clear_calls()
    return arn


def task(**args):
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Replication
      cso.rds_hardening.rds_backup_replication: {json.dumps(args)}
      register: replication
"""


def replicated_backups(lab):
    backups = lab.boto3("rds", DR_REGION).describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    return [b for b in backups if b.get("DBInstanceArn", "").endswith(f":db:{SOURCE}") and b["Status"] != "retained"]


def actions(calls):
    return [call["action"] for call in calls]


BASE = {"db_instance_identifier": SOURCE, "destination_region": DR_REGION, "kms_key_id": "alias/cso-dr-backups",
        "retention_period": 7}


def test_start_then_second_run_makes_no_mutating_call(lab_has_replication, dr_key, run_playbook):
    lab = lab_has_replication
    run = run_playbook(task(**BASE))
    assert run.returncode == 0, run
    result = run.result("Replication")
    assert result["changed"] is True
    backup = result["replicated_backup"]
    assert backup["region"] == DR_REGION
    assert backup["kms_key_id"] == dr_key and backup["encrypted"] is True
    assert backup["backup_retention_period"] == 7
    assert backup["restore_window"]["latest_time"]
    assert result["replication_lag_seconds"] is not None
    starts = [c for c in lab.mutating_calls() if c["action"] == "StartDBInstanceAutomatedBackupsReplication"]
    assert [c["region"] for c in starts] == [DR_REGION]  # made in the destination region
    assert [b["DBInstanceAutomatedBackupsArn"] for b in replicated_backups(lab)] == [backup["db_instance_automated_backups_arn"]]
    source = lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]
    assert source["DBInstanceAutomatedBackupsReplications"] == [
        {"DBInstanceAutomatedBackupsArn": backup["db_instance_automated_backups_arn"]}]

    lab.clear_calls()
    again = run_playbook(task(**BASE))
    assert again.returncode == 0, again
    assert again.result("Replication")["changed"] is False
    assert lab.mutating_calls() == []


def test_check_mode_plans_and_mutates_nothing(lab_has_replication, dr_key, run_playbook):
    run = run_playbook(task(**BASE), check=True, diff=True)
    assert run.returncode == 0, run
    result = run.result("Replication")
    assert result["changed"] is True
    assert [item["call"] for item in result["plan"]] == ["start_replication"]
    assert result["plan"][0]["impact"] == "none" and result["plan"][0]["before"] is None
    assert result["diff"]["after"]["state"] == "present"
    assert lab_has_replication.mutating_calls() == []
    assert replicated_backups(lab_has_replication) == []


def test_retention_change_refused_then_done_as_stop_and_start(lab_has_replication, dr_key, run_playbook):
    lab = lab_has_replication
    assert run_playbook(task(**BASE)).returncode == 0
    lab.clear_calls()
    refused = run_playbook(task(**dict(BASE, retention_period=14)))
    assert refused.returncode != 0
    result = refused.result("Replication")
    assert "allow_replication_restart" in result["msg"] and "gap" in result["msg"]
    assert lab.mutating_calls() == []
    assert replicated_backups(lab)[0]["BackupRetentionPeriod"] == 7

    allowed = run_playbook(task(**dict(BASE, retention_period=14, allow_replication_restart=True)))
    assert allowed.returncode == 0, allowed
    assert [item["call"] for item in allowed.result("Replication")["plan"]] == ["stop_replication", "start_replication"]
    assert "gap" in allowed.result("Replication")["plan"][0]["what"]
    assert actions(lab.mutating_calls()) == ["StopDBInstanceAutomatedBackupsReplication",
                                             "StartDBInstanceAutomatedBackupsReplication"]
    assert replicated_backups(lab)[0]["BackupRetentionPeriod"] == 14


def test_absent_stops_replication(lab_has_replication, dr_key, run_playbook):
    lab = lab_has_replication
    assert run_playbook(task(**BASE)).returncode == 0
    lab.clear_calls()
    run = run_playbook(task(db_instance_identifier=SOURCE, destination_region=DR_REGION, state="absent"))
    assert run.returncode == 0, run
    assert run.result("Replication")["changed"] is True
    assert actions(lab.mutating_calls()) == ["StopDBInstanceAutomatedBackupsReplication"]
    assert replicated_backups(lab) == []
    lab.clear_calls()
    again = run_playbook(task(db_instance_identifier=SOURCE, destination_region=DR_REGION, state="absent"))
    assert again.result("Replication")["changed"] is False
    assert lab.mutating_calls() == []


def test_missing_destination_key_fails_before_any_mutation(lab_has_replication, run_playbook):
    run = run_playbook(task(**dict(BASE, kms_key_id="alias/does-not-exist")))
    assert run.returncode != 0
    assert "does not exist in eu-west-1" in run.result("Replication")["msg"]
    assert lab_has_replication.mutating_calls() == []


def test_encrypted_source_without_key_fails_before_any_mutation(lab_has_replication, run_playbook):
    run = run_playbook(task(db_instance_identifier=SOURCE, destination_region=DR_REGION))
    assert run.returncode != 0
    assert "needs kms_key_id" in run.result("Replication")["msg"]
    assert lab_has_replication.mutating_calls() == []


def test_key_in_the_source_region_fails_before_any_mutation(lab_has_replication, run_playbook):
    lab = lab_has_replication
    wrong_region_key = lab.boto3("kms").create_key()["KeyMetadata"]["Arn"]  # eu-west-2
    lab.clear_calls()
    run = run_playbook(task(**dict(BASE, kms_key_id=wrong_region_key)))
    assert run.returncode != 0
    assert "must be in eu-west-1" in run.result("Replication")["msg"]
    assert lab.mutating_calls() == []


def test_source_without_backups_fails_before_any_mutation(lab_has_replication, dr_key, run_playbook):
    lab = lab_has_replication
    lab.boto3("rds").modify_db_instance(DBInstanceIdentifier=SOURCE, BackupRetentionPeriod=0, ApplyImmediately=True)
    lab.clear_calls()
    run = run_playbook(task(**BASE))
    assert run.returncode != 0
    assert "automated backups disabled" in run.result("Replication")["msg"]
    assert lab.mutating_calls() == []


ROLE = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: cso.rds_hardening.rds_backup_replication
      rds_backup_replication_db_instance_identifier: cso-lab-db
"""


def test_role_converges_with_30_percent_of_calls_throttled(lab_has_replication, run_playbook):
    lab = lab_has_replication
    lab.set_faults(0.3, seed=6)
    run = run_playbook(ROLE)
    assert run.returncode == 0, run
    faulted = [c for c in lab.calls() if c["faulted"]]
    assert faulted, "the fault injection did not hit any call"
    backups = replicated_backups(lab)
    assert len(backups) == 1
    alias = lab.boto3("kms", DR_REGION).describe_key(KeyId="alias/cso-rds-backups-dr")["KeyMetadata"]
    assert backups[0]["KmsKeyId"] == alias["Arn"] and alias["KeyManager"] == "CUSTOMER"

    lab.set_faults(0)
    lab.clear_calls()
    again = run_playbook(ROLE)
    assert again.returncode == 0, again
    assert again.changed() == 0, [r["_task"] for r in again.results() if r.get("changed")]
    assert lab.mutating_calls() == []


def test_asymmetric_destination_key_fails_before_any_mutation(lab_has_replication, dr_key, run_playbook):
    lab = lab_has_replication
    assert run_playbook(task(**BASE)).returncode == 0
    kms = lab.boto3("kms", DR_REGION)
    signing = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    lab.clear_calls()
    run = run_playbook(task(**dict(BASE, kms_key_id=signing, allow_replication_restart=True)))
    assert run.returncode != 0
    message = run.result("Replication")["msg"]
    assert "usage is SIGN_VERIFY" in message and "key spec is RSA_2048" in message and "Nothing was changed" in message
    assert lab.mutating_calls() == []
    assert replicated_backups(lab)[0]["KmsKeyId"] == dr_key  # still replicating under the old key


def test_failed_restart_says_the_dr_region_gets_no_backups(lab_has_replication, dr_key, run_playbook):
    lab = lab_has_replication
    assert run_playbook(task(**BASE)).returncode == 0
    lab.clear_calls()
    # every start fails (the new settings and the previous ones): the worst case after the stop
    lab.set_faults(1.0, errors=["KMSKeyNotAccessibleFault"], actions=["StartDBInstanceAutomatedBackupsReplication"])
    try:
        run = run_playbook(task(**dict(BASE, retention_period=14, allow_replication_restart=True)))
    finally:
        lab.set_faults(0)
    assert run.returncode != 0
    result = run.result("Replication")
    assert result["previous_settings_restored"] is False
    assert "receives NO new backups" in result["msg"] and "start-db-instance-automated-backups-replication" in result["msg"]
    calls = lab.mutating_calls()
    assert actions(calls)[0] == "StopDBInstanceAutomatedBackupsReplication"
    starts = [call for call in calls if call["action"] == "StartDBInstanceAutomatedBackupsReplication"]
    # botocore retries the faulted starts (a 5xx from the lab); every attempt failed, none got through
    assert starts and all(call["faulted"] for call in starts)
    assert replicated_backups(lab) == []
