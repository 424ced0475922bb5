"""Unit tests of rds_backup_replication and rds_restore_verification with botocore's Stubber (no lab)."""

import datetime
import json
from contextlib import ExitStack

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args
from botocore.stub import ANY, Stubber

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.cso.rds_hardening.plugins.module_utils import backup_replication as replication
from ansible_collections.cso.rds_hardening.plugins.modules import rds_backup_replication, rds_restore_verification

ACCOUNT = "123456789012"
SOURCE_REGION = "eu-west-2"
DR_REGION = "eu-west-1"
SOURCE_ARN = f"arn:aws:rds:{SOURCE_REGION}:{ACCOUNT}:db:cso-db"
BACKUPS_ARN = f"arn:aws:rds:{DR_REGION}:{ACCOUNT}:auto-backup:ab-abcdefghijklmnopqrstuvwxyz"
DR_KEY_ARN = f"arn:aws:kms:{DR_REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
NOW = datetime.datetime.now(datetime.timezone.utc)


class Clients:
    """Stubbed boto3 clients handed to AnsibleAWSModule.client, one per (service, region)."""

    def __init__(self):
        self.stubbers = {}
        self.clients = {}
        self.calls = []  # (service, region, operation) of every call the module made, in order

    def get(self, service, region):
        key = (service, region)
        if key not in self.clients:
            client = boto3.client(service, region_name=region, aws_access_key_id="AKIATEST",
                                  aws_secret_access_key="secret")
            self.clients[key] = client
            client.meta.events.register_first(  # before the Stubber checks the parameters
                "before-parameter-build.*.*", lambda model, **_: self.calls.append((service, region, model.name)))
            self.stubbers[key] = Stubber(client)
            self.stubbers[key].activate()
        return self.clients[key]

    def stub(self, service, region):
        self.get(service, region)
        return self.stubbers[(service, region)]

    def mutating_calls(self):
        return [call for call in self.calls if not call[2].startswith(("Describe", "List", "Get"))]

    def assert_done(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def clients(monkeypatch):
    clients = Clients()

    def fake_client(module, service, retry_decorator=None, region=None, **_kwargs):
        client = clients.get(service, region or module.region)
        return RetryingBotoClientWrapper(client, retry_decorator) if retry_decorator else client

    monkeypatch.setattr(AnsibleAWSModule, "client", fake_client)
    return clients


@pytest.fixture(autouse=True)
def no_waiter_pause(monkeypatch):
    """The waiters poll without sleeping: tests count the polls (the Stubber answers each), never wall time."""
    monkeypatch.setattr(replication, "waiter_config", lambda timeout: {"Delay": 0, "MaxAttempts": 5})


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def seconds_between(earlier, later):
    return (later - earlier).total_seconds()


def run_module(module, args, check_mode=False, diff=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with ExitStack() as stack:
        stack.enter_context(patch_module_args(args))
        captured = stack.enter_context(pytest.raises(SystemExit))
        import io
        import sys
        out = io.StringIO()
        old, sys.stdout = sys.stdout, out
        try:
            module.main()
        finally:
            sys.stdout = old
    assert captured.value.code in (0, 1)
    return json.loads(out.getvalue())


def source_instance(encrypted=True, retention=7, replications=()):
    return {
        "DBInstanceIdentifier": "cso-db",
        "DBInstanceArn": SOURCE_ARN,
        "DBInstanceStatus": "available",
        "StorageEncrypted": encrypted,
        "BackupRetentionPeriod": retention,
        "LatestRestorableTime": NOW - datetime.timedelta(minutes=5),
        "DBInstanceAutomatedBackupsReplications": [{"DBInstanceAutomatedBackupsArn": arn} for arn in replications],
        "TagList": [],
    }


def replicated_backup(status="replicating", retention=7, key=DR_KEY_ARN):
    return {
        "DBInstanceArn": SOURCE_ARN,
        "DBInstanceAutomatedBackupsArn": BACKUPS_ARN,
        "Region": SOURCE_REGION,
        "DBInstanceIdentifier": "cso-db",
        "Status": status,
        "BackupRetentionPeriod": retention,
        "Encrypted": True,
        "KmsKeyId": key,
        "RestoreWindow": {"EarliestTime": NOW - datetime.timedelta(days=1), "LatestTime": NOW - datetime.timedelta(minutes=10)},
    }


def expect_source(clients, instance):
    clients.stub("rds", SOURCE_REGION).add_response(
        "describe_db_instances", {"DBInstances": [instance]}, {"DBInstanceIdentifier": "cso-db"}
    )


def expect_key(clients, arn=DR_KEY_ARN, state="Enabled", manager="CUSTOMER", key_id="alias/cso-dr",
               usage="ENCRYPT_DECRYPT", spec="SYMMETRIC_DEFAULT"):
    metadata = {"KeyId": arn.rsplit("/", 1)[-1], "Arn": arn, "KeyState": state, "KeyManager": manager}
    if usage:
        metadata["KeyUsage"] = usage
    if spec:
        metadata["KeySpec"] = spec
    clients.stub("kms", DR_REGION).add_response("describe_key", {"KeyMetadata": metadata}, {"KeyId": key_id})


def expect_backup(clients, backup):
    clients.stub("rds", DR_REGION).add_response(
        "describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": [backup]},
        {"DBInstanceAutomatedBackupsArn": BACKUPS_ARN},
    )


def expect_start_error(clients, retention, key, code="KMSKeyNotAccessibleFault"):
    clients.stub("rds", DR_REGION).add_client_error(
        "start_db_instance_automated_backups_replication", service_error_code=code,
        service_message="The specified KMS key is not accessible", http_status_code=400,
        expected_params={"SourceDBInstanceArn": SOURCE_ARN, "SourceRegion": SOURCE_REGION,
                         "BackupRetentionPeriod": retention, "KmsKeyId": key},
    )


def expect_start(clients, retention=None, key=DR_KEY_ARN):
    params = {"SourceDBInstanceArn": SOURCE_ARN, "SourceRegion": SOURCE_REGION}
    if retention is not None:
        params["BackupRetentionPeriod"] = retention
    if key is not None:
        params["KmsKeyId"] = key
    clients.stub("rds", DR_REGION).add_response(
        "start_db_instance_automated_backups_replication",
        {"DBInstanceAutomatedBackup": replicated_backup(status="pending", retention=retention or 7, key=key or "")},
        params,
    )


def expect_stop(clients):
    clients.stub("rds", DR_REGION).add_response(
        "stop_db_instance_automated_backups_replication",
        {"DBInstanceAutomatedBackup": replicated_backup(status="replicating")},
        {"SourceDBInstanceArn": SOURCE_ARN},
    )


ARGS = {"region": SOURCE_REGION, "db_instance_identifier": "cso-db", "destination_region": DR_REGION,
        "kms_key_id": "alias/cso-dr", "retention_period": 7}


def calls(result):
    """The calls of a result's plan, checking each item has the shape every module returns."""
    assert all({"what", "impact", "before", "after", "call"} <= set(item) for item in result["plan"])
    return [item["call"] for item in result["plan"]]


def test_start_on_encrypted_source_waits_and_returns_the_replicated_backup(clients):
    expect_source(clients, source_instance())
    expect_key(clients)
    expect_start(clients, retention=7)
    expect_backup(clients, replicated_backup(status="pending"))  # waiter, first poll
    expect_backup(clients, replicated_backup(status="replicating"))  # waiter, second poll
    expect_backup(clients, replicated_backup(status="replicating"))  # final read
    before = utc_now()
    result = run_module(rds_backup_replication, dict(ARGS, wait_timeout=30))
    after = utc_now()
    clients.assert_done()
    # the waiter polled until "replicating" (twice), then the module read the result once
    assert [call[2] for call in clients.calls].count("DescribeDBInstanceAutomatedBackups") == 3
    assert result["changed"] is True
    assert calls(result) == ["start_replication"]
    backup = result["replicated_backup"]
    assert backup["db_instance_automated_backups_arn"] == BACKUPS_ARN
    assert backup["region"] == DR_REGION
    assert backup["backup_retention_period"] == 7
    assert backup["encrypted"] is True and backup["kms_key_id"] == DR_KEY_ARN
    assert backup["restore_window"]["latest_time"].startswith(str((NOW - datetime.timedelta(minutes=10)).year))
    latest = NOW - datetime.timedelta(minutes=10)
    # the lag is measured against the module's clock, which ran between these two readings of ours
    assert int(seconds_between(latest, before)) <= result["replication_lag_seconds"] <= seconds_between(latest, after)


def test_second_run_is_a_no_op(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup())
    expect_key(clients)
    result = run_module(rds_backup_replication, ARGS)
    clients.assert_done()  # and the Stubber would have raised on any start/stop call
    assert result["changed"] is False
    assert calls(result) == []


def test_check_mode_reports_the_plan_and_calls_nothing_mutating(clients):
    expect_source(clients, source_instance())
    expect_key(clients)
    result = run_module(rds_backup_replication, ARGS, check_mode=True, diff=True)
    clients.assert_done()
    assert result["changed"] is True
    assert calls(result) == ["start_replication"]
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"] == {"state": "present", "backup_retention_period": 7, "kms_key_id": DR_KEY_ARN}


def test_retention_change_is_refused_without_permission(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(retention=7))
    expect_key(clients)
    result = run_module(rds_backup_replication, dict(ARGS, retention_period=14))
    clients.assert_done()
    assert result["failed"] is True
    assert "allow_replication_restart" in result["msg"]
    assert "backup_retention_period 7 -> 14" in result["msg"]
    assert "gap" in result["msg"]
    assert calls(result) == ["stop_replication", "start_replication"]


def test_retention_change_with_permission_is_stop_then_start(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(retention=7))
    expect_key(clients)
    expect_stop(clients)
    expect_backup(clients, replicated_backup(status="retained"))  # stop waiter
    expect_start(clients, retention=14)
    expect_backup(clients, replicated_backup(retention=14))  # start waiter
    expect_backup(clients, replicated_backup(retention=14))  # final read
    result = run_module(rds_backup_replication, dict(ARGS, retention_period=14, allow_replication_restart=True), diff=True)
    clients.assert_done()
    assert result["changed"] is True
    assert calls(result) == ["stop_replication", "start_replication"]
    stop, start = result["plan"]
    assert stop["what"].startswith("stop the automated backups") and "to change backup_retention_period" in stop["what"]
    assert "gap" in stop["what"]
    assert (stop["before"], stop["after"]) == ({"backup_retention_period": 7, "kms_key_id": DR_KEY_ARN}, None)
    assert start["after"] == {"backup_retention_period": 14, "kms_key_id": DR_KEY_ARN}
    assert {item["impact"] for item in result["plan"]} == {"none"}
    assert result["diff"]["before"]["backup_retention_period"] == 7
    assert result["diff"]["after"]["backup_retention_period"] == 14
    assert result["replicated_backup"]["backup_retention_period"] == 14


def test_key_change_counts_as_restart(clients):
    other_key = DR_KEY_ARN.replace("5555", "9999")
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(key=other_key))
    expect_key(clients)
    result = run_module(rds_backup_replication, ARGS)
    assert result["failed"] is True
    assert "to change kms_key_id" in result["plan"][0]["what"]


