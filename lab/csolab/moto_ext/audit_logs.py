"""Audit logging of a served instance: what its option group asks of the MariaDB Audit Plugin, and the
publication of the audit log to CloudWatch Logs.

Rules, with their sources:

* The plugin runs when the instance's option group holds the option ``MARIADB_AUDIT_PLUGIN``; no restart is
  needed, auditing starts as soon as the option group is active (AWS: RDS User Guide, "MariaDB Audit Plugin
  support for MySQL", "Adding the MariaDB Audit Plugin"). Removing the option stops it, again without a restart
  ("Removing the MariaDB Audit Plugin": "When you remove the MariaDB Audit Plugin, the DB instance is restarted
  automatically to stop auditing"; RDS offers no other way to turn its logging off, ``SERVER_AUDIT_LOGGING``
  allows ON only). Removing the option from a group restarts every instance using the group ("This change
  affects all DB instances that use the option group"); so does moving an instance from a group with the option
  to one without (the page's other way of removing it). The lab applies option group changes at once, whatever
  ``ApplyImmediately`` says (as moto does).
* A setting not given in the option takes its default from the same page's "Audit Plugin option settings"
  table: ``SERVER_AUDIT_EVENTS`` CONNECT,QUERY; ``SERVER_AUDIT_FILE_ROTATE_SIZE`` 1000000;
  ``SERVER_AUDIT_FILE_ROTATIONS`` 9; ``SERVER_AUDIT_QUERY_LOG_LIMIT`` 1024; included / excluded users none.
  ``SERVER_AUDIT_FILE_PATH`` (``/rdsdbdata/log/audit/``) is the instance's own directory in the lab.
* Publication: with ``audit`` among the instance's ``EnabledCloudwatchLogsExports``, RDS publishes the audit log
  to the log group ``/aws/rds/instance/<instance identifier>/audit``, creating it when it does not exist, with one
  log stream named after the instance (AWS: RDS User Guide, "Publishing MySQL logs to Amazon CloudWatch Logs";
  "Publishing database logs to Amazon CloudWatch Logs"). Lines written while the export is off are not published.

The bridge (``csolab.dataplane.audit``) applies the settings to the instance's MariaDB (``server_audit``) and
reports the new lines of its audit file with each poll; ``dataplane_state`` hands them to ``publish``. The
events carry the time the lab received them.
"""

import time

from moto.logs.models import logs_backends
from moto.rds.models import rds_backends
from moto.rds.exceptions import OptionGroupNotFoundFaultError
from moto.rds.models import RDSBackend

from csolab.moto_ext import restarts
from csolab.moto_ext._common import around, arn_region, get

RESTART_REASON = "MariaDB Audit Plugin removed"

OPTION_NAME = "MARIADB_AUDIT_PLUGIN"
LOG_TYPE = "audit"
# AWS: RDS User Guide, "MariaDB Audit Plugin support for MySQL", "Audit Plugin option settings" (defaults)
DEFAULTS = {
    "SERVER_AUDIT_EVENTS": "CONNECT,QUERY",
    "SERVER_AUDIT_EXCL_USERS": "",
    "SERVER_AUDIT_INCL_USERS": "",
    "SERVER_AUDIT_FILE_ROTATE_SIZE": "1000000",
    "SERVER_AUDIT_FILE_ROTATIONS": "9",
    "SERVER_AUDIT_QUERY_LOG_LIMIT": "1024",
}


def _group_has_plugin(backend, name):
    group = backend.option_groups.get(name or "")
    return group is not None and any(option["OptionName"] == OPTION_NAME for option in group.options)


@around(RDSBackend, "modify_option_group")
def _modify_option_group(original, backend, option_group_name, options_to_include=None, options_to_remove=None):
    had = _group_has_plugin(backend, option_group_name)
    group = original(backend, option_group_name, options_to_include, options_to_remove)
    if had and not _group_has_plugin(backend, option_group_name):
        for database in list(backend.databases.values()):
            if (database.option_group_name or "").lower() == group.name.lower():
                restarts.restart(database, RESTART_REASON)
    return group


@around(RDSBackend, "modify_db_instance")
def _modify_db_instance(original, backend, db_instance_identifier, db_kwargs):
    wanted = get(db_kwargs, "option_group_name")
    if wanted and not wanted.startswith("default:") and wanted not in backend.option_groups:
        raise OptionGroupNotFoundFaultError(wanted)  # AWS: RDS API Reference, ModifyDBInstance, OptionGroupNotFoundFault
    before = backend.databases.get(db_instance_identifier)
    had = before is not None and _group_has_plugin(backend, before.option_group_name)
    database = original(backend, db_instance_identifier, db_kwargs)
    if had and get(db_kwargs, "option_group_name") and not _group_has_plugin(backend, database.option_group_name):
        restarts.restart(database, RESTART_REASON)
    return database


def _plugin_settings(database):
    """The option's settings (with AWS's defaults) when the instance's option group holds the option, else None."""
    backend = rds_backends[database.account_id][database.region]
    group = backend.option_groups.get(database.option_group_name or "")
    for option in group.options if group is not None else []:
        if option["OptionName"] == OPTION_NAME:
            given = {item["Name"]: item["Value"] for item in option["OptionSettings"] if item.get("Name")}
            return {name: str(given.get(name, default) or "") for name, default in DEFAULTS.items()}
    return None


def describe(database):
    """What the bridge applies: ``plugin`` (the settings, or None: no auditing) and ``export`` (published or not)."""
    return {"plugin": _plugin_settings(database),
            "export": LOG_TYPE in (getattr(database, "enabled_cloudwatch_logs_exports", None) or [])}


def log_group_name(database):
    return f"/aws/rds/instance/{database.db_instance_identifier}/{LOG_TYPE}"


def publish(database, lines):
    """Put the audit lines the bridge read into the instance's log group (when the export is on)."""
    if not lines or not describe(database)["export"]:
        return 0
    region = arn_region(database.db_instance_arn) or database.region
    logs = logs_backends[database.account_id][region]
    group, stream = log_group_name(database), database.db_instance_identifier
    if group not in logs.groups:
        logs.create_log_group(group, tags={})
    if stream not in logs.groups[group].streams:
        logs.create_log_stream(group, stream)
    now = int(time.time() * 1000)
    logs.put_log_events(group, stream, [{"timestamp": now, "message": line} for line in lines])
    return len(lines)
