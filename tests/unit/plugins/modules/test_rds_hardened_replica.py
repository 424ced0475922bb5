"""rds_hardened_replica's whole flow against stubbed clients: the exact reads, the exact create and modify calls,
no write in check mode or on a second run, every refusal before any write."""

import datetime

import pytest

from ansible_collections.cso.rds_hardening.plugins.modules import rds_hardened_replica as module_under_test
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

REGION = "eu-west-2"
ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111"
OTHER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/2222"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/rds-monitoring"
VPC = "vpc-1"
CA = "rds-ca-rsa2048-g1"
GROUP = "cso-mysql80-tls"
FAR_FUTURE = datetime.datetime(2060, 1, 1, tzinfo=datetime.timezone.utc)
LOGS = ["audit", "error", "general", "slowquery"]
TAGS = {"Environment": "prod"}


def make_module(params, check_mode=False):
    return StubbedModule(module_under_test.ARGUMENT_SPEC, params, check_mode, region=REGION)


def source(**overrides):
    instance = {
        "DBInstanceIdentifier": "db", "DBInstanceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:db", "Engine": "mysql",
        "EngineVersion": "8.0.42", "DBInstanceClass": "db.t3.large", "DBInstanceStatus": "available",
        "StorageEncrypted": True, "KmsKeyId": KEY_ARN, "MultiAZ": False, "BackupRetentionPeriod": 7,
        "IAMDatabaseAuthenticationEnabled": True, "CACertificateIdentifier": CA,
        "DBSubnetGroup": {"DBSubnetGroupName": "private", "VpcId": VPC},
    }
    instance.update(overrides)
    return {name: value for name, value in instance.items() if value is not None}


def replica(**overrides):
    instance = source(
        DBInstanceIdentifier="db-replica", DBInstanceArn=f"arn:aws:rds:{REGION}:{ACCOUNT}:db:db-replica",
        ReadReplicaSourceDBInstanceIdentifier="db", BackupRetentionPeriod=0, PubliclyAccessible=False,
        DeletionProtection=True, CopyTagsToSnapshot=True, AutoMinorVersionUpgrade=True, EnabledCloudwatchLogsExports=LOGS,
        PerformanceInsightsEnabled=True, PerformanceInsightsKMSKeyId=KEY_ARN, PerformanceInsightsRetentionPeriod=7,
        MonitoringInterval=60, MonitoringRoleArn=ROLE, VpcSecurityGroups=[{"VpcSecurityGroupId": "sg-db", "Status": "active"}],
        DBParameterGroups=[{"DBParameterGroupName": GROUP, "ParameterApplyStatus": "in-sync"}],
        CertificateDetails={"CAIdentifier": CA, "ValidTill": FAR_FUTURE}, TagList=[{"Key": "Environment", "Value": "prod"}])
    instance.update(overrides)
    return {name: value for name, value in instance.items() if value is not None}


def base_params(**overrides):
    params = {"db_instance_identifier": "db-replica", "source_db_instance_identifier": "db",
              "vpc_security_group_ids": ["sg-db"], "db_parameter_group_name": GROUP, "monitoring_role_arn": ROLE,
              "apply": "immediately", "tags": TAGS}
    params.update(overrides)
    return params


def expect_describe(module, identifier, instance):
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [instance] if instance else []},
                                    {"DBInstanceIdentifier": identifier})


def expect_key(module, key_id, arn=KEY_ARN, manager="CUSTOMER", state="Enabled"):
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": arn.rsplit("/", 1)[-1], "Arn": arn, "KeyState": state, "KeyManager": manager}}, {"KeyId": key_id})


def expect_group(module, tls="1"):
    rds = module.stub("rds")
    rds.add_response("describe_db_engine_versions", {"DBEngineVersions": [
        {"Engine": "mysql", "EngineVersion": "8.0.42", "DBParameterGroupFamily": "mysql8.0"}]},
        {"Engine": "mysql", "EngineVersion": "8.0.42"})
    rds.add_response("describe_db_parameter_groups", {"DBParameterGroups": [
        {"DBParameterGroupName": GROUP, "DBParameterGroupFamily": "mysql8.0"}]}, {"DBParameterGroupName": GROUP})
    parameters = [{"ParameterName": "require_secure_transport", "ParameterValue": tls, "Source": "user"}] if tls else []
    rds.add_response("describe_db_parameters", {"Parameters": parameters},
                     {"DBParameterGroupName": GROUP, "Source": "user"})


