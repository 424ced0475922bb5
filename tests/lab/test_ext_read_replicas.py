"""Contract: read replicas as AWS makes them, through boto3 (no data plane; the data plane's side is
in test_dataplane.py): source checks, encryption, the links both ways, promotion and its reboot."""

import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
REPLICA = "cso-lab-db-replica"


@pytest.fixture
def rds(aws_lab):
    before = aws_lab.set_outage()
    aws_lab.set_outage(seconds=0.5, failover_seconds=0.5)
    yield aws_lab.boto3("rds")
    aws_lab.set_outage(seconds=before["seconds"], failover_seconds=before["failover_seconds"])


def _instance(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _wait_available(rds, identifier, timeout=10):
    deadline = time.monotonic() + timeout
    while _instance(rds, identifier)["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline, f"{identifier} not available after {timeout} s"
        time.sleep(0.05)


def test_a_replica_is_its_own_instance_linked_to_its_source(rds):
    source = _instance(rds, DB)
    replica = rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA,
                                                  SourceDBInstanceIdentifier=DB)["DBInstance"]

    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == DB
    assert _instance(rds, DB)["ReadReplicaDBInstanceIdentifiers"] == [REPLICA]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in _instance(rds, DB)
    assert replica["Endpoint"]["Address"].startswith(f"{REPLICA}.")
    assert replica["Endpoint"]["Address"] != source["Endpoint"]["Address"]
    assert replica["DbiResourceId"] != source["DbiResourceId"]  # moto copied the source's
    # same region: always the source's key (the seeded source uses the aws/rds key)
    assert source["StorageEncrypted"] is True
    assert (replica["StorageEncrypted"], replica["KmsKeyId"]) == (True, source["KmsKeyId"])


def test_a_source_without_automated_backups_cannot_have_a_replica(rds):
    rds.create_db_instance(DBInstanceIdentifier="no-backups", Engine="mysql", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="lab-password-1",
                           BackupRetentionPeriod=0)
    with pytest.raises(ClientError) as refused:
        rds.create_db_instance_read_replica(DBInstanceIdentifier="no-backups-replica",
                                            SourceDBInstanceIdentifier="no-backups")
    assert refused.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    assert "backup retention period" in refused.value.response["Error"]["Message"]
    assert [item["DBInstanceIdentifier"] for item in rds.describe_db_instances()["DBInstances"]
            if item["DBInstanceIdentifier"].startswith("no-backups-")] == []
    # with backups (the seeded source: 7 days) the same call works
    assert _instance(rds, DB)["BackupRetentionPeriod"] > 0
    rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB)


def test_replica_encryption_follows_the_source(rds, aws_lab):
    other_key = aws_lab.boto3("kms").create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as other:
        rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB,
                                            KmsKeyId=other_key)
    assert other.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "same Region" in other.value.response["Error"]["Message"]

    rds.create_db_instance(DBInstanceIdentifier="plain", Engine="mysql", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="lab-password-1",
                           BackupRetentionPeriod=1)
    with pytest.raises(ClientError) as encrypted_from_plain:
        rds.create_db_instance_read_replica(DBInstanceIdentifier="plain-replica", SourceDBInstanceIdentifier="plain",
                                            KmsKeyId=other_key)
    assert encrypted_from_plain.value.response["Error"]["Code"] == "InvalidParameterCombination"
    plain_replica = rds.create_db_instance_read_replica(DBInstanceIdentifier="plain-replica",
                                                        SourceDBInstanceIdentifier="plain")["DBInstance"]
    assert plain_replica["StorageEncrypted"] is False
    assert "KmsKeyId" not in plain_replica


def test_promotion_reboots_and_unlinks_the_replica(rds):
    rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB)
    with pytest.raises(ClientError) as not_a_replica:
        rds.promote_read_replica(DBInstanceIdentifier=DB)
    assert not_a_replica.value.response["Error"]["Code"] == "InvalidDBInstanceState"

    started = time.monotonic()
    promoted = rds.promote_read_replica(DBInstanceIdentifier=REPLICA)["DBInstance"]
    assert promoted["DBInstanceStatus"] == "rebooting"
    _wait_available(rds, REPLICA)
    print(f"promotion: rebooting for {time.monotonic() - started:.2f} s (outage set to 0.5 s)")
    assert time.monotonic() - started >= 0.5
    assert "ReadReplicaSourceDBInstanceIdentifier" not in _instance(rds, REPLICA)
    assert _instance(rds, DB)["ReadReplicaDBInstanceIdentifiers"] == []
    with pytest.raises(ClientError) as twice:
        rds.promote_read_replica(DBInstanceIdentifier=REPLICA)
    assert twice.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    # a standalone instance is deleted without touching its former source
    rds.delete_db_instance(DBInstanceIdentifier=REPLICA, SkipFinalSnapshot=True)
    assert _instance(rds, DB)["DBInstanceStatus"] == "available"


def test_a_replica_is_deleted_without_a_final_snapshot(rds):
    rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB)
    _wait_available(rds, REPLICA)
    with pytest.raises(ClientError) as refused:
        rds.delete_db_instance(DBInstanceIdentifier=REPLICA, FinalDBSnapshotIdentifier=f"{REPLICA}-final")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "read replica" in refused.value.response["Error"]["Message"]
    assert _instance(rds, REPLICA)["DBInstanceStatus"] == "available"
    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier=REPLICA)["DBSnapshots"]
    assert f"{REPLICA}-final" not in [snapshot["DBSnapshotIdentifier"] for snapshot in snapshots]
    rds.delete_db_instance(DBInstanceIdentifier=REPLICA, SkipFinalSnapshot=True)
    assert _instance(rds, DB)["ReadReplicaDBInstanceIdentifiers"] == []


def test_deleting_a_source_promotes_its_replicas(rds):
    rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB)
    rds.delete_db_instance(DBInstanceIdentifier=DB, SkipFinalSnapshot=True)
    orphan = _instance(rds, REPLICA)
    assert "ReadReplicaSourceDBInstanceIdentifier" not in orphan
    assert orphan["DBInstanceStatus"] == "rebooting"
    _wait_available(rds, REPLICA)
