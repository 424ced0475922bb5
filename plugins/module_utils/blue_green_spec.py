# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An RDS blue/green deployment of a MySQL or MariaDB instance: the task's checks and the green's settings (pure: no AWS
call). ``blue_green_plan`` holds the plan entries, ``blue_green_aws`` makes the calls.

The rules, each with its AWS source:

* RDS User Guide, "Creating a blue/green deployment in Amazon RDS", "Preparing an RDS for MySQL or RDS for MariaDB
  DB instance for a blue/green deployment": automated backups must be on (the green replicates the blue's binary
  log, which RDS for MySQL keeps only with automated backups). The green is created as a read replica of the blue
  (BlueGreenDeploymentTask ``CREATING_READ_REPLICA_OF_SOURCE``), so the blue sees what a new replica costs it: a DB
  snapshot, with a brief I/O suspension on a single-AZ instance (``replica_spec.snapshot_note``).
* RDS User Guide, "Limitations and considerations for Amazon RDS blue/green deployments": no master user password
  managed by Secrets Manager; no cross-Region read replicas; the blue can't get a higher engine version than its
  green (so the green's version is never lower than the blue's); the Event Scheduler (``event_scheduler``) must be
  off in the green environment; for RDS for MySQL, no major version upgrade in the deployment while the blue uses a
  custom option group.
* RDS API Reference, CreateBlueGreenDeployment ``TargetEngineVersion`` and DescribeDBEngineVersions
  ``ValidUpgradeTarget``: another version than the blue's must be one of its upgrade targets; a major one changes
  the parameter group family, so the task must name a group of the new family. Without ``TargetDBParameterGroupName``
  AWS gives the green the engine's default group (hashicorp/terraform-provider-aws#49132), which would drop the
  blue's settings (``require_secure_transport``...): the module always sends one (the blue's when the family stays).
* RDS API Reference, DeleteBlueGreenDeployment ``DeleteTarget``: not allowed once the status is
  ``SWITCHOVER_COMPLETED``; RDS User Guide, "Deleting a blue/green deployment in Amazon RDS": the green instances it
  deletes must have deletion protection off; without it they stay as standalone instances (for RDS for MySQL,
  replication from the blue continues); deleting the deployment doesn't affect the blue environment.
* RDS User Guide, "Switching a blue/green deployment in Amazon RDS": the switchover timeout is 30-3,600 s (default
  300; a switchover that takes longer is rolled back with no change to either environment); during it RDS stops
  writes on both primaries, drops and refuses connections, waits for the green to catch up, then renames: the green
  takes the blue's name and endpoint (applications need no change) and the blue gets ``-old<n>`` appended; the old
  instance allows only reads afterwards. AWS: the switchover "typically takes under a minute".
* RDS API Reference, BlueGreenDeployment ``Status``: ``PROVISIONING``, ``AVAILABLE``, ``SWITCHOVER_IN_PROGRESS``,
  ``SWITCHOVER_COMPLETED``, ``INVALID_CONFIGURATION``, ``SWITCHOVER_FAILED``, ``DELETING``.
