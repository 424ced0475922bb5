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


SNAP, COPY = f"db-pre-reencrypt-{STAMP}", f"db-reencrypted-{STAMP}"
SNAP_ARN = f"arn:aws:rds:eu-west-2:123456789012:snapshot:{SNAP}"
IN_PROGRESS = [{"Key": "cso:reencryption", "Value": "in-progress"}]


def stubbed():
    client = boto3.client("rds", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    calls = []
    client.meta.events.register_first("before-parameter-build.*.*", lambda model, **_: calls.append(model.name))
    return client, Stubber(client), calls


def expect_snapshot_list(stub, snapshots):
    stub.add_response("describe_db_snapshots", {"DBSnapshots": snapshots},
                      {"DBInstanceIdentifier": "db", "SnapshotType": "manual"})


def expect_tail(stub):
    """Restore-independent end: the two renames and the in-progress tag removed."""
    stub.add_response("modify_db_instance", {}, {"DBInstanceIdentifier": "db", "NewDBInstanceIdentifier": f"db-rollback-{STAMP}",
                                                 "DeletionProtection": True, "ApplyImmediately": True})
    stub.add_response("describe_db_instances", available(f"db-rollback-{STAMP}"), {"DBInstanceIdentifier": f"db-rollback-{STAMP}"})
    stub.add_response("modify_db_instance", {}, {"DBInstanceIdentifier": "db-reencrypted", "NewDBInstanceIdentifier": "db",
                                                 "ApplyImmediately": True})
    stub.add_response("describe_db_instances", available("db"), {"DBInstanceIdentifier": "db"})
    stub.add_response("remove_tags_from_resource", {}, {"ResourceName": SNAP_ARN, "TagKeys": ["cso:reencryption"]})


def run(client, stub, params=None):
    module = Module()
    module.params = params or {}
    module.warnings = []
    module.warn = module.warnings.append
    with stub:
        used = reencrypt.reencrypt(module, RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), instance(),
                                   desired(), stamp=STAMP)
        stub.assert_no_pending_responses()
    return used, module.warnings


def test_procedure_call_sequence():
    client, stub, calls = stubbed()
    expect_snapshot_list(stub, [{"DBSnapshotIdentifier": f"db-pre-reencrypt-202501010000", "Status": "available",
                                 "TagList": []}])  # a finished run's snapshot: never resumed from
    stub.add_response("create_db_snapshot", {"DBSnapshot": {"DBSnapshotIdentifier": SNAP, "DBSnapshotArn": SNAP_ARN}},
                      {"DBInstanceIdentifier": "db", "DBSnapshotIdentifier": SNAP, "Tags": IN_PROGRESS})
    stub.add_response("describe_db_snapshots", snapshot(SNAP), {"DBSnapshotIdentifier": SNAP})
    stub.add_response("copy_db_snapshot", {}, {"SourceDBSnapshotIdentifier": SNAP, "TargetDBSnapshotIdentifier": COPY,
                                               "KmsKeyId": KEY, "CopyTags": True})
    stub.add_response("describe_db_snapshots", snapshot(COPY), {"DBSnapshotIdentifier": COPY})
    restore = dict(reencrypt.restore_parameters(instance(), desired()), DBInstanceIdentifier="db-reencrypted",
                   DBSnapshotIdentifier=COPY)
    stub.add_response("restore_db_instance_from_db_snapshot", {}, restore)
    stub.add_response("describe_db_instances", available("db-reencrypted"), {"DBInstanceIdentifier": "db-reencrypted"})
    expect_tail(stub)
    used, warnings = run(client, stub)
    assert used == {"snapshot": SNAP, "encrypted_snapshot": COPY, "staging_instance": "db-reencrypted",
                    "rollback_instance": f"db-rollback-{STAMP}", "resumed": False}
    assert warnings == []
    assert calls.count("CreateDBSnapshot") == 1 and calls.count("RestoreDBInstanceFromDBSnapshot") == 1


