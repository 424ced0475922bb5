"""The instance waits: how often they poll (counted DescribeDBInstances calls and the pauses the waiter asked
for, never wall time), and that a wait after a change cannot end on the answer from before it."""

import boto3
import botocore.waiter
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_wait
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import waiter_config


class Failed(Exception):
    pass


class Module:
    def __init__(self, wait_timeout=3600):
        self.params = {"wait_timeout": wait_timeout}

    def fail_json_aws(self, exception, msg=None, **kwargs):
        raise Failed(msg, str(exception))


@pytest.fixture
def pauses(monkeypatch):
    """The waiter's sleeps, recorded instead of slept."""
    asked = []
    monkeypatch.setattr(botocore.waiter.time, "sleep", asked.append)
    return asked


@pytest.fixture
def rds():
    client = boto3.client("rds", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    calls = []
    client.meta.events.register_first("before-parameter-build.*.*", lambda model, **_: calls.append(model.name))
    stub.activate()
    return RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), stub, calls


def answer(stub, status, **fields):
    instance = dict({"DBInstanceIdentifier": "db", "DBInstanceStatus": status}, **fields)
    stub.add_response("describe_db_instances", {"DBInstances": [instance]}, {"DBInstanceIdentifier": "db"})


OLD_CA, NEW_CA = "rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1"
ROTATION = {"CACertificateIdentifier": NEW_CA, "ApplyImmediately": True}


def test_a_restart_is_waited_for_every_5_seconds(rds, pauses):
    client, stub, calls = rds
    answer(stub, "available", CACertificateIdentifier=OLD_CA)  # before the change shows: not the end
    answer(stub, "modifying", CACertificateIdentifier=NEW_CA)
    answer(stub, "rebooting", CACertificateIdentifier=NEW_CA)
    answer(stub, "available", CACertificateIdentifier=NEW_CA)
    instance_wait.wait_applied(Module(), client, "db", ROTATION)
    stub.assert_no_pending_responses()
    assert calls == ["DescribeDBInstances"] * 4
    assert pauses == [5, 5, 5]  # amazon.aws's wait_for_instance_status asks for 60 s each


def test_the_answer_from_before_the_change_never_ends_the_wait(rds, pauses):
    """Right after ModifyDBInstance AWS may still answer 'available' with the change only pending."""
    client, stub, calls = rds
    answer(stub, "available", CACertificateIdentifier=OLD_CA, PendingModifiedValues={"CACertificateIdentifier": NEW_CA})
    answer(stub, "available", CACertificateIdentifier=NEW_CA, PendingModifiedValues={"DBInstanceClass": "db.r5.large"})
    answer(stub, "available", CACertificateIdentifier=NEW_CA, PendingModifiedValues={})
    instance_wait.wait_applied(Module(), client, "db", ROTATION)
    stub.assert_no_pending_responses()
    assert len(calls) == 3 and pauses == [5, 5]


def test_a_deferred_change_only_waits_for_available(rds, pauses):
    client, stub, calls = rds
    answer(stub, "available", CACertificateIdentifier=OLD_CA, PendingModifiedValues={"CACertificateIdentifier": NEW_CA})
    instance_wait.wait_applied(Module(), client, "db", dict(ROTATION, ApplyImmediately=False))
    assert len(calls) == 1 and pauses == []


def test_a_reboot_is_over_once_no_parameter_group_is_pending_reboot(rds, pauses):
    client, stub, calls = rds
    groups = lambda status: [{"DBParameterGroupName": "db-mysql80", "ParameterApplyStatus": status}]  # noqa: E731
    answer(stub, "available", DBParameterGroups=groups("pending-reboot"))  # the reboot has not begun
    answer(stub, "rebooting", DBParameterGroups=groups("pending-reboot"))
    answer(stub, "available", DBParameterGroups=groups("in-sync"))
    instance_wait.wait_rebooted(Module(), client, "db")
    stub.assert_no_pending_responses()
    assert len(calls) == 3 and pauses == [5, 5]


