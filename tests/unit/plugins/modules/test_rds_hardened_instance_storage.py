"""rds_hardened_instance's storage (type, size, provisioned IOPS, throughput) against stubbed clients: the exact call
sequence of a change and of the second run (zero mutating calls), check mode, refusals before any write (AWS's
rules, storage-optimization, the six hours after a storage change) and the wait for the storage-optimization."""

import datetime

from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.test_rds_hardened_instance import (  # noqa: F401 (pauses: fixture)
    Failed, base_params, expect_describe, expect_validation_reads, hardened_instance, make_module, pauses, run)

READS = ["DescribeDBInstances", "DescribeKey", "DescribeDBEngineVersions", "DescribeSecurityGroups", "GetRole"]
EVENTS_QUERY = {"SourceIdentifier": "db", "SourceType": "db-instance", "Duration": 360}


def record_calls(module):
    """Every AWS operation the module calls, in order, whatever the client (waiters and paginators included)."""
    calls = []
    for service in ("rds", "kms", "ec2", "iam"):
        module.stub(service)
        module.clients[service].meta.events.register_first(
            "before-parameter-build.*.*", lambda model, **_: calls.append(model.name))
    return calls


def mutating(calls):
    return [call for call in calls if not call.startswith(("Describe", "List", "Get"))]


def on_storage(storage_type, size, iops=None, throughput=None, **fields):
    instance = dict(hardened_instance(), StorageType=storage_type, AllocatedStorage=size, **fields)
    instance.pop("Iops", None)
    if iops:
        instance["Iops"] = iops
    if throughput:
        instance["StorageThroughput"] = throughput
    return instance


def expect_events(module, *events):
    module.stub("rds").add_response("describe_events", {"Events": list(events)}, EVENTS_QUERY)


def storage_event(message, hours_ago):
    date = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours_ago)
    return {"SourceIdentifier": "db", "SourceType": "db-instance", "Message": message,
            "EventCategories": ["configuration change"], "Date": date}


def expect_modify(module, parameters, answer):
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": answer}, dict(DBInstanceIdentifier="db",
                                                                                       **parameters))


def test_gp2_to_gp3_below_400_gib_changes_the_type_only_and_says_what_storage_optimization_blocks(pauses):
    before = on_storage("gp2", 100)
    after = on_storage("gp3", 100, 3000, 125, DBInstanceStatus="storage-optimization")
    module = make_module(base_params(apply="immediately"))
    calls = record_calls(module)
    expect_describe(module, before)
    expect_validation_reads(module)
    expect_events(module)
    expect_modify(module, {"StorageType": "gp3", "ApplyImmediately": True}, before)
    expect_describe(module, dict(before, DBInstanceStatus="modifying", PendingModifiedValues={"StorageType": "gp3"}))
    expect_describe(module, after)  # the wait ends: the change shows, storage-optimization has begun
    expect_describe(module, after)  # refresh before the reboot check
    expect_describe(module, after)  # the result
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    [entry] = outcome.result["plan"]
    assert {key: entry[key] for key in ("what", "before", "after", "impact", "apply", "storage_optimization")} == {
        "what": "storage_type", "before": "gp2", "after": "gp3", "impact": "none", "apply": "immediately",
        "storage_optimization": True}
    assert entry["effect"].startswith("No outage. Once applied, AWS optimizes the storage (status storage-optimization")
    assert "Result: gp3 below 400 GiB runs at its fixed baseline of 3,000 IOPS and 125 MiB/s." in entry["effect"]
    assert outcome.result["diff"] == {"before": {"storage_type": "gp2"}, "after": {"storage_type": "gp3"}}
    assert calls == READS + ["DescribeEvents", "ModifyDBInstance"] + ["DescribeDBInstances"] * 4
    assert pauses == [5]
    module.assert_all_calls_made()


def test_the_second_run_with_the_same_settings_plans_nothing_and_makes_no_mutating_call():
    now = on_storage("gp3", 100, 3000, 125)  # as AWS reports gp3 below 400 GiB
    module = make_module(base_params(apply="immediately", storage_type="gp3", allocated_storage=100))
    calls = record_calls(module)
    expect_describe(module, now)
    expect_validation_reads(module)
    expect_describe(module, now)  # refresh before the reboot check
    expect_describe(module, now)  # the result
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["plan"] == [] and outcome.result["changed"] is False
    assert calls == READS + ["DescribeDBInstances"] * 2  # no DescribeEvents either: no storage change planned
    assert mutating(calls) == []
    module.assert_all_calls_made()