def test_absent_stops_replication(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup())
    expect_stop(clients)
    expect_backup(clients, replicated_backup(status="retained"))
    result = run_module(rds_backup_replication, {"region": SOURCE_REGION, "db_instance_identifier": "cso-db",
                                                 "destination_region": DR_REGION, "state": "absent"})
    clients.assert_done()
    assert result["changed"] is True
    assert calls(result) == ["stop_replication"]
    assert result["replicated_backup"] is None


def test_absent_when_only_a_retained_backup_remains_is_a_no_op(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(status="retained"))
    result = run_module(rds_backup_replication, {"region": SOURCE_REGION, "db_instance_identifier": "cso-db",
                                                 "destination_region": DR_REGION, "state": "absent"})
    clients.assert_done()
    assert result["changed"] is False


def test_unencrypted_source_needs_no_key(clients):
    expect_source(clients, source_instance(encrypted=False))
    expect_start(clients, retention=None, key=None)
    expect_backup(clients, dict(replicated_backup(status="pending"), Encrypted=False, KmsKeyId=""))  # final read, no wait
    result = run_module(rds_backup_replication, {"region": SOURCE_REGION, "db_instance_identifier": "cso-db",
                                                 "destination_region": DR_REGION, "wait": False})
    clients.assert_done()
    assert result.get("changed") is True, result


