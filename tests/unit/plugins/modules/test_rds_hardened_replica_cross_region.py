"""rds_hardened_replica making a cross-Region replica, against stubbed clients of both Regions: the exact reads in
the source's Region and the replica's, the exact create call (source ARN, destination key, SourceRegion: botocore
makes the presigned URL from it, after the Stubber has answered), no write in check mode or on a second run, every refusal before any write."""

import datetime
import urllib.parse

import boto3

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_spec as spec
from ansible_collections.cso.rds_hardening.plugins.modules import rds_hardened_replica as module_under_test
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

DR = "eu-west-1"
PRIMARY = "eu-west-2"
ACCOUNT = "123456789012"
SOURCE_ARN = f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:db"
SOURCE_KEY = f"arn:aws:kms:{PRIMARY}:{ACCOUNT}:key/aws-rds"
DR_KEY = f"arn:aws:kms:{DR}:{ACCOUNT}:key/dr11"
OTHER_DR_KEY = f"arn:aws:kms:{DR}:{ACCOUNT}:key/dr22"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/rds-monitoring"
DR_VPC = "vpc-dr"
CA = "rds-ca-rsa2048-g1"
GROUP = "cso-mysql80-tls"
SUBNETS = "cso-db-private"
FAR_FUTURE = datetime.datetime(2060, 1, 1, tzinfo=datetime.timezone.utc)
LOGS = ["audit", "error", "general", "slowquery"]


def make_module(params, check_mode=False):
    return StubbedModule(module_under_test.ARGUMENT_SPEC, params, check_mode, region=DR)


def source(**overrides):
    instance = {
        "DBInstanceIdentifier": "db", "DBInstanceArn": SOURCE_ARN, "Engine": "mysql", "EngineVersion": "8.0.42",
        "DBInstanceClass": "db.t3.large", "DBInstanceStatus": "available", "StorageEncrypted": True,
        "KmsKeyId": SOURCE_KEY, "MultiAZ": False, "BackupRetentionPeriod": 7, "IAMDatabaseAuthenticationEnabled": False,
        "CACertificateIdentifier": CA, "DBSubnetGroup": {"DBSubnetGroupName": SUBNETS, "VpcId": "vpc-primary"},
        "ReadReplicaDBInstanceIdentifiers": [],
    }
    instance.update(overrides)
    return {name: value for name, value in instance.items() if value is not None}


def replica(**overrides):
    instance = source(
        DBInstanceIdentifier="db-dr", DBInstanceArn=f"arn:aws:rds:{DR}:{ACCOUNT}:db:db-dr", KmsKeyId=DR_KEY,
        ReadReplicaSourceDBInstanceIdentifier=SOURCE_ARN, BackupRetentionPeriod=0, PubliclyAccessible=False,
        DeletionProtection=True, CopyTagsToSnapshot=True, AutoMinorVersionUpgrade=True, EnabledCloudwatchLogsExports=LOGS,
        PerformanceInsightsEnabled=True, PerformanceInsightsKMSKeyId=DR_KEY, PerformanceInsightsRetentionPeriod=7,
        MonitoringInterval=60, MonitoringRoleArn=ROLE, VpcSecurityGroups=[{"VpcSecurityGroupId": "sg-dr", "Status": "active"}],
        DBParameterGroups=[{"DBParameterGroupName": GROUP, "ParameterApplyStatus": "in-sync"}],
        DBSubnetGroup={"DBSubnetGroupName": SUBNETS, "VpcId": DR_VPC},
        CertificateDetails={"CAIdentifier": CA, "ValidTill": FAR_FUTURE}, TagList=[{"Key": "Role", "Value": "dr"}])
    instance.update(overrides)
    return {name: value for name, value in instance.items() if value is not None}


def base_params(**overrides):
    params = {"db_instance_identifier": "db-dr", "source_db_instance_identifier": SOURCE_ARN,
              "kms_key_id": "alias/cso-dr", "db_subnet_group_name": SUBNETS, "vpc_security_group_ids": ["sg-dr"],
              "db_parameter_group_name": GROUP, "monitoring_role_arn": ROLE, "apply": "immediately",
              "tags": {"Role": "dr"}}
    params.update(overrides)
    return params


