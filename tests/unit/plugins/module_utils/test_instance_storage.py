"""Storage rules, targets, parameters and the storage-optimization refusal (no AWS): each AWS rule accepted at its
edge and refused just past it, with a message that says what to set."""

import datetime

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_storage as storage

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)


def current(storage_type="gp3", size=100, iops=None, throughput=None, ceiling=None):
    return {"storage_type": storage_type, "allocated_storage": size, "iops": iops, "storage_throughput": throughput,
            "max_allocated_storage": ceiling}


def wanted(storage_type="gp3", size=None, iops=None, throughput=None, ceiling=None):
    return {"storage_type": storage_type, "allocated_storage": size, "iops": iops, "storage_throughput": throughput,
            "max_allocated_storage": ceiling}


def joined(errors):
    return " | ".join(errors)


# --- sizes ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("storage_type, low, high", [
    ("gp2", 20, 65536), ("gp3", 20, 65536), ("io1", 100, 65536), ("io2", 100, 65536), ("standard", 5, 3072)])
def test_a_new_instance_takes_each_storage_types_size_range_and_nothing_outside(storage_type, low, high):
    provisioned = storage_type in ("io1", "io2")
    low_iops, high_iops = (1000, 256000) if provisioned else (None, None)
    assert storage.errors(None, wanted(storage_type, low, low_iops)) == []
    assert storage.errors(None, wanted(storage_type, high, high_iops)) == []
    for size, iops in ((low - 1, low_iops), (high + 1, high_iops)):
        assert storage.errors(None, wanted(storage_type, size, iops)) == [
            f"allocated_storage {size} GiB is out of range for {storage_type} storage: use {low}-{high:,} GiB."]


def test_storage_grows_by_at_least_ten_percent():
    assert storage.errors(current(size=50), wanted(size=55)) == []
    found = storage.errors(current(size=50), wanted(size=54))
    assert found == ["allocated_storage can grow from 50 GiB by at least 10 % only (AWS rounds a smaller increase up): "
                     "set 55 GiB or more, or keep 50."]


def test_storage_never_shrinks():
    assert storage.errors(current(size=100), wanted(size=50)) == [
        "allocated_storage cannot shrink from 100 to 50 GiB; keep it at least the current size."]


def test_the_autoscaling_ceiling_stays_ten_percent_above_the_storage_when_the_storage_changes():
    assert storage.errors(current(size=100, ceiling=1000), wanted(size=900)) == []
    found = storage.errors(current(size=100, ceiling=1000), wanted(size=910))
    assert found == ["max_allocated_storage 1000 GiB must be at least 10 % more than allocated_storage 910 GiB: set "
                     "max_allocated_storage to 1001 or more (or 0 to turn storage autoscaling off)."]
    assert storage.errors(current(size=100, ceiling=1000), wanted(size=910, ceiling=1001)) == []


# --- io1 / io2 -----------------------------------------------------------------------------------------------------

def test_io1_needs_between_half_and_fifty_iops_per_gib():
    assert storage.errors(current("gp3", 200), wanted("io1", iops=10000)) == []  # 50 per GiB
    assert storage.errors(current("gp3", 2000), wanted("io1", iops=1000)) == []  # 0.5 per GiB
    too_many = storage.errors(current("gp3", 200), wanted("io1", iops=10001))
    assert too_many == ["iops 10,001 for 200 GiB of io1 is 50.005 IOPS per GiB; AWS allows 0.5 to 50. Use 1,000-10,000 "
                        "IOPS, or change allocated_storage."]
    too_few = storage.errors(current("gp3", 2002), wanted("io1", iops=1000))
    assert "AWS allows 0.5 to 50. Use 1,001-100,100 IOPS" in joined(too_few)


