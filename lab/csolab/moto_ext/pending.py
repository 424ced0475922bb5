"""When AWS applies a ``modify_db_instance`` change, and which changes restart the instance.

Written from AWS's documentation (the RDS User Guide pages named per rule below), not from the
collection's own rules (``plugins/module_utils/instance_plan.py``): the lab is what the module is
checked against.

* "Using the schedule modifications setting" (USER_ModifyInstance.ApplyImmediately): changes
  that wait go to the pending modifications queue (``PendingModifiedValues``) and apply in the
  next maintenance window; ``ApplyImmediately=True`` applies the request *and everything already
  pending* at once. Modifying back to the current value reverts a pending change.
* "Settings for DB instances" (USER_ModifyInstance.Settings): per setting, the "When the change
  occurs" column (immediately / with ApplyImmediately or in the window) and the "Downtime notes"
  column (which changes restart the instance). ``RULES`` below carries one row per setting the lab
  defers or restarts for; settings not listed apply at once without downtime (VPC security groups,
  deletion protection, backup window, maintenance window, copy tags, minor version upgrade flag,
  log exports, Performance Insights, monitoring, public accessibility, master password handling).
* "Working with parameter groups" / "Working with DB parameter groups": associating a new group
  changes the name at once without downtime, but its parameters apply only after a reboot
  without failover (``pending-reboot``); a static parameter change is ``pending-reboot``; a
  dynamic one applies at once (``applying``, then ``in-sync``) unless its ``ApplyMethod`` is
  ``pending-reboot``.
* "Rebooting a DB instance": a reboot applies pending-reboot parameters (``in-sync`` after it).
* "Updating applications to connect using new SSL/TLS certificates" and ModifyDBInstance
  ``CertificateRotationRestart``: a CA change restarts the instance by default and the
  certificate is not updated until the restart; without the restart, the certificate changes at
  once only where the engine version says ``SupportsCertificateRotationWithoutRestart``
  (DescribeDBEngineVersions); otherwise it waits for the next restart.

The lab route ``maintenance-window`` plays the window.
"""

import datetime
import time
from dataclasses import dataclass

from moto.rds.exceptions import DBParameterGroupNotFoundError, RDSClientError
from moto.rds.models import DBInstance, RDSBackend
from moto.core.responses import ActionResult

from csolab.labapi import lab_route
from csolab.moto_ext import catalogue, engines, restarts
from csolab.moto_ext.engines import ensure_default_parameter_group
from csolab.moto_ext._common import around, created_rds_backends, get, rds_action

APPLYING_SECONDS = 1.0
SETTINGS_PAGE = "RDS User Guide, Settings for DB instances"


def _always(_instance, _value):
    return True


def _never(_instance, _value):
    return False


def _backups_switched(instance, value):
    """Backup retention: only turning backups on (0 -> n) or off (n -> 0) waits for the window and
    causes an outage; other retention changes apply at once (also "Backup retention period")."""
    return (instance.backup_retention_period == 0) != (value == 0)


def _magnetic_involved(instance, value):
    """Storage type: the page lists a brief outage while a change from or to magnetic (``standard``)
    starts; the lab treats other storage type changes as without downtime."""
    return "standard" in (instance.storage_type, value)


@dataclass(frozen=True)
class Rule:
    pending_key: str  # the PendingModifiedValues key
    attribute: str  # the DBInstance attribute holding the current value
    waits: object  # (instance, value) -> whether it waits for the window without ApplyImmediately
    restarts: object  # (instance, value) -> whether applying it restarts the instance
    source: str