def test_gp2_to_gp3_from_400_gib_sends_size_and_baseline_and_is_not_planned_again_while_pending():
    before = on_storage("gp2", 500)
    pending = dict(before, PendingModifiedValues={"StorageType": "gp3", "Iops": 12000, "StorageThroughput": 500})
    module = make_module(base_params())  # apply: maintenance-window
    calls = record_calls(module)
    expect_describe(module, before)
    expect_validation_reads(module)
    expect_events(module)
    expect_modify(module, {"StorageType": "gp3", "AllocatedStorage": 500, "Iops": 12000, "StorageThroughput": 500,
                           "ApplyImmediately": False}, pending)
    expect_describe(module, pending)  # the wait: deferred, the instance is usable
    expect_describe(module, pending)
    expect_describe(module, pending)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert [(e["what"], e["before"], e["after"], e["apply"]) for e in outcome.result["plan"]] == [
        ("storage_type", "gp2", "gp3", "maintenance-window"), ("iops", None, 12000, "maintenance-window"),
        ("storage_throughput", None, 500, "maintenance-window")]
    assert outcome.result["pending_modified_values"] == {"storage_type": "gp3", "iops": 12000, "storage_throughput": 500}
    assert mutating(calls) == ["ModifyDBInstance"]
    module.assert_all_calls_made()

    again = make_module(base_params())
    calls = record_calls(again)
    expect_describe(again, pending)
    expect_validation_reads(again)
    expect_describe(again, pending)
    expect_describe(again, pending)
    outcome = run(again)
    assert outcome.result["plan"] == [] and mutating(calls) == []
    again.assert_all_calls_made()


def test_growing_gp3_past_400_gib_in_check_mode_plans_the_higher_baseline_and_writes_nothing():
    module = make_module(base_params(allocated_storage=500), check_mode=True)
    calls = record_calls(module)
    expect_describe(module, on_storage("gp3", 300, 3000, 125))
    expect_validation_reads(module)
    expect_events(module)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True
    assert [(e["what"], e["before"], e["after"], e["impact"]) for e in outcome.result["plan"]] == [
        ("allocated_storage", 300, 500, "none"), ("iops", 3000, 12000, "none"), ("storage_throughput", 125, 500, "none")]
    assert all(entry["storage_optimization"] for entry in outcome.result["plan"])
    assert outcome.result["diff"]["after"] == {"allocated_storage": 500, "iops": 12000, "storage_throughput": 500}
    assert calls == READS + ["DescribeEvents"] and mutating(calls) == []
    assert module.warnings == []
    module.assert_all_calls_made()


def test_an_io1_ratio_aws_refuses_fails_before_any_write():
    module = make_module(base_params(storage_type="io1", iops=6000, apply="immediately"))
    calls = record_calls(module)
    expect_describe(module, on_storage("gp3", 100, 3000, 125))
    expect_validation_reads(module)
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert outcome.result["msg"] == ("iops 6,000 for 100 GiB of io1 is 60 IOPS per GiB; AWS allows 0.5 to 50. Use "
                                     "1,000-5,000 IOPS, or change allocated_storage.")
    assert calls == READS and mutating(calls) == []
    module.assert_all_calls_made()


def test_iops_on_gp3_below_400_gib_fails_before_any_write():
    module = make_module(base_params(iops=6000, apply="immediately"))
    calls = record_calls(module)
    expect_describe(module, on_storage("gp3", 100, 3000, 125))
    expect_validation_reads(module)
    outcome = run(module)
    assert isinstance(outcome, Failed) and "fixed baseline of 3,000 IOPS and 125 MiB/s" in outcome.result["msg"]
    assert mutating(calls) == []


def test_a_storage_change_during_storage_optimization_is_refused_before_any_write():
    optimizing = on_storage("gp3", 100, 3000, 125, DBInstanceStatus="storage-optimization", PercentProgress="40")
    module = make_module(base_params(allocated_storage=200, apply="immediately"))
    calls = record_calls(module)
    expect_describe(module, optimizing)
    expect_validation_reads(module)
    expect_events(module, storage_event("Finished applying modification to allocated storage.", 1))
    outcome = run(module)
    assert isinstance(outcome, Failed)
    message = outcome.result["msg"]
    assert message.startswith("db is in storage-optimization after its last storage change, 40 % done: AWS refuses "
                              "another storage change until the optimization has finished and not before ")
    assert ("keep the storage as it is (storage_type gp3, allocated_storage 100, iops 3000, storage_throughput 125) to "
            "apply the other changes now. Nothing was changed.") in message
    assert calls == READS + ["DescribeEvents"] and mutating(calls) == []
    module.assert_all_calls_made()