def test_io2_allows_up_to_a_thousand_iops_per_gib():
    assert storage.errors(current("gp3", 100), wanted("io2", iops=100000)) == []
    assert "AWS allows 0.5 to 50" in joined(storage.errors(current("gp3", 100), wanted("io1", iops=100000)))
    assert "AWS allows 0.5 to 1000. Use 1,000-100,000 IOPS" in joined(
        storage.errors(current("gp3", 100), wanted("io2", iops=100001)))


@pytest.mark.parametrize("storage_type", ["io1", "io2"])
def test_provisioned_iops_range_is_1000_to_256000(storage_type):
    assert storage.errors(current("gp3", 2000), wanted(storage_type, iops=1000)) == []
    assert storage.errors(current("gp3", 6000), wanted(storage_type, iops=256000)) == []
    assert f"iops 999 is out of range for {storage_type}: use 1,000-256,000." in storage.errors(
        current("gp3", 200), wanted(storage_type, iops=999))
    assert f"iops 256,001 is out of range for {storage_type}: use 1,000-256,000." in storage.errors(
        current("gp3", 6000), wanted(storage_type, iops=256001))


def test_a_move_to_provisioned_iops_needs_iops_and_io1_to_io2_keeps_them():
    assert storage.errors(current("gp3", 500, 12000, 500), wanted("io1")) == [
        "iops is required for moving to io1: set 1,000-256,000 IOPS, 0.5 to 50 per GiB of allocated_storage."]
    assert storage.errors(current("io1", 500, 8000), wanted("io2")) == []
    assert storage.target(current("io1", 500, 8000), wanted("io2"))["iops"] == 8000


def test_growing_provisioned_storage_rechecks_the_ratio_with_the_iops_it_keeps():
    found = storage.errors(current("io1", 2000, 1000), wanted("io1", size=2400))
    assert "iops 1,000 for 2400 GiB of io1 is 0.416667 IOPS per GiB; AWS allows 0.5 to 50. Use 1,200-" in joined(found)


# --- gp3 -----------------------------------------------------------------------------------------------------------

def test_gp3_below_400_gib_has_a_fixed_baseline_that_cannot_be_set():
    message = ("gp3 storage below 400 GiB (100 GiB here) has a fixed baseline of 3,000 IOPS and 125 MiB/s that AWS does "
               "not let you set. Leave iops and storage_throughput unset, or set allocated_storage to 400 or more to "
               "provision 12,000-64,000 IOPS (or use io1/io2).")
    assert storage.errors(current("gp3", 100), wanted(iops=6000)) == [message]
    assert storage.errors(current("gp3", 100), wanted(throughput=250)) == [message]
    # the baseline itself, as DescribeDBInstances reports it, is no request
    assert storage.errors(current("gp3", 100, 3000, 125), wanted(iops=3000, throughput=125)) == []
    assert storage.target(current("gp3", 100, 3000, 125), wanted(iops=3000, throughput=125))["iops"] is None


def test_gp3_from_400_gib_takes_12000_to_64000_iops_and_500_to_4000_mib_s():
    assert storage.errors(current("gp3", 500, 12000, 500), wanted(iops=64000, throughput=4000)) == []
    found = storage.errors(current("gp3", 500, 12000, 500), wanted(iops=11999))
    assert found == ["iops 11,999 is out of range for gp3 storage of 400 GiB or more: use 12,000-64,000 (the baseline is "
                     "12,000)."]
    assert "iops 64,001 is out of range" in joined(storage.errors(current("gp3", 500, 12000, 500), wanted(iops=64001)))
    found = storage.errors(current("gp3", 500, 12000, 500), wanted(iops=20000, throughput=4001))
    assert found == ["storage_throughput 4001 MiB/s is out of range for gp3 storage of 400 GiB or more: use 500-4,000 "
                     "(the baseline is 500)."]
    assert "storage_throughput 499 MiB/s is out of range" in joined(
        storage.errors(current("gp3", 500, 12000, 500), wanted(throughput=499)))


