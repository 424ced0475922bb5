"""The disaster-recovery replica against the lab (AWS API only): rds_hardened_replica makes a cross-Region replica
of the seeded cso-lab-db (eu-west-2) in the DR Region with that Region's key, subnet group, security group and
TLS parameter group; rds_replica_promotion promotes it. Check mode, second runs and refusals make no mutating call."""

import json

import pytest

pytestmark = pytest.mark.lab

SOURCE = "cso-lab-db"
REPLICA = "cso-lab-db-dr"
TLS_GROUP = "cso-mysql80-tls-dr"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture
def dr(aws_lab):
    """What the DR Region needs before the replica: a customer-managed key, the dedicated SG, a TLS parameter group
    (the subnet group is seeded there), and the monitoring role (IAM is global)."""
    region = aws_lab.state["dr_region"]
    network = aws_lab.state["seed"]["dr_network"]
    kms = aws_lab.boto3("kms", region)
    key = kms.create_key(Description="cso lab rds dr")["KeyMetadata"]
    kms.create_alias(AliasName="alias/cso-lab-rds-dr", TargetKeyId=key["KeyId"])
    sg = aws_lab.boto3("ec2", region).create_security_group(GroupName="cso-db-dr", Description="dedicated db (DR)",
                                                            VpcId=network["vpc_id"])["GroupId"]
    rds = aws_lab.boto3("rds", region)
    rds.create_db_parameter_group(DBParameterGroupName=TLS_GROUP, DBParameterGroupFamily="mysql8.0", Description="TLS")
    rds.modify_db_parameter_group(DBParameterGroupName=TLS_GROUP, Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    role = aws_lab.boto3("iam").create_role(RoleName="cso-rds-monitoring",
                                            AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    source = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]
    return {"region": region, "key_arn": key["Arn"], "sg": sg, "role_arn": role, "rds": rds,
            "subnet_group": network["db_subnet_group"], "vpc_id": network["vpc_id"], "source": source,
            "source_region": aws_lab.region}


def _replica_task(dr, **overrides):
    args = {
        "region": dr["region"],
        "db_instance_identifier": REPLICA,
        "source_db_instance_identifier": dr["source"]["DBInstanceArn"],
        "kms_key_id": "alias/cso-lab-rds-dr",
        "db_subnet_group_name": dr["subnet_group"],
        "vpc_security_group_ids": [dr["sg"]],
        "db_parameter_group_name": TLS_GROUP,
        "monitoring_role_arn": dr["role_arn"],
        "apply": "immediately",
        "tags": {"Environment": "lab", "Role": "disaster-recovery"},
    }
    args.update(overrides)
    return {name: value for name, value in args.items() if value is not None}


def _playbook(module, args):
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Task
      cso.rds_hardening.{module}: {json.dumps(args)}
"""


def _ok(run):
    result = run.result("Task")
    assert run.returncode == 0, f"{result.get('msg') if result else None} {run}"
    return result


def _refused(run):
    assert run.returncode != 0, run
    return run.result("Task")["msg"]


def _instance(rds, identifier=REPLICA):
    found = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [identifier]}])["DBInstances"]
    return found[0] if found else None


def _made(lab):
    return [(call["region"], call["action"]) for call in lab.mutating_calls()]


def _create_replica(aws_lab, dr, run_playbook):
    return _ok(run_playbook(_playbook("rds_hardened_replica", _replica_task(dr))))


def test_cross_region_replica_check_mode_create_and_second_run(aws_lab, dr, run_playbook):
    source_arn = dr["source"]["DBInstanceArn"]
    aws_lab.clear_calls()
    planned = _ok(run_playbook(_playbook("rds_hardened_replica", _replica_task(dr)), check=True, diff=True))
    assert _made(aws_lab) == [] and _instance(dr["rds"]) is None
    create = planned["plan"][0]
    assert (create["attribute"], create["impact"], create["before"], create["after"]) == (
        "read_replica_source_db_instance_identifier", "none", None, source_arn)
    assert create["what"].startswith(f"create cross-Region read replica {REPLICA} in {dr['region']} of {source_arn}")
    assert f"copies it to {dr['region']} under {dr['key_arn']}" in create["what"]
    plan = {entry["attribute"]: entry["after"] for entry in planned["plan"][1:]}
    assert plan["kms_key_id"] == dr["key_arn"] and plan["kms_key_id"] != dr["source"]["KmsKeyId"]
    assert plan["db_parameter_group_name"] == TLS_GROUP and plan["vpc_security_group_ids"] == [dr["sg"]]
    assert planned["diff"]["after"]["read_replica_source_db_instance_identifier"] == source_arn

    created = _create_replica(aws_lab, dr, run_playbook)
    assert created["changed"] is True
    made = _made(aws_lab)
    assert made[0] == (dr["region"], "CreateDBInstanceReadReplica"), made
    assert {region for region, _ in made} == {dr["region"]}  # nothing is written in the source's Region
    replica = _instance(dr["rds"])
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == source_arn
    assert (replica["StorageEncrypted"], replica["KmsKeyId"]) == (True, dr["key_arn"])
    assert replica["DBSubnetGroup"]["VpcId"] == dr["vpc_id"]
    assert [group["VpcSecurityGroupId"] for group in replica["VpcSecurityGroups"]] == [dr["sg"]]
    assert replica["DBParameterGroups"][0]["DBParameterGroupName"] == TLS_GROUP
    assert (replica["PerformanceInsightsEnabled"], replica["PerformanceInsightsKMSKeyId"]) == (True, dr["key_arn"])
    assert (replica["MonitoringInterval"], replica["DeletionProtection"], replica["PubliclyAccessible"]) == (60, True, False)
    assert {t["Key"]: t["Value"] for t in replica["TagList"]} == {"Environment": "lab", "Role": "disaster-recovery"}
    source = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]
    assert source["ReadReplicaDBInstanceIdentifiers"] == [replica["DBInstanceArn"]]

    aws_lab.clear_calls()
    again = _ok(run_playbook(_playbook("rds_hardened_replica", _replica_task(dr))))
    assert again["changed"] is False and again["plan"] == []
    assert _made(aws_lab) == []
    # the same source by name with source_region is the same replica
    by_name = _replica_task(dr, source_db_instance_identifier=SOURCE, source_region=dr["source_region"])
    assert _ok(run_playbook(_playbook("rds_hardened_replica", by_name)))["changed"] is False
    assert _made(aws_lab) == []


def _cross_region_refusals():
    def no_key(lab, dr):
        return {"kms_key_id": None}, "kms_key_id is required for a cross-Region replica"

    def key_of_the_source_region(lab, dr):
        key = lab.boto3("kms").create_key()["KeyMetadata"]["Arn"]
        return {"kms_key_id": key}, f"is a KMS key of region {dr['source_region']}, but the replica is created in"

    def aws_managed_key(lab, dr):
        return {"kms_key_id": "alias/aws/rds"}, "for the cross-Region replica's storage encryption is AWS-managed"

    def no_subnet_group(lab, dr):
        return {"db_subnet_group_name": None}, "db_subnet_group_name is required for a cross-Region replica"

    def source_region_contradicts_the_arn(lab, dr):
        return {"source_region": dr["region"]}, f"is an ARN of {dr['source_region']}"

    def group_without_tls(lab, dr):
        dr["rds"].create_db_parameter_group(DBParameterGroupName="plain-80", DBParameterGroupFamily="mysql8.0",
                                            Description="no TLS")
        return {"db_parameter_group_name": "plain-80"}, "does not require TLS"

    def group_of_the_source_region_only(lab, dr):
        lab.boto3("rds").create_db_parameter_group(DBParameterGroupName="primary-only", Description="TLS",
                                                   DBParameterGroupFamily="mysql8.0")
        return {"db_parameter_group_name": "primary-only"}, "DB parameter group primary-only does not exist"

    def security_group_of_the_source_region(lab, dr):
        core = lab.state["seed"]["network"]["core_security_group_id"]
        return {"vpc_security_group_ids": [core]}, "not found"

    def missing_source(lab, dr):
        return ({"source_db_instance_identifier": "no-such-db", "source_region": dr["source_region"]},
                f"Source instance no-such-db does not exist in {dr['source_region']}")

    return [
        ("no-key", no_key), ("key-of-the-source-region", key_of_the_source_region), ("aws-managed-key", aws_managed_key),
        ("no-subnet-group", no_subnet_group), ("source-region-contradicts-the-arn", source_region_contradicts_the_arn),
        ("group-without-tls", group_without_tls), ("group-of-the-source-region", group_of_the_source_region_only),
        ("security-group-of-the-source-region", security_group_of_the_source_region), ("missing-source", missing_source),
    ]


def test_cross_region_refused_before_any_write(aws_lab, dr, run_playbook):
    """Each case is its own task of one playbook (one ansible-playbook start instead of one per case)."""
    cases = {name: setup(aws_lab, dr) for name, setup in _cross_region_refusals()}
    tasks = "".join(f"""
    - name: {name}
      cso.rds_hardening.rds_hardened_replica: {json.dumps(_replica_task(dr, **overrides))}
      ignore_errors: true
""" for name, (overrides, _) in cases.items())
    aws_lab.clear_calls()
    run = run_playbook(f"""
- hosts: localhost
  gather_facts: false
  tasks:{tasks}""")
    assert run.returncode == 0, run  # every failure ignored, none unexpected (an error of the playbook itself)
    for name, (_, message) in cases.items():
        result = run.result(name)
        assert result.get("failed") is True and message in result["msg"], (name, result.get("msg"))
    assert _made(aws_lab) == []
    assert _instance(dr["rds"]) is None


def test_promotion_of_the_dr_replica(aws_lab, dr, run_playbook):
    _create_replica(aws_lab, dr, run_playbook)
    source_arn = dr["source"]["DBInstanceArn"]
    promote = {"region": dr["region"], "db_instance_identifier": REPLICA, "backup_retention_period": 7,
               "preferred_backup_window": "02:00-02:30"}

    # the source is refused while it has the replica: name the replica instead
    aws_lab.clear_calls()
    msg = _refused(run_playbook(_playbook("rds_replica_promotion", {"db_instance_identifier": SOURCE})))
    assert f"is not a read replica: it is the source of {_instance(dr['rds'])['DBInstanceArn']}" in msg
    msg = _refused(run_playbook(_playbook("rds_replica_promotion", dict(promote, db_instance_identifier="no-such-db"))))
    assert f"DB instance no-such-db does not exist in {dr['region']}" in msg
    assert _made(aws_lab) == []

    planned = _ok(run_playbook(_playbook("rds_replica_promotion", promote), check=True, diff=True))
    assert (planned["changed"], planned["promotion"], planned["promoted_from"]) == (True, "promoted", source_arn)
    steps = {entry["attribute"]: (entry["impact"], entry["before"], entry["after"]) for entry in planned["plan"]}
    assert steps["read_replica_source_db_instance_identifier"] == ("restart", source_arn, None)
    assert steps["backup_retention_period"] == ("none", 0, 7)
    assert steps["preferred_backup_window"][2] == "02:00-02:30"
    assert steps["tags"][2]["cso-rds-hardening:promoted-from"] == source_arn
    assert planned["diff"]["before"]["read_replica_source_db_instance_identifier"] == source_arn
    assert _made(aws_lab) == [] and _instance(dr["rds"])["ReadReplicaSourceDBInstanceIdentifier"] == source_arn

    promoted = _ok(run_playbook(_playbook("rds_replica_promotion", promote)))
    assert (promoted["changed"], promoted["promotion"], promoted["promoted_from"]) == (True, "promoted", source_arn)
    assert _made(aws_lab) == [(dr["region"], "PromoteReadReplica"), (dr["region"], "AddTagsToResource")]
    standalone = _instance(dr["rds"])
    assert "ReadReplicaSourceDBInstanceIdentifier" not in standalone and standalone["DBInstanceStatus"] == "available"
    assert (standalone["BackupRetentionPeriod"], standalone["PreferredBackupWindow"]) == (7, "02:00-02:30")
    assert promoted["instance"]["db_instance_status"] == "available"
    assert aws_lab.boto3("rds").describe_db_instances(
        DBInstanceIdentifier=SOURCE)["DBInstances"][0]["ReadReplicaDBInstanceIdentifiers"] == []

    aws_lab.clear_calls()
    again = _ok(run_playbook(_playbook("rds_replica_promotion", promote)))
    assert (again["changed"], again["plan"], again["promotion"], again["promoted_from"]) == (
        False, [], "already-promoted", source_arn)
    # the former source never was a replica: left alone, and the result says so
    never = _ok(run_playbook(_playbook("rds_replica_promotion", {"db_instance_identifier": SOURCE})))
    assert (never["changed"], never["promotion"], never["promoted_from"]) == (False, "not-a-replica", None)
    assert _made(aws_lab) == []


def test_the_dr_replica_is_made_and_promoted_with_30_percent_of_calls_failing(aws_lab, dr, run_playbook):
    aws_lab.set_faults(0.3, seed=11)
    created = run_playbook(_playbook("rds_hardened_replica", _replica_task(dr)))
    promoted = run_playbook(_playbook("rds_replica_promotion", {"region": dr["region"], "db_instance_identifier": REPLICA,
                                                                "backup_retention_period": 7}))
    aws_lab.set_faults(0)
    _ok(created)
    assert _ok(promoted)["promotion"] == "promoted"
    assert any(call["faulted"] for call in aws_lab.calls())
    succeeded = [call["action"] for call in aws_lab.mutating_calls() if call["status"] == 200]
    assert succeeded.count("CreateDBInstanceReadReplica") == 1 and succeeded.count("PromoteReadReplica") == 1
    standalone = _instance(dr["rds"])
    assert "ReadReplicaSourceDBInstanceIdentifier" not in standalone and standalone["BackupRetentionPeriod"] == 7
    aws_lab.clear_calls()
    again = _ok(run_playbook(_playbook("rds_replica_promotion", {"region": dr["region"], "db_instance_identifier": REPLICA})))
    assert (again["changed"], again["promotion"]) == (False, "already-promoted")
    assert _made(aws_lab) == []
