"""Pending modifications, parameter apply status, and pending maintenance actions.

AWS defers some ``modify_db_instance`` changes to the maintenance window unless
``ApplyImmediately=True`` (then they, and everything already pending, apply at once); others
always apply at once. Deferred changes show in ``PendingModifiedValues``. The lab route
``maintenance-window`` plays the window. A new parameter group, or a static parameter change,
leaves the instance ``pending-reboot`` until ``reboot_db_instance``; a dynamic change is
``applying`` for a moment, then ``in-sync``.
"""

import datetime
import time

from moto.rds.exceptions import DBParameterGroupNotFoundError, RDSClientError
from moto.rds.models import DBInstance, RDSBackend
from moto.core.responses import ActionResult

from csolab.labapi import lab_route
from csolab.moto_ext import catalogue
from csolab.moto_ext.engines import ensure_default_parameter_group
from csolab.moto_ext._common import around, created_rds_backends, get, rds_action

APPLYING_SECONDS = 1.0

# modify_db_instance argument -> (PendingModifiedValues key, DBInstance attribute holding the current value)
DEFERRED = {
    "db_instance_class": ("DBInstanceClass", "db_instance_class"),
    "allocated_storage": ("AllocatedStorage", "allocated_storage"),
    "multi_az": ("MultiAZ", "multi_az"),
    "engine_version": ("EngineVersion", "engine_version"),
    "license_model": ("LicenseModel", "license_model"),
    "iops": ("Iops", "iops"),
    "storage_throughput": ("StorageThroughput", "storage_throughput"),
    "storage_type": ("StorageType", "storage_type"),
    "ca_certificate_identifier": ("CACertificateIdentifier", "ca_certificate_identifier"),
    "db_subnet_group_name": ("DBSubnetGroupName", "db_subnet_group_name"),
    "enable_iam_database_authentication": ("IAMDatabaseAuthenticationEnabled", "enable_iam_database_authentication"),
    "new_db_instance_identifier": ("DBInstanceIdentifier", "db_instance_identifier"),
    "backup_retention_period": ("BackupRetentionPeriod", "backup_retention_period"),
}
ARGUMENT_FOR = {pending_key: argument for argument, (pending_key, _attr) in DEFERRED.items()}


def pending_of(instance):
    if "_lab_pending" not in instance.__dict__:
        instance._lab_pending = {}
    return instance._lab_pending


def _defers(argument, instance, value):
    """Whether AWS waits for the maintenance window with this change (ApplyImmediately=False)."""
    if argument == "backup_retention_period":
        # Only turning backups on or off waits; other retention changes apply at once.
        return (instance.backup_retention_period == 0) != (value == 0)
    return True


def _split_deferred(instance, db_kwargs):
    """Move deferred changes out of ``db_kwargs``; drop no-op changes. Returns the deferred ones."""
    deferred = {}
    for argument, (pending_key, attribute) in DEFERRED.items():
        value = db_kwargs.get(argument)
        if value is None:
            continue
        if value == getattr(instance, attribute, None):
            del db_kwargs[argument]
            pending_of(instance).pop(pending_key, None)  # asking for the current value cancels a pending change
        elif _defers(argument, instance, value):
            deferred[pending_key] = value
            del db_kwargs[argument]
    return deferred


@around(RDSBackend, "modify_db_instance")
def _modify_db_instance(original, backend, db_instance_identifier, db_kwargs):
    instance = backend.describe_db_instances(db_instance_identifier)[0]
    pending = pending_of(instance)
    new_group = get(db_kwargs, "db_parameter_group_name")
    if new_group:
        _ensure_default_group(backend, instance, new_group)
    applying_now = bool(db_kwargs.get("apply_immediately"))
    if applying_now:
        # AWS applies what was already pending together with this request.
        for pending_key, value in list(pending.items()):
            db_kwargs.setdefault(ARGUMENT_FOR[pending_key], value)
        for argument in list(db_kwargs):
            if argument in DEFERRED and db_kwargs[argument] is not None:
                _pending_key, attribute = DEFERRED[argument]
                if db_kwargs[argument] == getattr(instance, attribute, None):
                    del db_kwargs[argument]
    else:
        pending.update(_split_deferred(instance, db_kwargs))
    old_group = instance.db_parameter_groups()[0].name
    result = original(backend, db_instance_identifier, db_kwargs)
    if applying_now:
        pending.clear()
    if new_group and new_group.lower() != old_group.lower():
        set_parameter_apply_status(instance, "pending-reboot")
    return result