def test_gp3_throughput_is_at_most_a_quarter_mib_s_per_iops():
    assert storage.errors(current("gp3", 500, 12000, 500), wanted(throughput=3000)) == []  # 12,000 x 0.25
    assert storage.errors(current("gp3", 500, 12000, 500), wanted(throughput=3001)) == [
        "storage_throughput 3001 MiB/s needs at least 12,004 IOPS on gp3 (at most 0.25 MiB/s per IOPS; iops is 12,000): "
        "raise iops or lower storage_throughput."]


def test_iops_and_throughput_on_storage_types_that_cannot_take_them_are_refused_even_when_nothing_changes():
    assert storage.errors(current("gp2", 100), wanted("gp2", iops=3000)) == [
        "iops applies to io1, io2 and gp3 storage, not gp2 (whose IOPS follow its size). Leave iops unset, or set "
        "storage_type to io1, io2 or gp3."]
    assert storage.errors(current("io1", 100, 3000), wanted("io1", throughput=500)) == [
        "storage_throughput applies to gp3 storage only, not io1. Leave it unset, or set storage_type to gp3."]


def test_storage_that_does_not_change_is_not_judged_again():
    # an io1 instance whose ratio AWS accepted at another time: the task only keeps it
    assert storage.errors(current("io1", 100, 6000), wanted("io1")) == []


# --- targets, changes and parameters -------------------------------------------------------------------------------

def plan_of(now, asked):
    target = storage.target(now, asked)
    changed = storage.changed_attributes(now, target)
    return changed, storage.modify_parameters(now, target, changed)


def test_gp2_to_gp3_below_400_gib_sends_the_type_only():
    assert plan_of(current("gp2", 100), wanted("gp3")) == (["storage_type"], {"StorageType": "gp3"})


def test_gp2_to_gp3_from_400_gib_sends_size_and_the_gp3_baseline():
    changed, parameters = plan_of(current("gp2", 500), wanted("gp3"))
    assert changed == ["storage_type", "iops", "storage_throughput"]
    assert parameters == {"StorageType": "gp3", "AllocatedStorage": 500, "Iops": 12000, "StorageThroughput": 500}


def test_gp3_growing_past_400_gib_gets_the_higher_baseline():
    changed, parameters = plan_of(current("gp3", 300, 3000, 125), wanted(size=500))
    assert changed == ["allocated_storage", "iops", "storage_throughput"]
    assert parameters == {"AllocatedStorage": 500, "Iops": 12000, "StorageThroughput": 500}


def test_growing_provisioned_storage_sends_the_iops_it_keeps():
    assert plan_of(current("gp3", 500, 16000, 1000), wanted(size=600)) == (
        ["allocated_storage"], {"AllocatedStorage": 600, "Iops": 16000})
    assert plan_of(current("io1", 200, 5000), wanted("io1", size=400)) == (
        ["allocated_storage"], {"AllocatedStorage": 400, "Iops": 5000})


def test_more_iops_sends_the_storage_size_with_them():
    assert plan_of(current("io1", 200, 5000), wanted("io1", iops=8000)) == (
        ["iops"], {"AllocatedStorage": 200, "Iops": 8000})


def test_provisioned_iops_to_magnetic_sends_iops_zero():
    assert plan_of(current("io1", 200, 5000), wanted("standard")) == (
        ["storage_type"], {"StorageType": "standard", "Iops": 0})


def test_io1_to_gp3_below_400_gib_sends_no_iops():
    assert plan_of(current("io1", 200, 5000), wanted("gp3")) == (["storage_type"], {"StorageType": "gp3"})


@pytest.mark.parametrize("now, asked", [
    (current("gp3", 100, 3000, 125), wanted("gp3")),
    (current("gp3", 100, 3000, 125), wanted("gp3", size=100, iops=3000, throughput=125)),
    (current("gp3", 500, 12000, 500), wanted("gp3", size=500)),
    (current("io1", 200, 5000), wanted("io1", iops=5000)),
    (current("gp2", 100, 300), wanted("gp2")),
])
def test_storage_as_asked_changes_nothing(now, asked):
    assert plan_of(now, asked) == ([], {})


