"""cso.rds_hardening.rds_hardened_instance against the lab: create, converge, plan, pending, re-encryption."""

import json

import pytest

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _prerequisites(lab):
    """What the rds_instance role would create: CMK, dedicated SG, monitoring role, parameter group."""
    region = lab.region
    network = lab.state["seed"]["network"]
    kms = lab.boto3("kms")
    key = kms.create_key(Description="cso lab rds")["KeyMetadata"]
    kms.create_alias(AliasName="alias/cso-lab-rds", TargetKeyId=key["KeyId"])
    ec2 = lab.boto3("ec2")
    sg = ec2.create_security_group(GroupName="cso-db", Description="dedicated db", VpcId=network["vpc_id"])["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
                        "UserIdGroupPairs": [{"GroupId": g} for g in network["app_security_group_ids"].values()]}],
    )
    role = lab.boto3("iam").create_role(RoleName="cso-rds-monitoring", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]
    return {"key_arn": key["Arn"], "key_alias": "alias/cso-lab-rds", "sg": sg, "role_arn": role["Arn"], "region": region,
            "vpc_id": network["vpc_id"]}


@pytest.fixture
def prereq(aws_lab):
    return _prerequisites(aws_lab)


def _task(prereq, **overrides):
    args = {
        "db_instance_identifier": DB,
        "kms_key_id": prereq["key_alias"],
        "vpc_security_group_ids": [prereq["sg"]],
        "monitoring_role_arn": prereq["role_arn"],
        "preferred_backup_window": "02:00-03:00",
        "preferred_maintenance_window": "sun:04:00-sun:05:00",
        "apply": "immediately",
        "allow_replacement": True,
        "writes_stopped": True,
    }
    args.update(overrides)
    return args


def _playbook(args, name="Harden"):
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: {name}
      cso.rds_hardening.rds_hardened_instance: {json.dumps(args)}
      register: out
"""


def _ok(run, name="Harden"):
    """The task result, asserting the play succeeded (the module's message when it did not)."""
    results = [r for r in run.results() if r["_task"] == name]
    assert run.returncode == 0, f"{results[-1].get('msg') if results else None} {run}"
    return results[-1]


def _instance(lab, identifier=DB):
    return lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _attributes(plan):
    return {entry["attribute"]: entry for entry in plan}


def test_check_mode_returns_full_plan_and_mutates_nothing(aws_lab, prereq, run_playbook):
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, allow_replacement=False)), check=True, diff=True)
    _ok(run)
    assert aws_lab.mutating_calls() == []
    result = run.result("Harden")
    plan = _attributes(result["plan"])
    assert result["changed"] is True
    assert plan["kms_key_id"]["apply"] == "replacement" and plan["kms_key_id"]["impact"] == "replacement"
    assert plan["vpc_security_group_ids"]["current"] == [aws_lab.state["seed"]["network"]["core_security_group_id"]]
    assert plan["vpc_security_group_ids"]["desired"] == [prereq["sg"]]
    assert plan["enable_iam_database_authentication"] == {
        "what": "enable_iam_database_authentication", "before": False, "after": True,
        "attribute": "enable_iam_database_authentication", "current": False, "desired": True,
        "apply": "immediately", "impact": "none", "effect": None}
    for attribute in ("multi_az", "deletion_protection", "copy_tags_to_snapshot", "enable_performance_insights",
                      "monitoring_interval", "enable_cloudwatch_logs_exports"):
        assert attribute in plan, attribute
    assert result["diff"]["after"]["enable_iam_database_authentication"] is True
    assert _instance(aws_lab)["IAMDatabaseAuthenticationEnabled"] is False


def test_converge_weak_instance_then_second_run_makes_no_call(aws_lab, prereq, run_playbook):
    run = run_playbook(_playbook(_task(prereq)))
    result = _ok(run)
    assert result["changed"] is True
    assert result["reencryption"]["rollback_instance"].startswith(f"{DB}-rollback-")
    instance = _instance(aws_lab)
    assert instance["KmsKeyId"] == prereq["key_arn"]
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [prereq["sg"]]
    assert instance["IAMDatabaseAuthenticationEnabled"] is True
    assert instance["DeletionProtection"] is True and instance["MultiAZ"] is True
    assert instance["MonitoringInterval"] == 60
    assert instance["PerformanceInsightsEnabled"] is True
    assert sorted(instance["EnabledCloudwatchLogsExports"]) == ["audit", "error", "general", "slowquery"]
    assert instance["Endpoint"]["Address"].startswith(f"{DB}.")
    rollback = _instance(aws_lab, result["reencryption"]["rollback_instance"])
    assert rollback["DeletionProtection"] is True

    aws_lab.clear_calls()
    again = run_playbook(_playbook(_task(prereq)))
    _ok(again)
    assert again.result("Harden")["changed"] is False
    assert again.result("Harden")["plan"] == []
    assert aws_lab.mutating_calls() == []