def _ensure_default_group(backend, instance, name):
    ensure_default_parameter_group(backend, name)
    if name not in backend.db_parameter_groups and not instance.is_default_parameter_group(name):
        raise DBParameterGroupNotFoundError(name)


def apply_pending(backend, instance):
    """Apply the instance's pending modifications (the maintenance window). Returns what was applied."""
    pending = dict(pending_of(instance))
    if not pending:
        return {}
    arguments = {ARGUMENT_FOR[key]: value for key, value in pending.items()}
    arguments["apply_immediately"] = True
    RDSBackend.modify_db_instance(backend, instance.db_instance_identifier, arguments)
    # These changes restart the instance, which also applies pending-reboot parameters.
    set_parameter_apply_status(instance, "in-sync")
    return pending


def _pending_modified_values(self):
    return dict(pending_of(self))


DBInstance.pending_modified_values = property(_pending_modified_values)


# --- Parameter apply status ---------------------------------------------------------------------

def set_parameter_apply_status(instance, status):
    instance._lab_parameter_apply_status = status
    instance._lab_applying_until = time.monotonic() + APPLYING_SECONDS if status == "applying" else 0


def parameter_apply_status(instance):
    status = instance.__dict__.get("_lab_parameter_apply_status", "in-sync")
    if status == "applying" and time.monotonic() >= instance._lab_applying_until:
        status = instance._lab_parameter_apply_status = "in-sync"
    return status


def _db_parameter_group_status_list(self):
    return [{"DBParameterGroupName": group.name, "ParameterApplyStatus": parameter_apply_status(self)}
            for group in self.db_parameter_groups()]


DBInstance.db_parameter_group_status_list = property(_db_parameter_group_status_list)


def _needs_reboot(family, parameter):
    spec = catalogue.parameter_spec(family, parameter["ParameterName"])
    static = spec is not None and spec["ApplyType"] == "static"
    return static or parameter.get("ApplyMethod") == "pending-reboot"


@around(RDSBackend, "modify_db_parameter_group")
def _modify_db_parameter_group(original, backend, db_parameter_group_name, db_parameter_group_parameters):
    group = backend.db_parameter_groups.get(db_parameter_group_name)
    parameters = list(db_parameter_group_parameters)
    before = {name: dict(value) for name, value in group.parameters.items()} if group else {}
    result = original(backend, db_parameter_group_name, parameters)
    changed = [p for p in parameters
               if before.get(p["ParameterName"], {}).get("ParameterValue") != p.get("ParameterValue")]
    if changed:
        status = "pending-reboot" if any(_needs_reboot(result.family, p) for p in changed) else "applying"
        for instance in backend.databases.values():
            if instance.db_parameter_groups()[0].name == result.name and parameter_apply_status(instance) != "pending-reboot":
                set_parameter_apply_status(instance, status)
    return result


@around(RDSBackend, "reboot_db_instance")
def _reboot_db_instance(original, backend, db_instance_identifier, *args, **kwargs):
    instance = original(backend, db_instance_identifier, *args, **kwargs)
    set_parameter_apply_status(instance, "in-sync")
    return instance


# --- Pending maintenance actions ----------------------------------------------------------------

def maintenance_actions_of(instance):
    """Lab-added actions plus the CA rotation AWS schedules for an instance on an expired CA."""
    actions = dict(instance.__dict__.get("_lab_maintenance", {}))
    valid_till = catalogue.CERTIFICATE_AUTHORITIES.get(instance.ca_certificate_identifier, (None, None))[1]
    if valid_till and valid_till < datetime.datetime.now(catalogue.UTC):
        actions.setdefault("ca-certificate-rotation", {"Action": "ca-certificate-rotation",
                                                       "Description": "Certificate rotation"})
    return actions


