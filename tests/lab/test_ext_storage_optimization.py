"""Contract: what AWS does after a storage change, through boto3 (no data plane): ``modifying``, then
``storage-optimization`` with its progress, AWS's refusal of another storage change until the optimization and the
cooldown (AWS's six hours) are over, the storage events and DescribeEvents' window, gp3's figures after a change.

The lab's periods are set short here; times are measured around the calls (monotonic clock)."""

import datetime
import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"  # seeded: gp3, 50 GiB, autoscaling up to 1000 GiB
MODIFYING, OPTIMIZATION, COOLDOWN = 0.3, 1.0, 2.5
REFUSAL = ("You can't currently modify the storage of this DB instance because the previous storage change is being "
           "optimized.")
APPLYING = "Applying modification to allocated storage."
FINISHED = "Finished applying modification to allocated storage."


@pytest.fixture
def rds(lab):
    lab.reset()
    lab.set_storage_optimization(modifying_seconds=MODIFYING, optimization_seconds=OPTIMIZATION,
                                 cooldown_seconds=COOLDOWN)
    yield lab.boto3("rds")
    lab.api("storage-optimization", {"reset": True})


def _instance(rds, identifier=DB):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _statuses_until_available(rds, started, timeout=20):
    """[(seconds since ``started``, status, PercentProgress)] polled every 0.05 s until ``available``."""
    seen = []
    while True:
        instance = _instance(rds)
        seen.append((time.monotonic() - started, instance["DBInstanceStatus"], instance.get("PercentProgress")))
        if instance["DBInstanceStatus"] == "available":
            return seen
        assert time.monotonic() - started < timeout, seen[-1]
        time.sleep(0.05)


def _refusal(call, **kwargs):
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return refused.value.response["Error"]


def _grow(rds, size, **extra):
    return rds.modify_db_instance(DBInstanceIdentifier=DB, AllocatedStorage=size, ApplyImmediately=True,
                                  **extra)["DBInstance"]


def test_a_storage_change_is_modifying_then_storage_optimization_then_available(rds):
    started = time.monotonic()
    answered = _grow(rds, 100)
    seen = _statuses_until_available(rds, started)

    assert answered["DBInstanceStatus"] == "modifying"
    phases = [status for _, status, _ in seen]
    assert phases == sorted(phases, key=["modifying", "storage-optimization", "available"].index), phases
    optimizing = [(at, progress) for at, status, progress in seen if status == "storage-optimization"]
    assert optimizing, seen
    assert MODIFYING - 0.1 <= optimizing[0][0] <= MODIFYING + 0.5
    assert all(progress is not None and 0 <= int(progress) <= 99 for _, progress in optimizing)
    available_at = seen[-1][0]
    print(f"storage-optimization from {optimizing[0][0]:.2f} s, available at {available_at:.2f} s "
          f"(set: {MODIFYING} s + {OPTIMIZATION} s)")
    assert MODIFYING + OPTIMIZATION <= available_at <= MODIFYING + OPTIMIZATION + 0.5
    instance = _instance(rds)
    assert instance["AllocatedStorage"] == 100 and "PercentProgress" not in instance


def test_another_storage_change_meanwhile_is_refused_with_awss_error_other_changes_go_on(rds):
    _grow(rds, 100)

    for change in ({"AllocatedStorage": 200, "ApplyImmediately": True},
                   {"AllocatedStorage": 200},  # for the maintenance window: refused at request time too
                   {"StorageType": "io1", "AllocatedStorage": 100, "Iops": 3000, "ApplyImmediately": True},
                   {"StorageType": "gp2"}):
        error = _refusal(rds.modify_db_instance, DBInstanceIdentifier=DB, **change)
        assert (error["Code"], error["Message"]) == ("InvalidParameterCombination", REFUSAL), change

    other = rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=True, ApplyImmediately=True)["DBInstance"]
    assert other["DeletionProtection"] is True
    instance = _instance(rds)
    assert (instance["AllocatedStorage"], instance["StorageType"], instance.get("PendingModifiedValues", {})) == (
        100, "gp3", {})
    rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=False, ApplyImmediately=True)


def test_the_cooldown_outlasts_the_optimization(rds):
    started = time.monotonic()
    _grow(rds, 100)
    _statuses_until_available(rds, started)
    assert time.monotonic() - started < COOLDOWN

    error = _refusal(rds.modify_db_instance, DBInstanceIdentifier=DB, AllocatedStorage=200, ApplyImmediately=True)
    assert error["Code"] == "InvalidParameterCombination"

    time.sleep(max(0.0, COOLDOWN - (time.monotonic() - started)) + 0.1)
    assert _grow(rds, 200)["DBInstanceStatus"] == "modifying"