def test_engine_version_below_the_running_one_is_never_a_downgrade(aws_lab, prereq, run_playbook):
    running = _instance(aws_lab)["EngineVersion"]  # the seed's 8.0.42, as after an automatic minor upgrade
    major, minor, patch = running.split(".")
    older = f"{major}.{minor}.{int(patch) - 2}"
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, engine_version=older, allow_replacement=False)), check=True)
    plan = _attributes(_ok(run)["plan"])
    assert "engine_version" not in plan and "kms_key_id" in plan  # the rest of the plan is still there
    assert aws_lab.mutating_calls() == []


def test_lowering_backup_retention_is_refused_with_zero_writes(aws_lab, prereq, run_playbook):
    aws_lab.boto3("rds").modify_db_instance(DBInstanceIdentifier=DB, BackupRetentionPeriod=14, ApplyImmediately=True)
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, backup_retention_period=7, allow_replacement=False, allow_reboot=True)))
    assert run.returncode != 0
    message = run.result("Harden")["msg"]
    assert "from 14 to 7 days" in message and "allow_backup_retention_decrease=true" in message
    assert aws_lab.mutating_calls() == []
    assert _instance(aws_lab)["BackupRetentionPeriod"] == 14


def test_interrupted_reencryption_resumes_from_its_snapshot(aws_lab, prereq, run_playbook):
    rds = aws_lab.boto3("rds")
    # what a run interrupted after the copy leaves behind (the names and tag the module gives them)
    snap, copy = f"{DB}-pre-reencrypt-202612010400", f"{DB}-reencrypted-202612010400"
    rds.create_db_snapshot(DBInstanceIdentifier=DB, DBSnapshotIdentifier=snap,
                           Tags=[{"Key": "cso:reencryption", "Value": "in-progress"}])
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier=snap, TargetDBSnapshotIdentifier=copy, KmsKeyId=prereq["key_arn"],
                         CopyTags=True)
    aws_lab.clear_calls()
    result = _ok(run_playbook(_playbook(_task(prereq))))
    assert result["reencryption"]["resumed"] is True
    assert result["reencryption"]["rollback_instance"] == f"{DB}-rollback-202612010400"
    assert any("Resuming the interrupted re-encryption" in warning for warning in result.get("warnings", []))
    made = [call["action"] for call in aws_lab.mutating_calls()]
    assert "CreateDBSnapshot" not in made and "CopyDBSnapshot" not in made
    assert made.count("RestoreDBInstanceFromDBSnapshot") == 1
    assert _instance(aws_lab)["KmsKeyId"] == prereq["key_arn"]
    tags = rds.describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"][0].get("TagList", [])
    assert {"Key": "cso:reencryption", "Value": "in-progress"} not in tags  # finished: never resumed again


def test_create_hardened_instance(aws_lab, prereq, run_playbook):
    network = aws_lab.state["seed"]["network"]
    args = _task(prereq, db_instance_identifier="cso-new-db", engine_version="8.0.42", db_instance_class="db.t3.2xlarge",
                 allocated_storage=50, max_allocated_storage=1000, db_subnet_group_name=network["db_subnet_group"],
                 master_username="admin", tags={"Environment": "lab"})
    run = run_playbook(_playbook(args))
    _ok(run)
    instance = _instance(aws_lab, "cso-new-db")
    assert instance["KmsKeyId"] == prereq["key_arn"] and instance["StorageEncrypted"] is True
    assert instance["MasterUserSecret"]["KmsKeyId"] == prereq["key_arn"]
    assert instance["PubliclyAccessible"] is False and instance["IAMDatabaseAuthenticationEnabled"] is True
    aws_lab.clear_calls()
    again = run_playbook(_playbook(args))
    _ok(again)
    assert again.result("Harden")["changed"] is False, again.result("Harden")["plan"]
    assert aws_lab.mutating_calls() == []