# modify_db_instance argument -> Rule
RULES = {
    "db_instance_class": Rule("DBInstanceClass", "db_instance_class", _always, _always,
                              f"{SETTINGS_PAGE}: DB instance class - window unless applied immediately; downtime occurs"),
    "engine_version": Rule("EngineVersion", "engine_version", _always, _always,
                           f"{SETTINGS_PAGE}: DB engine version - window unless applied immediately; downtime occurs"),
    "ca_certificate_identifier": Rule(
        "CACertificateIdentifier", "ca_certificate_identifier", _always, _always,
        f"{SETTINGS_PAGE}: Certificate authority - window unless applied immediately; an outage unless the engine "
        "rotates without restart (see _ca_rotation_restarts)"),
    "allocated_storage": Rule("AllocatedStorage", "allocated_storage", _always, _never,
                              f"{SETTINGS_PAGE}: Allocated storage - window unless applied immediately; no downtime"),
    "iops": Rule("Iops", "iops", _always, _never,
                 f"{SETTINGS_PAGE}: Provisioned IOPS - window unless applied immediately; no downtime"),
    "storage_throughput": Rule("StorageThroughput", "storage_throughput", _always, _never,
                               f"{SETTINGS_PAGE}: Storage throughput - window unless applied immediately; no downtime"),
    "storage_type": Rule("StorageType", "storage_type", _always, _magnetic_involved,
                         f"{SETTINGS_PAGE}: Storage type - window unless applied immediately; brief outage from/to magnetic"),
    "multi_az": Rule("MultiAZ", "multi_az", _always, _never,
                     f"{SETTINGS_PAGE}: Multi-AZ deployment - window unless applied immediately; no downtime"),
    "license_model": Rule("LicenseModel", "license_model", _always, _never,
                          f"{SETTINGS_PAGE}: License model - window unless applied immediately"),
    "db_subnet_group_name": Rule("DBSubnetGroupName", "db_subnet_group_name", _always, _never,
                                 f"{SETTINGS_PAGE}: DB subnet group - window unless applied immediately"),
    "enable_iam_database_authentication": Rule(
        "IAMDatabaseAuthenticationEnabled", "enable_iam_database_authentication", _always, _never,
        f"{SETTINGS_PAGE}: IAM DB authentication - window unless applied immediately; no downtime"),
    "new_db_instance_identifier": Rule(
        "DBInstanceIdentifier", "db_instance_identifier", _always, _never,
        f"{SETTINGS_PAGE}: DB instance identifier - window unless applied immediately"),
    "backup_retention_period": Rule(
        "BackupRetentionPeriod", "backup_retention_period", _backups_switched, _backups_switched,
        f"{SETTINGS_PAGE}: Backup retention period; RDS User Guide, Backup retention period - an outage "
        "occurs when changing from 0 to nonzero or nonzero to 0"),
}
ARGUMENT_FOR = {rule.pending_key: argument for argument, rule in RULES.items()}


def pending_of(instance):
    if "_lab_pending" not in instance.__dict__:
        instance._lab_pending = {}
    return instance._lab_pending


def _current(instance, argument):
    return getattr(instance, RULES[argument].attribute, None)


def _unchanged(instance, argument, db_kwargs):
    """Whether ``db_kwargs`` asks for the current value of ``argument``. IOPS and throughput asked with a new
    storage type belong to that type (gp3 -> io1 with Iops 3000 provisions 3,000 IOPS even though gp3
    reported a 3,000 baseline): RDS User Guide, "Working with storage for Amazon RDS DB instances"."""
    new_type = db_kwargs.get("storage_type")
    if argument in ("iops", "storage_throughput") and new_type not in (None, instance.storage_type):
        return False
    return db_kwargs[argument] == _current(instance, argument)


def _supports_rotation_without_restart(instance):
    """DescribeDBEngineVersions ``SupportsCertificateRotationWithoutRestart`` of the instance's version."""
    entries = engines.engine_versions(engine=instance.engine, version=instance.engine_version)
    return any(entry.get("SupportsCertificateRotationWithoutRestart") for entry in entries)


def _ca_rotation_restarts(instance):
    """ModifyDBInstance ``CertificateRotationRestart`` (default true): the instance restarts and the
    certificate changes with the restart; false = no restart, and the new certificate is served at
    once only if the engine version supports it, else at the next restart."""
    return instance.__dict__.get("_lab_ca_rotation_restart", True)


