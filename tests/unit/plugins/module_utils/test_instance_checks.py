"""Read-only checks against AWS (botocore Stubber): each fails with a message that says what to do."""

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_checks as checks

REGION = "eu-west-2"


class Failed(Exception):
    pass


class Module:
    region = REGION

    def __init__(self):
        self.warnings = []

    def fail_json(self, msg, **kwargs):
        raise Failed(msg)

    def fail_json_aws(self, exception, msg=None, **kwargs):
        raise Failed(f"{msg}: {exception}")

    def warn(self, message):
        self.warnings.append(message)


@pytest.fixture
def stubbed():
    made = []

    def make(service):
        client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        stub = Stubber(client)
        stub.activate()
        made.append(stub)
        return RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff(retries=1)), stub

    yield make
    for stub in made:
        stub.assert_no_pending_responses()


def test_unknown_engine_version(stubbed):
    rds, stub = stubbed("rds")
    stub.add_response("describe_db_engine_versions", {"DBEngineVersions": []}, {"Engine": "mysql", "EngineVersion": "8.0.99"})
    with pytest.raises(Failed, match="Engine version 8.0.99 of mysql is not offered .* set engine_version"):
        checks.validate_engine_version(Module(), rds, "mysql", "8.0.99")


def test_engine_version_gives_its_family(stubbed):
    rds, stub = stubbed("rds")
    stub.add_response("describe_db_engine_versions", {"DBEngineVersions": [{"DBParameterGroupFamily": "mysql8.0"}]},
                      {"Engine": "mysql", "EngineVersion": "8.0.42"})
    assert checks.validate_engine_version(Module(), rds, "mysql", "8.0.42") == "mysql8.0"


def test_parameter_group_of_another_family(stubbed):
    rds, stub = stubbed("rds")
    stub.add_response("describe_db_parameter_groups", {"DBParameterGroups": [
        {"DBParameterGroupName": "pg", "DBParameterGroupFamily": "postgres16"}]}, {"DBParameterGroupName": "pg"})
    with pytest.raises(Failed, match="is of family postgres16, but the engine version needs family mysql8.0"):
        checks.validate_parameter_group(Module(), rds, "pg", "mysql8.0")


def test_parameter_group_missing(stubbed):
    rds, stub = stubbed("rds")
    stub.add_client_error("describe_db_parameter_groups", "DBParameterGroupNotFound", "not found")
    with pytest.raises(Failed, match="does not exist. Create it first"):
        checks.validate_parameter_group(Module(), rds, "nope", "mysql8.0")


def test_security_group_missing(stubbed):
    ec2, stub = stubbed("ec2")
    stub.add_client_error("describe_security_groups", "InvalidGroup.NotFound", "The security group 'sg-1' does not exist")
    with pytest.raises(Failed, match="Security group\\(s\\) sg-1 not found"):
        checks.validate_security_groups(Module(), ec2, ["sg-1"], "vpc-1")


def test_subnet_group_missing(stubbed):
    rds, stub = stubbed("rds")
    stub.add_client_error("describe_db_subnet_groups", "DBSubnetGroupNotFoundFault", "nope")
    with pytest.raises(Failed, match="DB subnet group private does not exist"):
        checks.subnet_group_vpc(Module(), rds, "private")


def test_unknown_ca(stubbed):
    rds, stub = stubbed("rds")
    stub.add_client_error("describe_certificates", "CertificateNotFound", "nope")
    with pytest.raises(Failed, match="CA certificate rds-ca-nope is not offered"):
        checks.validate_ca(Module(), rds, "rds-ca-nope")


def test_missing_monitoring_role(stubbed):
    iam, stub = stubbed("iam")
    stub.add_client_error("get_role", "NoSuchEntity", "nope", expected_params={"RoleName": "mon"})
    with pytest.raises(Failed, match="Enhanced monitoring role .* does not exist"):
        checks.validate_monitoring_role(Module(), iam, "arn:aws:iam::123456789012:role/mon")


def test_keys_default_to_the_storage_key(stubbed):
    kms, stub = stubbed("kms")
    arn = f"arn:aws:kms:{REGION}:123456789012:key/1111"
    stub.add_response("describe_key", {"KeyMetadata": {"KeyId": "1111", "Arn": arn, "KeyState": "Enabled",
                                                       "KeyManager": "CUSTOMER"}}, {"KeyId": "alias/rds"})
    params = {"kms_key_id": "alias/rds", "performance_insights_kms_key_id": None, "master_user_secret_kms_key_id": None}
    assert checks.validate_keys(Module(), kms, params, REGION) == {
        "storage": arn, "performance_insights": arn, "master_user_secret": arn}


