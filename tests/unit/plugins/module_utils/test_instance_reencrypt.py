"""The re-encryption procedure's exact call sequence (botocore Stubber)."""

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_reencrypt as reencrypt

KEY = "arn:aws:kms:eu-west-2:123456789012:key/1111"
STAMP = "202611220400"


class Failed(Exception):
    pass


class Module:
    params = {}
    check_mode = False

    def fail_json(self, **kwargs):
        raise Failed(kwargs)

    def fail_json_aws(self, exception, msg=None, **kwargs):
        raise Failed(msg, str(exception))


def instance():
    return {
        "DBInstanceIdentifier": "db", "DBInstanceClass": "db.t3.large", "DBInstanceStatus": "available",
        "DBSubnetGroup": {"DBSubnetGroupName": "private", "VpcId": "vpc-1"}, "Endpoint": {"Address": "db.x", "Port": 3306},
        "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-shared", "Status": "active"}],
        "DBParameterGroups": [{"DBParameterGroupName": "cso-mysql80"}], "StorageType": "gp3",
        "OptionGroupMemberships": [{"OptionGroupName": "default:mysql-8-0"}], "TagList": [{"Key": "Name", "Value": "db"}],
    }


def desired():
    return {"kms_key_id": KEY, "multi_az": True, "publicly_accessible": False, "auto_minor_version_upgrade": True,
            "copy_tags_to_snapshot": True, "deletion_protection": True, "enable_iam_database_authentication": True,
            "enable_cloudwatch_logs_exports": ["audit", "error"], "vpc_security_group_ids": ["sg-db"],
            "db_parameter_group_name": None, "db_instance_class": None, "storage_type": "gp3", "ca_certificate_identifier": None}


def available(identifier):
    return {"DBInstances": [{"DBInstanceIdentifier": identifier, "DBInstanceStatus": "available"}]}


def snapshot(identifier):
    return {"DBSnapshots": [{"DBSnapshotIdentifier": identifier, "Status": "available"}]}


def test_names_fit_the_identifier_limit():
    names = reencrypt.names("x" * 63, STAMP)
    assert len(names["rollback_instance"]) <= 63 and len(names["staging_instance"]) <= 63
    assert names["rollback_instance"].endswith(f"-rollback-{STAMP}")


def test_restore_parameters_keep_the_configuration_and_harden_it():
    parameters = reencrypt.restore_parameters(instance(), desired())
    assert parameters["DBSubnetGroupName"] == "private" and parameters["Port"] == 3306
    assert parameters["VpcSecurityGroupIds"] == ["sg-db"]
    assert parameters["DBParameterGroupName"] == "cso-mysql80"
    assert parameters["Tags"] == [{"Key": "Name", "Value": "db"}]
    assert "OptionGroupName" not in parameters  # default option groups come with the restore


def test_procedure_call_sequence():
    client = boto3.client("rds", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    snap, copy = f"db-pre-reencrypt-{STAMP}", f"db-reencrypted-{STAMP}"
    stub.add_response("create_db_snapshot", {}, {"DBInstanceIdentifier": "db", "DBSnapshotIdentifier": snap})
    stub.add_response("describe_db_snapshots", snapshot(snap), {"DBSnapshotIdentifier": snap})
    stub.add_response("copy_db_snapshot", {}, {"SourceDBSnapshotIdentifier": snap, "TargetDBSnapshotIdentifier": copy,
                                               "KmsKeyId": KEY, "CopyTags": True})
    stub.add_response("describe_db_snapshots", snapshot(copy), {"DBSnapshotIdentifier": copy})
    restore = dict(reencrypt.restore_parameters(instance(), desired()), DBInstanceIdentifier="db-reencrypted",
                   DBSnapshotIdentifier=copy)
    stub.add_response("restore_db_instance_from_db_snapshot", {}, restore)
    stub.add_response("describe_db_instances", available("db-reencrypted"), {"DBInstanceIdentifier": "db-reencrypted"})
    stub.add_response("modify_db_instance", {}, {"DBInstanceIdentifier": "db", "NewDBInstanceIdentifier": f"db-rollback-{STAMP}",
                                                 "DeletionProtection": True, "ApplyImmediately": True})
    stub.add_response("describe_db_instances", available(f"db-rollback-{STAMP}"), {"DBInstanceIdentifier": f"db-rollback-{STAMP}"})
    stub.add_response("modify_db_instance", {}, {"DBInstanceIdentifier": "db-reencrypted", "NewDBInstanceIdentifier": "db",
                                                 "ApplyImmediately": True})
    stub.add_response("describe_db_instances", available("db"), {"DBInstanceIdentifier": "db"})
    with stub:
        used = reencrypt.reencrypt(Module(), RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), instance(),
                                   desired(), stamp=STAMP)
        stub.assert_no_pending_responses()
    assert used == {"snapshot": snap, "encrypted_snapshot": copy, "staging_instance": "db-reencrypted",
                    "rollback_instance": f"db-rollback-{STAMP}"}


def test_failure_stops_the_procedure_with_a_pointer_to_the_docs():
    client = boto3.client("rds", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_client_error("create_db_snapshot", "SnapshotQuotaExceeded", "too many snapshots")
    with stub, pytest.raises(Failed) as failure:
        reencrypt.reencrypt(Module(), RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), instance(), desired(),
                            stamp=STAMP)
    assert "create_db_snapshot" in failure.value.args[0] and "rollback" in failure.value.args[0]