@pytest.mark.parametrize(
    "args, source, key, message",
    [
        ({"kms_key_id": None}, source_instance(), None, "needs kms_key_id"),
        ({"kms_key_id": DR_KEY_ARN.replace(DR_REGION, SOURCE_REGION)}, source_instance(), None, "must be in eu-west-1"),
        ({}, source_instance(), {"manager": "AWS"}, "customer-managed key is required"),
        ({}, source_instance(), {"state": "Disabled"}, "must be Enabled"),
        ({}, source_instance(retention=0), None, "automated backups disabled"),
    ],
)
def test_invalid_input_fails_before_any_mutating_call(clients, args, source, key, message):
    expect_source(clients, source)
    if key is not None:
        expect_key(clients, **key)
    result = run_module(rds_backup_replication, dict(ARGS, **args))
    assert result["failed"] is True
    assert message in result["msg"]


def test_missing_key_fails(clients):
    expect_source(clients, source_instance())
    clients.stub("kms", DR_REGION).add_client_error("describe_key", service_error_code="NotFoundException",
                                                    expected_params={"KeyId": "alias/cso-dr"})
    result = run_module(rds_backup_replication, ARGS)
    assert result["failed"] is True
    assert "does not exist in eu-west-1" in result["msg"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"destination_region": SOURCE_REGION}, "different region"),
        ({"destination_region": "eu-nowhere-9"}, "not an AWS region"),
        ({"retention_period": 36}, "between 1 and 35"),
    ],
)
def test_parameter_errors_need_no_aws_call(clients, args, message):
    result = run_module(rds_backup_replication, dict(ARGS, **args))
    assert result["failed"] is True
    assert message in result["msg"]
    assert clients.clients == {} or all(not s._queue for s in clients.stubbers.values())