"""

from __future__ import annotations

import re

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_storage as storage

ENGINES = ("mysql", "mariadb")
PRESENT, SWITCHED_OVER, ABSENT = "present", "switched_over", "absent"
PROVISIONING, AVAILABLE = "PROVISIONING", "AVAILABLE"
SWITCHING, SWITCHED = "SWITCHOVER_IN_PROGRESS", "SWITCHOVER_COMPLETED"
DELETING, SWITCHOVER_FAILED = "DELETING", "SWITCHOVER_FAILED"
# RDS API Reference, CreateBlueGreenDeployment BlueGreenDeploymentName: 1-60 characters of this pattern.
NAME_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*$")
NAME_MAX = 60
# RDS API Reference, DeleteDBInstance FinalDBSnapshotIdentifier: 1-255 letters, digits or hyphens, a letter first,
# no two consecutive hyphens, no hyphen at the end.
SNAPSHOT_PATTERN = re.compile(r"^[a-zA-Z](-?[a-zA-Z0-9])*$")
SNAPSHOT_MAX = 255
SWITCHOVER_TIMEOUT_RANGE = (30, 3600)
EVENT_SCHEDULER = "event_scheduler"
EVENT_SCHEDULER_OFF = ("OFF", "0", "DISABLED")
# the green's settings: option -> ``instance_plan.current_state`` attribute (``create_parameters`` names the API's)
TARGETS = {
    "target_engine_version": "engine_version",
    "target_db_parameter_group_name": "db_parameter_group_name",
    "target_db_instance_class": "db_instance_class",
    "target_storage_type": "storage_type",
    "target_allocated_storage": "allocated_storage",
    "target_iops": "iops",
    "target_storage_throughput": "storage_throughput",
}
# ModifyDBInstance storage parameter (``instance_storage.modify_parameters``) -> CreateBlueGreenDeployment parameter
STORAGE_PARAMETER = {"StorageType": "TargetStorageType", "AllocatedStorage": "TargetAllocatedStorage",
                     "Iops": "TargetIops", "StorageThroughput": "TargetStorageThroughput"}
GREEN_SUMMARY = ("engine_version", "db_instance_class", "db_parameter_group_name") + storage.STORAGE_ATTRIBUTES


def identifier_of(arn):
    """The DB instance identifier in an instance ARN (``arn:aws:rds:<region>:<account>:db:<id>``)."""
    return arn.rsplit(":", 1)[-1] if arn else None


def _region_of(arn):
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" else None


def _name_errors(params):
    name = params["blue_green_deployment_name"]
    if len(name) > NAME_MAX or not NAME_PATTERN.match(name):
        return [f"blue_green_deployment_name {name!r} is not a name AWS accepts: 1-{NAME_MAX} letters, digits and single "
                "hyphens, starting with a letter and not ending with a hyphen (for example cso-prod-mysql84)."]
    return []


def _snapshot_errors(params):
    snapshot = params["old_blue_final_snapshot_identifier"]
    errors = []
    if snapshot and not params["delete_old_blue"]:
        errors.append("old_blue_final_snapshot_identifier is only used with delete_old_blue=true: set that too, or "
                      "leave old_blue_final_snapshot_identifier unset.")
    if snapshot and (len(snapshot) > SNAPSHOT_MAX or not SNAPSHOT_PATTERN.match(snapshot)):
        errors.append(f"old_blue_final_snapshot_identifier {snapshot!r} is not a snapshot identifier AWS accepts: "
                      f"1-{SNAPSHOT_MAX} letters, digits and single hyphens, starting with a letter.")
    return errors


def input_errors(params):
    """Problems with the options themselves (no AWS call), as messages that say what to do."""
    errors = _name_errors(params) + _snapshot_errors(params)
    low, high = SWITCHOVER_TIMEOUT_RANGE
    if not low <= params["switchover_timeout"] <= high:
        errors.append(f"switchover_timeout must be {low}-{high:,} seconds (AWS's range; got {params['switchover_timeout']}).")
    if params["wait_timeout"] < 1:
        errors.append(f"wait_timeout must be a positive number of seconds (got {params['wait_timeout']}).")
    state = params["state"]
    for option in ("delete_target", "delete_old_blue"):
        if params[option] and state != ABSENT:
            errors.append(f"{option} deletes instances when the deployment is deleted: it needs state=absent (the task "
                          f"says state={state}). Remove {option}, or set state=absent.")
    if state == SWITCHED_OVER and not params["wait"]:
        errors.append("state=switched_over waits for the green to be available and for the switchover to complete: "
                      "set wait=true (the default).")
    for option in ("target_allocated_storage", "target_iops", "target_storage_throughput"):
        if params[option] is not None and params[option] < 1:
            errors.append(f"{option} must be a positive number (got {params[option]}).")
    return errors


# --- the deployment and the instances ---------------------------------------------------------------------------


def find(deployments, name):
    """The deployment named ``name`` (names are unique per account and region), or None."""
    return next((d for d in deployments if d.get("BlueGreenDeploymentName") == name), None)


def production_of(deployment):
    """The instance that serves production: the blue until the switchover, then the former green (renamed)."""
    switched = deployment.get("Status") == SWITCHED
    return identifier_of(deployment["Target"] if switched else deployment["Source"])


def ownership_errors(deployment, params):
    """A deployment of that name that is not of ``db_instance_identifier``: never taken over."""
    blue, name = params["db_instance_identifier"], params["blue_green_deployment_name"]
    if deployment is None or production_of(deployment) == blue:
        return []
    return [f"Blue/green deployment {name} exists but is of {production_of(deployment)}, not {blue}. Choose another "
            "blue_green_deployment_name (names are unique per account and region), or fix db_instance_identifier."]


def membership_errors(deployments, blue_arn, params):
    """The blue already is the blue or green of another deployment (the module never nests them)."""
    others = [d for d in deployments if d.get("BlueGreenDeploymentName") != params["blue_green_deployment_name"]
              and blue_arn in (d.get("Source"), d.get("Target")) and d.get("Status") != SWITCHED]
    return [f"{params['db_instance_identifier']} is already in blue/green deployment {d['BlueGreenDeploymentName']} "
            f"(status {d.get('Status')}). Finish that one first (switch it over or delete it), then run this task again."
            for d in others]


def source_errors(blue, params, region):
    """Why ``blue`` (a DBInstance dict, or None) cannot be the blue of a new deployment; empty when it can."""
    name = params["db_instance_identifier"]
    if blue is None:
        return [f"DB instance {name} does not exist in {region}. Fix db_instance_identifier."]
    errors = []
    if blue.get("Engine") not in ENGINES:
        errors.append(f"{name} runs {blue.get('Engine')}; this module makes blue/green deployments of "
                      f"{' and '.join(ENGINES)} instances.")
    if blue.get("DBInstanceStatus") != "available":
        errors.append(f"{name} is {blue.get('DBInstanceStatus')}; AWS creates a blue/green deployment only of an available "
                      "instance. Run the task again once it is available.")
    if not blue.get("BackupRetentionPeriod"):
        errors.append(f"{name} has no automated backups (backup retention 0); a blue/green deployment of RDS for MySQL "
                      "or MariaDB needs them (the green replicates the blue's binary log). Set its backup retention "
                      "period (7 days or more, rds_hardened_instance backup_retention_period) first.")
    if blue.get("MasterUserSecret"):
        errors.append(f"{name}'s master user password is managed by Secrets Manager, which blue/green deployments don't "
                      "support. Turn that off first (rds_hardened_instance manage_master_user_password=false, which "
                      "replaces the password), or upgrade in place instead.")
    cross_region = [r for r in blue.get("ReadReplicaDBInstanceIdentifiers") or []
                    if _region_of(r) not in (None, region)]
    if cross_region:
        errors.append(f"{name} has cross-Region read replicas ({', '.join(cross_region)}), which blue/green deployments "
                      "don't support. Delete them (or promote them) first, and make them again after the switchover.")
    return errors


# --- the green's settings ---------------------------------------------------------------------------------------


def version_errors(blue, target_version, upgrade_targets):
    """``upgrade_targets``: the ``ValidUpgradeTarget`` list of the blue's engine version."""
    current, name = blue["EngineVersion"], blue["DBInstanceIdentifier"]
    if not target_version or target_version == current:
        return []
    if planning.version_key(target_version) < planning.version_key(current):
        return [f"target_engine_version {target_version} is older than {name}'s {current}: a blue/green deployment "
                f"never downgrades (the blue can't be newer than its green). Leave it unset or use {current} or later."]
    valid = [t["EngineVersion"] for t in upgrade_targets]
    if target_version not in valid:
        return [f"{blue['Engine']} {current} cannot be upgraded to {target_version} (DescribeDBEngineVersions "
                f"ValidUpgradeTarget: {', '.join(valid) or 'none'}). Choose one of those."]
    return []


