# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Promoting a read replica to a standalone DB instance: its state, checks, plan and result (pure: no AWS call).

The rules, with their AWS sources:

* AWS: RDS User Guide, "Promoting a read replica to be a standalone DB instance": "When you promote a read replica,
  RDS reboots the DB instance before making it available", and replication from the source stops for good (the
  promoted instance is no longer a replica and cannot be made one again). So the promotion's impact is ``restart``.
  Same page and PromoteReadReplica: "a read replica cannot be promoted to a standalone instance when it is in the
  backing-up status", so a replica that is not ``available`` is waited for first.
* AWS: RDS API Reference, PromoteReadReplica: ``DBInstanceIdentifier`` "Must match the identifier of an existing
  read replica DB instance"; ``BackupRetentionPeriod`` "Default: 1", 0 to 35, "Can't be set to 0 if the DB
  instance is a source to read replicas"; ``PreferredBackupWindow`` ``hh24:mi-hh24:mi`` UTC, at least 30 minutes,
  not overlapping the maintenance window.

AWS keeps no mark of a promotion on the instance, so the module records one: the tag ``PROMOTED_TAG`` (the former
source). With it a later run tells a promoted instance from one that never was a replica (``STATES``).
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_result
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item
from ansible_collections.cso.rds_hardening.plugins.module_utils.windows import length
from ansible_collections.cso.rds_hardening.plugins.module_utils.windows import MINUTES_PER_DAY
from ansible_collections.cso.rds_hardening.plugins.module_utils.windows import parse_backup_window
from ansible_collections.cso.rds_hardening.plugins.module_utils.windows import windows_overlap

PROMOTED_TAG = "cso-rds-hardening:promoted-from"
AWS_DEFAULT_BACKUP_RETENTION = 1
MAX_BACKUP_RETENTION = 35
SOURCE_ATTRIBUTE = "read_replica_source_db_instance_identifier"

# state -> what the result's ``promotion`` says about it
STATES = {
    "replica": "promoted",  # a read replica now: this run promotes it
    "promoting": "promoted",  # promoted by an earlier run that did not wait: this run waits
    "promoted": "already-promoted",  # standalone, with this module's record of its promotion
    "standalone": "not-a-replica",  # standalone, never promoted by this module
}


def tags_of(instance):
    return boto3_tag_list_to_ansible_dict(instance.get("TagList") or [])


def state_of(instance):
    """One of ``STATES`` for an existing instance."""
    recorded = PROMOTED_TAG in tags_of(instance)
    if instance.get("ReadReplicaSourceDBInstanceIdentifier"):
        return "promoting" if recorded else "replica"
    return "promoted" if recorded else "standalone"


def former_source(instance):
    """The source the instance replicates (or replicated, as recorded), None when it never was a replica."""
    return instance.get("ReadReplicaSourceDBInstanceIdentifier") or tags_of(instance).get(PROMOTED_TAG)


def input_errors(params):
    """Problems with the options themselves (no AWS call), as messages that say what to do."""
    errors = []
    retention, window = params["backup_retention_period"], params["preferred_backup_window"]
    if retention is not None and not 0 <= retention <= MAX_BACKUP_RETENTION:
        errors.append(f"backup_retention_period must be 0 to {MAX_BACKUP_RETENTION} days (got {retention}).")
    if window is not None:
        parsed = parse_backup_window(window)
        if parsed is None:
            errors.append(f"preferred_backup_window must be hh24:mi-hh24:mi in UTC, for example 03:00-03:30 (got {window}).")
        elif length(parsed[0], parsed[1], MINUTES_PER_DAY) < 30:
            errors.append(f"preferred_backup_window must be at least 30 minutes long (got {window}).")
    if params["wait_timeout"] < 1:
        errors.append(f"wait_timeout must be a positive number of seconds (got {params['wait_timeout']}).")
    return errors