def test_maintenance_window_changes_are_pending_until_the_window(aws_lab, prereq, run_playbook):
    first = run_playbook(_playbook(_task(prereq, multi_az=False)))
    _ok(first)
    assert _instance(aws_lab)["MultiAZ"] is False
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, apply="maintenance-window", allow_replacement=False)))
    result = _ok(run)
    assert _attributes(result["plan"])["multi_az"]["apply"] == "maintenance-window"
    assert result["pending_modified_values"].get("multi_az") is True
    assert _instance(aws_lab)["MultiAZ"] is False
    assert [c["action"] for c in aws_lab.mutating_calls()] == ["ModifyDBInstance"]

    aws_lab.clear_calls()
    again = run_playbook(_playbook(_task(prereq, apply="maintenance-window", allow_replacement=False)))
    assert again.result("Harden")["changed"] is False
    assert aws_lab.mutating_calls() == []

    aws_lab.reach_maintenance_window(DB)
    instance = _instance(aws_lab)
    assert instance["MultiAZ"] is True
    assert not instance.get("PendingModifiedValues")


def test_converges_with_30_percent_of_calls_failing(aws_lab, prereq, run_playbook):
    aws_lab.set_faults(0.3, seed=7)
    run = run_playbook(_playbook(_task(prereq)))
    aws_lab.set_faults(0)
    _ok(run)
    assert any(call["faulted"] for call in aws_lab.calls())
    instance = _instance(aws_lab)
    assert instance["KmsKeyId"] == prereq["key_arn"]
    assert instance["IAMDatabaseAuthenticationEnabled"] is True
    aws_lab.clear_calls()
    again = run_playbook(_playbook(_task(prereq)))
    assert again.result("Harden")["changed"] is False
    assert aws_lab.mutating_calls() == []


def _disabled_key(lab):
    kms = lab.boto3("kms")
    key = kms.create_key(Description="disabled")["KeyMetadata"]
    kms.disable_key(KeyId=key["KeyId"])
    return key["Arn"]


def _dr_region_key(lab):
    return lab.boto3("kms", lab.state["dr_region"]).create_key(Description="dr")["KeyMetadata"]["Arn"]


def _aws_managed_key(lab):
    """An AWS-managed key the seeded instance does not use (it is under alias/aws/rds)."""
    assert lab.boto3("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["KeyManager"] == "AWS"
    return "alias/aws/ebs"


def test_the_aws_managed_key_the_instance_uses_is_kept_with_a_warning(aws_lab, prereq, run_playbook):
    """Phase 1 without re-encryption passes the instance's current key: under aws/rds it must
    harden the rest, not refuse the key."""
    current = _instance(aws_lab)["KmsKeyId"]
    assert aws_lab.boto3("kms").describe_key(KeyId=current)["KeyMetadata"]["KeyManager"] == "AWS"
    aws_lab.clear_calls()

    run = run_playbook(_playbook(_task(prereq, kms_key_id=current, allow_replacement=False)), check=True)

    result = _ok(run)
    plan = _attributes(result["plan"])
    assert "kms_key_id" not in plan or plan["kms_key_id"]["desired"] == current
    assert any("stays under the AWS-managed KMS key" in warning for warning in result.get("warnings", [])), result
    assert aws_lab.mutating_calls() == []


def _sg_in_other_vpc(lab):
    ec2 = lab.boto3("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    return ec2.create_security_group(GroupName="elsewhere", Description="other vpc", VpcId=vpc)["GroupId"]


def _postgres_parameter_group(lab):
    lab.boto3("rds").create_db_parameter_group(
        DBParameterGroupName="cso-postgres16", DBParameterGroupFamily="postgres16", Description="wrong family")
    return "cso-postgres16"


def _monitoring_role_missing(lab):
    return "arn:aws:iam::123456789012:role/no-such-role"


# (case id, overrides: a dict or a function of the lab returning the dict, text the message must contain)
BAD_INPUTS = [
    ("unknown-engine-version", {"engine_version": "8.0.99"}, "Engine version 8.0.99 of mysql is not offered"),
    ("kms-key-missing", {"kms_key_id": "alias/does-not-exist"}, "does not exist"),
    ("kms-key-disabled", lambda lab: {"kms_key_id": _disabled_key(lab)}, "it must be Enabled"),
    ("kms-key-other-region", lambda lab: {"kms_key_id": _dr_region_key(lab)}, "but it must be in eu-west-2"),
    ("kms-key-aws-managed", lambda lab: {"kms_key_id": _aws_managed_key(lab)}, "AWS-managed"),
    ("security-group-missing", {"vpc_security_group_ids": ["sg-0123456789abcdef0"]}, "not found"),
    ("security-group-other-vpc", lambda lab: {"vpc_security_group_ids": [_sg_in_other_vpc(lab)]}, "are not in the DB subnet group's VPC"),
    ("parameter-group-family", lambda lab: {"db_parameter_group_name": _postgres_parameter_group(lab)}, "needs family mysql8.0"),
    ("parameter-group-missing", {"db_parameter_group_name": "no-such-group"}, "does not exist"),
    ("retention-too-short", {"backup_retention_period": 3}, "backup_retention_period 3 is out of range"),
    ("retention-too-long", {"backup_retention_period": 36}, "backup_retention_period 36 is out of range"),
    ("backup-window-format", {"preferred_backup_window": "2am-3am"}, "must be hh24:mi-hh24:mi"),
    ("maintenance-window-format", {"preferred_maintenance_window": "sunday 04:00"}, "must be ddd:hh24:mi-ddd:hh24:mi"),
    ("windows-overlap", {"preferred_backup_window": "04:00-05:00", "preferred_maintenance_window": "sun:04:30-sun:05:30"},
     "overlaps preferred_backup_window"),
    ("unknown-ca", {"ca_certificate_identifier": "rds-ca-nope", "allow_reboot": True}, "is not offered by RDS"),
    ("replacement-not-allowed", {"allow_replacement": False}, "allow_replacement=true"),
    ("writes-not-stopped", {"writes_stopped": False}, "writes_stopped=true"),
    ("reboot-not-allowed", {"db_instance_class": "db.r5.large"}, "allow_reboot=true"),
    ("storage-shrink", {"allocated_storage": 20}, "cannot shrink"),
    ("monitoring-role-missing", lambda lab: {"monitoring_role_arn": _monitoring_role_missing(lab)}, "does not exist"),
    ("pi-retention", {"performance_insights_retention_period": 30}, "performance_insights_retention_period must be"),
]


@pytest.mark.parametrize("overrides, expected", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_clearly_without_mutating(aws_lab, prereq, run_playbook, overrides, expected):
    overrides = overrides(aws_lab) if callable(overrides) else overrides
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, **overrides)))
    assert run.returncode != 0, run
    assert expected in run.result("Harden")["msg"]
    assert aws_lab.mutating_calls() == []