def is_major_upgrade(target_version, upgrade_targets):
    return any(t["EngineVersion"] == target_version and t.get("IsMajorVersionUpgrade") for t in upgrade_targets)


def major_upgrade_errors(blue, params, major):
    """A major upgrade needs a parameter group of the new family and no custom option group on a MySQL blue."""
    if not major:
        return []
    errors = []
    if not params["target_db_parameter_group_name"]:
        errors.append(f"target_engine_version {params['target_engine_version']} is a major upgrade: its parameter group "
                      "family differs from the blue's, and without target_db_parameter_group_name AWS gives the green the "
                      "engine's default group (without the blue's settings, require_secure_transport among them). Create "
                      "a parameter group of the new family with those settings and set target_db_parameter_group_name.")
    groups = [m.get("OptionGroupName") for m in blue.get("OptionGroupMemberships") or []]
    custom = [g for g in groups if g and not g.startswith("default:")]
    if custom and blue.get("Engine") == "mysql":
        errors.append(f"{blue['DBInstanceIdentifier']} uses the custom option group {custom[0]}, and RDS for MySQL makes "
                      "no blue/green deployment with a major version upgrade then. Create the deployment without "
                      "target_engine_version, upgrade the green instance itself, then switch over.")
    return errors


def green_parameter_group(params, blue):
    """The green's parameter group: the task's, else the blue's (sent explicitly, see the module docstring)."""
    return params["target_db_parameter_group_name"] or planning.current_state(blue)["db_parameter_group_name"]


def event_scheduler_errors(group, user_parameters):
    """``user_parameters``: DescribeDBParameters(Source=user) of the green's group."""
    values = [p.get("ParameterValue") for p in user_parameters if p.get("ParameterName") == EVENT_SCHEDULER]
    if values and (values[0] or "").upper() not in EVENT_SCHEDULER_OFF:
        return [f"DB parameter group {group} sets {EVENT_SCHEDULER}={values[0]}; the Event Scheduler must be off in the "
                f"green environment (events would run on the green too). Give the green a group with "
                f"{EVENT_SCHEDULER}=OFF (target_db_parameter_group_name) and turn it on after the switchover."]
    return []