def test_missing_source_fails(clients):
    clients.stub("rds", SOURCE_REGION).add_client_error("describe_db_instances", service_error_code="DBInstanceNotFound")
    result = run_module(rds_backup_replication, ARGS)
    assert result["failed"] is True
    assert "does not exist in eu-west-2" in result["msg"]


# --- the pure plan -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "state, current, desired, actions, restart",
    [
        ("present", None, {"backup_retention_period": 7, "kms_key_id": "k"}, ["start_replication"], False),
        ("present", {"backup_retention_period": 7, "kms_key_id": "k"}, {"backup_retention_period": None, "kms_key_id": "k"}, [], False),
        ("present", {"backup_retention_period": 7, "kms_key_id": "k"}, {"backup_retention_period": 7, "kms_key_id": "k2"},
         ["stop_replication", "start_replication"], True),
        ("absent", {"backup_retention_period": 7, "kms_key_id": "k"}, None, ["stop_replication"], False),
        ("absent", None, None, [], False),
    ],
)
def test_compute_plan(state, current, desired, actions, restart):
    plan = replication.compute_plan(state, current, desired)
    assert plan["actions"] == actions
    assert plan["restart_required"] is restart


def test_replication_arn_only_in_the_destination_region():
    instance = source_instance(replications=[BACKUPS_ARN.replace(DR_REGION, "us-east-1")])
    assert replication.replication_arn_in_region(instance, DR_REGION) is None
    assert replication.replication_arn_in_region(source_instance(replications=[BACKUPS_ARN]), DR_REGION) == BACKUPS_ARN


# --- rds_restore_verification ------------------------------------------------------------------

def restored_instance(status="available", tagged=True, protected=False):
    return {
        "DBInstanceIdentifier": "cso-db-verify",
        "DBInstanceArn": f"arn:aws:rds:{SOURCE_REGION}:{ACCOUNT}:db:cso-db-verify",
        "DBInstanceStatus": status,
        "Endpoint": {"Address": "cso-db-verify.lab.rds.amazonaws.com", "Port": 3306},
        "MasterUsername": "admin",
        "PubliclyAccessible": False,
        "DeletionProtection": protected,
        "TagList": [{"Key": "cso:restore-verification", "Value": "true"}] if tagged else [],
    }


