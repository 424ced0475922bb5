# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The desired state of a hardened RDS instance, and the pure (no AWS call) checks of its input.

Each hardened default names the AWS Security Hub Foundational Security Best Practices (FSBP)
control it satisfies, so the documentation and the plan can say why a value is what it is.
"""

from __future__ import annotations

from ansible_collections.cso.rds_hardening.plugins.module_utils.windows import (
    MINUTES_PER_DAY,
    MINUTES_PER_WEEK,
    length,
    parse_backup_window,
    parse_maintenance_window,
    windows_overlap,
)

ENGINES = ("mysql", "mariadb", "postgres")

# FSBP RDS.9: the engine's logs are published to CloudWatch Logs.
ENGINE_LOG_EXPORTS = {
    "mysql": ["audit", "error", "general", "slowquery"],
    "mariadb": ["audit", "error", "general", "slowquery"],
    "postgres": ["postgresql", "upgrade"],
}

MIN_BACKUP_RETENTION = 7
MAX_BACKUP_RETENTION = 35
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
MIN_WINDOW_MINUTES = 30


def desired_state(params, key_arns):
    """The attributes this task manages, by option name. ``None`` means "leave as it is".

    ``key_arns`` maps ``storage``, ``performance_insights`` and ``master_user_secret`` to the full ARN
    of the validated KMS key for each purpose.
    """
    engine = params["engine"]
    key = key_arns["storage"]
    logs = params["enable_cloudwatch_logs_exports"]
    desired = {
        "kms_key_id": key,
        "publicly_accessible": params["publicly_accessible"],
        "multi_az": params["multi_az"],
        "deletion_protection": params["deletion_protection"],
        "backup_retention_period": params["backup_retention_period"],
        "preferred_backup_window": params["preferred_backup_window"],
        "preferred_maintenance_window": params["preferred_maintenance_window"],
        "copy_tags_to_snapshot": params["copy_tags_to_snapshot"],
        "auto_minor_version_upgrade": params["auto_minor_version_upgrade"],
        "enable_iam_database_authentication": params["enable_iam_database_authentication"],
        "enable_cloudwatch_logs_exports": sorted(ENGINE_LOG_EXPORTS[engine] if logs is None else logs),
        "enable_performance_insights": params["enable_performance_insights"],
        "monitoring_interval": params["monitoring_interval"],
        "monitoring_role_arn": params["monitoring_role_arn"] if params["monitoring_interval"] else None,
        "vpc_security_group_ids": (
            sorted(params["vpc_security_group_ids"]) if params["vpc_security_group_ids"] else None
        ),
        "ca_certificate_identifier": params["ca_certificate_identifier"],
        "ca_certificate_rotation_restart": params.get("ca_certificate_rotation_restart", True),
        "db_parameter_group_name": params["db_parameter_group_name"],
        "db_instance_class": params["db_instance_class"],
        "engine_version": params["engine_version"],
        "storage_type": params["storage_type"],
        "allocated_storage": params["allocated_storage"],
        "max_allocated_storage": params["max_allocated_storage"],
        "iops": params["iops"],
        "storage_throughput": params["storage_throughput"],
        "manage_master_user_password": params["manage_master_user_password"],
        "option_group_name": params.get("option_group_name"),
    }
    if params["enable_performance_insights"]:
        desired["performance_insights_kms_key_id"] = key_arns["performance_insights"]
        desired["performance_insights_retention_period"] = params["performance_insights_retention_period"]
    if params["manage_master_user_password"]:
        desired["master_user_secret_kms_key_id"] = key_arns["master_user_secret"]
    return desired


def window_errors(backup_window, maintenance_window):
    """Messages for badly formed, too short or overlapping windows (empty when all is well)."""
    errors = []
    if backup_window is not None:
        parsed = parse_backup_window(backup_window)
        if parsed is None:
            errors.append(
                f"preferred_backup_window {backup_window!r} must be hh24:mi-hh24:mi in UTC, for example 02:00-03:00."
            )
        elif length(*parsed, MINUTES_PER_DAY) < MIN_WINDOW_MINUTES:
            errors.append(f"preferred_backup_window {backup_window!r} must last at least {MIN_WINDOW_MINUTES} minutes.")
    if maintenance_window is not None:
        parsed = parse_maintenance_window(maintenance_window)
        if parsed is None:
            errors.append(
                f"preferred_maintenance_window {maintenance_window!r} must be ddd:hh24:mi-ddd:hh24:mi in UTC, "
                "for example sun:04:00-sun:05:00."
            )
        elif length(*parsed, MINUTES_PER_WEEK) < MIN_WINDOW_MINUTES:
            errors.append(
                f"preferred_maintenance_window {maintenance_window!r} must last at least {MIN_WINDOW_MINUTES} minutes."
            )
    if not errors and backup_window and maintenance_window and windows_overlap(backup_window, maintenance_window):
        errors.append(
            f"preferred_maintenance_window {maintenance_window!r} overlaps preferred_backup_window {backup_window!r}; "
            "AWS refuses overlapping windows. Move one of them (for example backup 02:00-03:00, maintenance sun:04:00-sun:05:00)."
        )
    return errors


def valid_performance_insights_retention(days):
    """7 days (free tier), a whole number of months (31-day steps) up to 23 months, or 731 days."""
    return days == 7 or days == 731 or (days % 31 == 0 and 31 <= days <= 713)


def input_errors(params):
    """Every problem with the options themselves (no AWS call needed), as messages that say what to do."""
    errors = []
    retention = params["backup_retention_period"]
    if not MIN_BACKUP_RETENTION <= retention <= MAX_BACKUP_RETENTION:
        errors.append(
            f"backup_retention_period {retention} is out of range: use {MIN_BACKUP_RETENTION} to {MAX_BACKUP_RETENTION} days "
            f"(AWS allows at most {MAX_BACKUP_RETENTION}; Security Hub RDS.11 requires at least {MIN_BACKUP_RETENTION})."
        )
    if params.get("wait_timeout") is not None and params["wait_timeout"] < 1:
        errors.append(f"wait_timeout must be a positive number of seconds (got {params['wait_timeout']}).")
    errors += window_errors(params["preferred_backup_window"], params["preferred_maintenance_window"])
    if params["monitoring_interval"] not in MONITORING_INTERVALS:
        errors.append(f"monitoring_interval must be one of {list(MONITORING_INTERVALS)} seconds.")
    if params["enable_performance_insights"] and not valid_performance_insights_retention(
        params["performance_insights_retention_period"]
    ):
        errors.append(
            "performance_insights_retention_period must be 7, a multiple of 31 up to 713, or 731 days "
            f"(got {params['performance_insights_retention_period']})."
        )
    allocated, ceiling = params["allocated_storage"], params["max_allocated_storage"]
    if allocated and ceiling and ceiling < allocated:
        errors.append(f"max_allocated_storage ({ceiling}) must be at least allocated_storage ({allocated}).")
    logs = params["enable_cloudwatch_logs_exports"]
    unknown_logs = sorted(set(logs or []) - set(ENGINE_LOG_EXPORTS[params["engine"]]))
    if unknown_logs:
        errors.append(
            f"enable_cloudwatch_logs_exports {unknown_logs} are not log types of {params['engine']}; "
            f"use some of {ENGINE_LOG_EXPORTS[params['engine']]}."
        )
    return errors


def creation_errors(params):
    """What a new instance needs beyond the options of an existing one."""
    required = (
        "engine_version",
        "db_instance_class",
        "allocated_storage",
        "db_subnet_group_name",
        "vpc_security_group_ids",
        "master_username",
    )
    missing = [name for name in required if not params.get(name)]
    errors = []
    if missing:
        errors.append(
            f"Instance {params['db_instance_identifier']} does not exist; to create it also set {', '.join(missing)}."
        )
    if not params["manage_master_user_password"] and not params["master_user_password"]:
        errors.append(
            "Set master_user_password, or leave manage_master_user_password=true to keep it in Secrets Manager."
        )
    return errors
