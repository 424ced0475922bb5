# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The storage of an RDS for MySQL, MariaDB or PostgreSQL instance: what a task asks for, AWS's rules for it,
the ModifyDBInstance parameters that get there, and when AWS lets the storage change again. Pure: no AWS call.

The four storage attributes (``storage_type``, ``allocated_storage``, ``iops``, ``storage_throughput``) are
resolved together into a *target*: what the instance has once the task ran. ``iops`` and ``storage_throughput``
are None in a target where the storage type does not let them be set (gp2, standard, gp3 below 400 GiB, whose
figures AWS fixes): the module then neither plans nor sends them.

Each rule names the AWS page it comes from. The three engines the module manages share these figures.
"""

from __future__ import annotations

import datetime
import math
import re

STORAGE_ATTRIBUTES = ("storage_type", "allocated_storage", "iops", "storage_throughput")
PROVISIONED_IOPS_TYPES = ("io1", "io2")
MAGNETIC = "standard"
OPTIMIZING = "storage-optimization"

# RDS API Reference, CreateDBInstance "AllocatedStorage" (RDS for MySQL; MariaDB and PostgreSQL have the same):
# gp2/gp3 20-65,536 GiB, io1/io2 100-65,536 GiB, magnetic 5-3,072 GiB.
SIZE_RANGES = {"gp2": (20, 65536), "gp3": (20, 65536), "io1": (100, 65536), "io2": (100, 65536), MAGNETIC: (5, 3072)}
# RDS User Guide, "Amazon RDS DB instance storage", "Provisioned IOPS SSD storage" (io1 and io2 Block Express tables,
# Db2/MariaDB/MySQL/PostgreSQL): 1,000-256,000 IOPS.
PROVISIONED_IOPS_RANGE = (1000, 256000)
# IOPS per GiB of storage. io1: RDS API Reference, CreateDBInstance "Iops" ("a multiple between .5 and 50 of the
# storage amount" for MariaDB, MySQL and PostgreSQL). io2: the same lower bound; up to 1,000 IOPS per GiB (RDS User
# Guide, "io2 Block Express storage"; AWS Database Blog, "Optimize Amazon RDS performance with io2 Block Express").
IOPS_PER_GIB = {"io1": (0.5, 50), "io2": (0.5, 1000)}
# RDS User Guide, "Amazon RDS DB instance storage", "gp3 storage" (MariaDB, MySQL, PostgreSQL): below 400 GiB a
# fixed baseline of 3,000 IOPS and 125 MiB/s that cannot be set (AWS answers "You can't specify IOPS or storage
# throughput for engine mysql and a storage size less than 400"); from 400 GiB a baseline of 12,000 IOPS and
# 500 MiB/s, provisioned up to 64,000 IOPS and 4,000 MiB/s.
GP3_THRESHOLD_GIB = 400
GP3_FIXED_BASELINE = {"iops": 3000, "storage_throughput": 125}
GP3_BASELINE = {"iops": 12000, "storage_throughput": 500}
GP3_IOPS_RANGE = (12000, 64000)
GP3_THROUGHPUT_RANGE = (500, 4000)
# RDS API Reference, ValidStorageOptions "StorageThroughputToIopsRatio" (0-0.25): at most 0.25 MiB/s per IOPS.
GP3_MAX_THROUGHPUT_PER_IOPS = 0.25
# RDS API Reference, ModifyDBInstance "AllocatedStorage": an increase must be at least 10 % (a smaller one is rounded
# up by AWS, so the instance would not get the size the task says).
MIN_GROWTH_PERCENT = 10
# RDS User Guide, "Managing capacity automatically with Amazon RDS storage autoscaling": the maximum storage
# threshold must be at least 10 % more than the allocated storage.
MIN_CEILING_PERCENT = 10
# RDS User Guide, "Managing capacity automatically with Amazon RDS storage autoscaling" and AWS Knowledge Center,
# "Why does my Amazon RDS DB instance have low free storage space ...": after a storage change the instance is in
# storage-optimization; no further storage change until six hours have passed since the last one or the
# optimization has completed, whichever is longer.
STORAGE_CHANGE_COOLDOWN = datetime.timedelta(hours=6)
# RDS User Guide, "Amazon RDS event categories and event messages": RDS-EVENT-0018 "Applying modification to
# allocated storage.", RDS-EVENT-0017 "Finished applying modification to allocated storage." (and the
# "autoscaling-initiated" ones of storage autoscaling).
STORAGE_EVENT_MESSAGE = re.compile(r"modification to allocated storage", re.IGNORECASE)


def percent_more(value, percent):
    """``value`` plus ``percent`` %, rounded up (integer arithmetic: 50 + 10 % is 55, not 55.000000000000007)."""
    return -(-value * (100 + percent) // 100)


def iops_settable(storage_type, size):
    """Whether the task may set IOPS (and, on gp3, throughput) for this storage: io1, io2, gp3 from 400 GiB."""
    if storage_type in PROVISIONED_IOPS_TYPES:
        return True
    return storage_type == "gp3" and size is not None and size >= GP3_THRESHOLD_GIB


def _carried_over(current, storage_type):
    """The provisioned figures of the instance that stay with ``storage_type`` (io1 <-> io2, gp3 that stays gp3)."""
    if not iops_settable(current.get("storage_type"), current.get("allocated_storage")):
        return {}
    both_provisioned = current["storage_type"] in PROVISIONED_IOPS_TYPES and storage_type in PROVISIONED_IOPS_TYPES
    if both_provisioned or current["storage_type"] == storage_type == "gp3":
        return {"iops": current.get("iops"), "storage_throughput": current.get("storage_throughput")}
    return {}


def target(current, desired):
    """The storage the instance has once the task ran (``current``: None for a new instance).

    None in ``desired`` keeps what the instance has. Where IOPS can be set and the task does not say, the instance
    keeps its figures, or gets gp3's baseline when it becomes gp3 of 400 GiB or more; a move to io1/io2 needs iops
    (``errors`` says so).
    """
    current = current or {}
    storage_type = desired.get("storage_type") or current.get("storage_type")
    size = desired.get("allocated_storage") or current.get("allocated_storage")
    result = {"storage_type": storage_type, "allocated_storage": size, "iops": None, "storage_throughput": None}
    if not iops_settable(storage_type, size):
        return result
    kept = _carried_over(current, storage_type)
    result["iops"] = desired.get("iops") or kept.get("iops")
    if storage_type == "gp3":
        result["iops"] = result["iops"] or GP3_BASELINE["iops"]
        result["storage_throughput"] = (desired.get("storage_throughput") or kept.get("storage_throughput")
                                        or GP3_BASELINE["storage_throughput"])
    return result


def of(desired):
    """The storage attributes of a desired state (a target once ``with_target`` resolved it)."""
    return {attribute: desired.get(attribute) for attribute in STORAGE_ATTRIBUTES}


def with_target(current, desired):
    """``desired`` with its storage attributes resolved against the instance (``current``: None for a new one)."""
    return dict(desired, **target(current, desired))


def optimizing_entries(plan):
    """The entries of ``plan`` whose change puts the instance into storage-optimization."""
    return [entry for entry in plan if entry.get("storage_optimization")]


def changed_attributes(current, wanted):
    """The storage attributes ``wanted`` (a target) changes on the instance, in ``STORAGE_ATTRIBUTES`` order."""
    current = current or {}
    changed = []
    for attribute in STORAGE_ATTRIBUTES:
        value, now = wanted.get(attribute), current.get(attribute)
        if value is None:
            continue
        if attribute == "allocated_storage":
            if now is None or value > now:  # storage only grows (errors refuses a smaller size)
                changed.append(attribute)
        elif value != now:
            changed.append(attribute)
    return changed


def _requested_errors(desired, wanted):
    """iops / storage_throughput given for storage whose figures cannot be set (reported even when nothing changes)."""
    errors = []
    storage_type, size = wanted["storage_type"], wanted["allocated_storage"]
    iops, throughput = desired.get("iops"), desired.get("storage_throughput")
    small_gp3 = storage_type == "gp3" and not iops_settable(storage_type, size)
    if small_gp3 and ((iops and iops != GP3_FIXED_BASELINE["iops"])
                      or (throughput and throughput != GP3_FIXED_BASELINE["storage_throughput"])):
        errors.append(
            f"gp3 storage below {GP3_THRESHOLD_GIB} GiB ({size} GiB here) has a fixed baseline of "
            f"{GP3_FIXED_BASELINE['iops']:,} IOPS and {GP3_FIXED_BASELINE['storage_throughput']} MiB/s that AWS does not "
            f"let you set. Leave iops and storage_throughput unset, or set allocated_storage to {GP3_THRESHOLD_GIB} or "
            f"more to provision {GP3_IOPS_RANGE[0]:,}-{GP3_IOPS_RANGE[1]:,} IOPS (or use io1/io2).")
    if iops and storage_type in ("gp2", MAGNETIC):
        errors.append(
            f"iops applies to io1, io2 and gp3 storage, not {storage_type} (whose IOPS follow its size). Leave iops "
            "unset, or set storage_type to io1, io2 or gp3.")
    if throughput and storage_type != "gp3":
        errors.append(
            f"storage_throughput applies to gp3 storage only, not {storage_type}. Leave it unset, or set "
            "storage_type to gp3.")
    return errors


def _size_errors(current, wanted):
    storage_type, size = wanted["storage_type"], wanted["allocated_storage"]
    errors = []
    low, high = SIZE_RANGES.get(storage_type, (None, None))
    if size is not None and low is not None and not low <= size <= high:
        errors.append(f"allocated_storage {size} GiB is out of range for {storage_type} storage: use {low}-{high:,} GiB.")
    now = (current or {}).get("allocated_storage")
    if now and size and now < size < percent_more(now, MIN_GROWTH_PERCENT):
        errors.append(
            f"allocated_storage can grow from {now} GiB by at least {MIN_GROWTH_PERCENT} % only (AWS rounds a smaller "
            f"increase up): set {percent_more(now, MIN_GROWTH_PERCENT)} GiB or more, or keep {now}.")
    return errors


def _ceiling_errors(current, desired, wanted):
    """The autoscaling ceiling must stay 10 % above the storage (only checked when the storage or ceiling changes)."""
    ceiling = desired.get("max_allocated_storage") or (current or {}).get("max_allocated_storage")
    size = wanted["allocated_storage"]
    if not ceiling or not size or ceiling >= percent_more(size, MIN_CEILING_PERCENT):
        return []
    return [f"max_allocated_storage {ceiling} GiB must be at least {MIN_CEILING_PERCENT} % more than allocated_storage "
            f"{size} GiB: set max_allocated_storage to {percent_more(size, MIN_CEILING_PERCENT)} or more (or 0 to turn "
            "storage autoscaling off)."]


def _provisioned_errors(wanted, changing_type):
    storage_type, size, iops = wanted["storage_type"], wanted["allocated_storage"], wanted["iops"]
    if iops is None:
        how = f"moving to {storage_type}" if changing_type else f"{storage_type} storage"
        return [f"iops is required for {how}: set {PROVISIONED_IOPS_RANGE[0]:,}-{PROVISIONED_IOPS_RANGE[1]:,} IOPS, "
                f"{IOPS_PER_GIB[storage_type][0]:g} to {IOPS_PER_GIB[storage_type][1]:g} per GiB of allocated_storage."]
    errors = []
    low, high = PROVISIONED_IOPS_RANGE
    if not low <= iops <= high:
        errors.append(f"iops {iops:,} is out of range for {storage_type}: use {low:,}-{high:,}.")
    ratio_low, ratio_high = IOPS_PER_GIB[storage_type]
    if size and not ratio_low * size <= iops <= ratio_high * size:
        errors.append(
            f"iops {iops:,} for {size} GiB of {storage_type} is {iops / size:g} IOPS per GiB; AWS allows "
            f"{ratio_low:g} to {ratio_high:g}. Use {max(low, math.ceil(ratio_low * size)):,}-"
            f"{min(high, math.floor(ratio_high * size)):,} IOPS, or change allocated_storage.")
    return errors


def _gp3_errors(wanted):
    iops, throughput = wanted["iops"], wanted["storage_throughput"]
    errors = []
    low, high = GP3_IOPS_RANGE
    if not low <= iops <= high:
        errors.append(f"iops {iops:,} is out of range for gp3 storage of {GP3_THRESHOLD_GIB} GiB or more: use "
                      f"{low:,}-{high:,} (the baseline is {GP3_BASELINE['iops']:,}).")
    low, high = GP3_THROUGHPUT_RANGE
    if not low <= throughput <= high:
        errors.append(f"storage_throughput {throughput} MiB/s is out of range for gp3 storage of {GP3_THRESHOLD_GIB} GiB "
                      f"or more: use {low}-{high:,} (the baseline is {GP3_BASELINE['storage_throughput']}).")
    elif throughput > GP3_MAX_THROUGHPUT_PER_IOPS * iops:
        errors.append(
            f"storage_throughput {throughput} MiB/s needs at least {math.ceil(throughput / GP3_MAX_THROUGHPUT_PER_IOPS):,} "
            f"IOPS on gp3 (at most {GP3_MAX_THROUGHPUT_PER_IOPS:g} MiB/s per IOPS; iops is {iops:,}): raise iops or "
            "lower storage_throughput.")
    return errors


def errors(current, desired):
    """Every way the storage the task asks for breaks AWS's rules, as messages that say what to do.

    ``current`` is the instance's storage (``instance_plan.current_state``), None for a new instance. The figures of
    a storage that does not change are not judged (AWS accepted them); iops / storage_throughput the storage type
    cannot take are refused whatever changes.
    """
    wanted = target(current, desired)
    found = _requested_errors(desired, wanted)
    now = (current or {}).get("allocated_storage")
    if now and desired.get("allocated_storage") and desired["allocated_storage"] < now:
        return found + [f"allocated_storage cannot shrink from {now} to {desired['allocated_storage']} GiB; "
                        "keep it at least the current size."]
    changed = changed_attributes(current, wanted)
    ceiling_changes = desired.get("max_allocated_storage") not in (None, (current or {}).get("max_allocated_storage"))
    if current is not None and not changed and not ceiling_changes:
        return found
    if current is None or changed:
        found += _size_errors(current, wanted)
        if wanted["storage_type"] in PROVISIONED_IOPS_TYPES:
            found += _provisioned_errors(wanted, "storage_type" in changed)
        elif wanted["iops"] is not None:  # gp3 from 400 GiB
            found += _gp3_errors(wanted)
    return found + _ceiling_errors(current, desired, wanted)


def modify_parameters(current, wanted, planned):
    """ModifyDBInstance's storage parameters for the ``planned`` attributes (``wanted``: the target).

    RDS API Reference, ModifyDBInstance: raising AllocatedStorage on gp3/io1/io2 needs Iops (the current value will
    do), raising Iops needs AllocatedStorage, and StorageType io1/io2/gp3 needs Iops; yet gp3 below 400 GiB takes
    neither Iops nor StorageThroughput (AWS refuses them), and a move from Provisioned IOPS to magnetic sends Iops 0.
    """
    planned = [attribute for attribute in planned if attribute in STORAGE_ATTRIBUTES]
    if not planned:
        return {}
    parameters = {}
    if "storage_type" in planned:
        parameters["StorageType"] = wanted["storage_type"]
    if "allocated_storage" in planned:
        parameters["AllocatedStorage"] = wanted["allocated_storage"]
    if iops_settable(wanted["storage_type"], wanted["allocated_storage"]):
        parameters["AllocatedStorage"] = wanted["allocated_storage"]
        parameters["Iops"] = wanted["iops"]
        if wanted["storage_type"] == "gp3" and "storage_throughput" in planned:
            parameters["StorageThroughput"] = wanted["storage_throughput"]
    elif wanted["storage_type"] == MAGNETIC and (current or {}).get("storage_type") in PROVISIONED_IOPS_TYPES:
        parameters["Iops"] = 0
    return parameters


def performance(wanted):
    """The target's IOPS and throughput in words, for the plan."""
    storage_type, size = wanted["storage_type"], wanted["allocated_storage"]
    if storage_type == "gp3" and not iops_settable(storage_type, size):
        return (f"gp3 below {GP3_THRESHOLD_GIB} GiB runs at its fixed baseline of {GP3_FIXED_BASELINE['iops']:,} IOPS "
                f"and {GP3_FIXED_BASELINE['storage_throughput']} MiB/s")
    if storage_type == "gp3":
        return f"gp3 with {wanted['iops']:,} IOPS and {wanted['storage_throughput']:,} MiB/s"
    if storage_type in PROVISIONED_IOPS_TYPES:
        return f"{storage_type} with {wanted['iops']:,} provisioned IOPS"
    if storage_type == "gp2":
        return "gp2, whose baseline is 3 IOPS per GiB (at least 100)"
    return "magnetic storage"


