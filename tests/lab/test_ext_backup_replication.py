"""Contract: cross-region automated backup replication (called in the destination region)."""

import datetime

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


def _unencrypted_source(source):
    return source.create_db_instance(DBInstanceIdentifier="plain", Engine="mysql", DBInstanceClass="db.t3.micro",
                                     AllocatedStorage=20, MasterUsername="admin",
                                     MasterUserPassword="lab-password-1", BackupRetentionPeriod=3)["DBInstance"]


def test_unencrypted_source_replicates_without_a_key(lab, regions):
    source, destination, _source_arn, _dr_key = regions
    created = _unencrypted_source(source)

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


# --- point-in-time restore from the replicated backups (in the destination region) -------------

TARGET = "cso-lab-db-dr"


@pytest.fixture
def replicated(lab, regions):
    """The replicated backup of the seeded database in the DR region (started with ``dr_key``)."""
    _source, destination, source_arn, dr_key = regions
    return destination.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, KmsKeyId=dr_key, SourceRegion=lab.region)["DBInstanceAutomatedBackup"]


def _instance(client, identifier):
    return client.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _window(destination, backup):
    return destination.describe_db_instance_automated_backups(
        DBInstanceAutomatedBackupsArn=backup["DBInstanceAutomatedBackupsArn"])["DBInstanceAutomatedBackups"][0][
        "RestoreWindow"]


def test_restore_from_the_replicated_backups_in_the_destination(lab, regions, replicated):
    source, destination, source_arn, dr_key = regions
    original = _instance(source, DB)

    response = destination.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier=TARGET, UseLatestRestorableTime=True, DBSubnetGroupName="cso-db-private",
        Tags=[{"Key": "purpose", "Value": "dr-drill"}])

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    restored = response["DBInstance"]
    assert restored["DBInstanceIdentifier"] == TARGET
    assert restored["DBInstanceArn"] == f"arn:aws:rds:{lab.state['dr_region']}:123456789012:db:{TARGET}"
    assert restored["InstanceCreateTime"].tzinfo is not None  # boto3 parsed the timestamp
    for key in ("Engine", "EngineVersion", "DBInstanceClass", "AllocatedStorage", "StorageType", "MasterUsername",
                "LicenseModel"):
        assert restored[key] == original[key] == replicated.get(key, original[key]), key
    assert restored["StorageEncrypted"] is True
    assert restored["KmsKeyId"] == dr_key == replicated["KmsKeyId"]
    assert restored["AvailabilityZone"].startswith(lab.state["dr_region"])
    assert restored["DBSubnetGroup"]["DBSubnetGroupName"] == "cso-db-private"
    assert restored["DbiResourceId"] != original["DbiResourceId"]
    described = _instance(destination, TARGET)
    assert described["DBInstanceArn"] == restored["DBInstanceArn"]
    assert {"Key": "purpose", "Value": "dr-drill"} in described["TagList"]
    dr_groups = lab.boto3("ec2", lab.state["dr_region"]).describe_security_groups()["SecurityGroups"]
    assert {g["VpcSecurityGroupId"] for g in described["VpcSecurityGroups"]} <= {g["GroupId"] for g in dr_groups}
    assert _error(source.describe_db_instances, DBInstanceIdentifier=TARGET)["Code"] == "DBInstanceNotFound"
    assert source_arn == original["DBInstanceArn"]


def test_restore_to_a_time_inside_the_restore_window(lab, regions, replicated):
    _source, destination, _source_arn, _dr_key = regions
    window = _window(destination, replicated)

    restored = destination.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier=TARGET, RestoreTime=window["LatestTime"])["DBInstance"]

    assert restored["DBInstanceIdentifier"] == TARGET
    assert [d["DBInstanceIdentifier"] for d in destination.describe_db_instances()["DBInstances"]] == [TARGET]