def expect_source(module, instance):
    module.stub("rds", region=PRIMARY).add_response(
        "describe_db_instances", {"DBInstances": [instance] if instance else []}, {"DBInstanceIdentifier": "db"})


def expect_describe(module, instance, identifier="db-dr"):
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [instance] if instance else []},
                                    {"DBInstanceIdentifier": identifier})


def expect_key(module, key_id="alias/cso-dr", arn=DR_KEY, manager="CUSTOMER"):
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": arn.rsplit("/", 1)[-1], "Arn": arn, "KeyState": "Enabled", "KeyManager": manager}}, {"KeyId": key_id})


def expect_destination_checks(module):
    rds = module.stub("rds")
    rds.add_response("describe_db_engine_versions", {"DBEngineVersions": [
        {"Engine": "mysql", "EngineVersion": "8.0.42", "DBParameterGroupFamily": "mysql8.0"}]},
        {"Engine": "mysql", "EngineVersion": "8.0.42"})
    rds.add_response("describe_db_parameter_groups", {"DBParameterGroups": [
        {"DBParameterGroupName": GROUP, "DBParameterGroupFamily": "mysql8.0"}]}, {"DBParameterGroupName": GROUP})
    rds.add_response("describe_db_parameters", {"Parameters": [
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "Source": "user"}]},
        {"DBParameterGroupName": GROUP, "Source": "user"})
    rds.add_response("describe_db_subnet_groups", {"DBSubnetGroups": [
        {"DBSubnetGroupName": SUBNETS, "VpcId": DR_VPC}]}, {"DBSubnetGroupName": SUBNETS})
    module.stub("ec2").add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-dr", "VpcId": DR_VPC, "GroupName": "db", "Description": "db", "OwnerId": ACCOUNT}]},
        {"GroupIds": ["sg-dr"]})
    rds.add_response("describe_certificates", {"Certificates": [{"CertificateIdentifier": CA}]},
                     {"CertificateIdentifier": CA})
    module.stub("iam").add_response("get_role", {"Role": {
        "RoleName": "rds-monitoring", "Arn": ROLE, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1", "CreateDate": FAR_FUTURE}},
        {"RoleName": "rds-monitoring"})


def expect_reads(module, existing, source_instance=None):
    expect_source(module, source_instance or source())
    expect_describe(module, existing)
    expect_key(module)
    expect_destination_checks(module)


def run(module):
    try:
        outcome = Exited(module_under_test.run(module))
    except Failed as failed:
        outcome = failed
    module.assert_all_calls_made()  # the Stubbers also refuse any call they were not told about
    return outcome


def test_check_mode_plans_a_cross_region_creation_with_reads_only():
    module = make_module(base_params(), check_mode=True)
    expect_reads(module, None)
    result = run(module).result
    create = result["plan"][0]
    assert result["changed"] is True and (create["impact"], create["before"], create["after"]) == ("none", None, SOURCE_ARN)
    assert create["what"].startswith(f"create cross-Region read replica db-dr in {DR} of {SOURCE_ARN} (RDS takes a DB "
                                     f"snapshot of db in {PRIMARY}, copies it to {DR} under {DR_KEY}")
    assert "single-AZ, so its I/O is suspended very briefly" in create["what"]
    plan = {entry["attribute"]: entry["after"] for entry in result["plan"][1:]}
    assert plan["kms_key_id"] == DR_KEY and plan["performance_insights_kms_key_id"] == DR_KEY
    assert plan["ca_certificate_identifier"] == CA and plan["enable_iam_database_authentication"] is False
    assert set(module.clients) == {"rds", "rds@eu-west-2", "kms", "ec2", "iam"}


def test_creates_with_the_source_arn_the_destination_key_and_source_region(monkeypatch):
    monkeypatch.setattr("botocore.waiter.time.sleep", lambda seconds: None)
    module = make_module(base_params())
    expect_reads(module, None)
    rds = module.stub("rds")
    rds.add_response("create_db_instance_read_replica", {"DBInstance": replica(DBInstanceStatus="creating")}, {
        "DBInstanceIdentifier": "db-dr", "SourceDBInstanceIdentifier": SOURCE_ARN, "KmsKeyId": DR_KEY,
        "SourceRegion": PRIMARY, "DBSubnetGroupName": SUBNETS, "DBInstanceClass": "db.t3.large",
        "DBParameterGroupName": GROUP, "VpcSecurityGroupIds": ["sg-dr"], "PubliclyAccessible": False, "MultiAZ": False,
        "DeletionProtection": True, "CopyTagsToSnapshot": True, "AutoMinorVersionUpgrade": True,
        "EnableIAMDatabaseAuthentication": False, "EnableCloudwatchLogsExports": LOGS, "EnablePerformanceInsights": True,
        "PerformanceInsightsKMSKeyId": DR_KEY, "PerformanceInsightsRetentionPeriod": 7, "MonitoringInterval": 60,
        "MonitoringRoleArn": ROLE, "CACertificateIdentifier": CA, "Tags": [{"Key": "Role", "Value": "dr"}]})
    expect_describe(module, replica(DBInstanceStatus="creating"))  # the waiter's first poll
    for _ in range(4):  # the waiter's second poll, the created replica, the reboot check, the result
        expect_describe(module, replica())
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True
    assert outcome.result["instance"]["read_replica_source_db_instance_identifier"] == SOURCE_ARN


class Sent(Exception):
    pass


def test_botocore_presigns_the_create_call_from_its_source_region(monkeypatch):
    """The Stubber answers before botocore's presigning handler runs, so this sends the module's create parameters
    through a plain client and stops the request just before it leaves."""
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_RDS"):  # AWS's own endpoints, whatever the shell says
        monkeypatch.delenv(variable, raising=False)
    parameters = spec.create_parameters(base_params(), {"kms_key_id": DR_KEY}, source(), cross_region=True)
    client = boto3.client("rds", region_name=DR, aws_access_key_id="x", aws_secret_access_key="x")

    def stop(request, **kwargs):
        raise Sent(request.body)

    client.meta.events.register("before-send.rds.CreateDBInstanceReadReplica", stop)
    with pytest.raises(Sent) as sent:
        client.create_db_instance_read_replica(**parameters)
    body = urllib.parse.parse_qs(sent.value.args[0].decode() if isinstance(sent.value.args[0], bytes) else sent.value.args[0])
    assert "SourceRegion" not in body and body["SourceDBInstanceIdentifier"] == [SOURCE_ARN]
    assert body["KmsKeyId"] == [DR_KEY] and body["DBSubnetGroupName"] == [SUBNETS]
    url = urllib.parse.urlparse(body["PreSignedUrl"][0])
    query = urllib.parse.parse_qs(url.query)
    assert url.netloc == f"rds.{PRIMARY}.amazonaws.com"  # signed for the source's Region
    assert query["Action"] == ["CreateDBInstanceReadReplica"] and query["DestinationRegion"] == [DR]
    assert query["SourceDBInstanceIdentifier"] == [SOURCE_ARN] and query["KmsKeyId"] == [DR_KEY]


def test_second_run_plans_nothing_and_writes_nothing():
    module = make_module(base_params())
    expect_reads(module, replica())
    expect_describe(module, replica())  # reboot check
    expect_describe(module, replica())  # result
    result = run(module).result
    assert result["changed"] is False and result["plan"] == []


def test_the_source_by_name_with_source_region_is_the_same_replica():
    module = make_module(base_params(source_db_instance_identifier="db", source_region=PRIMARY))
    expect_reads(module, replica())
    expect_describe(module, replica())
    expect_describe(module, replica())
    assert run(module).result["changed"] is False


def test_a_replica_may_have_its_sources_name_in_another_region():
    module = make_module(base_params(db_instance_identifier="db"), check_mode=True)
    expect_source(module, source())
    expect_describe(module, None, identifier="db")
    expect_key(module)
    expect_destination_checks(module)
    assert run(module).result["plan"][0]["what"].startswith(f"create cross-Region read replica db in {DR}")


@pytest.mark.parametrize("overrides, message", [
    ({"kms_key_id": None}, f"kms_key_id is required for a cross-Region replica: AWS encrypts it with a KMS key of the "
                           f"replica's Region {DR}"),
    ({"db_subnet_group_name": None}, f"db_subnet_group_name is required for a cross-Region replica: the source's DB "
                                     f"subnet group is in {PRIMARY}"),
    ({"source_region": DR}, f"source_region is {DR} but source_db_instance_identifier is an ARN of {PRIMARY}"),
    ({"kms_key_id": SOURCE_KEY}, f"is a KMS key of region {PRIMARY}, but the replica is created in {DR}"),
    ({"source_db_instance_identifier": "db", "source_region": "mars-north-1"}, "'mars-north-1' is not an AWS region"),
])
def test_input_refused_before_any_client(overrides, message):
    module = make_module(base_params(**overrides))
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"], outcome.result
    assert module.clients == {}


def _cross_region_replicas(count):
    return [f"arn:aws:rds:{region}:{ACCOUNT}:db:r{n}" for n, region in
            zip(range(count), ["eu-west-1", "eu-west-3", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1"])]


@pytest.mark.parametrize("source_overrides, message", [
    ({"ReadReplicaDBInstanceIdentifiers": _cross_region_replicas(5) + ["same-region-replica"]},
     "already has 5 cross-Region read replicas"),
    ({"StorageEncrypted": False, "KmsKeyId": None}, "is not encrypted"),
    ({"BackupRetentionPeriod": 0}, "has no automated backups"),
    ({"ReadReplicaSourceDBInstanceIdentifier": "primary"}, "is itself a replica of primary"),
])
def test_source_refused_after_reading_it_only(source_overrides, message):
    module = make_module(base_params())
    expect_source(module, source(**source_overrides))
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"], outcome.result
    assert set(module.clients) == {"rds@eu-west-2"}  # read in the source's Region only


def test_four_cross_region_replicas_leave_room_for_a_fifth():
    module = make_module(base_params(), check_mode=True)
    expect_reads(module, None, source(ReadReplicaDBInstanceIdentifiers=_cross_region_replicas(4)))
    assert run(module).result["changed"] is True


def test_the_fifth_cross_region_replica_itself_is_converged():
    own = f"arn:aws:rds:{DR}:{ACCOUNT}:db:db-dr"
    module = make_module(base_params())
    expect_reads(module, replica(), source(ReadReplicaDBInstanceIdentifiers=_cross_region_replicas(5)[1:] + [own]))
    expect_describe(module, replica())
    expect_describe(module, replica())
    assert run(module).result["changed"] is False


@pytest.mark.parametrize("existing, message", [
    (replica(ReadReplicaSourceDBInstanceIdentifier=f"arn:aws:rds:eu-west-3:{ACCOUNT}:db:db"),
     f"a read replica of arn:aws:rds:eu-west-3:{ACCOUNT}:db:db, not a replica of {SOURCE_ARN}"),
    (replica(ReadReplicaSourceDBInstanceIdentifier="db"), f"a read replica of db, not a replica of {SOURCE_ARN}"),
    (replica(ReadReplicaSourceDBInstanceIdentifier=None), "not a read replica (a standalone instance)"),
])
def test_an_instance_that_does_not_replicate_this_source_is_refused(existing, message):
    module = make_module(base_params())
    expect_source(module, source())
    expect_describe(module, existing)
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"], outcome.result


def test_an_aws_managed_destination_key_is_refused():
    module = make_module(base_params(kms_key_id="alias/aws/rds"))
    expect_source(module, source())
    expect_describe(module, None)
    expect_key(module, "alias/aws/rds", arn=f"arn:aws:kms:{DR}:{ACCOUNT}:key/aws", manager="AWS")
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert "for the cross-Region replica's storage encryption is AWS-managed" in outcome.result["msg"]


def test_a_replica_under_another_key_must_be_made_again():
    module = make_module(base_params())
    expect_reads(module, replica(KmsKeyId=OTHER_DR_KEY, PerformanceInsightsKMSKeyId=OTHER_DR_KEY))
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert f"The cross-Region replica is encrypted with {OTHER_DR_KEY}, not kms_key_id {DR_KEY}" in outcome.result["msg"]
    assert "delete the replica" in outcome.result["msg"]