def _split_deferred(instance, db_kwargs):
    """Move changes that wait for the window out of ``db_kwargs``; drop no-op changes. Returns them."""
    deferred = {}
    for argument, rule in RULES.items():
        value = db_kwargs.get(argument)
        if value is None:
            continue
        if _unchanged(instance, argument, db_kwargs):
            del db_kwargs[argument]
            pending_of(instance).pop(rule.pending_key, None)  # asking for the current value reverts a pending change
        elif rule.waits(instance, value):
            deferred[rule.pending_key] = value
            del db_kwargs[argument]
    return deferred


def _with_everything_pending(instance, db_kwargs):
    """ApplyImmediately: the request plus the queue, without changes to the current value."""
    for pending_key, value in list(pending_of(instance).items()):
        db_kwargs.setdefault(ARGUMENT_FOR[pending_key], value)
    for argument in list(db_kwargs):
        if argument in RULES and db_kwargs[argument] is not None and _unchanged(instance, argument, db_kwargs):
            del db_kwargs[argument]


def _restart_reasons(instance, db_kwargs):
    """The settings in ``db_kwargs`` (about to apply) whose change restarts the instance."""
    reasons = []
    for argument, rule in RULES.items():
        value = db_kwargs.get(argument)
        if value is None or value == _current(instance, argument) or not rule.restarts(instance, value):
            continue
        if argument == "ca_certificate_identifier" and not _ca_rotation_restarts(instance):
            continue
        reasons.append(rule.pending_key)
    return reasons


def _rotate_ca_without_restart(instance, ca_before):
    """The CA changed without a restart: the new certificate now, or at the next restart."""
    if not _supports_rotation_without_restart(instance):
        restarts.keep_served_ca_until_restart(instance, instance.__dict__.get("_lab_served_ca") or ca_before)


@around(RDSBackend, "modify_db_instance")
def _modify_db_instance(original, backend, db_instance_identifier, db_kwargs):
    instance = backend.describe_db_instances(db_instance_identifier)[0]
    new_group = get(db_kwargs, "db_parameter_group_name")
    if new_group:
        _ensure_default_group(backend, instance, new_group)
    if db_kwargs.get("certificate_rotation_restart") is not None:
        instance._lab_ca_rotation_restart = bool(db_kwargs["certificate_rotation_restart"])
    applying_now = bool(db_kwargs.get("apply_immediately"))
    if applying_now:
        _with_everything_pending(instance, db_kwargs)
    else:
        pending_of(instance).update(_split_deferred(instance, db_kwargs))
    reasons = _restart_reasons(instance, db_kwargs)
    ca_before, old_group = instance.ca_certificate_identifier, instance.db_parameter_groups()[0].name
    result = original(backend, db_instance_identifier, db_kwargs)
    if applying_now:
        pending_of(instance).clear()
    if new_group and new_group.lower() != old_group.lower():
        set_parameter_apply_status(result, "pending-reboot")
    if result.ca_certificate_identifier != ca_before:
        if "CACertificateIdentifier" not in reasons:
            _rotate_ca_without_restart(result, ca_before)
        result._lab_ca_rotation_restart = True  # the flag belongs to the request that changed the CA
    if reasons:
        _restart_for(result, reasons)
    return result


def _restart_for(instance, reasons):
    """A restart applied by a modification also applies pending-reboot parameters ("Rebooting a DB
    instance": the restart is a reboot without failover)."""
    restarts.restart(instance, "modification: " + ", ".join(reasons))
    set_parameter_apply_status(instance, "in-sync")


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
def _reboot_db_instance(original, backend, db_instance_identifier, force_failover=False):
    """"Working with parameter groups": pending-reboot parameters apply with a reboot *without* failover."""
    instance = original(backend, db_instance_identifier)
    if not force_failover:
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