def test_restore_after_the_source_is_gone(lab, regions, replicated):
    source, destination, _source_arn, dr_key = regions
    original = _instance(source, DB)
    source.delete_db_instance(DBInstanceIdentifier=DB, SkipFinalSnapshot=True)
    window = _window(destination, replicated)

    restored = destination.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier=TARGET, UseLatestRestorableTime=True)["DBInstance"]
    late = _error(destination.restore_db_instance_to_point_in_time,
                  SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
                  TargetDBInstanceIdentifier="too-late",
                  RestoreTime=window["LatestTime"] + datetime.timedelta(minutes=5))

    assert (restored["EngineVersion"], restored["KmsKeyId"]) == (original["EngineVersion"], dr_key)
    assert late["Code"] == "InvalidRestoreFault"


def test_stopped_replication_restores_what_it_replicated(lab, regions, replicated):
    source, destination, source_arn, _dr_key = regions
    destination.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=source_arn)
    source.modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t3.xlarge", ApplyImmediately=True)

    restored = destination.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier=TARGET, UseLatestRestorableTime=True)["DBInstance"]

    assert restored["DBInstanceClass"] == "db.t3.large"


def test_unencrypted_source_restores_unencrypted(lab, regions):
    source, destination, _source_arn, _dr_key = regions
    created = _unencrypted_source(source)
    backup = destination.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=created["DBInstanceArn"])["DBInstanceAutomatedBackup"]

    restored = destination.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=backup["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier="plain-dr", UseLatestRestorableTime=True,
        DBInstanceClass="db.t3.small")["DBInstance"]

    assert restored["StorageEncrypted"] is False and "KmsKeyId" not in restored
    assert (restored["DBInstanceClass"], restored["AllocatedStorage"]) == ("db.t3.small", 20)


def test_restore_by_resource_id(lab, regions, replicated):
    source, destination, _source_arn, dr_key = regions
    resource_id = _instance(source, DB)["DbiResourceId"]

    in_destination = destination.restore_db_instance_to_point_in_time(
        SourceDbiResourceId=resource_id, TargetDBInstanceIdentifier=TARGET,
        UseLatestRestorableTime=True)["DBInstance"]
    in_source = source.restore_db_instance_to_point_in_time(
        SourceDbiResourceId=resource_id, TargetDBInstanceIdentifier="cso-lab-db-copy",
        UseLatestRestorableTime=True)["DBInstance"]
    missing = _error(destination.restore_db_instance_to_point_in_time, SourceDbiResourceId="db-NOSUCHRESOURCE",
                     TargetDBInstanceIdentifier="nope", UseLatestRestorableTime=True)

    assert in_destination["KmsKeyId"] == dr_key
    assert in_source["DBInstanceArn"].startswith(f"arn:aws:rds:{lab.region}:")
    assert missing["Code"] == "DBInstanceAutomatedBackupNotFound"


def test_restore_from_the_source_instance_still_works(lab, regions):
    source, _destination, _source_arn, _dr_key = regions
    local_backup_arn = source.describe_db_instance_automated_backups(
        DBInstanceIdentifier=DB)["DBInstanceAutomatedBackups"][0]["DBInstanceAutomatedBackupsArn"]

    by_name = source.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=DB, TargetDBInstanceIdentifier="by-name", UseLatestRestorableTime=True)["DBInstance"]
    by_backup = source.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=local_backup_arn, TargetDBInstanceIdentifier="by-backup",
        UseLatestRestorableTime=True)["DBInstance"]

    assert by_name["EngineVersion"] == by_backup["EngineVersion"] == _instance(source, DB)["EngineVersion"]


@pytest.mark.parametrize("sources", [
    {},
    {"SourceDBInstanceIdentifier": DB, "SourceDBInstanceAutomatedBackupsArn": "replicated"},
    {"SourceDbiResourceId": "resource", "SourceDBInstanceAutomatedBackupsArn": "replicated"},
    {"SourceDBInstanceIdentifier": DB, "SourceDbiResourceId": "resource"},
])
def test_exactly_one_source_must_be_given(lab, regions, replicated, sources):
    source, destination, _source_arn, _dr_key = regions
    values = {"replicated": replicated["DBInstanceAutomatedBackupsArn"],
              "resource": _instance(source, DB)["DbiResourceId"]}
    request = {key: values.get(value, value) for key, value in sources.items()}

    error = _error(destination.restore_db_instance_to_point_in_time, TargetDBInstanceIdentifier=TARGET,
                   UseLatestRestorableTime=True, **request)

    assert error["Code"] == "InvalidParameterCombination"
    assert destination.describe_db_instances()["DBInstances"] == []


