# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Cross-region replication of RDS automated backups, and restores from them.

AWS has no "modify" for a replication: ``StartDBInstanceAutomatedBackupsReplication`` and
``StopDBInstanceAutomatedBackupsReplication`` are both called in the *destination* region with the
source instance's ARN. Changing the retention period or the KMS key therefore means stop + start,
which leaves a gap in the replicated history; :func:`compute_plan` says so explicitly.

Every AWS call goes through a client built with ``AWSRetry.jittered_backoff`` (``aws_retry=True``)
and the waiters come from amazon.aws's ``BaseWaiterFactory``, which retries throttling too.
"""

from __future__ import annotations

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.waiter import BaseWaiterFactory

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import waiter_config

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item

# "replicating" is what AWS reports in the destination region while replication runs; "active"
# is the state of a local automated backup (and what the replicated one reports once caught up).
REPLICATING_STATES = ("replicating", "active")
STOPPED_STATES = ("retained",)
RETENTION_RANGE = (1, 35)
GAP_WARNING = (
    "AWS cannot modify a running replication: the plan stops it and starts it again, so the replicated history "
    "in the destination region restarts from the next backup (a gap in point-in-time recovery there)."
)


class ReplicationWaiterFactory(BaseWaiterFactory):
    """Waiters for replicated automated backups (botocore has none)."""

    @property
    def _waiter_model_data(self):
        return dict(
            replicated_backup_active=dict(
                operation="DescribeDBInstanceAutomatedBackups",
                delay=15,
                maxAttempts=120,
                acceptors=[
                    dict(state="success", matcher="pathAny", expected="replicating", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="success", matcher="pathAny", expected="active", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="failure", matcher="pathAny", expected="failed", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="retry", matcher="error", expected="DBInstanceAutomatedBackupNotFound"),
                    dict(state="retry", matcher="path", expected=True, argument="length(DBInstanceAutomatedBackups) == `0`"),
                    dict(state="retry", matcher="pathAny", expected="pending", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="retry", matcher="pathAny", expected="creating", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="retry", matcher="pathAny", expected="starting", argument="DBInstanceAutomatedBackups[].Status"),
                ],
            ),
            replicated_backup_stopped=dict(
                operation="DescribeDBInstanceAutomatedBackups",
                delay=15,
                maxAttempts=120,
                acceptors=[
                    dict(state="success", matcher="pathAll", expected="retained", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="success", matcher="error", expected="DBInstanceAutomatedBackupNotFound"),
                    dict(state="success", matcher="path", expected=True, argument="length(DBInstanceAutomatedBackups) == `0`"),
                    dict(state="retry", matcher="pathAny", expected="replicating", argument="DBInstanceAutomatedBackups[].Status"),
                    dict(state="retry", matcher="pathAny", expected="stopping", argument="DBInstanceAutomatedBackups[].Status"),
                ],
            ),
            # botocore's own db_instance_* waiters do not retry throttling; these do.
            restored_instance_available=dict(
                operation="DescribeDBInstances",
                delay=15,
                maxAttempts=240,
                acceptors=[
                    dict(state="success", matcher="pathAll", expected="available", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="failure", matcher="pathAny", expected="deleting", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="failure", matcher="pathAny", expected="failed", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="failure", matcher="pathAny", expected="incompatible-restore", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="failure", matcher="pathAny", expected="incompatible-parameters", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="retry", matcher="error", expected="DBInstanceNotFound"),
                ],
            ),
            restored_instance_deleted=dict(
                operation="DescribeDBInstances",
                delay=15,
                maxAttempts=240,
                acceptors=[
                    dict(state="success", matcher="error", expected="DBInstanceNotFound"),
                    dict(state="success", matcher="path", expected=True, argument="length(DBInstances) == `0`"),
                    dict(state="retry", matcher="pathAny", expected="deleting", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="retry", matcher="pathAny", expected="available", argument="DBInstances[].DBInstanceStatus"),
                    dict(state="retry", matcher="pathAny", expected="modifying", argument="DBInstances[].DBInstanceStatus"),
                ],
            ),
        )


WAITERS = ReplicationWaiterFactory()


def arn_region(arn):
    return arn.split(":")[3]


def replication_arn_in_region(source_instance, destination_region):
    """The ARN of the source's replicated backups in ``destination_region``, or None."""
    for replication in source_instance.get("DBInstanceAutomatedBackupsReplications") or []:
        arn = replication.get("DBInstanceAutomatedBackupsArn", "")
        if arn and arn_region(arn) == destination_region:
            return arn
    return None


