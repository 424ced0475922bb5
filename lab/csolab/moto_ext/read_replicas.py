"""Read replicas of DB instances, where moto's model differs from AWS, and their ReplicaLag metric.

moto makes a replica a shallow copy of its source and keeps the link after a promotion. The
rules here, with their sources:

* A source must have automated backups: "The specified DB instance must have automatic backups
  enabled, that is, its backup retention period must be greater than 0" (AWS: RDS API Reference,
  CreateDBInstanceReadReplica, ``SourceDBInstanceIdentifier``; RDS User Guide, "Working with DB
  instance read replicas": "you must enable automatic backups on the source DB instance").
  Refused with ``InvalidDBInstanceState``.
* Encryption (AWS: RDS API Reference, CreateDBInstanceReadReplica, ``KmsKeyId``): "A read replica
  in the same Amazon Web Services Region is always encrypted with the same KMS key as the source
  DB instance" (so a different key in the same region is refused: "If you create an encrypted read
  replica in the same Amazon Web Services Region as the source DB instance, don't specify a value
  for this parameter"; the key of the source itself is accepted); "If you create an encrypted read
  replica in a different Amazon Web Services Region, then you must specify a KMS key identifier for
  the destination Amazon Web Services Region"; "You can't create an encrypted read replica from an
  unencrypted DB instance".
* A replica is its own instance: its own resource id, endpoint, restarts and pending changes
  (nothing of the source's lab state is carried over from moto's copy).
* A cross-Region replica lives in its own Region (AWS: RDS API Reference, CreateDBInstanceReadReplica,
  ``DBSubnetGroupName``: "The specified DB subnet group must be in the same Amazon Web Services Region in which the
  operation is running"): the DB subnet group it names is the destination Region's (moto looked the name up in
  the source's Region, whose group may have the same name), and its Availability Zone is one of that group's.
  A ``KmsKeyId`` that names no key of the destination Region (an unknown alias too) is refused with
  ``KMSKeyNotAccessibleFault`` (moto answered an unknown alias with an internal error).
* PromoteReadReplica (AWS: RDS User Guide, "Promoting a read replica to be a standalone DB
  instance"): "When you promote a read replica, RDS reboots the DB instance before making it
  available" (the lab's restart: ``restarts.restart(..., "promotion")``; the data plane stops
  replication and turns ``read_only`` off); the instance no longer names a source and the source
  no longer lists it. Only a read replica can be promoted (RDS API Reference, PromoteReadReplica:
  ``DBInstanceIdentifier`` "Must match the identifier of an existing read replica DB instance";
  ``InvalidDBInstanceState``). ``BackupRetentionPeriod`` "Default: 1" (same page): a promotion that does not
  set it turns automated backups on for one day (moto left the replica's 0). A cross-Region replica is
  unlinked from its source in the source's Region (which lists it by ARN).
* Deleting a source (AWS: RDS User Guide, "Working with DB instance read replicas": "If you delete
  a source DB instance without deleting its read replicas in the same AWS Region, each read
  replica is promoted to a standalone DB instance"): its same-region replicas are promoted.
  Deleting a cross-Region replica removes it from its source's list (moto removes by identifier only).
* No final snapshot of a read replica (AWS: RDS API Reference, DeleteDBInstance,
  ``FinalDBSnapshotIdentifier``: "Can't be specified when deleting a read replica"): a delete that asks
  for one (without ``SkipFinalSnapshot``) is refused with ``InvalidParameterCombination`` (moto took
  the snapshot).
* ``ReplicaLag`` (AWS: RDS User Guide, "Monitoring MariaDB read replicas" / "Monitoring MySQL read
  replicas"): the replica's ``Seconds_Behind_Master`` from ``SHOW REPLICA STATUS``; "If the
  ReplicaLag metric returns -1, then replication is currently not active" (``Seconds_Behind_Master``
  NULL). Namespace ``AWS/RDS``, dimension ``DBInstanceIdentifier``, unit Seconds ("Amazon
  CloudWatch metrics for Amazon RDS"). The data plane measures it on the replica's MariaDB (every
  ``LAG_INTERVAL`` s, see ``csolab.dataplane.bridge``) and reports it with its poll; this module
  puts it into CloudWatch.
"""

