# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Re-encrypt an RDS instance under another KMS key, which AWS cannot do in place.

snapshot -> copy the snapshot under the new key -> restore it as a staging instance with the same
configuration -> rename the old instance to a rollback name (deletion protection on) -> rename
the staging instance to the original identifier, so the endpoint name stays the same.

Writes must be stopped before the snapshot: anything written after it is not in the new instance.
"""

from __future__ import annotations

import time

from ansible_collections.amazon.aws.plugins.module_utils.rds import wait_for_instance_snapshot_status
from ansible_collections.amazon.aws.plugins.module_utils.rds import wait_for_instance_status

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # handled by AnsibleAWSModule

RETRY_WHILE_BUSY = ["InvalidDBInstanceState", "InvalidDBSnapshotState"]
_IDENTIFIER_LIMIT = 63


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


def reencrypt(module, rds, instance, desired, stamp=None):
    """Run the procedure; returns the names it used (the rollback instance is kept, deletion-protected)."""
    identifier = instance["DBInstanceIdentifier"]
    used = names(identifier, stamp or time.strftime("%Y%m%d%H%M", time.gmtime()))

    _call(module, rds.create_db_snapshot, DBInstanceIdentifier=identifier, DBSnapshotIdentifier=used["snapshot"])
    wait_for_instance_snapshot_status(rds, module, used["snapshot"], "db_snapshot_available")

    _call(
        module,
        rds.copy_db_snapshot,
        SourceDBSnapshotIdentifier=used["snapshot"],
        TargetDBSnapshotIdentifier=used["encrypted_snapshot"],
        KmsKeyId=desired["kms_key_id"],
        CopyTags=True,
    )
    wait_for_instance_snapshot_status(rds, module, used["encrypted_snapshot"], "db_snapshot_available")

    _call(
        module,
        rds.restore_db_instance_from_db_snapshot,
        DBInstanceIdentifier=used["staging_instance"],
        DBSnapshotIdentifier=used["encrypted_snapshot"],
        **restore_parameters(instance, desired),
    )
    wait_for_instance_status(rds, module, used["staging_instance"], "db_instance_available")

    _call(
        module,
        rds.modify_db_instance,
        DBInstanceIdentifier=identifier,
        NewDBInstanceIdentifier=used["rollback_instance"],
        DeletionProtection=True,
        ApplyImmediately=True,
    )
    wait_for_instance_status(rds, module, used["rollback_instance"], "db_instance_available")

    _call(
        module,
        rds.modify_db_instance,
        DBInstanceIdentifier=used["staging_instance"],
        NewDBInstanceIdentifier=identifier,
        ApplyImmediately=True,
    )
    wait_for_instance_status(rds, module, identifier, "db_instance_available")
    return used
