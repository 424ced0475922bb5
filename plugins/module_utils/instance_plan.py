# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""From the difference between an instance and its desired state to a plan, and from a plan to API calls.

A plan entry is ``{what, impact, before, after, apply, effect}`` (``common.plan_item``, the shape every
module returns; ``attribute``, ``current`` and ``desired`` repeat what, before and after) where ``apply`` says when AWS
applies the change (``immediately``, ``maintenance-window``, ``reboot`` = only when the instance
restarts, ``replacement`` = cannot be modified in place), ``impact`` what clients notice (one of
``IMPACTS``) and ``effect`` says it in words (who is affected and how; null when nothing is noticed). A storage
change also carries ``storage_optimization: true`` (``instance_storage``: what AWS's optimization after it blocks).
No function here calls AWS.
"""

from __future__ import annotations

import re

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_storage as storage
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item
# IMPACTS is re-exported: callers read the impact scale from the plan module
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_effects import IMPACTS  # noqa: F401 pylint: disable=unused-import
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_effects import effect

IMMEDIATELY = "immediately"
MAINTENANCE_WINDOW = "maintenance-window"
REBOOT = "reboot"
REPLACEMENT = "replacement"

# AWS applies these at once whatever ApplyImmediately says.
_ALWAYS = "always-immediate"
# These wait for the maintenance window unless ApplyImmediately=True.
_FOLLOWS = "follows-apply"

# attribute -> (when AWS applies it, impact on clients)
RULES = {
    "kms_key_id": (REPLACEMENT, "replacement"),
    "publicly_accessible": (_ALWAYS, "none"),
    "multi_az": (_FOLLOWS, "none"),
    "deletion_protection": (_ALWAYS, "none"),
    "backup_retention_period": (_ALWAYS, "none"),
    "preferred_backup_window": (_ALWAYS, "none"),
    "preferred_maintenance_window": (_ALWAYS, "none"),
    "copy_tags_to_snapshot": (_ALWAYS, "none"),
    "auto_minor_version_upgrade": (_ALWAYS, "none"),
    "enable_iam_database_authentication": (_FOLLOWS, "none"),
    "enable_cloudwatch_logs_exports": (_ALWAYS, "none"),
    "enable_performance_insights": (_ALWAYS, "none"),
    "performance_insights_kms_key_id": (_ALWAYS, "none"),
    "performance_insights_retention_period": (_ALWAYS, "none"),
    "monitoring_interval": (_ALWAYS, "none"),
    "monitoring_role_arn": (_ALWAYS, "none"),
    "vpc_security_group_ids": (_ALWAYS, "none"),
    "ca_certificate_identifier": (_FOLLOWS, "restart"),
    "db_parameter_group_name": (REBOOT, "restart"),
    "db_instance_class": (_FOLLOWS, "restart"),
    "engine_version": (_FOLLOWS, "restart"),
    # AWS: RDS User Guide, "Settings for DB instances": no downtime (to or from magnetic: see _when_and_impact)
    "storage_type": (_FOLLOWS, "none"),
    "allocated_storage": (_FOLLOWS, "none"),
    "max_allocated_storage": (_ALWAYS, "none"),
    "iops": (_FOLLOWS, "none"),
    "storage_throughput": (_FOLLOWS, "none"),
    # AWS: RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager": turning it on
    # (or off) replaces the master password at once.
    "manage_master_user_password": (_ALWAYS, "interruption"),
    "master_user_secret_kms_key_id": (_ALWAYS, "none"),
    # AWS: RDS API Reference, ModifyDBInstance "OptionGroupName": no outage (the exception is an Oracle OEM option),
    # applied with ApplyImmediately or in the window. Leaving a group with the MariaDB Audit Plugin for one without
    # it restarts the instance (RDS User Guide, "MariaDB Audit Plugin support for MySQL", "Removing the MariaDB
    # Audit Plugin"): see _when_and_impact.
    "option_group_name": (_FOLLOWS, "none"),
}
KEY_ATTRIBUTES = ("kms_key_id", "performance_insights_kms_key_id", "master_user_secret_kms_key_id")

# attribute -> ModifyDBInstance / CreateDBInstance parameter
API_PARAMETER = {
    "publicly_accessible": "PubliclyAccessible",
    "multi_az": "MultiAZ",
    "deletion_protection": "DeletionProtection",
    "backup_retention_period": "BackupRetentionPeriod",
    "preferred_backup_window": "PreferredBackupWindow",
    "preferred_maintenance_window": "PreferredMaintenanceWindow",
    "copy_tags_to_snapshot": "CopyTagsToSnapshot",
    "auto_minor_version_upgrade": "AutoMinorVersionUpgrade",
    "enable_iam_database_authentication": "EnableIAMDatabaseAuthentication",
    "enable_performance_insights": "EnablePerformanceInsights",
    "performance_insights_kms_key_id": "PerformanceInsightsKMSKeyId",
    "performance_insights_retention_period": "PerformanceInsightsRetentionPeriod",
    "monitoring_interval": "MonitoringInterval",
    "monitoring_role_arn": "MonitoringRoleArn",
    "vpc_security_group_ids": "VpcSecurityGroupIds",
    "ca_certificate_identifier": "CACertificateIdentifier",
    "db_parameter_group_name": "DBParameterGroupName",
    "db_instance_class": "DBInstanceClass",
    "engine_version": "EngineVersion",
    "storage_type": "StorageType",
    "allocated_storage": "AllocatedStorage",
    "max_allocated_storage": "MaxAllocatedStorage",
    "iops": "Iops",
    "storage_throughput": "StorageThroughput",
    "manage_master_user_password": "ManageMasterUserPassword",
    "master_user_secret_kms_key_id": "MasterUserSecretKmsKeyId",
    "option_group_name": "OptionGroupName",
}
# Sent together: AWS rejects one without the other.
_COMPANIONS = {
    "monitoring_interval": ("monitoring_role_arn",),
    "monitoring_role_arn": ("monitoring_interval",),
    "enable_performance_insights": ("performance_insights_kms_key_id", "performance_insights_retention_period"),
    "performance_insights_retention_period": ("enable_performance_insights",),
    "performance_insights_kms_key_id": ("enable_performance_insights",),
    "master_user_secret_kms_key_id": ("manage_master_user_password",),
}


def _pending_logs(instance):
    logs = set(instance.get("EnabledCloudwatchLogsExports") or [])
    pending = (instance.get("PendingModifiedValues") or {}).get("PendingCloudwatchLogsExports") or {}
    return sorted((logs | set(pending.get("LogTypesToEnable") or [])) - set(pending.get("LogTypesToDisable") or []))


def current_state(instance):
    """What the instance will be once its pending modifications apply, by attribute name."""
    pending = instance.get("PendingModifiedValues") or {}

    def after_pending(key, default=None):
        return pending.get(key, instance.get(key, default))

    pi_enabled = bool(instance.get("PerformanceInsightsEnabled"))
    secret = instance.get("MasterUserSecret")
    groups = instance.get("DBParameterGroups") or [{}]
    return {
        "kms_key_id": instance.get("KmsKeyId") if instance.get("StorageEncrypted") else None,
        "publicly_accessible": instance.get("PubliclyAccessible"),
        "multi_az": after_pending("MultiAZ"),
        "deletion_protection": instance.get("DeletionProtection", False),
        "backup_retention_period": after_pending("BackupRetentionPeriod"),
        "preferred_backup_window": instance.get("PreferredBackupWindow"),
        "preferred_maintenance_window": instance.get("PreferredMaintenanceWindow"),
        "copy_tags_to_snapshot": instance.get("CopyTagsToSnapshot", False),
        "auto_minor_version_upgrade": instance.get("AutoMinorVersionUpgrade"),
        "enable_iam_database_authentication": pending.get(
            "IAMDatabaseAuthenticationEnabled", instance.get("IAMDatabaseAuthenticationEnabled", False)
        ),
        "enable_cloudwatch_logs_exports": _pending_logs(instance),
        "enable_performance_insights": pi_enabled,
        "performance_insights_kms_key_id": instance.get("PerformanceInsightsKMSKeyId") if pi_enabled else None,
        "performance_insights_retention_period": (
            instance.get("PerformanceInsightsRetentionPeriod") if pi_enabled else None
        ),
        "monitoring_interval": instance.get("MonitoringInterval", 0),
        "monitoring_role_arn": instance.get("MonitoringRoleArn"),
        "vpc_security_group_ids": sorted(
            group["VpcSecurityGroupId"]
            for group in instance.get("VpcSecurityGroups", [])
            if group.get("Status") != "removing"
        ),
        "ca_certificate_identifier": after_pending("CACertificateIdentifier"),
        "db_parameter_group_name": groups[0].get("DBParameterGroupName"),
        "db_instance_class": after_pending("DBInstanceClass"),
        "engine_version": after_pending("EngineVersion"),
        "storage_type": after_pending("StorageType"),
        "allocated_storage": after_pending("AllocatedStorage"),
        "max_allocated_storage": instance.get("MaxAllocatedStorage"),
        "iops": after_pending("Iops"),
        "storage_throughput": after_pending("StorageThroughput"),
        "manage_master_user_password": secret is not None,
        "master_user_secret_kms_key_id": secret.get("KmsKeyId") if secret else None,
        "master_username": instance.get("MasterUsername"),  # not managed: named in the plan's ``effect``
        "option_group_name": next((group["OptionGroupName"] for group in instance.get("OptionGroupMemberships") or []
                                   if group.get("Status") != "removing"), None),
    }


def same_key(current, desired):
    """KMS key ids compare by key id: RDS may report an ARN where the task gave an ARN of another form."""
    if not current or not desired:
        return current == desired
    return current.rsplit("/", 1)[-1] == desired.rsplit("/", 1)[-1]


def version_key(version):
    """A sortable key of an engine version: numeric parts compare as numbers (8.0.100 > 8.0.40)."""
    key = []
    for part in str(version).split("."):
        match = re.match(r"(\d*)(.*)", part)
        key.append((int(match.group(1)) if match.group(1) else -1, match.group(2)))
    return tuple(key)


def engine_upgrade_needed(current, desired):
    """``engine_version`` is a minimum: an instance AWS upgraded past it (automatic minor upgrades) stays."""
    if desired is None:
        return False
    return current is None or version_key(desired) > version_key(current)


def differs(attribute, current, desired):
    if desired is None:
        return False  # not managed by this task
    if attribute in KEY_ATTRIBUTES:
        return not same_key(current, desired)
    if attribute == "allocated_storage":
        return current is None or desired > current  # storage only grows; shrinking is rejected by validation
    if attribute == "engine_version":
        return engine_upgrade_needed(current, desired)  # never a downgrade
    if attribute == "option_group_name":
        return (current or "").lower() != desired.lower()  # RDS stores option group names in lower case
    return current != desired


def retention_decrease(current_days, desired_days):
    """True when ``desired_days`` of automated backups is fewer than the instance keeps now (backups stay on)."""
    return bool(current_days) and desired_days is not None and 0 < desired_days < current_days


def _when_and_impact(attribute, current, desired, apply_mode):
    when, impact = RULES[attribute]
    if attribute == "backup_retention_period" and (current["backup_retention_period"] == 0) != (desired == 0):
        when, impact = _FOLLOWS, "brief-interruption"  # turning backups on or off restarts the instance
    elif attribute == "backup_retention_period" and retention_decrease(current["backup_retention_period"], desired):
        # AWS: RDS User Guide, "Backup retention period": lowering it deletes the automated backups
        # older than the new period at once.
        impact = "data-loss"
    if attribute == "option_group_name" and current.get("option_group_drops_audit_plugin"):
        impact = "restart"  # the audit plugin leaves with the old group: AWS restarts the instance
    if attribute == "storage_type" and storage.MAGNETIC in (current.get("storage_type"), desired):
        impact = "restart"  # the move to or from magnetic storage begins with a brief outage
    if attribute == "performance_insights_kms_key_id" and current["enable_performance_insights"]:
        when, impact = REPLACEMENT, "replacement"  # AWS cannot change the key of enabled Performance Insights
    if when == _ALWAYS:
        when = IMMEDIATELY
    elif when == _FOLLOWS:
        when = apply_mode
    return when, impact


def compute_plan(current, desired, apply_mode):
    """Every difference between ``current`` and ``desired`` (both from this module), in a stable order."""
    plan = []
    for attribute in RULES:
        value = desired.get(attribute)
        if not differs(attribute, current.get(attribute), value):
            continue
        when, impact = _when_and_impact(attribute, current, value, apply_mode)
        restart = desired.get("ca_certificate_rotation_restart") is not False
        if attribute == "ca_certificate_identifier" and not restart:
            impact = "none"  # CertificateRotationRestart=false: the certificate is replaced in place (see effect)
        if attribute in storage.STORAGE_ATTRIBUTES:
            plan.append(entry(attribute, current.get(attribute), value, when, impact,
                              storage.effect(attribute, current, storage.of(desired)), storage_optimization=True))
            continue
        plan.append(entry(attribute, current.get(attribute), value, when, impact, effect(
            attribute, current.get(attribute), value, impact, current.get("master_username"), restart)))
    return plan


def entry(attribute, current, desired, when, impact, effect=None, **extra):
    """A plan entry in the shape every module shares (what, impact, before, after), plus ``apply`` (when AWS
    applies it), ``effect`` (the impact in words), the names this module used before (attribute, current,
    desired) for existing readers, and ``extra`` keys (``storage_optimization: true`` on storage changes)."""
    return plan_item(attribute, impact, current, desired, apply=when, effect=effect, attribute=attribute,
                     current=current, desired=desired, **extra)


def creation_plan(desired):
    """The plan of a new instance: every managed attribute, applied at creation, with no client impact."""
    return [entry(attribute, None, desired[attribute], IMMEDIATELY, "none") for attribute in RULES
            if desired.get(attribute) is not None]


def needs_replacement(plan):
    return [entry for entry in plan if entry["apply"] == REPLACEMENT]


def needs_reboot(plan):
    return [entry for entry in plan if entry["apply"] == REBOOT or entry["impact"] == "restart"]


def refusals(plan, allow_reboot, allow_replacement, allow_backup_retention_decrease=False, writes_stopped=True):
    """Messages for planned changes the task did not allow (empty when everything may go ahead)."""
    messages = []
    for entry in plan:
        if entry["attribute"] == "backup_retention_period" and entry["impact"] == "data-loss":
            if not allow_backup_retention_decrease:
                messages.append(
                    f"Lowering backup_retention_period from {entry['current']} to {entry['desired']} days deletes the "
                    f"automated backups older than {entry['desired']} days at once. Keep backup_retention_period at "
                    f"{entry['current']} or more, or (after taking a manual snapshot if you may need an older restore "
                    "point) run again with allow_backup_retention_decrease=true."
                )
    replacements = needs_replacement(plan)
    if replacements and not allow_replacement:
        names = ", ".join(entry["attribute"] for entry in replacements)
        messages.append(
            f"Changing {names} cannot be done in place: it needs a replacement of the instance "
            "(snapshot, copy under the new key, restore, swap identifiers) with downtime. Stop writes to the "
            "database, then run again with allow_replacement=true; or keep the current value."
        )
    elif replacements and not writes_stopped:
        messages.append(
            "The replacement snapshots the live instance: anything written between the snapshot and the identifier "
            "swap is lost to the new instance. Stop every service that writes to the database (and check that no "
            "client session is left), then run again with writes_stopped=true."
        )
    reboots = [entry for entry in needs_reboot(plan) if entry["apply"] != REPLACEMENT]
    if reboots and not allow_reboot:
        names = ", ".join(entry["attribute"] for entry in reboots)
        messages.append(
            f"Changing {names} restarts the database. Run again with allow_reboot=true "
            "(ideally with apply=maintenance-window), or keep the current value."
        )
    return messages


def _with_companions(attributes):
    wanted = set(attributes)
    for attribute in attributes:
        wanted.update(_COMPANIONS.get(attribute, ()))
    return wanted


def modify_parameters(plan, current, desired):
    """ModifyDBInstance parameters for the in-place entries of ``plan`` (replacements excluded)."""
    in_place = [entry["attribute"] for entry in plan if entry["apply"] != REPLACEMENT]
    parameters = storage.modify_parameters(current, storage.of(desired), in_place)
    for attribute in sorted(_with_companions(in_place)):
        if attribute == "enable_cloudwatch_logs_exports" or attribute in storage.STORAGE_ATTRIBUTES:
            continue
        value = desired.get(attribute)
        if value is None or attribute not in API_PARAMETER:
            continue
        parameters[API_PARAMETER[attribute]] = value
    if "enable_cloudwatch_logs_exports" in in_place:
        parameters["CloudwatchLogsExportConfiguration"] = logs_export_change(
            current["enable_cloudwatch_logs_exports"], desired["enable_cloudwatch_logs_exports"]
        )
    if not desired.get("enable_performance_insights"):
        parameters.pop("PerformanceInsightsKMSKeyId", None)
        parameters.pop("PerformanceInsightsRetentionPeriod", None)
    if not desired.get("manage_master_user_password"):
        parameters.pop("MasterUserSecretKmsKeyId", None)
    if "CACertificateIdentifier" in parameters:
        parameters["CertificateRotationRestart"] = desired.get("ca_certificate_rotation_restart") is not False
    return parameters


def logs_export_change(current_logs, desired_logs):
    change = {}
    enable = sorted(set(desired_logs) - set(current_logs))
    disable = sorted(set(current_logs) - set(desired_logs))
    if enable:
        change["EnableLogTypes"] = enable
    if disable:
        change["DisableLogTypes"] = disable
    return change


def create_parameters(params, desired):
    """CreateDBInstance parameters for a new hardened instance."""
    parameters = {
        "DBInstanceIdentifier": params["db_instance_identifier"],
        "Engine": params["engine"],
        "DBSubnetGroupName": params["db_subnet_group_name"],
        "MasterUsername": params["master_username"],
        "StorageEncrypted": True,
        "KmsKeyId": desired["kms_key_id"],
        "EnableCloudwatchLogsExports": desired["enable_cloudwatch_logs_exports"],
    }
    if params["port"]:
        parameters["Port"] = params["port"]
    if params["master_user_password"] and not params["manage_master_user_password"]:
        parameters["MasterUserPassword"] = params["master_user_password"]
    for attribute, api_name in API_PARAMETER.items():
        if desired.get(attribute) is not None:
            parameters[api_name] = desired[attribute]
    if not desired.get("enable_performance_insights"):
        parameters.pop("PerformanceInsightsKMSKeyId", None)
        parameters.pop("PerformanceInsightsRetentionPeriod", None)
    return parameters


def diff(plan):
    """``--diff`` before/after of the planned attributes."""
    return {
        "before": {entry["attribute"]: entry["current"] for entry in plan},
        "after": {entry["attribute"]: entry["desired"] for entry in plan},
    }