def describe_replicated_backup(destination_client, backups_arn):
    """The DBInstanceAutomatedBackup for an ARN in the destination region, or None."""
    try:
        backups = destination_client.describe_db_instance_automated_backups(
            DBInstanceAutomatedBackupsArn=backups_arn, aws_retry=True
        )["DBInstanceAutomatedBackups"]
    except is_boto3_error_code("DBInstanceAutomatedBackupNotFound"):
        return None
    return backups[0] if backups else None


def current_replication(source_instance, destination_client, destination_region):
    """The running replication of ``source_instance`` into ``destination_region`` (backup dict) or None."""
    backups_arn = replication_arn_in_region(source_instance, destination_region)
    if backups_arn is None:
        return None
    backup = describe_replicated_backup(destination_client, backups_arn)
    if backup is None or backup.get("Status") in STOPPED_STATES:
        return None
    return backup


def key_unusable_reasons(key, region):
    """Why the KMS key (its ``KeyMetadata``) cannot encrypt replicated backups in ``region``; empty when it can.

    AWS: RDS User Guide, "Encrypting Amazon RDS resources" (RDS supports only symmetric encryption KMS keys)
    and "Replicating automated backups to another AWS Region" (the key must be in the destination Region).
    The key spec must be stated; a missing key usage is accepted for a SYMMETRIC_DEFAULT key, whose only
    valid usage is ENCRYPT_DECRYPT (AWS: KMS API Reference, CreateKey, KeyUsage).
    """
    reasons = []
    arn = key.get("Arn") or ""
    if not arn.startswith("arn:") or arn_region(arn) != region:
        reasons.append(f"it is not a key of {region} (ARN {arn or 'unknown'})")
    if key.get("KeyState") != "Enabled":
        reasons.append(f"its state is {key.get('KeyState')}, not Enabled")
    if key.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        reasons.append(f"its usage is {key.get('KeyUsage')}, not ENCRYPT_DECRYPT")
    spec = key.get("KeySpec") or key.get("CustomerMasterKeySpec")
    if spec != "SYMMETRIC_DEFAULT":
        reasons.append(f"its key spec is {spec}, not SYMMETRIC_DEFAULT (RDS uses symmetric encryption keys only)")
    return reasons


def desired_settings(retention_period, kms_key_arn):
    return {"backup_retention_period": retention_period, "kms_key_id": kms_key_arn}


def current_settings(backup):
    if backup is None:
        return None
    return {"backup_retention_period": backup.get("BackupRetentionPeriod"), "kms_key_id": backup.get("KmsKeyId")}


def settings_differences(current, desired):
    """Names of the settings that differ; a desired value of None means "keep whatever is there"."""
    return sorted(
        name for name, wanted in desired.items() if wanted is not None and current.get(name) != wanted
    )


def compute_plan(state, current, desired):
    """What has to happen, as a list of action names plus the reason for a restart.

    ``current``/``desired`` are :func:`current_settings`/:func:`desired_settings` dicts
    (``current`` None when nothing replicates).
    """
    if state == "absent":
        return {"actions": ["stop_replication"] if current else [], "restart_required": False, "changes": []}
    if current is None:
        return {"actions": ["start_replication"], "restart_required": False, "changes": []}
    changes = settings_differences(current, desired)
    if not changes:
        return {"actions": [], "restart_required": False, "changes": []}
    return {
        "actions": ["stop_replication", "start_replication"],
        "restart_required": True,
        "changes": changes,
        "warning": GAP_WARNING,
    }


def _settings_in_words(settings):
    return f"retention {settings['backup_retention_period']} days, key {settings['kms_key_id']}"