def expect_rest_of_checks(module):
    module.stub("ec2").add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-db", "VpcId": VPC, "GroupName": "db", "Description": "db", "OwnerId": ACCOUNT}]},
        {"GroupIds": ["sg-db"]})
    module.stub("rds").add_response("describe_certificates", {"Certificates": [{"CertificateIdentifier": CA}]},
                                    {"CertificateIdentifier": CA})
    module.stub("iam").add_response("get_role", {"Role": {
        "RoleName": "rds-monitoring", "Arn": ROLE, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1", "CreateDate": FAR_FUTURE}},
        {"RoleName": "rds-monitoring"})


def expect_reads(module, existing):
    expect_describe(module, "db", source())
    expect_describe(module, "db-replica", existing)
    expect_key(module, KEY_ARN)
    expect_group(module)
    expect_rest_of_checks(module)


def run(module):
    try:
        outcome = Exited(module_under_test.run(module))
    except Failed as failed:
        outcome = failed
    module.assert_all_calls_made()  # the Stubber also refuses any call it was not told about
    return outcome


def test_check_mode_plans_the_creation_with_reads_only():
    module = make_module(base_params(), check_mode=True)
    expect_reads(module, None)
    result = run(module).result
    create = result["plan"][0]
    assert result["changed"] is True and create["impact"] == "none" and create["after"] == "db"
    assert create["what"].startswith("create read replica db-replica of db (RDS takes a DB snapshot of db")
    assert "single-AZ, so its I/O is suspended very briefly (typically about one second)" in create["what"]
    plan = {entry["attribute"]: entry["after"] for entry in result["plan"][1:]}
    assert plan["kms_key_id"] == KEY_ARN and plan["ca_certificate_identifier"] == CA
    assert plan["enable_iam_database_authentication"] is True  # the source's
    assert result["diff"]["before"]["read_replica_source_db_instance_identifier"] is None


def test_creates_with_the_exact_call_and_waits_with_its_own_waiter(monkeypatch):
    sleeps = []
    monkeypatch.setattr("botocore.waiter.time.sleep", sleeps.append)
    module = make_module(base_params())
    expect_reads(module, None)
    rds = module.stub("rds")
    rds.add_response("create_db_instance_read_replica", {"DBInstance": replica(DBInstanceStatus="creating")}, {
        "DBInstanceIdentifier": "db-replica", "SourceDBInstanceIdentifier": "db", "DBInstanceClass": "db.t3.large",
        "DBParameterGroupName": GROUP, "VpcSecurityGroupIds": ["sg-db"], "PubliclyAccessible": False, "MultiAZ": False,
        "DeletionProtection": True, "CopyTagsToSnapshot": True, "AutoMinorVersionUpgrade": True,
        "EnableIAMDatabaseAuthentication": True, "EnableCloudwatchLogsExports": LOGS, "EnablePerformanceInsights": True,
        "PerformanceInsightsKMSKeyId": KEY_ARN, "PerformanceInsightsRetentionPeriod": 7, "MonitoringInterval": 60,
        "MonitoringRoleArn": ROLE, "CACertificateIdentifier": CA, "Tags": [{"Key": "Environment", "Value": "prod"}]})
    expect_describe(module, "db-replica", replica(DBInstanceStatus="creating"))  # the waiter's first poll
    for _ in range(4):  # the waiter's second poll, the created replica, the reboot check, the result
        expect_describe(module, "db-replica", replica())
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert sleeps == [5]  # botocore's waiter with our WaiterConfig (Delay 5 s), not a 60 s poll
    assert outcome.result["changed"] is True
    assert outcome.result["instance"]["read_replica_source_db_instance_identifier"] == "db"


def test_second_run_plans_nothing_and_writes_nothing():
    module = make_module(base_params())
    expect_reads(module, replica())
    expect_describe(module, "db-replica", replica())  # reboot check
    expect_describe(module, "db-replica", replica())  # result
    result = run(module).result
    assert result["changed"] is False and result["plan"] == []


def test_waiter_gives_up_after_wait_timeout_with_what_to_do(monkeypatch):
    sleeps = []
    monkeypatch.setattr("botocore.waiter.time.sleep", sleeps.append)
    module = make_module(base_params(wait_timeout=10))
    expect_reads(module, None)
    module.stub("rds").add_response("create_db_instance_read_replica", {"DBInstance": replica()})
    for _ in range(2):  # ceil(10 / 5) polls
        expect_describe(module, "db-replica", replica(DBInstanceStatus="creating"))
    outcome = run(module)
    assert isinstance(outcome, Failed) and "did not become available within 10 s" in outcome.result["msg"]
    assert "run this task again" in outcome.result["msg"] and sleeps == [5]


def test_drift_is_converged_by_one_modify():
    drifted = replica(DeletionProtection=False, MonitoringInterval=0, MonitoringRoleArn=None)
    module = make_module(base_params())
    expect_reads(module, drifted)
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": replica()}, {
        "DBInstanceIdentifier": "db-replica", "DeletionProtection": True, "MonitoringInterval": 60,
        "MonitoringRoleArn": ROLE, "ApplyImmediately": True})
    for _ in range(3):  # waiter, reboot check, result
        expect_describe(module, "db-replica", replica())
    result = run(module).result
    assert result["changed"] is True
    plan = {entry["what"]: (entry["before"], entry["after"], entry["impact"]) for entry in result["plan"]}
    assert plan == {"deletion_protection": (False, True, "none"), "monitoring_interval": (0, 60, "none"),
                    "monitoring_role_arn": (None, ROLE, "none")}