def expect_describe(clients, identifier, instances):
    stub = clients.stub("rds", SOURCE_REGION)
    if instances is None:
        stub.add_client_error("describe_db_instances", service_error_code="DBInstanceNotFound",
                              expected_params={"DBInstanceIdentifier": identifier})
    else:
        stub.add_response("describe_db_instances", {"DBInstances": instances}, {"DBInstanceIdentifier": identifier})


RESTORE_ARGS = {"region": SOURCE_REGION, "db_instance_identifier": "cso-db-verify",
                "source_db_instance_identifier": "cso-db", "db_subnet_group_name": "cso-db-private",
                "vpc_security_group_ids": ["sg-1"], "wait_timeout": 30}


def test_restore_is_private_unprotected_tagged_and_reports_rpo_rto(clients):
    expect_describe(clients, "cso-db-verify", None)
    expect_describe(clients, "cso-db", [source_instance()])
    clients.stub("rds", SOURCE_REGION).add_response(
        "restore_db_instance_to_point_in_time",
        {"DBInstance": restored_instance(status="creating")},
        {"TargetDBInstanceIdentifier": "cso-db-verify", "SourceDBInstanceIdentifier": "cso-db",
         "UseLatestRestorableTime": True, "PubliclyAccessible": False, "DeletionProtection": False,
         "MultiAZ": False, "CopyTagsToSnapshot": False, "DBSubnetGroupName": "cso-db-private",
         "VpcSecurityGroupIds": ["sg-1"], "Tags": [{"Key": "cso:restore-verification", "Value": "true"}]},
    )
    clients.stub("rds", SOURCE_REGION).add_response("describe_db_instances", {"DBInstances": [restored_instance()]},
                                                    {"DBInstanceIdentifier": "cso-db-verify"})  # waiter
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    before = utc_now()
    result = run_module(rds_restore_verification, RESTORE_ARGS)
    after = utc_now()
    clients.assert_done()
    assert result["changed"] is True
    assert result["instance"]["endpoint_address"] == "cso-db-verify.lab.rds.amazonaws.com"
    latest = NOW - datetime.timedelta(minutes=5)  # the source's LatestRestorableTime
    assert int(seconds_between(latest, before)) <= result["rpo_seconds"] <= seconds_between(latest, after)
    assert 0 <= result["rto_seconds"] <= round(seconds_between(before, after))
    # one restore, one waiter poll that saw "available", one final read
    assert [call[2] for call in clients.calls] == [
        "DescribeDBInstances", "DescribeDBInstances", "RestoreDBInstanceToPointInTime", "DescribeDBInstances",
        "DescribeDBInstances"]
    assert result["restored_from"]["source"] == "cso-db"


def test_restore_turns_off_protection_a_restore_copied(clients):
    expect_describe(clients, "cso-db-verify", None)
    expect_describe(clients, "cso-db", [source_instance()])
    stub = clients.stub("rds", SOURCE_REGION)
    stub.add_response("restore_db_instance_to_point_in_time", {"DBInstance": restored_instance()}, None)
    stub.add_response("describe_db_instances", {"DBInstances": [restored_instance()]}, None)
    expect_describe(clients, "cso-db-verify", [restored_instance(protected=True)])
    stub.add_response("modify_db_instance", {"DBInstance": restored_instance()},
                      {"DBInstanceIdentifier": "cso-db-verify", "DeletionProtection": False, "ApplyImmediately": True})
    stub.add_response("describe_db_instances", {"DBInstances": [restored_instance()]}, None)
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    result = run_module(rds_restore_verification, RESTORE_ARGS)
    clients.assert_done()
    assert result["instance"]["deletion_protection"] is False


def test_absent_refuses_an_instance_it_did_not_create(clients):
    expect_describe(clients, "cso-db", [dict(source_instance(), TagList=[])])
    result = run_module(rds_restore_verification, {"region": SOURCE_REGION, "db_instance_identifier": "cso-db",
                                                   "state": "absent"})
    clients.assert_done()
    assert result["failed"] is True
    assert "Refusing" in result["msg"]


