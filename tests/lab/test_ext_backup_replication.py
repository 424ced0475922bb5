"""Contract: cross-region automated backup replication (called in the destination region)."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"


@pytest.fixture
def regions(lab):
    lab.reset()
    source = lab.boto3("rds")
    destination = lab.boto3("rds", lab.state["dr_region"])
    source_arn = source.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["DBInstanceArn"]
    dr_key = lab.boto3("kms", lab.state["dr_region"]).create_key()["KeyMetadata"]["Arn"]
    return source, destination, source_arn, dr_key


def _error(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]


def test_start_replication_shows_the_backup_in_the_destination(lab, regions):
    source, destination, source_arn, dr_key = regions

    started = destination.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, KmsKeyId=dr_key, BackupRetentionPeriod=14,
        SourceRegion=lab.region)["DBInstanceAutomatedBackup"]

    backups = destination.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    assert [b["DBInstanceAutomatedBackupsArn"] for b in backups] == [started["DBInstanceAutomatedBackupsArn"]]
    backup = backups[0]
    assert backup["DBInstanceAutomatedBackupsArn"].startswith(f"arn:aws:rds:{lab.state['dr_region']}:")
    assert backup["Region"] == lab.region
    assert backup["DBInstanceArn"] == source_arn
    assert backup["Status"] == "replicating"
    assert backup["KmsKeyId"] == dr_key
    assert backup["Encrypted"] is True
    assert backup["BackupRetentionPeriod"] == 14
    assert backup["RestoreWindow"]["EarliestTime"] <= backup["RestoreWindow"]["LatestTime"]
    instance = source.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    assert instance["DBInstanceAutomatedBackupsReplications"] == [
        {"DBInstanceAutomatedBackupsArn": started["DBInstanceAutomatedBackupsArn"]}]


def test_filters_by_backup_arn(lab, regions):
    _source, destination, source_arn, dr_key = regions
    started = destination.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, KmsKeyId=dr_key)["DBInstanceAutomatedBackup"]

    found = destination.describe_db_instance_automated_backups(
        DBInstanceAutomatedBackupsArn=started["DBInstanceAutomatedBackupsArn"])["DBInstanceAutomatedBackups"]

    assert len(found) == 1 and found[0]["BackupRetentionPeriod"] == 7
    error = _error(destination.describe_db_instance_automated_backups,
                   DBInstanceAutomatedBackupsArn=started["DBInstanceAutomatedBackupsArn"] + "x")
    assert error["Code"] == "DBInstanceAutomatedBackupNotFound"


def test_stop_replication(lab, regions):
    source, destination, source_arn, dr_key = regions
    destination.start_db_instance_automated_backups_replication(SourceDBInstanceArn=source_arn, KmsKeyId=dr_key)

    stopped = destination.stop_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn)["DBInstanceAutomatedBackup"]

    assert stopped["Status"] == "retained"
    instance = source.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    assert instance["DBInstanceAutomatedBackupsReplications"] == []
    error = _error(destination.stop_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn)
    assert error["Code"] == "InvalidDBInstanceState"
    destination.delete_db_instance_automated_backup(DBInstanceAutomatedBackupsArn=stopped["DBInstanceAutomatedBackupsArn"])
    assert destination.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"] == []


def test_encrypted_source_needs_a_destination_key(lab, regions):
    _source, destination, source_arn, _dr_key = regions

    error = _error(destination.start_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn)

    assert error["Code"] == "InvalidParameterCombination"
    assert "KmsKeyId" in error["Message"]


def test_key_must_exist_in_the_destination_region(lab, regions):
    _source, destination, source_arn, _dr_key = regions
    source_region_key = lab.boto3("kms").create_key()["KeyMetadata"]["Arn"]

    wrong_region = _error(destination.start_db_instance_automated_backups_replication,
                          SourceDBInstanceArn=source_arn, KmsKeyId=source_region_key)
    missing = _error(destination.start_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn,
                     KmsKeyId=f"arn:aws:kms:{lab.state['dr_region']}:123456789012:key/00000000-0000-0000-0000-000000000000")

    assert wrong_region["Code"] == missing["Code"] == "KMSKeyNotAccessibleFault"


@pytest.mark.parametrize("retention", [0, 36])
def test_retention_must_be_1_to_35(lab, regions, retention):
    _source, destination, source_arn, dr_key = regions

    error = _error(destination.start_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn,
                   KmsKeyId=dr_key, BackupRetentionPeriod=retention)

    assert error["Code"] == "InvalidParameterValue"


def test_source_must_have_backups_enabled(lab, regions):
    source, destination, source_arn, dr_key = regions
    source.modify_db_instance(DBInstanceIdentifier=DB, BackupRetentionPeriod=0, ApplyImmediately=True)

    error = _error(destination.start_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn,
                   KmsKeyId=dr_key)

    assert error["Code"] == "InvalidDBInstanceState"


def test_source_region_must_differ_and_source_must_exist(lab, regions):
    source, destination, source_arn, dr_key = regions

    same_region = _error(source.start_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn,
                         KmsKeyId=lab.boto3("kms").create_key()["KeyMetadata"]["Arn"])
    missing = _error(destination.start_db_instance_automated_backups_replication,
                     SourceDBInstanceArn=source_arn.replace(DB, "nope"), KmsKeyId=dr_key)

    assert same_region["Code"] == "InvalidParameterValue"
    assert missing["Code"] == "DBInstanceNotFound"


def test_already_replicating_is_rejected(lab, regions):
    _source, destination, source_arn, dr_key = regions
    destination.start_db_instance_automated_backups_replication(SourceDBInstanceArn=source_arn, KmsKeyId=dr_key)

    error = _error(destination.start_db_instance_automated_backups_replication, SourceDBInstanceArn=source_arn,
                   KmsKeyId=dr_key)

    assert error["Code"] == "InvalidDBInstanceAutomatedBackupState"


def test_unencrypted_source_replicates_without_a_key(lab, regions):
    source, destination, _source_arn, _dr_key = regions
    created = source.create_db_instance(DBInstanceIdentifier="plain", Engine="mysql", DBInstanceClass="db.t3.micro",
                                        AllocatedStorage=20, MasterUsername="admin",
                                        MasterUserPassword="lab-password-1", BackupRetentionPeriod=3)["DBInstance"]

    started = destination.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=created["DBInstanceArn"])["DBInstanceAutomatedBackup"]

    assert started["Encrypted"] is False
    assert "KmsKeyId" not in started


def test_source_region_automated_backup_lists_its_replication(lab, regions):
    source, destination, source_arn, dr_key = regions
    started = destination.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, KmsKeyId=dr_key)["DBInstanceAutomatedBackup"]

    local = source.describe_db_instance_automated_backups(DBInstanceIdentifier=DB)["DBInstanceAutomatedBackups"]

    assert len(local) == 1
    assert local[0]["DBInstanceArn"] == source_arn
    assert local[0]["DBInstanceAutomatedBackupsReplications"] == [
        {"DBInstanceAutomatedBackupsArn": started["DBInstanceAutomatedBackupsArn"]}]


def test_deleting_the_source_retains_the_replicated_backup(lab, regions):
    source, destination, source_arn, dr_key = regions
    destination.start_db_instance_automated_backups_replication(SourceDBInstanceArn=source_arn, KmsKeyId=dr_key)

    source.delete_db_instance(DBInstanceIdentifier=DB, SkipFinalSnapshot=True)

    backups = destination.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    assert [b["Status"] for b in backups] == ["retained"]