def effect(attribute, current, wanted):
    """The ``effect`` of a planned storage change: no outage, but a storage-optimization that blocks the next one."""
    # AWS: RDS User Guide, "Settings for DB instances" (storage type to or from magnetic: a brief outage) and
    # ModifyDBInstance "StorageType" (that migration can take several days; no other RDS operation meanwhile).
    magnetic = attribute == "storage_type" and MAGNETIC in ((current or {}).get("storage_type"), wanted["storage_type"])
    start = ("The database restarts briefly when the move to or from magnetic storage starts; the migration can take "
             "up to several days, with no other RDS operation on the instance meanwhile. Then" if magnetic else
             "No outage. Once applied,")
    return (f"{start} AWS optimizes the storage (status storage-optimization, minutes to more than 24 hours; the "
            "instance stays available, I/O may be slower): no further storage change is possible until the optimization "
            f"has finished and six hours have passed. Result: {performance(wanted)}.")


def last_storage_change(events):
    """The time of the latest storage modification among DescribeEvents ``events`` (None when there is none)."""
    dates = [event["Date"] for event in events or [] if STORAGE_EVENT_MESSAGE.search(event.get("Message") or "")]
    return max(dates) if dates else None


def _as_utc(moment):
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def change_refusal(instance, events, now, current):
    """Why AWS would refuse a storage change now (a message that says when to retry), or None.

    ``instance``: DescribeDBInstances' answer; ``events``: the instance's DescribeEvents of the last six hours;
    ``current``: its storage (``instance_plan.current_state``), named in the message so the task can keep it.
    """
    identifier = instance["DBInstanceIdentifier"]
    last = last_storage_change(events)
    retry_at = _as_utc(last) + STORAGE_CHANGE_COOLDOWN if last is not None else None
    keep = ", ".join(f"{name} {current.get(name)}" for name in STORAGE_ATTRIBUTES if current.get(name) is not None)
    alternative = (f"or keep the storage as it is ({keep}) to apply the other changes now. Nothing was changed.")
    when = f"{retry_at:%Y-%m-%d %H:%M} UTC" if retry_at else None
    if instance.get("DBInstanceStatus") == OPTIMIZING:
        progress = instance.get("PercentProgress")
        done = f", {progress} % done" if progress not in (None, "") else ""
        after = f" and not before {when} (six hours after the last storage change)" if when else ""
        return (f"{identifier} is in storage-optimization after its last storage change{done}: AWS refuses another "
                f"storage change until the optimization has finished{after}. Run the task again once the status is "
                f"available{' and that time has passed' if when else ''}, {alternative}")
    if retry_at is not None and _as_utc(now) < retry_at:
        return (f"The last storage change of {identifier} was at {_as_utc(last):%Y-%m-%d %H:%M} UTC: AWS allows the next "
                f"one six hours later. Run the task again after {when}, {alternative}")
    return None