@pytest.mark.parametrize("metadata, message", [
    ({"KeyState": "Disabled", "KeyManager": "CUSTOMER"}, "it must be Enabled"),
    ({"KeyState": "PendingDeletion", "KeyManager": "CUSTOMER"}, "it must be Enabled"),
    ({"KeyState": "Enabled", "KeyManager": "AWS"}, "AWS-managed"),
])
def test_unusable_keys(stubbed, metadata, message):
    kms, stub = stubbed("kms")
    stub.add_response("describe_key", {"KeyMetadata": dict(metadata, KeyId="k", Arn=f"arn:aws:kms:{REGION}:1:key/k")})
    params = {"kms_key_id": "k", "performance_insights_kms_key_id": None, "master_user_secret_kms_key_id": None}
    with pytest.raises(Failed, match=message):
        checks.validate_keys(Module(), kms, params, REGION)


AWS_RDS_KEY = f"arn:aws:kms:{REGION}:123456789012:key/aws-rds"
OTHER_AWS_KEY = f"arn:aws:kms:{REGION}:123456789012:key/aws-other"


def _aws_managed(stub, arn, key_id):
    stub.add_response("describe_key", {"KeyMetadata": {"KeyId": arn.rsplit("/", 1)[1], "Arn": arn,
                                                       "KeyState": "Enabled", "KeyManager": "AWS"}}, {"KeyId": key_id})


def test_keeping_the_aws_managed_key_an_instance_already_uses_is_only_warned_about(stubbed):
    kms, stub = stubbed("kms")
    _aws_managed(stub, AWS_RDS_KEY, "alias/aws/rds")
    module = Module()
    params = {"kms_key_id": "alias/aws/rds", "performance_insights_kms_key_id": None, "master_user_secret_kms_key_id": None}
    instance = {"StorageEncrypted": True, "KmsKeyId": AWS_RDS_KEY}

    assert checks.validate_keys(module, kms, params, REGION, instance)["storage"] == AWS_RDS_KEY
    assert len(module.warnings) == 1 and "stays under the AWS-managed KMS key alias/aws/rds" in module.warnings[0]


@pytest.mark.parametrize("instance", [
    None,  # a new instance
    {"StorageEncrypted": True, "KmsKeyId": OTHER_AWS_KEY},  # moving to another AWS-managed key
    {"StorageEncrypted": False},
], ids=["create", "other-aws-managed-key", "unencrypted"])
def test_moving_storage_to_an_aws_managed_key_is_refused(stubbed, instance):
    kms, stub = stubbed("kms")
    _aws_managed(stub, AWS_RDS_KEY, "alias/aws/rds")
    params = {"kms_key_id": "alias/aws/rds", "performance_insights_kms_key_id": None, "master_user_secret_kms_key_id": None}
    with pytest.raises(Failed, match="AWS-managed; a customer-managed key is required"):
        checks.validate_keys(Module(), kms, params, REGION, instance)


def test_the_key_in_use_is_matched_per_purpose(stubbed):
    """Performance Insights already under aws/rds may stay there; storage may not move to it."""
    kms, stub = stubbed("kms")
    cmk = f"arn:aws:kms:{REGION}:123456789012:key/cmk"
    stub.add_response("describe_key", {"KeyMetadata": {"KeyId": "cmk", "Arn": cmk, "KeyState": "Enabled",
                                                       "KeyManager": "CUSTOMER"}}, {"KeyId": cmk})
    _aws_managed(stub, AWS_RDS_KEY, AWS_RDS_KEY)
    module = Module()
    params = {"kms_key_id": cmk, "performance_insights_kms_key_id": AWS_RDS_KEY, "master_user_secret_kms_key_id": None}
    instance = {"StorageEncrypted": True, "KmsKeyId": cmk, "PerformanceInsightsEnabled": True,
                "PerformanceInsightsKMSKeyId": AWS_RDS_KEY}

    assert checks.validate_keys(module, kms, params, REGION, instance) == {
        "storage": cmk, "performance_insights": AWS_RDS_KEY, "master_user_secret": cmk}
    assert [w for w in module.warnings if "Performance Insights stays under" in w]

    stub.add_response("describe_key", {"KeyMetadata": {"KeyId": "cmk", "Arn": cmk, "KeyState": "Enabled",
                                                       "KeyManager": "CUSTOMER"}}, {"KeyId": cmk})
    _aws_managed(stub, AWS_RDS_KEY, AWS_RDS_KEY)
    with pytest.raises(Failed, match="for Performance Insights is AWS-managed"):
        checks.validate_keys(Module(), kms, params, REGION, dict(instance, PerformanceInsightsEnabled=False))


def test_key_in_another_region_fails_without_a_call(stubbed):
    kms, _stub = stubbed("kms")
    params = {"kms_key_id": "arn:aws:kms:eu-west-1:1:key/k", "performance_insights_kms_key_id": None,
              "master_user_secret_kms_key_id": None}
    with pytest.raises(Failed, match="is in region eu-west-1, but it must be in eu-west-2"):
        checks.validate_keys(Module(), kms, params, REGION)