def test_absent_deletes_without_snapshot_and_waits(clients):
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    stub = clients.stub("rds", SOURCE_REGION)
    stub.add_response("delete_db_instance", {"DBInstance": restored_instance(status="deleting")},
                      {"DBInstanceIdentifier": "cso-db-verify", "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True})
    stub.add_response("describe_db_instances", {"DBInstances": [restored_instance(status="deleting")]}, None)
    stub.add_client_error("describe_db_instances", service_error_code="DBInstanceNotFound")
    result = run_module(rds_restore_verification, {"region": SOURCE_REGION, "db_instance_identifier": "cso-db-verify",
                                                   "state": "absent", "wait_timeout": 30})
    clients.assert_done()
    assert result["changed"] is True


def test_restore_from_replicated_backups_needs_their_region(clients):
    result = run_module(rds_restore_verification, {"region": SOURCE_REGION, "db_instance_identifier": "cso-db-verify",
                                                   "source_automated_backups_arn": BACKUPS_ARN})
    assert result["failed"] is True
    assert "set region to that region" in result["msg"]


def test_a_leftover_temporary_instance_is_refused_and_left_for_inspection(clients):
    """Before: the leftover came back unchanged, with no RPO/RTO, as if the restore had worked."""
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    result = run_module(rds_restore_verification, RESTORE_ARGS)
    clients.assert_done()  # no restore, no delete: the Stubber raises on any other call
    assert result["failed"] is True
    assert result["leftover"] == "cso-db-verify"
    assert "already exists" in result["msg"] and "state=absent" in result["msg"]
    assert "existing_instance=replace" in result["msg"]
    assert "rpo_seconds" not in result and "rto_seconds" not in result


def test_a_leftover_is_replaced_on_request_and_the_new_restore_measured(clients):
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    expect_describe(clients, "cso-db", [source_instance()])
    stub = clients.stub("rds", SOURCE_REGION)
    stub.add_response("delete_db_instance", {"DBInstance": restored_instance(status="deleting")},
                      {"DBInstanceIdentifier": "cso-db-verify", "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True})
    stub.add_client_error("describe_db_instances", service_error_code="DBInstanceNotFound")  # deleted waiter
    stub.add_response("restore_db_instance_to_point_in_time", {"DBInstance": restored_instance(status="creating")}, None)
    stub.add_response("describe_db_instances", {"DBInstances": [restored_instance()]}, None)  # available waiter
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    result = run_module(rds_restore_verification, dict(RESTORE_ARGS, existing_instance="replace"))
    clients.assert_done()
    assert result["changed"] is True and result["replaced"] == "cso-db-verify"
    assert 290 <= result["rpo_seconds"] <= 400
    assert 0 <= result["rto_seconds"] < 30


def test_check_mode_plans_the_replacement_of_a_leftover_without_deleting_it(clients):
    expect_describe(clients, "cso-db-verify", [restored_instance()])
    expect_describe(clients, "cso-db", [source_instance()])
    result = run_module(rds_restore_verification, dict(RESTORE_ARGS, existing_instance="replace"), check_mode=True)
    clients.assert_done()
    assert result["changed"] is True and result["replaced"] == "cso-db-verify"
    assert result["restored_from"]["source"] == "cso-db"


def test_an_untagged_instance_is_refused_even_with_replace(clients):
    expect_describe(clients, "cso-db-verify", [restored_instance(tagged=False)])
    result = run_module(rds_restore_verification, dict(RESTORE_ARGS, existing_instance="replace"))
    clients.assert_done()
    assert result["failed"] is True and "Refusing to touch it" in result["msg"]


# --- a restart cannot leave the DR region without backups ----------------------------------------

OTHER_KEY_ARN = DR_KEY_ARN.replace("5555", "9999")
RESTART_ARGS = dict(ARGS, retention_period=14, allow_replication_restart=True)


@pytest.mark.parametrize(
    "key, reason",
    [
        ({"spec": "RSA_2048", "usage": "ENCRYPT_DECRYPT"}, "key spec is RSA_2048"),
        ({"spec": "ECC_NIST_P256", "usage": "SIGN_VERIFY"}, "usage is SIGN_VERIFY"),
        ({"spec": "HMAC_256", "usage": "GENERATE_VERIFY_MAC"}, "not SYMMETRIC_DEFAULT"),
        ({"usage": None, "spec": None}, "key spec is None"),  # an answer that proves nothing is no proof
        ({"arn": DR_KEY_ARN.replace(DR_REGION, "us-east-1")}, "not a key of eu-west-1"),
        ({"state": "PendingDeletion"}, "must be Enabled"),
    ],
)
def test_unusable_destination_key_fails_with_zero_mutating_calls(clients, key, reason):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(retention=7))
    expect_key(clients, **key)
    result = run_module(rds_backup_replication, RESTART_ARGS)
    clients.assert_done()
    assert result["failed"] is True and reason in result["msg"]
    assert clients.calls == [("rds", SOURCE_REGION, "DescribeDBInstances"),
                             ("rds", DR_REGION, "DescribeDBInstanceAutomatedBackups"),
                             ("kms", DR_REGION, "DescribeKey")]
    assert clients.mutating_calls() == []


def test_failed_start_after_the_stop_starts_again_with_the_old_settings(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(retention=7, key=OTHER_KEY_ARN))
    expect_key(clients)
    expect_stop(clients)
    expect_backup(clients, replicated_backup(status="retained"))  # stop waiter
    expect_start_error(clients, retention=14, key=DR_KEY_ARN)  # the new settings
    expect_start(clients, retention=7, key=OTHER_KEY_ARN)  # the old settings
    expect_backup(clients, replicated_backup(retention=7, key=OTHER_KEY_ARN))  # start waiter
    result = run_module(rds_backup_replication, RESTART_ARGS)
    clients.assert_done()
    assert [call[2] for call in clients.calls] == [
        "DescribeDBInstances", "DescribeDBInstanceAutomatedBackups", "DescribeKey",
        "StopDBInstanceAutomatedBackupsReplication", "DescribeDBInstanceAutomatedBackups",
        "StartDBInstanceAutomatedBackupsReplication", "StartDBInstanceAutomatedBackupsReplication",
        "DescribeDBInstanceAutomatedBackups"]
    assert result["failed"] is True and result["previous_settings_restored"] is True
    assert "The specified KMS key is not accessible" in result["msg"]
    assert f"started again with the previous settings (retention 7, key {OTHER_KEY_ARN})" in result["msg"]
    assert "run again" in result["msg"]


def test_failed_start_and_failed_restore_say_the_dr_region_gets_no_backups(clients):
    expect_source(clients, source_instance(replications=[BACKUPS_ARN]))
    expect_backup(clients, replicated_backup(retention=7))
    expect_key(clients)
    expect_stop(clients)
    expect_backup(clients, replicated_backup(status="retained"))
    expect_start_error(clients, retention=14, key=DR_KEY_ARN)
    expect_start_error(clients, retention=7, key=DR_KEY_ARN)
    result = run_module(rds_backup_replication, RESTART_ARGS)
    clients.assert_done()
    assert [call[2] for call in clients.mutating_calls()] == [
        "StopDBInstanceAutomatedBackupsReplication", "StartDBInstanceAutomatedBackupsReplication",
        "StartDBInstanceAutomatedBackupsReplication"]
    assert result["failed"] is True and result["previous_settings_restored"] is False
    assert "receives NO new backups" in result["msg"] and "start-db-instance-automated-backups-replication" in result["msg"]


def test_a_failed_first_start_is_not_retried_with_settings_that_never_existed(clients):
    expect_source(clients, source_instance())
    expect_key(clients)
    expect_start_error(clients, retention=7, key=DR_KEY_ARN)
    result = run_module(rds_backup_replication, ARGS)
    clients.assert_done()
    assert result["failed"] is True and "previous_settings_restored" not in result
    assert [call[2] for call in clients.mutating_calls()] == ["StartDBInstanceAutomatedBackupsReplication"]


def test_a_symmetric_key_without_a_stated_usage_is_usable():
    key = {"Arn": DR_KEY_ARN, "KeyState": "Enabled", "KeySpec": "SYMMETRIC_DEFAULT"}
    assert replication.key_unusable_reasons(key, DR_REGION) == []
    assert replication.key_unusable_reasons(dict(key, KeyUsage="ENCRYPT_DECRYPT"), DR_REGION) == []
    assert replication.key_unusable_reasons(dict(key, CustomerMasterKeySpec="SYMMETRIC_DEFAULT", KeySpec=None), DR_REGION) == []