def _storage_desired(params):
    return {attribute: params[option] for option, attribute in TARGETS.items()
            if attribute in storage.STORAGE_ATTRIBUTES}


def storage_errors(blue, params):
    """AWS's storage rules (``instance_storage``) for the green's storage, against the blue's."""
    return storage.errors(storage.of(planning.current_state(blue)), _storage_desired(params))


def green_settings(params, blue):
    """What the green will have: the task's target settings, else the blue's (storage resolved by the rules)."""
    current = planning.current_state(blue)
    settings = {
        "engine_version": params["target_engine_version"] or current["engine_version"],
        "db_instance_class": params["target_db_instance_class"] or current["db_instance_class"],
        "db_parameter_group_name": green_parameter_group(params, blue),
    }
    settings.update(storage.target(storage.of(current), _storage_desired(params)))
    return settings


def create_parameters(params, blue, settings):
    """CreateBlueGreenDeployment's parameters: only what differs from the blue, plus the parameter group always."""
    current = planning.current_state(blue)
    parameters = {"BlueGreenDeploymentName": params["blue_green_deployment_name"], "Source": blue["DBInstanceArn"],
                  "TargetDBParameterGroupName": settings["db_parameter_group_name"]}
    if settings["engine_version"] != current["engine_version"]:
        parameters["TargetEngineVersion"] = settings["engine_version"]
    if settings["db_instance_class"] != current["db_instance_class"]:
        parameters["TargetDBInstanceClass"] = settings["db_instance_class"]
    blue_storage = storage.of(current)
    changed = storage.changed_attributes(blue_storage, settings)
    for api_name, value in storage.modify_parameters(blue_storage, settings, changed).items():
        parameters[STORAGE_PARAMETER[api_name]] = value
    return parameters


def green_of(instance):
    """The settings of an existing green (or new production) instance, named like ``green_settings``."""
    current = planning.current_state(instance)
    return {attribute: current[attribute] for attribute in GREEN_SUMMARY}


def drift(green, settings, params):
    """[(attribute, the green's value, the task's)] for each target setting the task gives that the green lacks."""
    given = {attribute for option, attribute in TARGETS.items() if params[option] is not None}
    found = green_of(green)
    return [(attribute, found[attribute], settings[attribute]) for attribute in GREEN_SUMMARY
            if attribute in given and found[attribute] != settings[attribute]]


def drift_refusal(params, green, differences):
    listed = ", ".join(f"{attribute} is {now}, not {wanted}" for attribute, now, wanted in differences)
    return (f"Blue/green deployment {params['blue_green_deployment_name']} exists, but its green instance "
            f"{green['DBInstanceIdentifier']} differs from the task: {listed}. A deployment's green is made once: delete "
            "the deployment with its green (state=absent, delete_target=true) and run this task again, or set the "
            "target options to what the green has.")


def already_deployed(blue, params, settings):
    """No deployment of that name, and the instance already has every target setting the task gives (at least one):
    the change is in production (by an earlier deployment of this name, since deleted). Nothing to deploy."""
    given = [attribute for option, attribute in TARGETS.items() if params[option] is not None]
    current = green_of(blue)
    return bool(given) and all(current[attribute] == settings[attribute] for attribute in given)


# --- status -------------------------------------------------------------------------------------------------------


def status_refusal(deployment, state):
    """A message when the deployment's status does not let ``state`` be reached (None when it does)."""
    status, name = deployment.get("Status"), deployment.get("BlueGreenDeploymentName")
    if status in (PROVISIONING, AVAILABLE, SWITCHING, SWITCHED, DELETING):
        if status == DELETING and state != ABSENT:
            return (f"Blue/green deployment {name} is being deleted. Run the task again once it is gone (a new one is "
                    "then created).")
        return None
    details = deployment.get("StatusDetails") or "no details"
    if status == SWITCHOVER_FAILED:
        return (f"Blue/green deployment {name} is {status} ({details}): the switchover did not complete within its "
                "timeout and AWS rolled it back, so production is unchanged (the blue keeps its name and takes writes "
                "again). Check the green's ReplicaLag and the deployment's events (describe-events --source-type "
                "blue-green-deployment), then delete it (state=absent; delete_target=true also deletes its green), "
                "create it again and switch over when the lag is low, or with a longer switchover_timeout.")
    return (f"Blue/green deployment {name} is {status} ({details}): AWS can neither switch it over nor keep it in sync. "
            "Check its events (describe-events --source-type blue-green-deployment), then delete it (state=absent; "
            "delete_target=true also deletes its green) and create it again.")
