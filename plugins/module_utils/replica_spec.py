# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The desired state of a hardened read replica, its checks and its creation (pure: no AWS call).

The rules below are a same-region replica's; a cross-Region replica's own are in ``replica_region``.

The replica's desired state has the attribute names of ``instance_plan.RULES``, so its drift is planned,
refused and applied by ``instance_plan`` exactly like a hardened instance's. The rules a replica adds,
with their AWS sources:

* AWS: RDS API Reference, CreateDBInstanceReadReplica, ``KmsKeyId``: "A read replica in the same Amazon Web
  Services Region is always encrypted with the same KMS key as the source DB instance" and "If you create an
  encrypted read replica in the same Amazon Web Services Region as the source DB instance ..., don't specify a
  value for this parameter"; "You can't create an encrypted read replica from an unencrypted DB instance".
  So the replica's storage key is its source's: a different key is refused, and the create call never
  sends ``KmsKeyId``.
* AWS: RDS User Guide, "Creating a read replica": "you must enable automatic backups on the source DB instance
  by setting the backup retention period to a value other than 0"; "Amazon RDS takes a DB snapshot of your
  source DB instance and begins replication. The source DB instance experiences a very brief I/O suspension
  when the DB snapshot operation begins. The I/O suspension typically lasts about one second. You can avoid
  the I/O suspension if the source DB instance is a Multi-AZ deployment".
