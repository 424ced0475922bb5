# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Audit logging of an RDS for MySQL/MariaDB instance with the MariaDB Audit Plugin: the desired option
settings, the checks of the input, and the plan. Pure: no AWS call (``rds_audit_logging`` reads AWS).

RDS for MySQL has no database activity streams (AWS: RDS User Guide, "Monitoring Amazon RDS with Database
Activity Streams": Oracle and SQL Server only; Aurora has its own). Auditing there is the option
``MARIADB_AUDIT_PLUGIN`` in an option group attached to the instance (AWS: RDS User Guide, "MariaDB Audit
Plugin support for MySQL"), whose log file RDS publishes to CloudWatch Logs as the ``audit`` log type.

Which settings exist, which are modifiable and their allowed values are not written here: they come from
AWS's ``DescribeOptionGroupOptions`` for the instance's engine and major version (``option_errors``).
"""

from __future__ import annotations

import re

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item

OPTION_NAME = "MARIADB_AUDIT_PLUGIN"
AUDIT_LOG_TYPE = "audit"
ENGINES = ("mysql", "mariadb")

# option -> the plugin setting it sets
SETTING_FOR = {
    "events": "SERVER_AUDIT_EVENTS",
    "excluded_users": "SERVER_AUDIT_EXCL_USERS",
    "included_users": "SERVER_AUDIT_INCL_USERS",
    "file_rotate_size": "SERVER_AUDIT_FILE_ROTATE_SIZE",
    "file_rotations": "SERVER_AUDIT_FILE_ROTATIONS",
    "query_log_limit": "SERVER_AUDIT_QUERY_LOG_LIMIT",
}
# Events that log statement text with its values: DML carries row data (PII), QUERY every statement.
SENSITIVE_EVENTS = ("QUERY", "QUERY_DML", "QUERY_DML_NO_SELECT")
_USER = re.compile(r"^[^,\s]+$")
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# AWS: RDS User Guide, "MariaDB Audit Plugin support for MySQL", "Removing the MariaDB Audit Plugin": "When you
# remove the MariaDB Audit Plugin, the DB instance is restarted automatically to stop auditing", and removing it
# from an option group "affects all DB instances that use the option group".
REMOVAL_EFFECT = ("RDS restarts every instance that uses option group {group} to stop auditing: every client "
                  "connection drops until the database is back.")


def _joined(values):
    return ",".join(values) if values else None


def desired_settings(params):
    """Setting name -> value (strings, as AWS stores them) for the settings this task manages."""
    settings = {}
    for option, setting in SETTING_FOR.items():
        value = params.get(option)
        if isinstance(value, list):
            value = _joined([item.strip() for item in value])
        if value is not None:
            settings[setting] = str(value)
    settings.update({name: str(value) for name, value in (params.get("option_settings") or {}).items()})
    return settings


def input_errors(params):
    """Problems with the options themselves (no AWS call needed), as messages that say what to do."""
    errors = []
    events = [event.strip().upper() for event in params.get("events") or []]
    if params.get("events") is not None and not events:
        errors.append("events is empty: name at least one event type, for example [CONNECT, QUERY_DDL, QUERY_DCL].")
    duplicates = sorted({event for event in events if events.count(event) > 1})
    if duplicates:
        errors.append(f"events names {duplicates} more than once; name each event type once.")
    for option in ("excluded_users", "included_users"):
        bad = [user for user in params.get(option) or [] if not _USER.match(user)]
        if bad:
            errors.append(f"{option} {bad} are not user names: one user name per list item, without commas or spaces.")
    for option in ("file_rotate_size", "file_rotations", "query_log_limit"):
        if params.get(option) is not None and params[option] < 0:
            errors.append(f"{option} must not be negative (got {params[option]}).")
    taken = set(SETTING_FOR.values())
    for name in params.get("option_settings") or {}:
        if name in taken:
            option = next(key for key, value in SETTING_FOR.items() if value == name)
            errors.append(f"option_settings.{name}: set it with the option {option} instead.")
        elif not _SETTING_NAME.match(name):
            errors.append(f"option_settings.{name} is not a setting name: use the upper-case names of the "
                          f"{OPTION_NAME} option, for example SERVER_AUDIT_QUERY_LOG_LIMIT.")
    return errors


def sensitive_events(events):
    """The chosen events that write statement text with values (query text of DML, or of every statement)."""
    return [event for event in (item.strip().upper() for item in events or []) if event in SENSITIVE_EVENTS]


def find_option(option_group_options, engine, version):
    """The ``MARIADB_AUDIT_PLUGIN`` entry of ``DescribeOptionGroupOptions`` for ``version``'s major version."""
    major = major_version(engine, version)
    for option in option_group_options:
        if option.get("Name") == OPTION_NAME and option.get("MajorEngineVersion") == major:
            return option
    return None


def major_version(engine, version):
    """The major engine version option groups are made for (8.0 of 8.0.42; 10.11 of MariaDB 10.11.9)."""
    return ".".join(str(version).split(".")[:2])


def _minor(version):
    parts = str(version).split(".")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None


def _allowed(allowed, value, many):
    """Whether ``value`` is within AWS's ``AllowedValues`` (a range ``a-b`` or a comma list)."""
    if not allowed:
        return True
    match = re.match(r"^(\d+)-(\d+)$", allowed)
    if match:
        return value.isdigit() and int(match.group(1)) <= int(value) <= int(match.group(2))
    choices = [choice.strip() for choice in allowed.split(",")]
    items = [item.strip() for item in value.split(",")] if many else [value]
    return all(item in choices for item in items)


def option_errors(option, engine, version, settings):
    """Problems of ``settings`` against the option as AWS describes it (None: the option does not exist)."""
    if engine not in ENGINES:
        return [f"The instance runs {engine}: the MariaDB Audit Plugin exists for mysql and mariadb only."]
    if option is None:
        return [f"RDS offers no {OPTION_NAME} option for {engine} {major_version(engine, version)} "
                "(DescribeOptionGroupOptions); upgrade the instance to a version that has it."]
    errors = []
    minimum = option.get("MinimumRequiredMinorEngineVersion")
    if minimum and str(minimum).isdigit() and _minor(version) is not None and _minor(version) < int(minimum):
        errors.append(f"{OPTION_NAME} needs {engine} {major_version(engine, version)}.{minimum} or later; the instance "
                      f"runs {version}. Upgrade the engine first.")
    described = {item["SettingName"]: item for item in option.get("OptionGroupOptionSettings") or []}
    for name, value in sorted(settings.items()):
        setting = described.get(name)
        if setting is None:
            errors.append(f"{OPTION_NAME} has no setting {name}; use some of {sorted(described)}.")
        elif not setting.get("IsModifiable", True):
            errors.append(f"{OPTION_NAME} setting {name} cannot be changed on RDS (it is "
                          f"{setting.get('DefaultValue')!r} there); remove it from the task.")
        elif not _allowed(setting.get("AllowedValues"), value, name == SETTING_FOR["events"]):
            errors.append(f"{name}={value!r} is not allowed: RDS accepts {setting.get('AllowedValues')}"
                          f"{' (a comma-separated list of them)' if name == SETTING_FOR['events'] else ''}.")
    return errors


def current_settings(option_group):
    """Setting name -> value of the plugin option in ``option_group`` (None: the option is not in it)."""
    for option in (option_group or {}).get("Options") or []:
        if option.get("OptionName") == OPTION_NAME:
            return {item["Name"]: item.get("Value") for item in option.get("OptionSettings") or []}
    return None


def settings_differ(current, desired):
    """Whether a managed setting differs; an event list compares as a set (AWS keeps the order it was given)."""
    if current is None:
        return True
    for name, value in desired.items():
        now = current.get(name)
        if name == SETTING_FOR["events"] and now is not None:
            if {item.strip().upper() for item in now.split(",")} != {item.strip().upper() for item in value.split(",")}:
                return True
        elif now != value:
            return True
    return False


def instance_option_group(instance):
    memberships = [item for item in instance.get("OptionGroupMemberships") or [] if item.get("Status") != "removing"]
    return memberships[0]["OptionGroupName"] if memberships else None


def instance_log_exports(instance):
    """The log types exported once pending changes apply."""
    logs = set(instance.get("EnabledCloudwatchLogsExports") or [])
    pending = (instance.get("PendingModifiedValues") or {}).get("PendingCloudwatchLogsExports") or {}
    return sorted((logs | set(pending.get("LogTypesToEnable") or [])) - set(pending.get("LogTypesToDisable") or []))


def _group_entry(name, group, engine, major):
    if group is not None:
        return []
    return [plan_item("option_group", "none", None, {"name": name, "engine": engine, "major_engine_version": major},
                      apply="immediately", effect=None)]


def plan(params, instance, group, apply_mode):
    """Every change, as plan items (what/impact/before/after + apply/effect), in the order they are made (group,
    option, instance; on removal the instance first).

    AWS: RDS User Guide, "MariaDB Audit Plugin support for MySQL": after the option is added no restart is
    needed, auditing begins as soon as the option group is active; ModifyDBInstance ``OptionGroupName``: the
    change causes no outage (the exception is an option that enables OEM, an Oracle option) and follows
    ``ApplyImmediately``; log exports apply at once ("Publishing MySQL logs to Amazon CloudWatch Logs").
    Removing the option restarts the instance ("Removing the MariaDB Audit Plugin").
    """
    name, present = params["option_group_name"], params["state"] == "present"
    engine, version = instance["Engine"], instance["EngineVersion"]
    items = _group_entry(name, group, engine, major_version(engine, version)) if present else []
    current = current_settings(group)
    desired = desired_settings(params)
    if present and settings_differ(current, desired):
        before = None if current is None else {key: current.get(key) for key in desired}
        items.append(plan_item(f"{OPTION_NAME} settings", "none", before, desired, apply=apply_mode, effect=None))
    removal = [] if present or current is None else [plan_item(
        f"{OPTION_NAME} settings", "restart", current, None, apply=apply_mode, effect=REMOVAL_EFFECT.format(group=name))]
    attached = instance_option_group(instance)
    if present and (attached or "").lower() != name.lower():
        items.append(plan_item("option_group_name", "none", attached, name, apply=apply_mode, effect=None))
    logs = instance_log_exports(instance)
    wanted = present and params.get("export_audit_log", True)
    if wanted != (AUDIT_LOG_TYPE in logs):
        after = sorted(set(logs) | {AUDIT_LOG_TYPE}) if wanted else [log for log in logs if log != AUDIT_LOG_TYPE]
        items.append(plan_item("enable_cloudwatch_logs_exports", "none", logs, after, apply="immediately", effect=None))
    return items + removal  # the export stops before the restart that removes the option


def refusals(items, allow_reboot):
    """Messages for planned changes the task did not allow (empty when everything may go ahead)."""
    restarts = [item for item in items if item["impact"] == "restart"]
    if restarts and not allow_reboot:
        return [f"Removing {OPTION_NAME} restarts every instance that uses the option group (AWS restarts them to "
                "stop auditing). Run again with allow_reboot=true (ideally with apply=maintenance-window), or keep "
                "auditing."]
    return []


def option_to_include(params):
    settings = desired_settings(params)
    return {"OptionName": OPTION_NAME,
            "OptionSettings": [{"Name": key, "Value": value} for key, value in sorted(settings.items())]}


def instance_parameters(items, apply_mode):
    """ModifyDBInstance parameters for the instance items of the plan (empty when none)."""
    parameters = {}
    for item in items:
        if item["what"] == "option_group_name":
            parameters["OptionGroupName"] = item["after"]
        elif item["what"] == "enable_cloudwatch_logs_exports":
            change = {}
            if AUDIT_LOG_TYPE in item["after"]:
                change["EnableLogTypes"] = [AUDIT_LOG_TYPE]
            else:
                change["DisableLogTypes"] = [AUDIT_LOG_TYPE]
            parameters["CloudwatchLogsExportConfiguration"] = change
    if parameters:
        parameters["ApplyImmediately"] = apply_mode == "immediately"
    return parameters


def diff(items):
    return {"before": {item["what"]: item["before"] for item in items},
            "after": {item["what"]: item["after"] for item in items}}
