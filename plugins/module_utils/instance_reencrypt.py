# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Re-encrypt an RDS instance under another KMS key, which AWS cannot do in place.

snapshot -> copy the snapshot under the new key -> restore it as a staging instance with the same
configuration -> rename the old instance to a rollback name (deletion protection on) -> rename
the staging instance to the original identifier, so the endpoint name stays the same.

Writes must be stopped before the snapshot: anything written after it is not in the new instance.

An interrupted run resumes: the snapshot of a run that has not finished carries the tag
``cso:reencryption=in-progress`` (removed once the identifiers are swapped), and the encrypted copy
and the staging instance are found by their deterministic names, so a second run continues from
what exists instead of taking a new snapshot.
"""

from __future__ import annotations

import time

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import waiter_config
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_available

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # handled by AnsibleAWSModule

RETRY_WHILE_BUSY = ["InvalidDBInstanceState", "InvalidDBSnapshotState"]
_IDENTIFIER_LIMIT = 63
IN_PROGRESS_TAG = "cso:reencryption"
IN_PROGRESS = "in-progress"
DEFAULT_WAIT_TIMEOUT = 14400
POLL_SECONDS = 30


def staging_identifier(identifier):
    return f"{identifier[:_IDENTIFIER_LIMIT - len('-reencrypted')]}-reencrypted"


def names(identifier, stamp):
    """The snapshot, encrypted copy, staging and rollback names of one re-encryption."""
    return {
        "snapshot": f"{identifier}-pre-reencrypt-{stamp}",
        "encrypted_snapshot": f"{identifier}-reencrypted-{stamp}",
        "staging_instance": staging_identifier(identifier),
        "rollback_instance": f"{identifier[:_IDENTIFIER_LIMIT - len('-rollback-') - len(stamp)]}-rollback-{stamp}",
    }


def restore_parameters(instance, desired):
    """RestoreDBInstanceFromDBSnapshot parameters that recreate ``instance`` as the task wants it."""
    parameters = {
        "DBInstanceClass": desired.get("db_instance_class") or instance["DBInstanceClass"],
        "DBSubnetGroupName": instance["DBSubnetGroup"]["DBSubnetGroupName"],
        "VpcSecurityGroupIds": desired.get("vpc_security_group_ids")
        or [group["VpcSecurityGroupId"] for group in instance.get("VpcSecurityGroups", [])],
        "MultiAZ": desired["multi_az"],
        "Port": instance["Endpoint"]["Port"],
        "PubliclyAccessible": desired["publicly_accessible"],
        "AutoMinorVersionUpgrade": desired["auto_minor_version_upgrade"],
        "CopyTagsToSnapshot": desired["copy_tags_to_snapshot"],
        "DeletionProtection": desired["deletion_protection"],
        "EnableIAMDatabaseAuthentication": desired["enable_iam_database_authentication"],
        "EnableCloudwatchLogsExports": desired["enable_cloudwatch_logs_exports"],
        "DBParameterGroupName": desired.get("db_parameter_group_name")
        or (instance.get("DBParameterGroups") or [{}])[0].get("DBParameterGroupName"),
        "StorageType": desired.get("storage_type") or instance.get("StorageType"),
        "Tags": instance.get("TagList", []),
    }
    option_groups = [m["OptionGroupName"] for m in instance.get("OptionGroupMemberships") or []]
    if option_groups and not option_groups[0].startswith("default:"):
        parameters["OptionGroupName"] = option_groups[0]  # a default group is what a restore gets anyway
    if desired.get("ca_certificate_identifier"):
        parameters["CACertificateIdentifier"] = desired["ca_certificate_identifier"]
    return {name: value for name, value in parameters.items() if value is not None}


def _call(module, method, **parameters):
    try:
        return method(aws_retry=True, **parameters)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Re-encryption failed at {method.__name__}; see the docs' rollback section")


def _wait(module, rds, waiter_name, timeout, what, **identifier):
    try:
        rds.get_waiter(waiter_name).wait(WaiterConfig=waiter_config(timeout, pause=POLL_SECONDS), **identifier)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e,
            msg=f"Re-encryption: {what} was not available within wait_timeout ({timeout} s). It goes on in AWS: run the "
            "task again (with a larger wait_timeout for a large database) and it resumes from what exists.",
        )


def _tags(resource):
    return {tag["Key"]: tag["Value"] for tag in resource.get("TagList") or []}


def _describe_snapshot(module, rds, snapshot_id):
    try:
        snapshots = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id, aws_retry=True)["DBSnapshots"]
    except is_boto3_error_code("DBSnapshotNotFound"):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Could not describe DB snapshot {snapshot_id}")
    return snapshots[0] if snapshots else None


def _staging_exists(module, rds, staging):
    try:
        return bool(rds.describe_db_instances(DBInstanceIdentifier=staging, aws_retry=True)["DBInstances"])
    except is_boto3_error_code("DBInstanceNotFound"):
        return False
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Could not describe DB instance {staging}")


def interrupted_run(module, rds, identifier):
    """The snapshot (a DBSnapshot) of an unfinished re-encryption of ``identifier``, or None (newest first)."""
    prefix = f"{identifier}-pre-reencrypt-"
    try:
        snapshots = rds.describe_db_snapshots(
            DBInstanceIdentifier=identifier, SnapshotType="manual", aws_retry=True
        )["DBSnapshots"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not list the manual snapshots of {identifier}")
    candidates = [
        snapshot
        for snapshot in snapshots
        if snapshot["DBSnapshotIdentifier"].startswith(prefix)
        and _tags(snapshot).get(IN_PROGRESS_TAG) == IN_PROGRESS
        and snapshot.get("Status") not in ("deleting", "failed")
    ]
    return max(candidates, key=lambda snapshot: snapshot["DBSnapshotIdentifier"]) if candidates else None


def reencrypt(module, rds, instance, desired, stamp=None):
    """Run (or resume) the procedure; returns the names it used (the rollback instance is kept, deletion-protected)."""
    identifier = instance["DBInstanceIdentifier"]
    timeout = (module.params or {}).get("wait_timeout") or DEFAULT_WAIT_TIMEOUT
    interrupted = interrupted_run(module, rds, identifier)
    if interrupted:
        stamp = interrupted["DBSnapshotIdentifier"][len(f"{identifier}-pre-reencrypt-"):]
        module.warn(
            f"Resuming the interrupted re-encryption of {identifier} from snapshot {interrupted['DBSnapshotIdentifier']} "
            f"(taken {interrupted.get('SnapshotCreateTime', 'at an unknown time')}): anything written to {identifier} "
            "since then is not in the re-encrypted instance. To start over instead, delete that snapshot first."
        )
    used = names(identifier, stamp or time.strftime("%Y%m%d%H%M", time.gmtime()))
    used["resumed"] = bool(interrupted)

    if interrupted:
        snapshot_arn = interrupted.get("DBSnapshotArn")
    else:
        created = _call(
            module,
            rds.create_db_snapshot,
            DBInstanceIdentifier=identifier,
            DBSnapshotIdentifier=used["snapshot"],
            Tags=[{"Key": IN_PROGRESS_TAG, "Value": IN_PROGRESS}],
        )
        snapshot_arn = (created or {}).get("DBSnapshot", {}).get("DBSnapshotArn")
    _wait(module, rds, "db_snapshot_available", timeout, f"snapshot {used['snapshot']}", DBSnapshotIdentifier=used["snapshot"])

    copy = _describe_snapshot(module, rds, used["encrypted_snapshot"]) if interrupted else None
    if copy is None:
        _call(
            module,
            rds.copy_db_snapshot,
            SourceDBSnapshotIdentifier=used["snapshot"],
            TargetDBSnapshotIdentifier=used["encrypted_snapshot"],
            KmsKeyId=desired["kms_key_id"],
            CopyTags=True,
        )
    elif (copy.get("KmsKeyId") or "").rsplit("/", 1)[-1] != desired["kms_key_id"].rsplit("/", 1)[-1]:
        module.fail_json(
            msg=f"The interrupted re-encryption's copy {used['encrypted_snapshot']} is under key {copy.get('KmsKeyId')}, "
            f"not {desired['kms_key_id']}. Delete that copy (and snapshot {used['snapshot']} to start over), then run again."
        )
    _wait(
        module, rds, "db_snapshot_available", timeout, f"encrypted copy {used['encrypted_snapshot']}",
        DBSnapshotIdentifier=used["encrypted_snapshot"],
    )

    if not (interrupted and _staging_exists(module, rds, used["staging_instance"])):
        _call(
            module,
            rds.restore_db_instance_from_db_snapshot,
            DBInstanceIdentifier=used["staging_instance"],
            DBSnapshotIdentifier=used["encrypted_snapshot"],
            **restore_parameters(instance, desired),
        )
    _wait(
        module, rds, "db_instance_available", timeout, f"staging instance {used['staging_instance']}",
        DBInstanceIdentifier=used["staging_instance"],
    )

    _call(
        module,
        rds.modify_db_instance,
        DBInstanceIdentifier=identifier,
        NewDBInstanceIdentifier=used["rollback_instance"],
        DeletionProtection=True,
        ApplyImmediately=True,
    )
    wait_available(module, rds, used["rollback_instance"])

    _call(
        module,
        rds.modify_db_instance,
        DBInstanceIdentifier=used["staging_instance"],
        NewDBInstanceIdentifier=identifier,
        ApplyImmediately=True,
    )
    wait_available(module, rds, identifier)
    if snapshot_arn:  # finished: this snapshot is a plain backup now, never resumed from
        _call(module, rds.remove_tags_from_resource, ResourceName=snapshot_arn, TagKeys=[IN_PROGRESS_TAG])
    return used