def _matches(instance, filters):
    wanted = filters.get("db-instance-id")
    return not wanted or instance.db_instance_identifier in wanted or instance.db_instance_arn in wanted


@rds_action
def describe_pending_maintenance_actions(self):
    resource = self.params.get("ResourceIdentifier")
    filters = {f["Name"]: f["Values"] for f in self.params.get("Filters", [])}
    instances = list(self.backend.databases.values())
    if resource:
        instances = [i for i in instances if i.db_instance_arn == resource]
        if not instances:
            raise RDSClientError("ResourceNotFoundFault", f"The specified resource ARN {resource} is not found.")
    result = []
    for instance in instances:
        actions = maintenance_actions_of(instance)
        if actions and _matches(instance, filters):
            result.append({"ResourceIdentifier": instance.db_instance_arn,
                           "PendingMaintenanceActionDetails": list(actions.values())})
    return ActionResult({"PendingMaintenanceActions": result})


@rds_action
def apply_pending_maintenance_action(self):
    arn, action, opt_in = (self.params.get(k) for k in ("ResourceIdentifier", "ApplyAction", "OptInType"))
    instance = next((i for i in self.backend.databases.values() if i.db_instance_arn == arn), None)
    if instance is None:
        raise RDSClientError("ResourceNotFoundFault", f"The specified resource ARN {arn} is not found.")
    actions = maintenance_actions_of(instance)
    if action not in actions:
        raise RDSClientError("InvalidParameterValue", f"The pending maintenance action {action} is not available for {arn}.")
    if opt_in == "immediate":
        _apply_maintenance_action(self.backend, instance, action)
        actions = maintenance_actions_of(instance)
    else:
        status = "next-maintenance" if opt_in == "next-maintenance" else None
        stored = instance.__dict__.setdefault("_lab_maintenance", {})
        stored[action] = dict(actions[action], **({"OptInStatus": status} if status else {}))
        if not status:
            stored[action].pop("OptInStatus", None)
        actions = maintenance_actions_of(instance)
    return ActionResult({"ResourcePendingMaintenanceActions": {
        "ResourceIdentifier": arn, "PendingMaintenanceActionDetails": list(actions.values())}})


def _apply_maintenance_action(backend, instance, action):
    instance.__dict__.get("_lab_maintenance", {}).pop(action, None)
    if action == "ca-certificate-rotation":
        RDSBackend.modify_db_instance(backend, instance.db_instance_identifier,
                                      {"ca_certificate_identifier": catalogue.DEFAULT_CA, "apply_immediately": True})


# --- Lab routes ---------------------------------------------------------------------------------

def _instances(identifier):
    for backend in created_rds_backends():
        for instance in list(backend.databases.values()):
            if identifier in (None, instance.db_instance_identifier, instance.db_instance_arn):
                yield backend, instance


@lab_route("maintenance-window")
def _maintenance_window(payload):
    """Apply pending modifications and maintenance actions, as the maintenance window would."""
    identifier = payload.get("db_instance_identifier")
    applied = {}
    for backend, instance in _instances(identifier):
        name = instance.db_instance_identifier
        modifications = apply_pending(backend, instance)
        actions = sorted(maintenance_actions_of(instance))
        for action in actions:
            _apply_maintenance_action(backend, instance, action)
        if modifications or actions:
            applied[f"{backend.region_name}/{name}"] = {"pending_modified_values": modifications,
                                                        "maintenance_actions": actions}
    return {"applied": applied}


@lab_route("pending-maintenance")
def _add_pending_maintenance(payload):
    """Schedule a maintenance action (e.g. ``system-update``) on an instance, as AWS would."""
    action = payload.get("action", "system-update")
    description = payload.get("description", "New Operating System update is available")
    found = list(_instances(payload["db_instance_identifier"]))
    if not found:
        raise KeyError(f"no DB instance {payload['db_instance_identifier']!r}")
    for _backend, instance in found:
        instance.__dict__.setdefault("_lab_maintenance", {})[action] = {"Action": action, "Description": description}
    return {"scheduled": action}