def test_a_deferred_storage_change_starts_optimizing_when_the_window_applies_it(rds, lab):
    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, AllocatedStorage=100)["DBInstance"]
    assert modified["DBInstanceStatus"] == "available"
    assert modified["PendingModifiedValues"] == {"AllocatedStorage": 100}
    assert _events(rds) == []

    lab.reach_maintenance_window(DB)

    instance = _instance(rds)
    assert instance["AllocatedStorage"] == 100
    assert instance["DBInstanceStatus"] in ("modifying", "storage-optimization")
    assert [event["Message"] for event in _events(rds)] == [APPLYING]
    # the window's own change is no request: nothing refused it; a new request now is refused
    assert _refusal(rds.modify_db_instance, DBInstanceIdentifier=DB, AllocatedStorage=200)["Message"] == REFUSAL


def _events(rds, **window):
    query = dict({"SourceIdentifier": DB, "SourceType": "db-instance", "Duration": 360}, **window)
    events = rds.describe_events(**query)["Events"]
    return [event for event in events if "allocated storage" in event["Message"]]


def test_the_storage_events_tell_when_the_change_happened_and_describe_events_honours_its_window(rds):
    before = datetime.datetime.now(datetime.timezone.utc)
    _grow(rds, 100)
    assert [event["Message"] for event in _events(rds)] == [APPLYING]  # not finished while modifying
    time.sleep(MODIFYING + 0.1)
    after = datetime.datetime.now(datetime.timezone.utc)

    events = _events(rds)
    assert [event["Message"] for event in events] == [APPLYING, FINISHED]
    assert all(event["EventCategories"] == ["configuration change"] for event in events)
    slack = datetime.timedelta(seconds=1)
    assert before - slack <= events[0]["Date"] <= events[1]["Date"] <= after + slack
    assert [event["Message"] for event in _events(rds, Duration=60)] == [APPLYING, FINISHED]  # the default, too
    assert _events(rds, EventCategories=["backup"]) == []
    later = rds.describe_events(SourceIdentifier=DB, SourceType="db-instance",
                                StartTime=after + datetime.timedelta(seconds=2))["Events"]
    assert [event for event in later if "allocated storage" in event["Message"]] == []
    earlier = rds.describe_events(SourceIdentifier=DB, SourceType="db-instance", StartTime=before - slack,
                                  EndTime=after + slack)["Events"]
    assert [event["Message"] for event in earlier if "allocated storage" in event["Message"]] == [APPLYING, FINISHED]


def test_gp3_reports_its_figures_after_a_storage_change(rds):
    rds.create_db_instance(DBInstanceIdentifier="ext-io1", Engine="mysql", EngineVersion="8.0.42",
                           DBInstanceClass="db.t3.micro", StorageType="io1", AllocatedStorage=100, Iops=3000,
                           MasterUsername="admin", MasterUserPassword="lab-password-1",
                           DBSubnetGroupName="cso-db-private")

    moved = rds.modify_db_instance(DBInstanceIdentifier="ext-io1", StorageType="gp3", ApplyImmediately=True)["DBInstance"]
    grown = _grow(rds, 500)

    assert (moved["StorageType"], moved["Iops"], moved["StorageThroughput"]) == ("gp3", 3000, 125)  # not io1's IOPS
    assert (grown["AllocatedStorage"], grown["Iops"], grown["StorageThroughput"]) == (500, 12000, 500)


def test_gp3_to_io1_provisions_the_iops_asked_even_when_they_equal_gp3s_baseline(rds):
    assert (_instance(rds)["StorageType"], _instance(rds)["Iops"]) == ("gp3", 3000)  # below 400 GiB: the baseline

    changed = rds.modify_db_instance(DBInstanceIdentifier=DB, StorageType="io1", AllocatedStorage=100, Iops=3000,
                                     ApplyImmediately=True)["DBInstance"]

    assert (changed["StorageType"], changed["AllocatedStorage"], changed.get("Iops")) == ("io1", 100, 3000)
    _statuses_until_available(rds, time.monotonic())
    assert (_instance(rds)["StorageType"], _instance(rds)["Iops"]) == ("io1", 3000)