def test_a_renamed_instance_is_waited_for_until_it_is_found(rds, pauses):
    client, stub, calls = rds
    stub.add_client_error("describe_db_instances", "DBInstanceNotFound", http_status_code=404)
    answer(stub, "available")
    instance_wait.wait_available(Module(), client, "db")
    assert len(calls) == 2 and pauses == [5]


def test_the_wait_gives_up_after_wait_timeout_saying_what_to_do(rds, pauses):
    client, stub, calls = rds
    for _ in range(3):
        answer(stub, "rebooting", CACertificateIdentifier=NEW_CA)
    with pytest.raises(Failed) as failure:
        instance_wait.wait_applied(Module(wait_timeout=15), client, "db", ROTATION)
    assert len(calls) == 3 and pauses == [5, 5]  # 15 s: three polls 5 s apart
    message = failure.value.args[0]
    assert "within wait_timeout (15 s; last status: rebooting)" in message and "run the task again" in message


def test_a_failed_instance_ends_the_wait_at_once(rds, pauses):
    client, stub, calls = rds
    answer(stub, "incompatible-parameters", CACertificateIdentifier=NEW_CA)
    with pytest.raises(Failed):
        instance_wait.wait_applied(Module(), client, "db", ROTATION)
    assert len(calls) == 1 and pauses == []


@pytest.mark.parametrize("timeout, pause, expected", [
    (14400, 30, {"Delay": 30, "MaxAttempts": 480}),
    (45, 30, {"Delay": 30, "MaxAttempts": 2}),
    (1, 30, {"Delay": 1, "MaxAttempts": 1}),
    (3600, 5, {"Delay": 5, "MaxAttempts": 720}),
    (12, 5, {"Delay": 5, "MaxAttempts": 3}),
])
def test_waiter_config_spreads_the_timeout_over_polls(timeout, pause, expected):
    assert waiter_config(timeout, pause=pause) == expected


def test_a_storage_change_is_applied_once_it_shows_even_while_storage_is_optimized(rds, pauses):
    client, stub, calls = rds
    growth = {"AllocatedStorage": 200, "ApplyImmediately": True}
    answer(stub, "available", AllocatedStorage=100, PendingModifiedValues={"AllocatedStorage": 200})  # not begun
    answer(stub, "storage-optimization", AllocatedStorage=100)  # an earlier optimization, without the change
    answer(stub, "storage-optimization", AllocatedStorage=200)
    instance_wait.wait_applied(Module(), client, "db", growth)
    stub.assert_no_pending_responses()
    assert len(calls) == 3 and pauses == [5, 5]


def test_the_storage_optimization_is_waited_for_every_15_seconds_until_available(rds, pauses):
    client, stub, calls = rds
    answer(stub, "storage-optimization", AllocatedStorage=200, PercentProgress="10")
    answer(stub, "storage-optimization", AllocatedStorage=200, PercentProgress="90")
    answer(stub, "available", AllocatedStorage=200)
    instance_wait.wait_storage_optimized(Module(), client, "db", {"AllocatedStorage": 200, "ApplyImmediately": True})
    stub.assert_no_pending_responses()
    assert len(calls) == 3 and pauses == [15, 15]


def test_iops_zero_for_magnetic_storage_is_not_a_value_to_wait_for(rds, pauses):
    client, stub, calls = rds
    answer(stub, "storage-optimization", StorageType="standard")  # magnetic reports no Iops
    instance_wait.wait_applied(Module(), client, "db", {"StorageType": "standard", "Iops": 0, "ApplyImmediately": True})
    assert len(calls) == 1 and pauses == []


def test_a_promotion_is_not_over_while_the_instance_still_names_its_source(rds, pauses):
    client, stub, calls = rds
    source = "arn:aws:rds:eu-west-2:123456789012:db:db"
    answer(stub, "available", ReadReplicaSourceDBInstanceIdentifier=source)  # the answer from before the promotion
    answer(stub, "modifying", ReadReplicaSourceDBInstanceIdentifier=source)
    answer(stub, "rebooting")
    answer(stub, "available")
    instance_wait.wait_promoted(Module(), client, "db")
    assert calls == ["DescribeDBInstances"] * 4 and pauses == [5, 5, 5]
    stub.assert_no_pending_responses()
