"""cso.rds_hardening.rds_hardened_replica against the lab (AWS API only): create, re-run, drift, refusals, faults."""

import json

import pytest

pytestmark = pytest.mark.lab

SOURCE = "cso-hard-db"
REPLICA = "cso-hard-db-replica"
TLS_GROUP = "cso-mysql80-tls"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _source(rds, prereq, identifier=SOURCE, **overrides):
    args = dict(DBInstanceIdentifier=identifier, Engine="mysql", EngineVersion="8.0.42", DBInstanceClass="db.t3.large",
                AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="lab-password-1", StorageEncrypted=True,
                KmsKeyId=prereq["key_arn"], BackupRetentionPeriod=7, DBSubnetGroupName=prereq["subnet_group"],
                VpcSecurityGroupIds=[prereq["sg"]], CACertificateIdentifier="rds-ca-rsa2048-g1")
    args.update(overrides)
    return rds.create_db_instance(**{name: value for name, value in args.items() if value is not None})["DBInstance"]


@pytest.fixture
def prereq(aws_lab):
    """A phase-1 state: a source under a CMK with backups, the dedicated SG, a TLS parameter group, the role."""
    network = aws_lab.state["seed"]["network"]
    kms = aws_lab.boto3("kms")
    key = kms.create_key(Description="cso lab rds")["KeyMetadata"]
    kms.create_alias(AliasName="alias/cso-lab-rds", TargetKeyId=key["KeyId"])
    sg = aws_lab.boto3("ec2").create_security_group(GroupName="cso-db", Description="dedicated db",
                                                    VpcId=network["vpc_id"])["GroupId"]
    role = aws_lab.boto3("iam").create_role(RoleName="cso-rds-monitoring",
                                            AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    rds = aws_lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName=TLS_GROUP, DBParameterGroupFamily="mysql8.0", Description="TLS")
    rds.modify_db_parameter_group(DBParameterGroupName=TLS_GROUP, Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    values = {"key_arn": key["Arn"], "sg": sg, "role_arn": role, "subnet_group": network["db_subnet_group"],
              "core_sg": network["core_security_group_id"]}
    _source(rds, values)
    return values


def _task(prereq, **overrides):
    args = {
        "db_instance_identifier": REPLICA,
        "source_db_instance_identifier": SOURCE,
        "vpc_security_group_ids": [prereq["sg"]],
        "db_parameter_group_name": TLS_GROUP,
        "monitoring_role_arn": prereq["role_arn"],
        "apply": "immediately",
        "tags": {"Environment": "lab", "Role": "read-replica"},
    }
    args.update(overrides)
    return args


def _playbook(args):
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Replica
      cso.rds_hardening.rds_hardened_replica: {json.dumps(args)}
"""


def _ok(run):
    result = run.result("Replica")
    assert run.returncode == 0, f"{result.get('msg') if result else None} {run}"
    return result


def _instance(lab, identifier=REPLICA):
    found = lab.boto3("rds").describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [identifier]}])
    return found["DBInstances"][0] if found["DBInstances"] else None


def _attributes(plan):
    return {entry["attribute"]: entry for entry in plan}


def test_check_mode_plans_the_creation_and_writes_nothing(aws_lab, prereq, run_playbook):
    aws_lab.clear_calls()
    result = _ok(run_playbook(_playbook(_task(prereq)), check=True, diff=True))
    assert aws_lab.mutating_calls() == []
    assert _instance(aws_lab) is None
    create = result["plan"][0]
    assert create["attribute"] == "read_replica_source_db_instance_identifier" and create["after"] == SOURCE
    assert create["impact"] == "none"
    assert "takes a DB snapshot of cso-hard-db" in create["what"] and "single-AZ" in create["what"]
    assert "about one second" in create["what"]
    plan = _attributes(result["plan"][1:])
    assert plan["kms_key_id"]["after"] == prereq["key_arn"]  # the source's key: nothing else is possible
    assert plan["vpc_security_group_ids"]["after"] == [prereq["sg"]]
    assert plan["db_parameter_group_name"]["after"] == TLS_GROUP
    assert plan["ca_certificate_identifier"]["after"] == "rds-ca-rsa2048-g1"  # the source's CA
    assert result["diff"]["after"]["read_replica_source_db_instance_identifier"] == SOURCE


def test_multi_az_source_has_no_io_suspension_in_the_plan(aws_lab, prereq, run_playbook):
    aws_lab.boto3("rds").modify_db_instance(DBInstanceIdentifier=SOURCE, MultiAZ=True, ApplyImmediately=True)
    result = _ok(run_playbook(_playbook(_task(prereq)), check=True))
    assert "Multi-AZ" in result["plan"][0]["what"] and "not suspended" in result["plan"][0]["what"]


def test_create_hardened_replica_then_second_run_makes_no_call(aws_lab, prereq, run_playbook):
    aws_lab.clear_calls()
    result = _ok(run_playbook(_playbook(_task(prereq))))
    assert result["changed"] is True
    made = [call["action"] for call in aws_lab.mutating_calls()]
    assert made[0] == "CreateDBInstanceReadReplica", made
    replica = _instance(aws_lab)
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == SOURCE
    assert (replica["StorageEncrypted"], replica["KmsKeyId"]) == (True, prereq["key_arn"])
    assert [g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]] == [prereq["sg"]]
    assert replica["DBParameterGroups"][0]["DBParameterGroupName"] == TLS_GROUP
    assert (replica["PerformanceInsightsEnabled"], replica["PerformanceInsightsKMSKeyId"]) == (True, prereq["key_arn"])
    assert (replica["MonitoringInterval"], replica["MonitoringRoleArn"]) == (60, prereq["role_arn"])
    assert replica["DeletionProtection"] is True and replica["PubliclyAccessible"] is False
    assert sorted(replica["EnabledCloudwatchLogsExports"]) == ["audit", "error", "general", "slowquery"]
    assert replica["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    assert {t["Key"]: t["Value"] for t in replica["TagList"]} == {"Environment": "lab", "Role": "read-replica"}
    assert _instance(aws_lab, SOURCE)["EnabledCloudwatchLogsExports"] in ([], None)  # the source is untouched

    aws_lab.clear_calls()
    again = _ok(run_playbook(_playbook(_task(prereq))))
    assert again["changed"] is False and again["plan"] == []
    assert aws_lab.mutating_calls() == []


def test_drift_is_planned_and_converged_with_one_modify(aws_lab, prereq, run_playbook):
    _ok(run_playbook(_playbook(_task(prereq))))
    rds = aws_lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=REPLICA, DeletionProtection=False, MonitoringInterval=0,
                           VpcSecurityGroupIds=[prereq["core_sg"]], ApplyImmediately=True)
    aws_lab.clear_calls()
    checked = _ok(run_playbook(_playbook(_task(prereq)), check=True, diff=True))
    plan = _attributes(checked["plan"])
    assert set(plan) == {"deletion_protection", "monitoring_interval", "monitoring_role_arn", "vpc_security_group_ids"} \
        or set(plan) == {"deletion_protection", "monitoring_interval", "vpc_security_group_ids"}, plan
    assert (plan["deletion_protection"]["before"], plan["deletion_protection"]["after"]) == (False, True)
    assert plan["vpc_security_group_ids"]["before"] == [prereq["core_sg"]]
    assert all(entry["impact"] == "none" for entry in checked["plan"])
    assert aws_lab.mutating_calls() == []

    result = _ok(run_playbook(_playbook(_task(prereq))))
    assert result["changed"] is True
    assert [c["action"] for c in aws_lab.mutating_calls()] == ["ModifyDBInstance"]
    replica = _instance(aws_lab)
    assert replica["DeletionProtection"] is True and replica["MonitoringInterval"] == 60
    assert [g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]] == [prereq["sg"]]
    aws_lab.clear_calls()
    assert _ok(run_playbook(_playbook(_task(prereq))))["changed"] is False
    assert aws_lab.mutating_calls() == []


def test_a_restarting_change_is_refused_without_allow_reboot(aws_lab, prereq, run_playbook):
    _ok(run_playbook(_playbook(_task(prereq))))
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, db_instance_class="db.t3.xlarge")))
    assert run.returncode != 0
    assert "db_instance_class restarts the database" in run.result("Replica")["msg"]
    assert aws_lab.mutating_calls() == []
    assert _instance(aws_lab)["DBInstanceClass"] == "db.t3.large"


def _refusal_setups():
    def unencrypted(lab, prereq):
        _source(lab.boto3("rds"), prereq, identifier="plain-db", StorageEncrypted=False, KmsKeyId=None)
        return {"source_db_instance_identifier": "plain-db"}

    def no_backups(lab, prereq):
        _source(lab.boto3("rds"), prereq, identifier="nobackup-db", BackupRetentionPeriod=0)
        return {"source_db_instance_identifier": "nobackup-db"}

    def other_engine(lab, prereq):
        return {"engine": "mariadb"}

    def key_in_other_region(lab, prereq):
        return {"kms_key_id": lab.boto3("kms", lab.state["dr_region"]).create_key()["KeyMetadata"]["Arn"]}

    def another_key(lab, prereq):
        return {"kms_key_id": lab.boto3("kms").create_key(Description="other")["KeyMetadata"]["Arn"]}

    def aws_managed_source_key(lab, prereq):
        return {"source_db_instance_identifier": lab.state["seed"]["database"]["db_instance_identifier"],
                "vpc_security_group_ids": [prereq["core_sg"]]}

    def existing_standalone(lab, prereq):
        _source(lab.boto3("rds"), prereq, identifier="standalone-db")
        return {"db_instance_identifier": "standalone-db"}

    def no_tls_group(lab, prereq):
        lab.boto3("rds").create_db_parameter_group(DBParameterGroupName="plain-80", DBParameterGroupFamily="mysql8.0",
                                                   Description="no TLS")
        return {"db_parameter_group_name": "plain-80"}

    return [
        ("unencrypted", unencrypted, "is not encrypted"),
        ("no-backups", no_backups, "has no automated backups"),
        ("other-engine", other_engine, "runs mysql, not mariadb"),
        ("key-other-region", key_in_other_region, "is a KMS key of region eu-west-1"),
        ("another-key", another_key, "is not the key of source"),
        ("aws-managed-source-key", aws_managed_source_key, "Re-encrypt the source under a customer-managed key"),
        ("existing-standalone", existing_standalone, "not a read replica (a standalone instance)"),
        ("no-tls", no_tls_group, "does not require TLS"),
    ]


@pytest.mark.parametrize("name, setup, message", _refusal_setups(), ids=[case[0] for case in _refusal_setups()])
def test_refused_before_any_write(aws_lab, prereq, run_playbook, name, setup, message):
    overrides = setup(aws_lab, prereq)
    before = {i["DBInstanceIdentifier"] for i in aws_lab.boto3("rds").describe_db_instances()["DBInstances"]}
    aws_lab.clear_calls()
    run = run_playbook(_playbook(_task(prereq, **overrides)))
    assert run.returncode != 0
    assert message in run.result("Replica")["msg"], run.result("Replica")["msg"]
    assert aws_lab.mutating_calls() == []
    assert {i["DBInstanceIdentifier"] for i in aws_lab.boto3("rds").describe_db_instances()["DBInstances"]} == before


def test_converges_with_30_percent_of_calls_failing(aws_lab, prereq, run_playbook):
    aws_lab.set_faults(0.3, seed=7)
    run = run_playbook(_playbook(_task(prereq)))
    aws_lab.set_faults(0)
    _ok(run)
    assert any(call["faulted"] for call in aws_lab.calls())
    replica = _instance(aws_lab)
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == SOURCE
    assert replica["DeletionProtection"] is True and replica["PerformanceInsightsEnabled"] is True
    assert [c["action"] for c in aws_lab.mutating_calls() if c["status"] == 200].count("CreateDBInstanceReadReplica") == 1
    aws_lab.clear_calls()
    again = _ok(run_playbook(_playbook(_task(prereq))))
    assert again["changed"] is False
    assert aws_lab.mutating_calls() == []