def test_a_new_instance_gets_gp3_figures_only_from_400_gib():
    assert storage.target(None, wanted("gp3", 50)) == {
        "storage_type": "gp3", "allocated_storage": 50, "iops": None, "storage_throughput": None}
    assert storage.target(None, wanted("gp3", 400)) == {
        "storage_type": "gp3", "allocated_storage": 400, "iops": 12000, "storage_throughput": 500}


def test_the_effect_says_no_outage_and_what_storage_optimization_blocks():
    text = storage.effect("storage_type", current("gp2", 100), storage.target(current("gp2", 100), wanted("gp3")))
    assert text.startswith("No outage. Once applied, AWS optimizes the storage (status storage-optimization")
    assert "no further storage change is possible until the optimization has finished and six hours have passed" in text
    assert text.endswith("Result: gp3 below 400 GiB runs at its fixed baseline of 3,000 IOPS and 125 MiB/s.")
    magnetic_now = current("standard", 100)
    magnetic = storage.effect("storage_type", magnetic_now, storage.target(magnetic_now, wanted("gp3")))
    assert magnetic.startswith("The database restarts briefly when the move to or from magnetic storage starts")


# --- storage-optimization and the six hours --------------------------------------------------------------------------

def event(message, hours_ago):
    return {"Message": message, "Date": NOW - datetime.timedelta(hours=hours_ago), "SourceIdentifier": "db"}


def instance(status="available", **fields):
    return dict({"DBInstanceIdentifier": "db", "DBInstanceStatus": status}, **fields)


KEEP = "keep the storage as it is (storage_type gp3, allocated_storage 50, iops 3000, storage_throughput 125)"


def test_storage_optimization_refuses_and_says_until_when():
    events = [event("Finished applying modification to allocated storage.", 1)]
    message = storage.change_refusal(instance("storage-optimization", PercentProgress="40"), events, NOW,
                                     current("gp3", 50, 3000, 125))
    assert message.startswith("db is in storage-optimization after its last storage change, 40 % done: AWS refuses "
                              "another storage change until the optimization has finished and not before 2026-12-07 "
                              "17:00 UTC (six hours after the last storage change).")
    assert KEEP in message and message.endswith("Nothing was changed.")


def test_storage_optimization_without_events_still_refuses():
    message = storage.change_refusal(instance("storage-optimization"), [], NOW, current("gp3", 50, 3000, 125))
    assert "AWS refuses another storage change until the optimization has finished. Run the task again once the " \
           "status is available, or " in message


def test_a_storage_change_less_than_six_hours_ago_refuses_with_the_time_to_retry():
    events = [event("Applying modification to allocated storage.", 5.5),
              event("Finished applying modification to allocated storage.", 5)]
    message = storage.change_refusal(instance(), events, NOW, current("gp3", 50, 3000, 125))
    assert message.startswith("The last storage change of db was at 2026-12-07 07:00 UTC: AWS allows the next one six "
                              "hours later. Run the task again after 2026-12-07 13:00 UTC, or ")


def test_autoscaling_counts_as_a_storage_change():
    events = [event("Finished applying autoscaling-initiated modification to allocated storage.", 2)]
    assert "Run the task again after 2026-12-07 16:00 UTC" in storage.change_refusal(
        instance(), events, NOW, current("gp3", 50, 3000, 125))


def test_six_hours_after_the_last_storage_change_on_an_available_instance_it_may_change():
    assert storage.change_refusal(instance(), [event("Finished applying modification to allocated storage.", 6)], NOW,
                                  current()) is None
    assert storage.change_refusal(instance(), [event("Finished applying modification to DB instance class.", 1),
                                               event("Backing up DB instance", 0.5)], NOW, current()) is None
    assert storage.change_refusal(instance(), [], NOW, current()) is None