import copy
import random
import string

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.rds.exceptions import InvalidParameterCombination, KMSKeyNotAccessibleFault, RDSClientError
from moto.rds.models import RDSBackend, rds_backends

from csolab.moto_ext import restarts
from csolab.moto_ext._common import around, arn_region, get

# lab state of the source that moto's shallow copy would hand to the replica
SOURCE_ONLY_STATE = ("_lab_restart", "_lab_restart_acknowledged", "_lab_dataplane_seen", "_lab_served_ca",
                     "_lab_status", "_lab_pending", "_lab_maintenance", "_lab_applying_until",
                     "_lab_ca_rotation_restart", "_lab_old_blue", "_lab_replica_lag")
# PromoteReadReplica ``BackupRetentionPeriod`` "Default: 1"
AWS_DEFAULT_PROMOTED_BACKUP_RETENTION = 1


class InvalidDBInstanceState(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidDBInstanceState", message)


def _find_source(backend, source_id):
    try:
        return backend.find_db_from_id(source_id)
    except Exception:  # noqa: BLE001 (moto raises DBInstanceNotFound from the wrapped call)
        return None


def _check_source(backend, source, db_kwargs):
    if not source.backup_retention_period:
        raise InvalidDBInstanceState(
            "Automated backups are not enabled for this database instance. To enable automated backups, use "
            "ModifyDBInstance to set the backup retention period to a non-zero value.")
    key = get(db_kwargs, "kms_key_id")
    same_region = source.region == backend.region_name
    if not source.storage_encrypted:
        if key:
            raise InvalidParameterCombination("You can't create an encrypted read replica from an unencrypted "
                                              "DB instance: remove KmsKeyId or encrypt the source first.")
        return None
    if same_region:
        if key and backend._validate_kms_key(key) != source.kms_key_id:
            raise InvalidParameterCombination(
                "A read replica in the same Region is always encrypted with the KMS key of its source "
                f"({source.kms_key_id}): don't specify KmsKeyId.")
        return source.kms_key_id
    if not key:
        raise InvalidParameterCombination(
            "For an encrypted cross-Region read replica, KmsKeyId must name a KMS key of the destination Region.")
    try:
        return backend._validate_kms_key(key)
    except RDSClientError:
        raise
    except Exception:  # noqa: BLE001 (moto's KMS raises its own NotFoundException for an unknown alias)
        raise KMSKeyNotAccessibleFault(key) from None


def _place_in_destination(backend, replica, db_kwargs):
    """A cross-Region replica's subnet group and Availability Zone are the destination Region's."""
    group_name = get(db_kwargs, "db_subnet_group_name")
    if group_name:
        replica.db_subnet_group = backend.describe_db_subnet_groups(group_name)[0]
        zones = sorted(subnet.availability_zone for subnet in replica.db_subnet_group._subnets)
        replica.availability_zone = zones[0] if zones else f"{backend.region_name}a"
    else:
        replica.availability_zone = f"{backend.region_name}a"


def _own_instance(replica, kms_key_id):
    for name in SOURCE_ONLY_STATE:
        replica.__dict__.pop(name, None)
    for name, value in list(replica.__dict__.items()):  # no list/dict shared with the source
        if isinstance(value, (list, dict, set)):
            replica.__dict__[name] = copy.copy(value)
    replica.dbi_resource_id = "db-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=26))
    replica.storage_encrypted = kms_key_id is not None
    replica.kms_key_id = kms_key_id


@around(RDSBackend, "create_db_instance_read_replica")
def _create_db_instance_read_replica(original, backend, db_kwargs, *args, **kwargs):
    source = _find_source(backend, db_kwargs.get("source_db_instance_identifier", ""))
    kms_key_id = _check_source(backend, source, db_kwargs) if source is not None else None
    if get(db_kwargs, "db_subnet_group_name"):
        backend.describe_db_subnet_groups(db_kwargs["db_subnet_group_name"])  # DBSubnetGroupNotFoundFault here
    replica = original(backend, db_kwargs, *args, **kwargs)
    _own_instance(replica, kms_key_id)
    if source is not None and source.region != backend.region_name:
        _place_in_destination(backend, replica, db_kwargs)
    return replica


def _detach(replica):
    """Cut the link between a replica and its source, both ways."""
    source_id = replica.source_db_instance_identifier
    if source_id:
        backend = rds_backends[replica.account_id][replica.region]
        source = _find_source(backend, source_id)
        if source is not None:
            for name in (replica.db_instance_identifier, replica.db_instance_arn):
                if name in source.replicas:
                    source.replicas.remove(name)
    replica.source_db_instance_identifier = None


@around(RDSBackend, "promote_read_replica")
def _promote_read_replica(original, backend, db_kwargs):
    identifier = db_kwargs.get("db_instance_identifier")
    instance = backend.describe_db_instances(identifier)[0]  # DBInstanceNotFound
    if not instance.is_replica:
        raise InvalidDBInstanceState(f"DB Instance {identifier} is not a read replica.")
    if instance.status != "available":
        raise InvalidDBInstanceState(f"DB Instance {identifier} is not in available state.")
    _detach(instance)
    if get(db_kwargs, "backup_retention_period") is None:
        db_kwargs = dict(db_kwargs, backup_retention_period=AWS_DEFAULT_PROMOTED_BACKUP_RETENTION)
    promoted = original(backend, db_kwargs)
    restarts.restart(promoted, "promotion")
    return promoted


def _refuse_a_final_snapshot_of_a_replica(database, final_db_snapshot_identifier=None, skip_final_snapshot=False,
                                          *_args, **_kwargs):
    if database is not None and database.is_replica and final_db_snapshot_identifier and not skip_final_snapshot:
        raise InvalidParameterCombination("FinalDBSnapshotIdentifier can't be specified when deleting a read replica: "
                                          f"{database.db_instance_identifier} is one (set SkipFinalSnapshot).")


@around(RDSBackend, "delete_db_instance")
def _delete_db_instance(original, backend, db_instance_identifier, *args, **kwargs):
    database = backend.databases.get(db_instance_identifier) if db_instance_identifier else None
    _refuse_a_final_snapshot_of_a_replica(database, *args, **kwargs)
    orphans = [backend.databases[name] for name in (database.replicas if database is not None else [])
               if name in backend.databases]  # same-region replicas are listed by identifier
    # a cross-Region replica is listed by its ARN in its source, which moto's delete removes by identifier
    source = (_find_source(backend, database.source_db_instance_identifier)
              if database is not None and database.is_replica and database.source_db_instance_identifier else None)
    by_arn_only = (source is not None and database.db_instance_arn in source.replicas
                   and db_instance_identifier not in source.replicas)
    if by_arn_only:
        source.replicas.append(db_instance_identifier)
    try:
        deleted = original(backend, db_instance_identifier, *args, **kwargs)
    except Exception:
        if by_arn_only and db_instance_identifier in source.replicas:
            source.replicas.remove(db_instance_identifier)
        raise
    if by_arn_only and database.db_instance_arn in source.replicas:
        source.replicas.remove(database.db_instance_arn)
    for replica in orphans:
        _detach(replica)
        replica.is_replica = False
        restarts.restart(replica, "promotion (source deleted)")
    return deleted


def publish_replica_lag(instance, seconds):
    """Put one ``ReplicaLag`` datapoint for ``instance`` (-1: replication not active)."""
    instance._lab_replica_lag = float(seconds)  # the last measurement (blue/green's switchover guardrails read it)
    region = arn_region(instance.db_instance_arn) or instance.region
    cloudwatch_backends[instance.account_id][region].put_metric_data("AWS/RDS", [{
        "MetricName": "ReplicaLag", "Value": float(seconds), "Unit": "Seconds", "Timestamp": utcnow(),
        "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": instance.db_instance_identifier}],
    }])