# a data-plane test (marked `dataplane` through its fixture): it runs before the host lab exists
def test_reencryption_keeps_the_endpoint_name_and_the_data(aws_lab, prereq, run_playbook, dataplane):
    from csolab import seed

    before = dataplane.wait_ready(DB, timeout=90)  # aws_lab has just re-seeded the database
    dataplane.sql(DB, "CREATE DATABASE reencrypt_check")
    dataplane.sql(DB, "CREATE TABLE reencrypt_check.t (id INT PRIMARY KEY, note VARCHAR(40))")
    dataplane.sql(DB, "INSERT INTO reencrypt_check.t VALUES (1, 'written before'), (2, 're-encryption')")
    # keep the seeded password so this test is about the storage key only
    args = _task(prereq, manage_master_user_password=False, master_user_password=seed.LAB_DB_MASTER_PASSWORD)

    result = _ok(run_playbook(_playbook(args)))

    instance = _instance(aws_lab)
    assert instance["KmsKeyId"] == prereq["key_arn"]
    assert instance["Endpoint"]["Address"] == before["name"]
    after = dataplane.wait_ready(DB, timeout=90, predicate=lambda entry: entry["uid"] != before["uid"])
    assert after["name"] == before["name"]
    rows = dataplane.sql(DB, "SELECT id, note FROM reencrypt_check.t ORDER BY id")
    assert [tuple(row) for row in rows] == [(1, "written before"), (2, "re-encryption")]
    assert _instance(aws_lab, result["reencryption"]["rollback_instance"])["DeletionProtection"] is True


ROLE_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Role
      ansible.builtin.include_role:
        name: cso.rds_hardening.rds_instance