def instance_errors(instance, params, region):
    """Why ``instance`` (a DBInstance dict, or None) cannot be promoted or left as it is; empty when it can."""
    name = params["db_instance_identifier"]
    if instance is None:
        return [f"DB instance {name} does not exist in {region}. Name the read replica to promote (and the region "
                "it is in: for a cross-Region replica, the replica's region)."]
    state, replicas = state_of(instance), instance.get("ReadReplicaDBInstanceIdentifiers") or []
    if state == "standalone" and replicas:
        return [f"DB instance {name} is not a read replica: it is the source of {', '.join(replicas)}. Promoting makes "
                f"a replica the new primary, so name one of those replicas in db_instance_identifier (the one in the "
                "Region you recover to). Nothing was changed."]
    errors = []
    if state == "replica" and replicas and params["backup_retention_period"] == 0:
        errors.append(f"backup_retention_period cannot be 0: {name} is the source of {', '.join(replicas)}, and AWS "
                      "keeps automated backups on for a source of read replicas. Use 1 or more days.")
    window, maintenance = params["preferred_backup_window"], instance.get("PreferredMaintenanceWindow")
    if state == "replica" and window and parse_backup_window(window) and maintenance and windows_overlap(window, maintenance):
        errors.append(f"preferred_backup_window {window} overlaps {name}'s maintenance window {maintenance}; AWS "
                      "refuses that. Choose a backup window outside it.")
    return errors


def _entry(attribute, what, impact, before, after, effect=None):
    """A plan entry in the shape of ``instance_plan.entry``: every change is applied by the promotion itself."""
    return plan_item(what, impact, before, after, apply="immediately", effect=effect, attribute=attribute,
                     current=before, desired=after)


def promotion_plan(instance, params):
    """The promotion and what it sets, for a replica (empty for any other state: nothing to do)."""
    if state_of(instance) != "replica":
        return []
    name, source = instance["DBInstanceIdentifier"], instance["ReadReplicaSourceDBInstanceIdentifier"]
    plan = [_entry(
        SOURCE_ATTRIBUTE, f"promote read replica {name} of {source} to a standalone DB instance", "restart", source, None,
        f"RDS reboots {name} before it is available again: every connection to {name} drops until it is back. "
        f"Replication from {source} stops for good: {name} takes writes and no longer receives {source}'s; "
        f"{source} itself is not touched (point its writers at {name} only when you fail over to it).")]
    retention = params["backup_retention_period"]
    retention = AWS_DEFAULT_BACKUP_RETENTION if retention is None else retention
    if retention != instance.get("BackupRetentionPeriod"):
        plan.append(_entry("backup_retention_period", "backup_retention_period", "none",
                           instance.get("BackupRetentionPeriod"), retention))
    window = params["preferred_backup_window"]
    if window and window != instance.get("PreferredBackupWindow"):
        plan.append(_entry("preferred_backup_window", "preferred_backup_window", "none",
                           instance.get("PreferredBackupWindow"), window))
    tags = tags_of(instance)
    plan.append(_entry("tags", "tags", "none", tags, dict(tags, **{PROMOTED_TAG: source})))
    return plan


def promote_parameters(params):
    """PromoteReadReplica parameters (AWS's defaults apply to what the task leaves unset)."""
    parameters = {"DBInstanceIdentifier": params["db_instance_identifier"]}
    if params["backup_retention_period"] is not None:
        parameters["BackupRetentionPeriod"] = params["backup_retention_period"]
    if params["preferred_backup_window"]:
        parameters["PreferredBackupWindow"] = params["preferred_backup_window"]
    return parameters


def promotion_tags(instance):
    """The tag that records the promotion (its former source)."""
    return [{"Key": PROMOTED_TAG, "Value": instance["ReadReplicaSourceDBInstanceIdentifier"]}]


def result_for(instance, plan, changed, state):
    """``rds_hardened_instance``'s result layout (plan, diff, pending values, instance) plus what the run found:
    ``promotion`` (``STATES``) and ``promoted_from``."""
    extra = dict(promotion=STATES[state], promoted_from=former_source(instance) if instance else None)
    return instance_result.result_for(instance, plan, changed, extra)
