"""What AWS does after a storage change of a DB instance: ``modifying``, then ``storage-optimization``, no further
storage change until that is over and a cooldown has passed, and the events that tell when it happened.

Rules, each from the AWS page named (never from the collection's ``instance_storage``: the lab is what the
module is checked against):

* RDS User Guide, "Viewing Amazon RDS DB instance status": ``storage-optimization`` - RDS is optimizing the
  storage after a storage change; the instance is fully operational (it serves, other modifications and reads go
  on), but no change of its storage can be requested meanwhile.
* RDS User Guide, "Managing capacity automatically with Amazon RDS storage autoscaling" (and the AWS Knowledge
  Center article "Why does my Amazon RDS DB instance have low free storage space ..."): the next storage change is
  possible once six hours have passed since the last one *or* the storage-optimization has completed, whichever is
  longer. A storage change is one of allocated storage, storage type, Provisioned IOPS and storage throughput
  (ModifyDBInstance ``AllocatedStorage``, ``StorageType``, ``Iops``, ``StorageThroughput``), whether applied at once
  (``ApplyImmediately``) or in the maintenance window (the lab's ``maintenance-window`` route): the period starts when
  AWS applies it.
* AWS's answer to a storage change meanwhile, in ModifyDBInstance (at request time, also for a change that would
  wait for the window): ``InvalidParameterCombination`` "You can't currently modify the storage of this DB
  instance because the previous storage change is being optimized." (the message AWS returns, as quoted in
  hashicorp/terraform-provider-aws#12493; botocore's model lists no dedicated fault for it).
* DescribeDBInstances ``PercentProgress``: "The progress of the storage optimization operation as a percentage."
* RDS User Guide, "Amazon RDS event categories and event messages", category ``configuration change``:
  RDS-EVENT-0018 "Applying modification to allocated storage." when AWS starts applying a storage change,
  RDS-EVENT-0017 "Finished applying modification to allocated storage." when it is applied (the instance then goes
  ``storage-optimization``).
* RDS API Reference, DescribeEvents: ``Duration`` (minutes, default 60) or ``StartTime``/``EndTime`` bound the
  events returned, ``EventCategories`` filters them; moto ignores all three, the lab honours them.
* RDS User Guide, "Amazon RDS DB instance storage", "gp3 storage": gp3 below 400 GiB reports its fixed baseline
  (3,000 IOPS, 125 MiB/s; ``engines`` answers it): an instance that becomes gp3 below 400 GiB, or gp2 / magnetic,
  keeps no Provisioned IOPS or throughput of its former storage.

The periods are lab settings, short so tests stay fast (``/_lab/storage-optimization``,
``LabClient.set_storage_optimization``; defaults from ``CSO_LAB_STORAGE_MODIFYING_SECONDS``,
``CSO_LAB_STORAGE_OPTIMIZATION_SECONDS``, ``CSO_LAB_STORAGE_COOLDOWN_SECONDS`` when the server starts, else 0.5 s,
3 s and 6 s; the cooldown stands for AWS's six hours; a lab reset restores them). The event dates are real
(wall clock), so a client that computes AWS's six hours from them sees the storage change as recent.
"""

import datetime
import os
import time

from moto.core.utils import utcnow
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBInstance, Event, RDSBackend
from moto.rds.responses import RDSResponse

from csolab.labapi import lab_route
from csolab.moto_ext import restarts  # noqa: F401 (imported first: its DBInstance.status is the one wrapped here)
from csolab.moto_ext._common import around, get, update_periods

MODIFYING = "modifying"
OPTIMIZING = "storage-optimization"
DEFAULTS = {
    "modifying_seconds": float(os.environ.get("CSO_LAB_STORAGE_MODIFYING_SECONDS", 0.5)),
    "optimization_seconds": float(os.environ.get("CSO_LAB_STORAGE_OPTIMIZATION_SECONDS", 3.0)),
    "cooldown_seconds": float(os.environ.get("CSO_LAB_STORAGE_COOLDOWN_SECONDS", 6.0)),
}
SETTINGS = dict(DEFAULTS)
REFUSAL = ("You can't currently modify the storage of this DB instance because the previous storage change is being "
           "optimized.")
# DBInstance attribute -> ModifyDBInstance parameter (snake_case, as moto hands them over)
STORAGE_SETTINGS = {"allocated_storage": "allocated_storage", "storage_type": "storage_type", "iops": "iops",
                    "storage_throughput": "storage_throughput"}
GP3_THRESHOLD_GIB = 400

Event.EVENT_MAP.setdefault("DB_INSTANCE_STORAGE_MODIFICATION_START", {
    "Categories": ["configuration change"], "Message": "Applying modification to allocated storage."})  # RDS-EVENT-0018
Event.EVENT_MAP.setdefault("DB_INSTANCE_STORAGE_MODIFICATION_FINISH", {
    "Categories": ["configuration change"], "Message": "Finished applying modification to allocated storage."})  # 0017


def _storage(instance):
    return tuple(getattr(instance, attribute, None) for attribute in STORAGE_SETTINGS)


def state_of(instance):
    return instance.__dict__.get("_lab_storage_change")


