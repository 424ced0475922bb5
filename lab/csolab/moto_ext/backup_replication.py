"""Cross-region automated backup replication.

``start_/stop_db_instance_automated_backups_replication`` are called in the DESTINATION region
with the source instance's ARN (botocore presigns ``PreSignedUrl`` when ``SourceRegion`` is
given; it is accepted and ignored, as AWS does outside GovCloud). The replicated backup shows in
the destination's ``describe_db_instance_automated_backups``; the source instance lists it in
``DBInstanceAutomatedBackupsReplications``.
"""

import hashlib

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.rds.exceptions import (DBInstanceNotFoundError, InvalidDBInstanceStateFault, InvalidParameterCombination,
                                 InvalidParameterValue, RDSClientError)
from moto.rds.models import DBInstance, DBInstanceAutomatedBackup, RDSBackend, rds_backends

from csolab.moto_ext._common import around, arn_account, arn_region, created_rds_backends, rds_action

DEFAULT_RETENTION = 7


class InvalidDBInstanceAutomatedBackupStateFault(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidDBInstanceAutomatedBackupState", message)


class DBInstanceAutomatedBackupNotFoundFault(RDSClientError):
    def __init__(self, arn):
        super().__init__("DBInstanceAutomatedBackupNotFound", f"Automated backup {arn} not found.")


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


def _record(destination, source, retention, kms_key_arn):
    now = utcnow()
    return {
        "DBInstanceArn": source.db_instance_arn,
        "DbiResourceId": source.dbi_resource_id,
        "Region": source.region,
        "DBInstanceIdentifier": source.db_instance_identifier,
        "RestoreWindow": {"EarliestTime": now},
        "AllocatedStorage": source.allocated_storage,
        "Status": "replicating",
        "Port": source.port,
        "InstanceCreateTime": source.instance_create_time,
        "MasterUsername": source.master_username,
        "Engine": source.engine,
        "EngineVersion": source.engine_version,
        "LicenseModel": source.license_model,
        "OptionGroupName": source.option_group_name,
        "Encrypted": bool(source.storage_encrypted),
        "StorageType": source.storage_type,
        "KmsKeyId": kms_key_arn if source.storage_encrypted else None,
        "IAMDatabaseAuthenticationEnabled": bool(source.enable_iam_database_authentication),
        "BackupRetentionPeriod": retention,
        "DBInstanceAutomatedBackupsArn": automated_backups_arn(destination.region_name, destination.account_id,
                                                              source.db_instance_arn),
        "BackupTarget": "region",
        "MultiTenant": False,
        "DedicatedLogVolume": False,
    }


def _source_exists(source_arn):
    backend = rds_backends[arn_account(source_arn)][arn_region(source_arn)]
    return source_arn.split(":")[-1] in backend.databases


def _public(record):
    """The record as AWS shows it now: the restore window grows while backups replicate."""
    if record["Status"] == "replicating" and not _source_exists(record["DBInstanceArn"]):
        record["Status"] = "retained"  # the source was deleted: its replicated backups are kept
        record["RestoreWindow"] = dict(record["RestoreWindow"], LatestTime=utcnow())
    shown = {key: value for key, value in record.items() if value is not None}
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
    record["RestoreWindow"] = dict(record["RestoreWindow"], LatestTime=utcnow())
    record["Status"] = "retained"  # stopped replication keeps the backups until their retention ends
    return ActionResult({"DBInstanceAutomatedBackup": _public(record)})


@rds_action
def delete_db_instance_automated_backup(self):
    arn = self.params.get("DBInstanceAutomatedBackupsArn")
    for source_arn, record in list(replications_in(self.backend).items()):
        if record["DBInstanceAutomatedBackupsArn"] == arn:
            if record["Status"] == "replicating":
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
