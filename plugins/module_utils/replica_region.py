# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where a replica's source is, and the rules a cross-Region replica adds (pure: no AWS call).

The module's ``region`` is the replica's (the destination); the source is given by name with ``source_region``,
or by its ARN. The rules, with their AWS sources:

* AWS: RDS API Reference, CreateDBInstanceReadReplica, ``SourceDBInstanceIdentifier``: "If the source DB instance
  is in a different Amazon Web Services Region from the read replica, specify a valid DB instance ARN". So the
  create call names the source by the ARN read from the source Region.
* Same page, ``KmsKeyId``: "If you create an encrypted read replica in a different Amazon Web Services Region,
  then you must specify a KMS key identifier for the destination Amazon Web Services Region. KMS keys are specific
  to the Amazon Web Services Region that they are created in". So ``kms_key_id`` is required, must be a key of
  the replica's Region, and is sent; the replica does not share its source's key and may differ from it.
* Same page, ``SourceRegion``/``PreSignedUrl``: an SDK generates the presigned URL from ``SourceRegion``
  (botocore does so for this call), so the module sends ``SourceRegion``, never a URL of its own.
* Same page, ``DBSubnetGroupName``: "The specified DB subnet group must be in the same Amazon Web Services Region
  in which the operation is running". The source's group is of another Region: ``db_subnet_group_name`` is
  required; the security groups and the parameter group are the destination Region's too (checked there).
* AWS: RDS User Guide, "Creating a read replica in a different AWS Region", cross-Region replication
  considerations: "Amazon RDS can't guarantee more than five cross-Region read replica instances, due to the limit
  on the number of access control list (ACL) entries for the VPC". So a sixth is refused.
"""

from __future__ import annotations

MAX_CROSS_REGION_REPLICAS = 5


def arn_region(identifier):
    """The region of an ARN (``arn:aws:<service>:<region>:...``), None for a plain name."""
    parts = identifier.split(":") if identifier else []
    return parts[3] if len(parts) > 5 and parts[0] == "arn" else None


def source_region(params, region):
    """The source's region: its ARN's, else ``source_region``, else the replica's own."""
    return arn_region(params["source_db_instance_identifier"]) or params.get("source_region") or region


def source_name(params):
    """The source's identifier within its region (the last part of an ARN)."""
    return params["source_db_instance_identifier"].split(":")[-1]


def is_cross_region(params, region):
    return source_region(params, region) != region


def input_errors(params, region):
    """Problems with the cross-Region options themselves, as messages that say what to do."""
    given, from_arn = params.get("source_region"), arn_region(params["source_db_instance_identifier"])
    if given and from_arn and given != from_arn:
        return [f"source_region is {given} but source_db_instance_identifier is an ARN of {from_arn}. "
                "Leave source_region unset (the ARN says where the source is) or make them agree."]
    if not is_cross_region(params, region):
        return []
    where = source_region(params, region)
    errors = []
    if not params["kms_key_id"]:
        errors.append(
            f"kms_key_id is required for a cross-Region replica: AWS encrypts it with a KMS key of the replica's "
            f"Region {region}, never with the source's key of {where} (CreateDBInstanceReadReplica, KmsKeyId). "
            f"Pass the ARN or alias of a customer-managed key in {region}."
        )
    if not params["db_subnet_group_name"]:
        errors.append(
            f"db_subnet_group_name is required for a cross-Region replica: the source's DB subnet group is in {where}, "
            f"and the replica needs one of {region}. Create it there (amazon.aws.rds_subnet_group) and pass its name."
        )
    return errors


def cross_region_replicas(source):
    """The source's replicas in other regions (AWS lists them by ARN)."""
    own = arn_region(source.get("DBInstanceArn"))
    return [replica for replica in source.get("ReadReplicaDBInstanceIdentifiers") or []
            if arn_region(replica) and arn_region(replica) != own]


def source_errors(source, params, region):
    """Why ``source`` (it exists) cannot have one more cross-Region replica in ``region``; empty when it can."""
    others = cross_region_replicas(source)
    mine = [replica for replica in others
            if arn_region(replica) == region and replica.split(":")[-1] == params["db_instance_identifier"]]
    if len(others) < MAX_CROSS_REGION_REPLICAS or mine:
        return []
    return [
        f"Source instance {source['DBInstanceIdentifier']} already has {len(others)} cross-Region read replicas "
        f"({', '.join(others)}); RDS cannot guarantee more than {MAX_CROSS_REGION_REPLICAS} (RDS User Guide, "
        "\"Creating a read replica in a different AWS Region\": the VPC's ACL entries). Promote or delete one of them "
        "first, or replicate from one of them within its Region."
    ]


def is_replica_of(instance, source):
    """Whether ``instance`` replicates ``source`` (a cross-Region replica names its source by ARN)."""
    return instance.get("ReadReplicaSourceDBInstanceIdentifier") == source["DBInstanceArn"]


def snapshot_note(source, region, key_arn):
    """What creating a cross-Region replica does, as AWS documents it."""
    name, where = source["DBInstanceIdentifier"], arn_region(source["DBInstanceArn"])
    if source.get("MultiAZ"):
        suspension = f"{name} is Multi-AZ, so the snapshot comes from its standby and its I/O is not suspended"
    else:
        suspension = (f"{name} is single-AZ, so its I/O is suspended very briefly (typically about one second) "
                      "when the snapshot starts")
    return (f"RDS takes a DB snapshot of {name} in {where}, copies it to {region} under {key_arn} and replicates "
            f"across the Regions from then on (billed cross-Region data transfer); {suspension}")


def create_parameters(source, desired):
    """What a cross-Region CreateDBInstanceReadReplica adds: the source's ARN, the destination key, SourceRegion
    (botocore makes the presigned URL from it)."""
    return {
        "SourceDBInstanceIdentifier": source["DBInstanceArn"],
        "KmsKeyId": desired["kms_key_id"],
        "SourceRegion": arn_region(source["DBInstanceArn"]),
    }


def key_replacement_refusal(entry):
    return (
        f"The cross-Region replica is encrypted with {entry['current']}, not kms_key_id {entry['desired']}; AWS cannot "
        "re-encrypt a replica. Keep kms_key_id at the replica's key, or delete the replica (after no client reads "
        "from it) and run this task again to create it under the new key."
    )