def test_unknown_automated_backups_arn_is_not_found(lab, regions, replicated):
    _source, destination, _source_arn, _dr_key = regions
    unknown = replicated["DBInstanceAutomatedBackupsArn"][:-4] + "zzzz"

    with pytest.raises(ClientError) as raised:
        destination.restore_db_instance_to_point_in_time(
            SourceDBInstanceAutomatedBackupsArn=unknown, TargetDBInstanceIdentifier=TARGET,
            UseLatestRestorableTime=True)

    assert raised.value.response["Error"]["Code"] == "DBInstanceAutomatedBackupNotFound"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert type(raised.value).__name__ == "DBInstanceAutomatedBackupNotFoundFault"  # boto3 modelled the error


@pytest.mark.parametrize("offset", [datetime.timedelta(hours=-1), datetime.timedelta(hours=1)])
def test_restore_time_outside_the_restore_window(lab, regions, replicated, offset):
    _source, destination, _source_arn, _dr_key = regions
    window = _window(destination, replicated)
    outside = (window["EarliestTime"] if offset < datetime.timedelta(0) else window["LatestTime"]) + offset

    with pytest.raises(ClientError) as raised:
        destination.restore_db_instance_to_point_in_time(
            SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
            TargetDBInstanceIdentifier=TARGET, RestoreTime=outside)

    assert raised.value.response["Error"]["Code"] == "InvalidRestoreFault"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert type(raised.value).__name__ == "InvalidRestoreFault"
    assert destination.describe_db_instances()["DBInstances"] == []


def test_latest_restorable_time_and_restore_time_exclude_each_other(lab, regions, replicated):
    _source, destination, _source_arn, _dr_key = regions

    error = _error(destination.restore_db_instance_to_point_in_time,
                   SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
                   TargetDBInstanceIdentifier=TARGET, UseLatestRestorableTime=True,
                   RestoreTime=_window(destination, replicated)["LatestTime"])

    assert error["Code"] == "InvalidParameterCombination"


def test_restore_target_must_not_exist(lab, regions, replicated):
    _source, destination, _source_arn, _dr_key = regions
    request = dict(SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
                   TargetDBInstanceIdentifier=TARGET, UseLatestRestorableTime=True)
    destination.restore_db_instance_to_point_in_time(**request)

    assert _error(destination.restore_db_instance_to_point_in_time, **request)["Code"] == "DBInstanceAlreadyExists"


def test_the_data_plane_sees_where_the_restored_data_comes_from(lab, regions, replicated):
    source, destination, _source_arn, _dr_key = regions
    destination.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=replicated["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier=TARGET, UseLatestRestorableTime=True)
    source.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=DB, TargetDBInstanceIdentifier="cso-lab-db-copy", UseLatestRestorableTime=True)

    instances = {(i["region"], i["id"]): i for i in lab.api("dataplane-instances")["instances"]}
    from_backup = instances[(lab.state["dr_region"], TARGET)]["restored_from"]
    from_instance = instances[(lab.region, "cso-lab-db-copy")]["restored_from"]

    assert set(from_backup) == set(from_instance)
    assert from_backup["kind"] == from_instance["kind"] == "point-in-time"
    assert from_backup["source"] == from_instance["source"] == DB
    assert from_backup["source_region"] == from_instance["source_region"] == lab.region
    assert from_backup["restore_time"] == from_instance["restore_time"] == "latest"
    # the restored data comes with the source's master credentials
    served = instances[(lab.state["dr_region"], TARGET)]
    assert (served["master_username"], served["master_password"]) == ("admin", "lab-master-password-1")