def test_an_interrupted_run_resumes_from_its_snapshot_and_copy():
    client, stub, calls = stubbed()
    expect_snapshot_list(stub, [{"DBSnapshotIdentifier": SNAP, "DBSnapshotArn": SNAP_ARN, "Status": "available",
                                 "TagList": IN_PROGRESS}])
    stub.add_response("describe_db_snapshots", snapshot(SNAP), {"DBSnapshotIdentifier": SNAP})  # waiter
    stub.add_response("describe_db_snapshots", {"DBSnapshots": [dict(snapshot(COPY)["DBSnapshots"][0], KmsKeyId=KEY,
                                                                     Status="copying")]},
                      {"DBSnapshotIdentifier": COPY})  # the copy exists: no second copy
    stub.add_response("describe_db_snapshots", snapshot(COPY), {"DBSnapshotIdentifier": COPY})  # waiter
    stub.add_client_error("describe_db_instances", "DBInstanceNotFound", expected_params={"DBInstanceIdentifier": "db-reencrypted"})
    restore = dict(reencrypt.restore_parameters(instance(), desired()), DBInstanceIdentifier="db-reencrypted",
                   DBSnapshotIdentifier=COPY)
    stub.add_response("restore_db_instance_from_db_snapshot", {}, restore)
    stub.add_response("describe_db_instances", available("db-reencrypted"), {"DBInstanceIdentifier": "db-reencrypted"})
    expect_tail(stub)
    used, warnings = run(client, stub)
    assert used["resumed"] is True and used["snapshot"] == SNAP
    assert "CreateDBSnapshot" not in calls and "CopyDBSnapshot" not in calls
    assert any("Resuming" in warning and SNAP in warning for warning in warnings)


def test_an_interrupted_run_resumes_from_its_staging_instance():
    client, stub, calls = stubbed()
    expect_snapshot_list(stub, [{"DBSnapshotIdentifier": SNAP, "DBSnapshotArn": SNAP_ARN, "Status": "available",
                                 "TagList": IN_PROGRESS}])
    stub.add_response("describe_db_snapshots", snapshot(SNAP), {"DBSnapshotIdentifier": SNAP})
    stub.add_response("describe_db_snapshots", {"DBSnapshots": [dict(snapshot(COPY)["DBSnapshots"][0], KmsKeyId=KEY)]},
                      {"DBSnapshotIdentifier": COPY})
    stub.add_response("describe_db_snapshots", snapshot(COPY), {"DBSnapshotIdentifier": COPY})
    stub.add_response("describe_db_instances", {"DBInstances": [{"DBInstanceIdentifier": "db-reencrypted",
                                                                 "DBInstanceStatus": "creating"}]},
                      {"DBInstanceIdentifier": "db-reencrypted"})  # it exists: no second restore
    stub.add_response("describe_db_instances", available("db-reencrypted"), {"DBInstanceIdentifier": "db-reencrypted"})
    expect_tail(stub)
    used, _warnings = run(client, stub)
    assert used["resumed"] is True
    assert [c for c in calls if not c.startswith("Describe")] == [
        "ModifyDBInstance", "ModifyDBInstance", "RemoveTagsFromResource"]


def test_a_copy_under_another_key_is_refused_before_any_write():
    client, stub, calls = stubbed()
    expect_snapshot_list(stub, [{"DBSnapshotIdentifier": SNAP, "DBSnapshotArn": SNAP_ARN, "Status": "available",
                                 "TagList": IN_PROGRESS}])
    stub.add_response("describe_db_snapshots", snapshot(SNAP), {"DBSnapshotIdentifier": SNAP})
    stub.add_response("describe_db_snapshots", {"DBSnapshots": [dict(snapshot(COPY)["DBSnapshots"][0],
                                                                     KmsKeyId=KEY.replace("1111", "2222"))]},
                      {"DBSnapshotIdentifier": COPY})
    with pytest.raises(Failed) as failure:
        run(client, stub)
    assert "Delete that copy" in failure.value.args[0]["msg"]
    assert all(call.startswith("Describe") for call in calls)


def test_a_step_past_wait_timeout_fails_saying_a_second_run_resumes():
    client, stub, _calls = stubbed()
    expect_snapshot_list(stub, [])
    stub.add_response("create_db_snapshot", {"DBSnapshot": {"DBSnapshotIdentifier": SNAP, "DBSnapshotArn": SNAP_ARN}},
                      {"DBInstanceIdentifier": "db", "DBSnapshotIdentifier": SNAP, "Tags": IN_PROGRESS})
    stub.add_response("describe_db_snapshots", {"DBSnapshots": [{"DBSnapshotIdentifier": SNAP, "Status": "creating"}]},
                      {"DBSnapshotIdentifier": SNAP})
    with pytest.raises(Failed) as failure:
        run(client, stub, params={"wait_timeout": 1})  # one poll, no sleep
    assert "within wait_timeout (1 s)" in failure.value.args[0] and "resumes" in failure.value.args[0]


def test_failure_stops_the_procedure_with_a_pointer_to_the_docs():
    client = boto3.client("rds", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    expect_snapshot_list(stub, [])
    stub.add_client_error("create_db_snapshot", "SnapshotQuotaExceeded", "too many snapshots")
    with stub, pytest.raises(Failed) as failure:
        reencrypt.reencrypt(Module(), RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), instance(), desired(),
                            stamp=STAMP)
    assert "create_db_snapshot" in failure.value.args[0] and "rollback" in failure.value.args[0]
