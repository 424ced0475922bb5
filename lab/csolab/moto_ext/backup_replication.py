"""Cross-region automated backup replication.

``start_/stop_db_instance_automated_backups_replication`` are called in the DESTINATION region
with the source instance's ARN (botocore presigns ``PreSignedUrl`` when ``SourceRegion`` is
given; it is accepted and ignored, as AWS does outside GovCloud). The replicated backup shows in
the destination's ``describe_db_instance_automated_backups``; the source instance lists it in
``DBInstanceAutomatedBackupsReplications``.

``restore_db_instance_to_point_in_time`` in the destination region restores from the replicated
backups (``SourceDBInstanceAutomatedBackupsArn``), as one does in the DR region: the new instance
takes the source's settings as the backups recorded them (engine, version, class, storage,
credentials), the replicated backups' KMS key, and the destination's defaults for what is
region-bound (security groups, subnet and parameter groups, AZ). ``SourceDbiResourceId`` works
too. moto needs ``SourceDBInstanceIdentifier`` (HTTP 500 without it).
"""

import copy
import datetime
import hashlib

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.rds.exceptions import (DBInstanceAlreadyExists, DBInstanceNotFoundError, InvalidDBInstanceStateFault,
                                 InvalidParameterCombination, InvalidParameterValue, RDSClientError)
from moto.rds.models import DBInstance, DBInstanceAutomatedBackup, RDSBackend, rds_backends

from csolab.moto_ext._common import around, arn_account, arn_region, created_rds_backends, get, rds_action

DEFAULT_RETENTION = 7