def phase(instance):
    """``modifying``, ``storage-optimization`` or None, from the instance's last storage change."""
    state = state_of(instance)
    if not state:
        return None
    now = time.monotonic()
    if now < state["modifying_until"]:
        return MODIFYING
    if now < state["optimized_at"]:
        return OPTIMIZING
    return None


def blocked(instance):
    """Whether AWS refuses a storage change now: optimizing, or within the cooldown of the last change."""
    state = state_of(instance)
    return bool(state) and time.monotonic() < max(state["optimized_at"], state["cooldown_until"])


def _percent_progress(instance):
    state = state_of(instance)
    if phase(instance) != OPTIMIZING:
        return None
    span = max(state["optimized_at"] - state["modifying_until"], 1e-6)
    return str(min(99, int(100 * (time.monotonic() - state["modifying_until"]) / span)))


def _forget_provisioned_figures(instance):
    """gp2, magnetic and gp3 below 400 GiB keep no Provisioned IOPS or throughput of the storage they replace."""
    small_gp3 = instance.storage_type == "gp3" and (instance.allocated_storage or 0) < GP3_THRESHOLD_GIB
    if instance.storage_type in ("gp2", "standard") or small_gp3:
        instance._iops = None  # engines: gp3 then reports its baseline
        instance.storage_throughput = None


def _event(instance, event_type, delay_seconds=0.0):
    instance.add_event(event_type)
    event = instance.backend.events[-1]
    event.date = utcnow() + datetime.timedelta(seconds=delay_seconds)


def start(instance):
    """AWS applies a storage change to ``instance`` now: record the periods and the two events."""
    now = time.monotonic()
    modifying_until = now + SETTINGS["modifying_seconds"]
    instance._lab_storage_change = {
        "started": now,
        "modifying_until": modifying_until,
        "optimized_at": modifying_until + SETTINGS["optimization_seconds"],
        "cooldown_until": now + SETTINGS["cooldown_seconds"],
    }
    _event(instance, "DB_INSTANCE_STORAGE_MODIFICATION_START")
    # dated when the modification is applied; DescribeEvents shows no event from the future
    _event(instance, "DB_INSTANCE_STORAGE_MODIFICATION_FINISH", SETTINGS["modifying_seconds"])


# --- ModifyDBInstance -----------------------------------------------------------------------------------------


def _asks_storage_change(instance, params):
    for attribute, parameter in STORAGE_SETTINGS.items():
        value = get(params, parameter)
        if value is not None and value != getattr(instance, attribute, None):
            return True
    return False


@around(RDSResponse, "modify_db_instance")
def _refuse_while_optimizing(original, response):
    """At request time, as AWS answers it (a change for the maintenance window is refused as well)."""
    params = response.params
    instance = response.backend.describe_db_instances(params.get("DBInstanceIdentifier"))[0]  # DBInstanceNotFound
    if blocked(instance) and _asks_storage_change(instance, params):
        raise RDSClientError("InvalidParameterCombination", REFUSAL)
    return original(response)


@around(RDSBackend, "modify_db_instance")
def _modify_db_instance(original, backend, db_instance_identifier, db_kwargs):
    """Whatever applies a storage change now (ApplyImmediately, the window) starts its periods: what ``pending``
    deferred has not changed the instance yet."""
    instance = backend.describe_db_instances(db_instance_identifier)[0]
    before = _storage(instance)
    result = original(backend, db_instance_identifier, db_kwargs)
    if _storage(result) != before:
        _forget_provisioned_figures(result)
        start(result)
    return result


# --- DescribeDBInstances: status and progress -----------------------------------------------------------------

_STATUS = DBInstance.status  # restarts' property: a restart (rebooting) and creation come first


def _status(self):
    status = _STATUS.fget(self)
    if status != "available":
        return status
    return phase(self) or status


DBInstance.status = property(_status, _STATUS.fset)
DBInstance.percent_progress = property(_percent_progress)


# --- DescribeEvents -------------------------------------------------------------------------------------------


def _utc(moment):
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _window(kwargs, now):
    end = _utc(get(kwargs, "end_time")) if get(kwargs, "end_time") else now
    if get(kwargs, "start_time"):
        return _utc(get(kwargs, "start_time")), end
    return end - datetime.timedelta(minutes=int(get(kwargs, "duration", 60))), end


@around(RDSBackend, "describe_events")
def _describe_events(original, backend, source_identifier=None, source_type=None, **kwargs):
    events = original(backend, source_identifier=source_identifier, source_type=source_type, **kwargs)
    start_at, end_at = _window(kwargs, utcnow())
    categories = set(get(kwargs, "event_categories", []))
    return [event for event in events
            if start_at <= _utc(event.date) <= end_at and (not categories or categories & set(event.event_categories))]


# --- lab route ------------------------------------------------------------------------------------------------


@lab_route("storage-optimization")
def _storage_optimization(payload):
    """Set the periods: ``{"modifying_seconds": 0.5, "optimization_seconds": 3, "cooldown_seconds": 6}``;
    ``{"reset": true}`` restores the defaults (a lab reset does); ``{}`` reads them."""
    return update_periods(SETTINGS, DEFAULTS, payload)