"""


def test_role_hardens_the_seeded_database_and_is_idempotent(aws_lab, run_playbook):
    network = aws_lab.state["seed"]["network"]
    role_vars = {
        "rds_instance_db_instance_identifier": DB,
        "rds_instance_vpc_id": network["vpc_id"],
        "rds_instance_db_subnet_group_name": network["db_subnet_group"],
        "rds_instance_app_security_group_ids": sorted(network["app_security_group_ids"].values()),
        "rds_instance_apply": "immediately",
        "rds_instance_allow_reboot": True,
        "rds_instance_allow_replacement": True,
        "rds_instance_writes_stopped": True,
        "rds_instance_monitoring_role_policies": [],  # the lab's moto has no AWS-managed IAM policies
    }
    first = run_playbook(ROLE_PLAYBOOK, extra_vars=role_vars)
    assert first.returncode == 0 and first.changed() >= 5, first

    instance = _instance(aws_lab)
    key = aws_lab.boto3("kms").describe_key(KeyId=f"alias/{DB}-rds")["KeyMetadata"]
    assert instance["KmsKeyId"] == key["Arn"]
    assert aws_lab.boto3("kms").get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert instance["DBParameterGroups"][0] == {"DBParameterGroupName": f"{DB}-mysql80", "ParameterApplyStatus": "in-sync"}
    group_id = instance["VpcSecurityGroups"][0]["VpcSecurityGroupId"]
    group = aws_lab.boto3("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert [(rule["FromPort"], rule["ToPort"], rule["IpRanges"]) for rule in group["IpPermissions"]] == [(3306, 3306, [])]
    assert sorted(pair["GroupId"] for pair in group["IpPermissions"][0]["UserIdGroupPairs"]) == role_vars[
        "rds_instance_app_security_group_ids"]
    parameters = aws_lab.boto3("rds").describe_db_parameters(DBParameterGroupName=f"{DB}-mysql80")
    assert {p["ParameterName"]: p.get("ParameterValue") for p in parameters["Parameters"]}["require_secure_transport"] == "0"

    aws_lab.clear_calls()
    second = run_playbook(ROLE_PLAYBOOK, extra_vars=role_vars)
    assert second.returncode == 0 and second.changed() == 0, second
    assert aws_lab.mutating_calls() == []


def test_module_defaults_of_the_action_group_apply(aws_lab, prereq, run_playbook):
    """group/cso.rds_hardening.rds (and amazon.aws.aws, which it extends) sets region/endpoint for the module."""
    playbook = f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/cso.rds_hardening.rds:
      region: {aws_lab.state["dr_region"]}
  tasks:
    - name: Harden
      cso.rds_hardening.rds_hardened_instance: {json.dumps(_task(prereq))}
"""
    run = run_playbook(playbook, check=True)
    # the DR region has no cso-lab-db: the defaults reached the module
    assert run.returncode != 0 and "does not exist; to create it also set" in run.result("Harden")["msg"]


def _restart_seq(lab, identifier=DB):
    """How many restarts the lab recorded for the instance, and the CA its server presents."""
    entry = next(i for i in lab.api("dataplane-instances")["instances"] if i["id"] == identifier)
    return entry["restart"]["seq"], entry["ca_certificate_identifier"]


@pytest.mark.parametrize("restart", [False, True], ids=["without-restart", "with-restart"])
def test_ca_rotation_with_and_without_restart(aws_lab, prereq, run_playbook, restart):
    """CertificateRotationRestart: false rotates with no restart and no allow_reboot; true restarts once."""
    current_key = _instance(aws_lab)["KmsKeyId"]
    base = _task(prereq, kms_key_id=current_key, allow_replacement=False, allow_reboot=True)
    _ok(run_playbook(_playbook(base)))  # everything but the CA, first
    old_ca = _instance(aws_lab)["CACertificateIdentifier"]
    new_ca = "rds-ca-rsa4096-g1" if old_ca != "rds-ca-rsa4096-g1" else "rds-ca-ecc384-g1"
    seq_before, served_before = _restart_seq(aws_lab)
    assert served_before == old_ca
    aws_lab.clear_calls()

    rotation = dict(base, ca_certificate_identifier=new_ca, ca_certificate_rotation_restart=restart,
                    allow_reboot=restart)  # without restart, allow_reboot is not needed
    result = _ok(run_playbook(_playbook(rotation)))

    [entry] = result["plan"]
    assert entry["what"] == "ca_certificate_identifier" and entry["after"] == new_ca
    assert entry["impact"] == ("restart" if restart else "none")
    assert [call["action"] for call in aws_lab.mutating_calls()] == ["ModifyDBInstance"]
    seq_after, served_after = _restart_seq(aws_lab)
    assert seq_after == seq_before + (1 if restart else 0)
    assert served_after == new_ca  # the engine version supports rotation without restart in the lab's catalogue
    assert _instance(aws_lab)["CACertificateIdentifier"] == new_ca
    assert _instance(aws_lab)["DBInstanceStatus"] == "available"


def test_ca_rotation_with_restart_is_refused_without_allow_reboot(aws_lab, prereq, run_playbook):
    current_key = _instance(aws_lab)["KmsKeyId"]
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, kms_key_id=current_key, allow_replacement=False,
                                       ca_certificate_identifier="rds-ca-ecc384-g1")))
    assert run.returncode != 0 and "allow_reboot=true" in run.result("Harden")["msg"]
    assert aws_lab.mutating_calls() == []