def test_within_six_hours_of_the_last_storage_change_check_mode_warns_what_a_real_run_would_refuse():
    module = make_module(base_params(allocated_storage=200), check_mode=True)
    calls = record_calls(module)
    expect_describe(module, on_storage("gp3", 100, 3000, 125))
    expect_validation_reads(module)
    last = storage_event("Finished applying modification to allocated storage.", 2)
    expect_events(module, last)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert [entry["what"] for entry in outcome.result["plan"]] == ["allocated_storage"]
    retry = last["Date"] + datetime.timedelta(hours=6)
    [warning] = module.warnings
    assert warning.startswith("A real run would fail: The last storage change of db was at ")
    assert f"Run the task again after {retry:%Y-%m-%d %H:%M} UTC" in warning
    assert mutating(calls) == []


def test_other_changes_go_ahead_during_storage_optimization_without_waiting_for_it():
    optimizing = on_storage("gp3", 100, 3000, 125, DBInstanceStatus="storage-optimization", MultiAZ=False)
    module = make_module(base_params())
    calls = record_calls(module)
    expect_describe(module, optimizing)
    expect_validation_reads(module)
    pending = dict(optimizing, PendingModifiedValues={"MultiAZ": True})
    expect_modify(module, {"MultiAZ": True, "ApplyImmediately": False}, pending)
    expect_describe(module, pending)  # usable at once: storage-optimization is not waited out
    expect_describe(module, pending)
    expect_describe(module, pending)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert calls == READS + ["ModifyDBInstance"] + ["DescribeDBInstances"] * 3  # no DescribeEvents: storage unchanged
    module.assert_all_calls_made()


def test_wait_for_storage_optimization_waits_until_the_instance_is_available_again(pauses):
    before = on_storage("gp3", 100, 3000, 125)
    module = make_module(base_params(allocated_storage=200, apply="immediately", wait_for_storage_optimization=True))
    calls = record_calls(module)
    expect_describe(module, before)
    expect_validation_reads(module)
    expect_events(module, storage_event("Finished applying modification to allocated storage.", 7))
    expect_modify(module, {"AllocatedStorage": 200, "ApplyImmediately": True}, before)
    grown = dict(before, AllocatedStorage=200)
    expect_describe(module, dict(before, DBInstanceStatus="modifying", PendingModifiedValues={"AllocatedStorage": 200}))
    expect_describe(module, dict(grown, DBInstanceStatus="storage-optimization", PercentProgress="0"))  # applied
    expect_describe(module, dict(grown, DBInstanceStatus="storage-optimization", PercentProgress="60"))
    expect_describe(module, grown)  # optimized
    expect_describe(module, grown)
    expect_describe(module, grown)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert calls == READS + ["DescribeEvents", "ModifyDBInstance"] + ["DescribeDBInstances"] * 6
    assert pauses == [5, 15]  # the optimization is polled every 15 s: it takes minutes to a day
    module.assert_all_calls_made()


def test_wait_for_storage_optimization_with_the_maintenance_window_warns_that_there_is_nothing_to_wait_for():
    module = make_module(base_params(allocated_storage=200, wait_for_storage_optimization=True), check_mode=True)
    expect_describe(module, on_storage("gp3", 100, 3000, 125))
    expect_validation_reads(module)
    expect_events(module)
    run(module)
    assert module.warnings == ["wait_for_storage_optimization has nothing to wait for with apply=maintenance-window: "
                               "the storage change and its storage-optimization happen in the next maintenance window."]


def test_a_move_off_magnetic_storage_is_a_restart_and_needs_allow_reboot():
    module = make_module(base_params(apply="immediately"))
    calls = record_calls(module)
    expect_describe(module, on_storage("standard", 100))
    expect_validation_reads(module)
    expect_events(module)
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert "Changing storage_type restarts the database. Run again with allow_reboot=true" in outcome.result["msg"]
    assert mutating(calls) == []