def test_check_mode_shows_a_restart_a_real_run_refuses():
    module = make_module(base_params(db_instance_class="db.t3.xlarge"), check_mode=True)
    expect_reads(module, replica())
    result = run(module).result
    assert [(e["what"], e["impact"]) for e in result["plan"]] == [("db_instance_class", "restart")]
    assert any("allow_reboot=true" in warning for warning in module.warnings)


def test_restart_refused_before_any_write():
    module = make_module(base_params(db_instance_class="db.t3.xlarge"))
    expect_reads(module, replica())
    outcome = run(module)
    assert isinstance(outcome, Failed) and "allow_reboot=true" in outcome.result["msg"]


def test_replica_under_an_old_key_must_be_made_again():
    module = make_module(base_params())
    expect_reads(module, replica(KmsKeyId=OTHER_KEY))
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert "cannot be re-encrypted" in outcome.result["msg"] and "Delete the replica" in outcome.result["msg"]


@pytest.mark.parametrize("source_overrides, message", [
    ({"StorageEncrypted": False, "KmsKeyId": None}, "is not encrypted"),
    ({"Engine": "postgres"}, "runs postgres, not mysql"),
    ({"BackupRetentionPeriod": 0}, "has no automated backups"),
    ({"ReadReplicaSourceDBInstanceIdentifier": "primary"}, "is itself a replica of primary"),
])
def test_source_refused_with_reads_of_the_source_only(source_overrides, message):
    module = make_module(base_params())
    expect_describe(module, "db", source(**source_overrides))
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"], outcome.result


def test_missing_source_refused():
    module = make_module(base_params())
    expect_describe(module, "db", None)
    outcome = run(module)
    assert isinstance(outcome, Failed) and "Source instance db does not exist" in outcome.result["msg"]


def test_key_in_another_region_refused_before_any_call():
    module = make_module(base_params(kms_key_id=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1111"))
    outcome = run(module)
    assert isinstance(outcome, Failed) and "is a KMS key of region eu-west-1" in outcome.result["msg"]
    assert module.clients == {}  # not even a client


@pytest.mark.parametrize("existing, message", [
    (source(DBInstanceIdentifier="db-replica"), "not a read replica (a standalone instance)"),
    (replica(ReadReplicaSourceDBInstanceIdentifier="other"), "a read replica of other, not a replica of db"),
])
def test_existing_instance_that_is_not_this_sources_replica_refused(existing, message):
    module = make_module(base_params())
    expect_describe(module, "db", source())
    expect_describe(module, "db-replica", existing)
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"]


def test_replica_of_the_source_given_by_arn_is_accepted():
    module = make_module(base_params())
    expect_reads(module, replica(ReadReplicaSourceDBInstanceIdentifier=f"arn:aws:rds:{REGION}:{ACCOUNT}:db:db"))
    expect_describe(module, "db-replica", replica())
    expect_describe(module, "db-replica", replica())
    assert run(module).result["changed"] is False


def test_another_key_than_the_sources_refused():
    module = make_module(base_params(kms_key_id="alias/other"))
    expect_describe(module, "db", source())
    expect_describe(module, "db-replica", None)
    expect_key(module, KEY_ARN)
    expect_key(module, "alias/other", arn=OTHER_KEY)
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert "is not the key of source db" in outcome.result["msg"] and "Leave kms_key_id unset" in outcome.result["msg"]


def test_source_under_an_aws_managed_key_refused():
    module = make_module(base_params())
    expect_describe(module, "db", source())
    expect_describe(module, "db-replica", None)
    expect_key(module, KEY_ARN, manager="AWS")
    outcome = run(module)
    assert isinstance(outcome, Failed) and "Re-encrypt the source under a customer-managed key" in outcome.result["msg"]
    assert "allow_aws_managed_source_key=true" in outcome.result["msg"]


def test_source_under_an_aws_managed_key_accepted_with_a_warning_when_allowed():
    module = make_module(base_params(allow_aws_managed_source_key=True), check_mode=True)
    expect_describe(module, "db", source())
    expect_describe(module, "db-replica", None)
    expect_key(module, KEY_ARN, manager="AWS")
    expect_group(module)
    expect_rest_of_checks(module)
    result = run(module).result
    assert not result.get("failed"), result
    assert {entry["attribute"]: entry["after"] for entry in result["plan"][1:]}["kms_key_id"] == KEY_ARN
    assert any("the replica inherits it" in warning for warning in module.warnings), module.warnings


@pytest.mark.parametrize("tls, shown", [("0", "is 0"), (None, "is not set")])
def test_parameter_group_without_tls_refused(tls, shown):
    module = make_module(base_params())
    expect_describe(module, "db", source())
    expect_describe(module, "db-replica", None)
    expect_key(module, KEY_ARN)
    expect_group(module, tls=tls)
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert f"does not require TLS (require_secure_transport {shown})" in outcome.result["msg"]
