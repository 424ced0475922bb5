"""rds_replica_promotion against stubbed clients: the exact promote and tag calls and the wait, nothing in check mode
or on a second run, what the result says about an instance that was never a replica, every refusal before any write."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.modules import rds_replica_promotion as module_under_test
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SOURCE_ARN = f"arn:aws:rds:eu-west-2:{ACCOUNT}:db:db"
ARN = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:db-dr"
TAG = "cso-rds-hardening:promoted-from"


def make_module(params, check_mode=False):
    return StubbedModule(module_under_test.ARGUMENT_SPEC, dict({"db_instance_identifier": "db-dr"}, **params),
                         check_mode, region=REGION)


def instance(**overrides):
    found = {"DBInstanceIdentifier": "db-dr", "DBInstanceArn": ARN, "DBInstanceStatus": "available", "Engine": "mysql",
             "BackupRetentionPeriod": 0, "PreferredBackupWindow": "22:00-22:30",
             "PreferredMaintenanceWindow": "sun:04:00-sun:05:00", "ReadReplicaSourceDBInstanceIdentifier": SOURCE_ARN,
             "ReadReplicaDBInstanceIdentifiers": [], "TagList": [{"Key": "Role", "Value": "dr"}]}
    found.update(overrides)
    return {name: value for name, value in found.items() if value is not None}


def promoted(**overrides):
    return instance(**dict({"ReadReplicaSourceDBInstanceIdentifier": None, "BackupRetentionPeriod": 7,
                            "TagList": [{"Key": "Role", "Value": "dr"}, {"Key": TAG, "Value": SOURCE_ARN}]}, **overrides))


def expect_describe(module, found):
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [found] if found else []},
                                    {"DBInstanceIdentifier": "db-dr"})


def run(module):
    try:
        outcome = Exited(module_under_test.run(module))
    except Failed as failed:
        outcome = failed
    module.assert_all_calls_made()  # the Stubber also refuses any call it was not told about
    return outcome


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr("botocore.waiter.time.sleep", slept.append)
    return slept


def test_check_mode_plans_the_promotion_with_one_read():
    module = make_module({"backup_retention_period": 7, "preferred_backup_window": "02:00-02:30"}, check_mode=True)
    expect_describe(module, instance())
    result = run(module).result
    assert (result["changed"], result["promotion"], result["promoted_from"]) == (True, "promoted", SOURCE_ARN)
    steps = [(e["attribute"], e["impact"], e["before"], e["after"], e["apply"]) for e in result["plan"]]
    assert steps == [
        ("read_replica_source_db_instance_identifier", "restart", SOURCE_ARN, None, "immediately"),
        ("backup_retention_period", "none", 0, 7, "immediately"),
        ("preferred_backup_window", "none", "22:00-22:30", "02:00-02:30", "immediately"),
        ("tags", "none", {"Role": "dr"}, {"Role": "dr", TAG: SOURCE_ARN}, "immediately"),
    ]
    assert result["plan"][0]["what"] == f"promote read replica db-dr of {SOURCE_ARN} to a standalone DB instance"
    assert "RDS reboots db-dr before it is available again" in result["plan"][0]["effect"]
    assert result["diff"]["before"]["read_replica_source_db_instance_identifier"] == SOURCE_ARN
    assert result["diff"]["after"]["backup_retention_period"] == 7


def test_promotes_tags_and_waits_until_standalone(sleeps):
    module = make_module({"backup_retention_period": 7, "preferred_backup_window": "02:00-02:30"})
    expect_describe(module, instance())
    rds = module.stub("rds")
    rds.add_response("promote_read_replica", {"DBInstance": instance(DBInstanceStatus="modifying")},
                     {"DBInstanceIdentifier": "db-dr", "BackupRetentionPeriod": 7, "PreferredBackupWindow": "02:00-02:30"})
    rds.add_response("add_tags_to_resource", {}, {"ResourceName": ARN, "Tags": [{"Key": TAG, "Value": SOURCE_ARN}]})
    expect_describe(module, instance())  # right after the call AWS may still answer: available, with the source
    expect_describe(module, promoted(DBInstanceStatus="rebooting"))
    expect_describe(module, promoted())  # the waiter's success
    expect_describe(module, promoted())  # the result
    result = run(module).result
    assert (result["changed"], result["promotion"], result["promoted_from"]) == (True, "promoted", SOURCE_ARN)
    assert sleeps == [5, 5]  # the promotion waiter's 5-s polls, not amazon.aws's 60 s
    assert result["instance"]["backup_retention_period"] == 7 and result["instance"]["tags"][TAG] == SOURCE_ARN


def test_without_backup_options_aws_defaults_apply_and_the_plan_says_so(sleeps):
    module = make_module({"wait": False})
    expect_describe(module, instance())
    rds = module.stub("rds")
    rds.add_response("promote_read_replica", {"DBInstance": instance()}, {"DBInstanceIdentifier": "db-dr"})
    rds.add_response("add_tags_to_resource", {}, {"ResourceName": ARN, "Tags": [{"Key": TAG, "Value": SOURCE_ARN}]})
    expect_describe(module, instance(DBInstanceStatus="modifying"))  # the result, without waiting
    result = run(module).result
    retention = next(e for e in result["plan"] if e["attribute"] == "backup_retention_period")
    assert (retention["before"], retention["after"]) == (0, 1)  # PromoteReadReplica's default
    assert "preferred_backup_window" not in {e["attribute"] for e in result["plan"]}
    assert sleeps == []


def test_a_busy_replica_is_waited_for_before_the_promotion(sleeps):
    module = make_module({"backup_retention_period": 7})
    expect_describe(module, instance(DBInstanceStatus="backing-up"))
    expect_describe(module, instance())  # available: AWS promotes only then
    rds = module.stub("rds")
    rds.add_response("promote_read_replica", {"DBInstance": instance()},
                     {"DBInstanceIdentifier": "db-dr", "BackupRetentionPeriod": 7})
    rds.add_response("add_tags_to_resource", {}, {"ResourceName": ARN, "Tags": [{"Key": TAG, "Value": SOURCE_ARN}]})
    expect_describe(module, promoted())
    expect_describe(module, promoted())
    assert run(module).result["changed"] is True


def test_second_run_finds_the_promoted_instance_and_calls_nothing():
    module = make_module({"backup_retention_period": 7})
    expect_describe(module, promoted(ReadReplicaDBInstanceIdentifiers=[f"arn:aws:rds:eu-west-2:{ACCOUNT}:db:back"]))
    result = run(module).result
    assert (result["changed"], result["plan"], result["promotion"], result["promoted_from"]) == (
        False, [], "already-promoted", SOURCE_ARN)


def test_an_instance_that_never_was_a_replica_is_left_alone_and_named_so():
    module = make_module({"backup_retention_period": 7})
    expect_describe(module, instance(ReadReplicaSourceDBInstanceIdentifier=None, BackupRetentionPeriod=7))
    result = run(module).result
    assert (result["changed"], result["plan"], result["promotion"], result["promoted_from"]) == (
        False, [], "not-a-replica", None)


def test_a_promotion_started_without_waiting_is_waited_for_not_repeated(sleeps):
    module = make_module({})
    expect_describe(module, instance(DBInstanceStatus="modifying", TagList=[{"Key": TAG, "Value": SOURCE_ARN}]))
    expect_describe(module, promoted(DBInstanceStatus="rebooting"))
    expect_describe(module, promoted())
    expect_describe(module, promoted())
    result = run(module).result
    assert (result["changed"], result["promotion"], result["plan"]) == (False, "promoted", [])
    assert sleeps == [5]


def test_check_mode_of_a_promoted_instance_plans_nothing():
    module = make_module({}, check_mode=True)
    expect_describe(module, promoted())
    result = run(module).result
    assert (result["changed"], result["plan"], result["promotion"]) == (False, [], "already-promoted")


def test_a_source_with_replicas_is_refused_with_the_replica_to_name():
    module = make_module({})
    expect_describe(module, instance(ReadReplicaSourceDBInstanceIdentifier=None, BackupRetentionPeriod=7,
                                     ReadReplicaDBInstanceIdentifiers=[ARN]))
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert f"DB instance db-dr is not a read replica: it is the source of {ARN}" in outcome.result["msg"]
    assert "name one of those replicas in db_instance_identifier" in outcome.result["msg"]


def test_a_missing_instance_is_refused():
    module = make_module({})
    expect_describe(module, None)
    outcome = run(module)
    assert isinstance(outcome, Failed) and f"DB instance db-dr does not exist in {REGION}" in outcome.result["msg"]


@pytest.mark.parametrize("params, message", [
    ({"backup_retention_period": 36}, "backup_retention_period must be 0 to 35 days (got 36)"),
    ({"backup_retention_period": -1}, "backup_retention_period must be 0 to 35 days"),
    ({"preferred_backup_window": "2:00-2:30"}, "preferred_backup_window must be hh24:mi-hh24:mi in UTC"),
    ({"preferred_backup_window": "02:00-02:15"}, "must be at least 30 minutes long"),
    ({"wait_timeout": 0}, "wait_timeout must be a positive number of seconds"),
])
def test_options_refused_before_any_client(params, message):
    module = make_module(params)
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"], outcome.result
    assert module.clients == {}


@pytest.mark.parametrize("params, found, message", [
    ({"backup_retention_period": 0}, instance(ReadReplicaDBInstanceIdentifiers=["db-dr-2"]),
     "backup_retention_period cannot be 0: db-dr is the source of db-dr-2"),
    ({"preferred_backup_window": "04:00-04:30"}, instance(),
     "preferred_backup_window 04:00-04:30 overlaps db-dr's maintenance window sun:04:00-sun:05:00"),
])
def test_what_aws_would_refuse_for_this_replica_is_refused_after_one_read(params, found, message):
    module = make_module(params)
    expect_describe(module, found)
    outcome = run(module)
    assert isinstance(outcome, Failed) and message in outcome.result["msg"], outcome.result


def test_retention_zero_is_accepted_for_a_replica_without_replicas():
    module = make_module({"backup_retention_period": 0}, check_mode=True)
    expect_describe(module, instance())
    result = run(module).result
    assert "backup_retention_period" not in {e["attribute"] for e in result["plan"]}  # 0 already