"""

from __future__ import annotations

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning
from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_region as regions
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import ENGINE_LOG_EXPORTS
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import MONITORING_INTERVALS
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import valid_performance_insights_retention

ENGINES = ("mysql", "mariadb")
SOURCE_ATTRIBUTE = "read_replica_source_db_instance_identifier"

# attribute -> CreateDBInstanceReadReplica parameter (everything else of the plan is converged by ModifyDBInstance)
CREATE_PARAMETER = {
    "db_instance_class": "DBInstanceClass",
    "db_parameter_group_name": "DBParameterGroupName",
    "vpc_security_group_ids": "VpcSecurityGroupIds",
    "publicly_accessible": "PubliclyAccessible",
    "multi_az": "MultiAZ",
    "deletion_protection": "DeletionProtection",
    "copy_tags_to_snapshot": "CopyTagsToSnapshot",
    "auto_minor_version_upgrade": "AutoMinorVersionUpgrade",
    "enable_iam_database_authentication": "EnableIAMDatabaseAuthentication",
    "enable_cloudwatch_logs_exports": "EnableCloudwatchLogsExports",
    "enable_performance_insights": "EnablePerformanceInsights",
    "performance_insights_kms_key_id": "PerformanceInsightsKMSKeyId",
    "performance_insights_retention_period": "PerformanceInsightsRetentionPeriod",
    "monitoring_interval": "MonitoringInterval",
    "monitoring_role_arn": "MonitoringRoleArn",
    "ca_certificate_identifier": "CACertificateIdentifier",
    "max_allocated_storage": "MaxAllocatedStorage",
}


def key_region(key_id):
    """The region of a key ARN (``arn:aws:kms:<region>:...``), None for ids and aliases."""
    parts = key_id.split(":") if key_id else []
    return parts[3] if len(parts) > 5 and parts[0] == "arn" else None


def input_errors(params, region):
    """Problems with the options themselves (no AWS call), as messages that say what to do."""
    errors = []
    if params["monitoring_interval"] not in MONITORING_INTERVALS:
        errors.append(f"monitoring_interval must be one of {list(MONITORING_INTERVALS)} seconds.")
    if params["enable_performance_insights"] and not valid_performance_insights_retention(
        params["performance_insights_retention_period"]
    ):
        errors.append(
            "performance_insights_retention_period must be 7, a multiple of 31 up to 713, or 731 days "
            f"(got {params['performance_insights_retention_period']})."
        )
    unknown_logs = sorted(set(params["enable_cloudwatch_logs_exports"] or []) - set(ENGINE_LOG_EXPORTS[params["engine"]]))
    if unknown_logs:
        errors.append(
            f"enable_cloudwatch_logs_exports {unknown_logs} are not log types of {params['engine']}; "
            f"use some of {ENGINE_LOG_EXPORTS[params['engine']]}."
        )
    if params["wait_timeout"] < 1:
        errors.append(f"wait_timeout must be a positive number of seconds (got {params['wait_timeout']}).")
    for option in ("kms_key_id", "performance_insights_kms_key_id"):
        elsewhere = key_region(params[option])
        if elsewhere and elsewhere != region:
            errors.append(
                f"{option} {params[option]} is a KMS key of region {elsewhere}, but the replica is created in {region} "
                f"(KMS keys cannot be used outside their region). Pass a key of {region}."
            )
    if params["db_instance_identifier"] == regions.source_name(params) and not regions.is_cross_region(params, region):
        errors.append("db_instance_identifier must differ from source_db_instance_identifier: name the replica.")
    return errors + regions.input_errors(params, region)


def source_errors(source, params, region):
    """Why ``source`` (a DBInstance dict, or None) cannot have a hardened replica here; empty when it can."""
    name = params["source_db_instance_identifier"]
    if source is None:
        return [f"Source instance {name} does not exist in {region}. Create or harden it first "
                "(cso.rds_hardening.rds_hardened_instance), or fix source_db_instance_identifier."]
    errors = []
    if source["Engine"] != params["engine"]:
        errors.append(
            f"Source instance {name} runs {source['Engine']}, not {params['engine']}. This module makes replicas of "
            f"{' and '.join(ENGINES)} instances: set engine: {source['Engine']} if that is one of them, else use another source."
        )
    if not source.get("StorageEncrypted"):
        errors.append(
            f"Source instance {name} is not encrypted, so its replica could not be (AWS creates no encrypted replica of "
            "an unencrypted instance). Encrypt the source first: rds_hardened_instance with kms_key_id and "
            "allow_replacement=true (re-encryption), then run this task again."
        )
    if not source.get("BackupRetentionPeriod"):
        errors.append(
            f"Source instance {name} has no automated backups (backup retention 0); AWS creates replicas only of "
            "instances with automated backups. Set its backup_retention_period (7 or more) first."
        )
    if source.get("ReadReplicaSourceDBInstanceIdentifier"):
        errors.append(
            f"Source instance {name} is itself a replica of {source['ReadReplicaSourceDBInstanceIdentifier']}. "
            "Make replicas of the primary instead."
        )
    return errors


def existing_errors(instance, params, source, cross_region=False):
    """Why an existing instance named like the replica cannot be converged as this source's replica."""
    if instance is None:
        return []
    name = params["db_instance_identifier"]
    replica_of = instance.get("ReadReplicaSourceDBInstanceIdentifier")
    if cross_region and regions.is_replica_of(instance, source):
        return []
    if not cross_region and replica_of and replica_of.split(":")[-1] == source["DBInstanceIdentifier"]:
        return []  # a same-region replica names its source by name or by ARN
    expected = source["DBInstanceArn"] if cross_region else source["DBInstanceIdentifier"]
    what = f"a read replica of {replica_of}" if replica_of else "not a read replica (a standalone instance)"
    return [
        f"Instance {name} exists but is {what}, not a replica of {expected}. This task never takes over or replaces "
        "another instance: choose another db_instance_identifier, or delete or rename that instance first."
    ]


def desired_state(params, source, key_arns):
    """The replica's managed attributes, named as ``instance_plan.RULES`` (None: not managed).

    ``key_arns``: ``storage`` (the source's key) and ``performance_insights``, full ARNs. Options not set
    follow the source where a replica should match it (CA, IAM database authentication, instance class).
    """
    logs = params["enable_cloudwatch_logs_exports"]
    iam_auth = params["enable_iam_database_authentication"]
    desired = dict.fromkeys(planning.RULES)
    desired.update({
        "kms_key_id": key_arns["storage"],
        "publicly_accessible": params["publicly_accessible"],
        "multi_az": params["multi_az"],
        "deletion_protection": params["deletion_protection"],
        "copy_tags_to_snapshot": params["copy_tags_to_snapshot"],
        "auto_minor_version_upgrade": params["auto_minor_version_upgrade"],
        "enable_iam_database_authentication": (
            bool(source.get("IAMDatabaseAuthenticationEnabled")) if iam_auth is None else iam_auth
        ),
        "enable_cloudwatch_logs_exports": sorted(ENGINE_LOG_EXPORTS[params["engine"]] if logs is None else logs),
        "enable_performance_insights": params["enable_performance_insights"],
        "monitoring_interval": params["monitoring_interval"],
        "monitoring_role_arn": params["monitoring_role_arn"] if params["monitoring_interval"] else None,
        "vpc_security_group_ids": sorted(params["vpc_security_group_ids"]),
        "ca_certificate_identifier": params["ca_certificate_identifier"] or source.get("CACertificateIdentifier"),
        "db_parameter_group_name": params["db_parameter_group_name"],
        "db_instance_class": params["db_instance_class"] or source.get("DBInstanceClass"),
        "max_allocated_storage": params["max_allocated_storage"],
    })
    if params["enable_performance_insights"]:
        desired["performance_insights_kms_key_id"] = key_arns["performance_insights"]
        desired["performance_insights_retention_period"] = params["performance_insights_retention_period"]
    return desired