class InvalidDBInstanceAutomatedBackupStateFault(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidDBInstanceAutomatedBackupState", message)


class DBInstanceAutomatedBackupNotFoundFault(RDSClientError):
    def __init__(self, arn, message=None):
        super().__init__("DBInstanceAutomatedBackupNotFound", message or f"Automated backup {arn} not found.")


class InvalidRestoreFault(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidRestoreFault", message)


def replications_in(backend):
    """source instance ARN -> replicated backup record, for one destination backend."""
    return backend.__dict__.setdefault("_lab_backup_replications", {})


def automated_backups_arn(region, account_id, source_arn):
    suffix = hashlib.sha1(source_arn.encode()).hexdigest()[:26]  # noqa: S324 (an id, not security)
    return f"arn:aws:rds:{region}:{account_id}:auto-backup:ab-{suffix}"


def active_replications(source_arn):
    return [record for backend in created_rds_backends(arn_account(source_arn) or "123456789012")
            for arn, record in replications_in(backend).items()
            if arn == source_arn and record["Status"] != "retained"]


def _source_instance(source_arn):
    region = arn_region(source_arn)
    if not region:
        raise InvalidParameterValue(f"Invalid source DB instance ARN: {source_arn}")
    backend = rds_backends[arn_account(source_arn)][region]
    identifier = source_arn.split(":")[-1]
    instance = backend.databases.get(identifier)
    if instance is None:
        raise DBInstanceNotFoundError(source_arn)
    return instance


def _recorded(source):
    """What the replicated backups record of their source (kept current while they replicate)."""
    return {
        "DBInstanceIdentifier": source.db_instance_identifier,
        "AllocatedStorage": source.allocated_storage,
        "Port": source.port,
        "InstanceCreateTime": source.instance_create_time,
        "MasterUsername": source.master_username,
        "Engine": source.engine,
        "EngineVersion": source.engine_version,
        "LicenseModel": source.license_model,
        "OptionGroupName": source.option_group_name,
        "StorageType": source.storage_type,
        "IAMDatabaseAuthenticationEnabled": bool(source.enable_iam_database_authentication),
    }


def _record(destination, source, retention, kms_key_arn):
    now = utcnow()
    return {
        "DBInstanceArn": source.db_instance_arn,
        "DbiResourceId": source.dbi_resource_id,
        "Region": source.region,
        "RestoreWindow": {"EarliestTime": now},
        "Status": "replicating",
        **_recorded(source),
        "Encrypted": bool(source.storage_encrypted),
        "KmsKeyId": kms_key_arn if source.storage_encrypted else None,
        "BackupRetentionPeriod": retention,
        "DBInstanceAutomatedBackupsArn": automated_backups_arn(destination.region_name, destination.account_id,
                                                              source.db_instance_arn),
        "BackupTarget": "region",
        "MultiTenant": False,
        "DedicatedLogVolume": False,
        "_source": source,  # the moto object (kept after a deletion): what a restore is made from
        "_settings": None,  # the source's settings as they were when the replication ended
    }


def _end_replication(record):
    """Freeze what the backups know of the source: later changes of the source are not replicated."""
    record.update(_recorded(record["_source"]))
    record["_settings"] = _source_settings(record["_source"])
    record["RestoreWindow"] = dict(record["RestoreWindow"], LatestTime=utcnow())
    record["Status"] = "retained"  # the backups are kept until their retention ends


def _source_exists(source_arn):
    backend = rds_backends[arn_account(source_arn)][arn_region(source_arn)]
    return source_arn.split(":")[-1] in backend.databases


def _public(record):
    """The record as AWS shows it now: the restore window grows while backups replicate."""
    if record["Status"] == "replicating":
        if _source_exists(record["DBInstanceArn"]):
            record.update(_recorded(record["_source"]))
        else:
            _end_replication(record)  # the source was deleted (the object is as it was then)
    shown = {key: value for key, value in record.items() if value is not None and not key.startswith("_")}
    if record["Status"] == "replicating":
        shown["RestoreWindow"] = dict(record["RestoreWindow"], LatestTime=utcnow())
    return shown


@rds_action
def start_db_instance_automated_backups_replication(self):
    source_arn = self.params.get("SourceDBInstanceArn")
    source = _source_instance(source_arn)
    if source.region == self.region:
        raise InvalidParameterValue(
            "The source DB instance must be in a different AWS Region than the replicated automated backups.")
    retention = self.params.get("BackupRetentionPeriod")
    retention = DEFAULT_RETENTION if retention is None else retention
    if not 1 <= retention <= 35:
        raise InvalidParameterValue(
            f"Invalid backup retention period: {retention}. The backup retention period must be between 1 and 35 days.")
    if not source.backup_retention_period:
        raise InvalidDBInstanceStateFault(
            f"Automated backups are not enabled for the source DB instance {source.db_instance_identifier}. "
            "Enable automated backups by setting a backup retention period greater than 0.")
    key = self.params.get("KmsKeyId")
    if source.storage_encrypted and not key:
        raise InvalidParameterCombination(
            "The source DB instance is encrypted: specify a KmsKeyId for the destination AWS Region.")
    kms_key_arn = self.backend._validate_kms_key(key) if key else None
    if active_replications(source_arn):
        raise InvalidDBInstanceAutomatedBackupStateFault(
            f"Automated backup replication is already enabled for the DB instance {source.db_instance_identifier}.")
    record = _record(self.backend, source, retention, kms_key_arn)
    replications_in(self.backend)[source_arn] = record
    return ActionResult({"DBInstanceAutomatedBackup": _public(record)})


@rds_action
def stop_db_instance_automated_backups_replication(self):
    source_arn = self.params.get("SourceDBInstanceArn")
    source = _source_instance(source_arn)
    record = replications_in(self.backend).get(source_arn)
    if record is None or record["Status"] == "retained":
        raise InvalidDBInstanceStateFault(
            f"Automated backup replication is not enabled for the DB instance {source.db_instance_identifier} "
            f"in {self.region}.")
    _end_replication(record)
    return ActionResult({"DBInstanceAutomatedBackup": _public(record)})


@rds_action
def delete_db_instance_automated_backup(self):
    arn = self.params.get("DBInstanceAutomatedBackupsArn")
    for source_arn, record in list(replications_in(self.backend).items()):
        if record["DBInstanceAutomatedBackupsArn"] == arn:
            if _public(record)["Status"] == "replicating":
                raise InvalidDBInstanceAutomatedBackupStateFault(
                    "Stop the automated backup replication before deleting the replicated backups.")
            del replications_in(self.backend)[source_arn]
            return ActionResult({"DBInstanceAutomatedBackup": dict(_public(record), Status="deleting")})
    raise DBInstanceAutomatedBackupNotFoundFault(arn)


def _matches(record, params):
    filters = {f["Name"]: f["Values"] for f in params.get("Filters") or []}
    checks = [(params.get("DBInstanceAutomatedBackupsArn"), "DBInstanceAutomatedBackupsArn"),
              (params.get("DbiResourceId"), "DbiResourceId"),
              (params.get("DBInstanceIdentifier"), "DBInstanceIdentifier")]
    if any(wanted and record.get(key) != wanted for wanted, key in checks):
        return False
    for name, key in (("status", "Status"), ("db-instance-id", "DBInstanceIdentifier"),
                      ("dbi-resource-id", "DbiResourceId")):
        if name in filters and record.get(key) not in filters[name]:
            return False
    return True


@around(RDSBackend, "describe_db_instance_automated_backups")
def _describe_db_instance_automated_backups(original, backend, *args, **kwargs):
    local = original(backend, *args, **kwargs)
    params = {key: value for key, value in kwargs.items()}
    # moto passes snake_case keys; map the few filters we honour
    wanted = {"DBInstanceAutomatedBackupsArn": params.get("db_instance_automated_backups_arn"),
              "DbiResourceId": params.get("dbi_resource_id"),
              "DBInstanceIdentifier": params.get("db_instance_identifier") or (args[0] if args else None),
              "Filters": params.get("filters")}
    replicated = [_public(r) for r in replications_in(backend).values() if _matches(r, wanted)]
    if wanted["DBInstanceAutomatedBackupsArn"]:
        local = [b for b in local if b.db_instance_automated_backups_arn == wanted["DBInstanceAutomatedBackupsArn"]]
        if not local and not replicated:
            raise DBInstanceAutomatedBackupNotFoundFault(wanted["DBInstanceAutomatedBackupsArn"])
    return list(local) + replicated


def _replications_of(source_arn):
    return [{"DBInstanceAutomatedBackupsArn": r["DBInstanceAutomatedBackupsArn"]}
            for r in active_replications(source_arn)]


DBInstance.db_instance_automated_backups_replications = property(
    lambda self: _replications_of(self.db_instance_arn))


# moto's own (same-region) automated backup carries almost nothing; give it what AWS shows.
def _backup_instance(self):
    return self.backend.databases.get(self.db_instance_identifier)


def _from_instance(attribute):
    return property(lambda self: getattr(_backup_instance(self), attribute, None))


for _name, _attribute in {"db_instance_arn": "db_instance_arn", "dbi_resource_id": "dbi_resource_id",
                          "engine": "engine", "engine_version": "engine_version",
                          "backup_retention_period": "backup_retention_period",
                          "encrypted": "storage_encrypted", "kms_key_id": "kms_key_id",
                          "allocated_storage": "allocated_storage", "port": "port",
                          "instance_create_time": "instance_create_time", "master_username": "master_username",
                          "storage_type": "storage_type", "availability_zone": "availability_zone"}.items():
    setattr(DBInstanceAutomatedBackup, _name, _from_instance(_attribute))
DBInstanceAutomatedBackup.region = property(lambda self: self.backend.region_name)
DBInstanceAutomatedBackup.db_instance_automated_backups_arn = property(
    lambda self: automated_backups_arn(self.backend.region_name, self.backend.account_id,
                                       f"arn:aws:rds:{self.backend.region_name}:{self.backend.account_id}:db:"
                                       f"{self.db_instance_identifier}"))
DBInstanceAutomatedBackup.db_instance_automated_backups_replications = property(
    lambda self: _replications_of(f"arn:aws:rds:{self.backend.region_name}:{self.backend.account_id}:db:"
                                  f"{self.db_instance_identifier}"))


# --- point-in-time restore from (replicated) automated backups ----------------------------------

RESTORE_SOURCES = ("SourceDBInstanceIdentifier", "SourceDbiResourceId", "SourceDBInstanceAutomatedBackupsArn")

# What a restore takes from the source as its backups recorded it. Region-bound settings
# (security groups, subnet/parameter groups, AZ, monitoring role) come from the destination's
# defaults or the request, as AWS documents for RestoreDBInstanceToPointInTime.
RESTORED_SETTINGS = ("engine", "engine_version", "db_instance_class", "allocated_storage", "max_allocated_storage",
                     "storage_type", "iops", "storage_throughput", "port", "db_name", "character_set_name",
                     "master_username", "master_user_password", "manage_master_user_password", "license_model",
                     "auto_minor_version_upgrade", "preferred_backup_window", "preferred_maintenance_window",
                     "backup_retention_period", "copy_tags_to_snapshot", "ca_certificate_identifier",
                     "enable_iam_database_authentication")

# Request parameters that say where the restore comes from, not what the new instance is.
RESTORE_ONLY_PARAMETERS = ("source_db_instance_identifier", "source_dbi_resource_id",
                           "source_db_instance_automated_backups_arn", "target_db_instance_identifier",
                           "restore_time", "use_latest_restorable_time")


def _source_settings(source):
    """The source's settings in ``create_db_instance`` terms (moto keeps some as ``_name``)."""
    attributes = {key.lstrip("_"): value for key, value in source.__dict__.items()}
    settings = {key: copy.deepcopy(attributes[key]) for key in RESTORED_SETTINGS if attributes.get(key) is not None}
    settings["enable_cloudwatch_logs_exports"] = list(attributes.get("enabled_cloudwatch_logs_exports") or [])
    if attributes.get("option_group_supplied"):
        settings["option_group_name"] = attributes.get("option_group_name")
    return settings


def replicated_backup(backend, arn):
    """The replicated-backup record of ``arn`` in ``backend``'s region, or None."""
    for record in replications_in(backend).values():
        if record["DBInstanceAutomatedBackupsArn"] == arn:
            return record
    return None


def _local_instance_with(backend, predicate):
    return next((instance for instance in list(backend.databases.values()) if predicate(instance)), None)


def _local_backups_arn(backend, instance):
    return automated_backups_arn(backend.region_name, backend.account_id, instance.db_instance_arn)


def resolve_restore_source(backend, source_db_identifier, params):
    """Where a point-in-time restore in ``backend``'s region comes from: ``(instance, record)``.

    ``instance`` is the source DB instance (live, or as it was when it was deleted); ``record`` the
    replicated backup restored from, or None when the restore is one moto makes itself (from a live
    instance of this region). Raises the errors AWS answers for an invalid request.
    """
    given = {"SourceDBInstanceIdentifier": source_db_identifier or get(params, "source_db_instance_identifier"),
             "SourceDbiResourceId": get(params, "source_dbi_resource_id"),
             "SourceDBInstanceAutomatedBackupsArn": get(params, "source_db_instance_automated_backups_arn")}
    named = [name for name in RESTORE_SOURCES if given[name]]
    if len(named) != 1:
        raise InvalidParameterCombination(
            f"Specify exactly one of {', '.join(RESTORE_SOURCES)}; the request specified "
            f"{', '.join(named) if named else 'none of them'}.")
    if get(params, "restore_time") is not None and get(params, "use_latest_restorable_time"):
        raise InvalidParameterCombination("Cannot specify both RestoreTime and UseLatestRestorableTime.")
    identifier, resource_id, arn = (given[name] for name in RESTORE_SOURCES)
    if identifier:
        instance = backend.databases.get(identifier)
        if instance is None:
            raise DBInstanceNotFoundError(identifier)
        return instance, None
    if resource_id:
        instance = _local_instance_with(backend, lambda db: db.dbi_resource_id == resource_id)
        if instance is not None:
            return instance, None
        record = next((r for r in replications_in(backend).values() if r["DbiResourceId"] == resource_id), None)
        if record is None:
            raise DBInstanceAutomatedBackupNotFoundFault(
                resource_id, f"No automated backups found for the DB instance resource ID {resource_id}.")
        return record["_source"], record
    record = replicated_backup(backend, arn)
    if record is not None:
        return record["_source"], record
    instance = _local_instance_with(backend, lambda db: _local_backups_arn(backend, db) == arn)
    if instance is None:
        raise DBInstanceAutomatedBackupNotFoundFault(arn)
    return instance, None


def _as_utc(value):
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=datetime.timezone.utc) if value.tzinfo is None else value


def _check_restore_time(record, params):
    restore_time = get(params, "restore_time")
    if restore_time is None:
        return
    window = _public(record)["RestoreWindow"]  # (also ends the replication if the source is gone)
    earliest = _as_utc(window["EarliestTime"]).replace(microsecond=0)  # AWS shows whole seconds
    latest = _as_utc(window["LatestTime"])
    if not earliest <= _as_utc(restore_time) <= latest:
        raise InvalidRestoreFault(
            f"The restore time {_as_utc(restore_time).isoformat()} is outside the restore window of the automated "
            f"backups {record['DBInstanceAutomatedBackupsArn']} ({earliest.isoformat()} to {latest.isoformat()}).")


def _restore_from_replicated_backup(backend, record, target, params):
    _check_restore_time(record, params)
    if target in backend.databases:
        raise DBInstanceAlreadyExists()
    settings = record["_settings"] or _source_settings(record["_source"])
    props = dict(settings, storage_encrypted=bool(record["Encrypted"]), kms_key_id=record.get("KmsKeyId"))
    option_group = props.pop("option_group_name", None)
    if option_group and option_group in backend.option_groups:  # regional: else the engine's default
        props["option_group_name"] = option_group
    requested_storage = get(params, "allocated_storage")
    if requested_storage is not None and requested_storage < settings["allocated_storage"]:
        raise InvalidParameterValue(
            "The allocated storage size can't be less than the source snapshot or backup size.")
    props.update({key: value for key, value in params.items()
                  if value is not None and key not in RESTORE_ONLY_PARAMETERS})
    props["db_instance_identifier"] = target
    return backend.create_db_instance(props)


@around(RDSBackend, "restore_db_instance_to_point_in_time")
def _restore_db_instance_to_point_in_time(original, backend, source_db_identifier, target_db_identifier, overrides,
                                          *args, **kwargs):
    instance, record = resolve_restore_source(backend, source_db_identifier, overrides)
    if record is not None:
        return _restore_from_replicated_backup(backend, record, target_db_identifier, overrides)
    return original(backend, instance.db_instance_identifier, target_db_identifier, overrides, *args, **kwargs)