def plan_items(plan, current, desired, source_arn, destination_region):
    """The plan in the shape every module returns (what, impact, before, after), one item per call.

    Replication never touches the source instance, so its clients notice nothing (impact ``none``);
    what a restart costs (a gap in the replicated history) is said in ``what``.
    """
    subject = f"automated backups of {source_arn} replicated into {destination_region}"
    items = []
    for action in plan["actions"]:
        if action == "stop_replication" and plan["restart_required"]:
            changed = ", ".join(plan["changes"])
            what = f"stop the {subject} to change {changed}. {GAP_WARNING}"
            items.append(plan_item(what, "none", current, None, call=action))
        elif action == "stop_replication":
            what = f"stop the {subject}; the backups already there stay until their retention period ends"
            items.append(plan_item(what, "none", current, None, call=action))
        else:
            what = f"start the {subject} ({_settings_in_words(desired)})"
            items.append(plan_item(what, "none", None, desired, call=action))
    return items


def start_replication(destination_client, source_arn, retention_period, kms_key_arn):
    params = {"SourceDBInstanceArn": source_arn, "SourceRegion": arn_region(source_arn)}
    if retention_period is not None:
        params["BackupRetentionPeriod"] = retention_period
    if kms_key_arn is not None:
        params["KmsKeyId"] = kms_key_arn
    return destination_client.start_db_instance_automated_backups_replication(aws_retry=True, **params)[
        "DBInstanceAutomatedBackup"
    ]


def restore_failed_message(source_arn, destination_region, new, old, new_error, old_error=None):
    """What happened when the start with new settings failed after the stop, and what to do."""
    first = (
        f"Replication of {source_arn} into {destination_region} was stopped to apply new settings "
        f"(retention {new['backup_retention_period']}, key {new['kms_key_id']}), but starting it with them failed: "
        f"{new_error}."
    )
    if old_error is None:
        return (
            f"{first} It was started again with the previous settings (retention {old['backup_retention_period']}, "
            f"key {old['kms_key_id']}), so {destination_region} receives backups again; its point-in-time history "
            "restarts from the next backup. Fix the cause above (the destination key's policy must let RDS use it), "
            "then run again."
        )
    return (
        f"{first} Starting it again with the previous settings (retention {old['backup_retention_period']}, key "
        f"{old['kms_key_id']}) failed too: {old_error}. {destination_region} receives NO new backups now (the ones "
        "already replicated are retained). Start the replication by hand (aws rds "
        f"start-db-instance-automated-backups-replication --region {destination_region} --source-db-instance-arn "
        f"{source_arn} --kms-key-id <key>) or fix the cause and run this task again, now."
    )


def stop_replication(destination_client, source_arn):
    return destination_client.stop_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, aws_retry=True
    )["DBInstanceAutomatedBackup"]


def wait_for(destination_client, waiter_name, backups_arn, timeout):
    WAITERS.get_waiter(destination_client, waiter_name).wait(
        DBInstanceAutomatedBackupsArn=backups_arn,
        WaiterConfig=waiter_config(timeout),
    )


def _utc(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def lag_seconds(latest_time, now=None):
    """Seconds between ``latest_time`` (the latest restorable time) and ``now``; None when unknown."""
    latest_time = _utc(latest_time)
    if latest_time is None:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0, int((now - latest_time).total_seconds()))


def summarise_backup(backup, destination_region, now=None):
    """The replicated backup as the module returns it (snake_case, with the lag)."""
    if backup is None:
        return None, None
    window = backup.get("RestoreWindow") or {}
    summary = {
        "db_instance_automated_backups_arn": backup.get("DBInstanceAutomatedBackupsArn"),
        "region": destination_region,
        "source_db_instance_arn": backup.get("DBInstanceArn"),
        "source_region": backup.get("Region"),
        "status": backup.get("Status"),
        "backup_retention_period": backup.get("BackupRetentionPeriod"),
        "restore_window": {
            "earliest_time": isoformat(window.get("EarliestTime")),
            "latest_time": isoformat(window.get("LatestTime")),
        },
        "encrypted": bool(backup.get("Encrypted")),
        "kms_key_id": backup.get("KmsKeyId"),
    }
    return summary, lag_seconds(window.get("LatestTime"), now)


def isoformat(value):
    value = _utc(value)
    return value.isoformat() if value else None