def snapshot_note(source):
    """What creating a replica does to its source, as AWS documents it."""
    name = source["DBInstanceIdentifier"]
    if source.get("MultiAZ"):
        return (f"RDS takes a DB snapshot of {name} to seed the replica; {name} is Multi-AZ, so the snapshot comes from "
                "its standby and its I/O is not suspended")
    return (f"RDS takes a DB snapshot of {name} to seed the replica; {name} is single-AZ, so its I/O is suspended very "
            "briefly (typically about one second) when the snapshot starts")


def creation_plan(params, source, desired, region, cross_region=False):
    """The create entry (impact none: the source keeps serving its clients), then every attribute it sets."""
    name, source_name = params["db_instance_identifier"], source["DBInstanceIdentifier"]
    what = f"create read replica {name} of {source_name} ({snapshot_note(source)})"
    if cross_region:
        source_name = source["DBInstanceArn"]
        what = (f"create cross-Region read replica {name} in {region} of {source_name} "
                f"({regions.snapshot_note(source, region, desired['kms_key_id'])})")
    effect = None if source.get("MultiAZ") else (
        f"Clients of {source['DBInstanceIdentifier']} keep their connections; statements may pause for about a second at the snapshot.")
    create = plan_item(what, "none", None, source_name, apply=planning.IMMEDIATELY, effect=effect,
                       attribute=SOURCE_ATTRIBUTE, current=None, desired=source_name)
    return [create] + planning.creation_plan(desired)


def create_parameters(params, desired, source, cross_region=False):
    """CreateDBInstanceReadReplica parameters: same-region never with KmsKeyId (the replica takes its source's
    key); cross-Region with the source's ARN, the destination key and SourceRegion (``replica_region``)."""
    parameters = {
        "DBInstanceIdentifier": params["db_instance_identifier"],
        "SourceDBInstanceIdentifier": params["source_db_instance_identifier"],
    }
    if cross_region:
        parameters.update(regions.create_parameters(source, desired))
    for attribute, api_name in CREATE_PARAMETER.items():
        if desired.get(attribute) is not None:
            parameters[api_name] = desired[attribute]
    if params["db_subnet_group_name"]:
        parameters["DBSubnetGroupName"] = params["db_subnet_group_name"]
    if params["tags"]:
        parameters["Tags"] = [{"Key": key, "Value": value} for key, value in params["tags"].items()]
    return parameters


def replacement_refusals(plan, source_name, cross_region=False):
    """Messages for drift a replica cannot be modified out of (its keys): it has to be made again."""
    messages = []
    for entry in planning.needs_replacement(plan):
        if entry["attribute"] == "kms_key_id" and cross_region:
            messages.append(regions.key_replacement_refusal(entry))
        elif entry["attribute"] == "kms_key_id":
            messages.append(
                f"The replica is encrypted with {entry['current']} but its source {source_name} now uses {entry['desired']} "
                "(re-encrypted since); a replica always has its source's key and cannot be re-encrypted. Delete the "
                "replica (after no client reads from it) and run this task again to create it under the source's key."
            )
        else:
            messages.append(
                f"The replica's {entry['attribute']} is {entry['current']}; AWS cannot change it to {entry['desired']} once "
                "set. Keep the current value (set the option to it), or delete the replica and run this task again."
            )
    return messages
