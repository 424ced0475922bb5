"""Contract: cross-Region read replicas as AWS makes them, through boto3 (no data plane): the replica is created
in the destination Region from the source's ARN with SourceRegion (boto3 sends the presigned URL), under a key of
the destination Region, in that Region's subnet group; the source lists it by ARN; a promotion unlinks it and
sets AWS's default backup retention."""

import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
REPLICA = "cso-lab-db-dr"


@pytest.fixture
def lab_regions(aws_lab):
    before = aws_lab.set_outage()
    aws_lab.set_outage(seconds=0.5, failover_seconds=0.5)
    yield aws_lab.region, aws_lab.state["dr_region"]
    aws_lab.set_outage(seconds=before["seconds"], failover_seconds=before["failover_seconds"])


@pytest.fixture
def clients(aws_lab, lab_regions):
    primary, dr = lab_regions
    return {"source": aws_lab.boto3("rds", primary), "dr": aws_lab.boto3("rds", dr),
            "dr_kms": aws_lab.boto3("kms", dr), "source_kms": aws_lab.boto3("kms", primary),
            "dr_ec2": aws_lab.boto3("ec2", dr)}


def _instance(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _source_arn(clients):
    return _instance(clients["source"], DB)["DBInstanceArn"]


def _create(clients, **extra):
    parameters = dict(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=_source_arn(clients),
                      SourceRegion=clients["source"].meta.region_name, DBSubnetGroupName="cso-db-private")
    parameters.update(extra)
    return clients["dr"].create_db_instance_read_replica(**parameters)["DBInstance"]


def _refused(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]


def test_a_cross_region_replica_is_made_in_the_destination_region(clients, lab_regions):
    primary, dr = lab_regions
    key = clients["dr_kms"].create_key(Description="dr")["KeyMetadata"]["Arn"]
    dr_vpc = clients["dr_ec2"].describe_vpcs()["Vpcs"]
    replica = _create(clients, KmsKeyId=key)

    assert replica["DBInstanceArn"].startswith(f"arn:aws:rds:{dr}:")
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == _source_arn(clients)
    assert (replica["StorageEncrypted"], replica["KmsKeyId"]) == (True, key)
    # the destination's subnet group (both Regions have one named cso-db-private), zone of that Region
    assert replica["DBSubnetGroup"]["DBSubnetGroupArn"].split(":")[3] == dr
    assert replica["DBSubnetGroup"]["VpcId"] in {vpc["VpcId"] for vpc in dr_vpc}
    assert replica["AvailabilityZone"].startswith(dr)
    assert {subnet["SubnetAvailabilityZone"]["Name"][:-1] for subnet in replica["DBSubnetGroup"]["Subnets"]} == {dr}
    # the source (in its own Region) lists it by ARN; the source's Region has no instance of that name
    assert _instance(clients["source"], DB)["ReadReplicaDBInstanceIdentifiers"] == [replica["DBInstanceArn"]]
    assert _refused(lambda: _instance(clients["source"], REPLICA))["Code"] == "DBInstanceNotFound"
    assert primary != dr


def test_a_cross_region_replica_needs_a_key_of_the_destination_region(clients):
    assert "KmsKeyId" in _instance(clients["source"], DB)  # the seeded source is encrypted
    missing = _refused(lambda: _create(clients))
    assert missing["Code"] == "InvalidParameterCombination" and "destination Region" in missing["Message"]
    source_region_key = clients["source_kms"].create_key()["KeyMetadata"]["Arn"]
    assert _refused(lambda: _create(clients, KmsKeyId=source_region_key))["Code"] == "KMSKeyNotAccessibleFault"
    assert _refused(lambda: _create(clients, KmsKeyId="alias/no-such-key"))["Code"] == "KMSKeyNotAccessibleFault"
    assert [i["DBInstanceIdentifier"] for i in clients["dr"].describe_db_instances()["DBInstances"]] == []
    # a key of the destination Region by alias is accepted and reported by ARN
    key = clients["dr_kms"].create_key()["KeyMetadata"]["Arn"]
    clients["dr_kms"].create_alias(AliasName="alias/cso-dr", TargetKeyId=key)
    assert _create(clients, KmsKeyId="alias/cso-dr")["KmsKeyId"] == key


def test_a_cross_region_replica_names_its_source_by_arn_and_a_subnet_group_of_its_region(clients):
    key = clients["dr_kms"].create_key()["KeyMetadata"]["Arn"]
    by_name = _refused(lambda: clients["dr"].create_db_instance_read_replica(
        DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB, KmsKeyId=key))
    assert by_name["Code"] == "DBInstanceNotFound"  # a plain name is looked up in the destination Region
    missing_group = _refused(lambda: _create(clients, KmsKeyId=key, DBSubnetGroupName="no-such-group"))
    assert missing_group["Code"] == "DBSubnetGroupNotFoundFault"
    assert [i["DBInstanceIdentifier"] for i in clients["dr"].describe_db_instances()["DBInstances"]] == []


def test_promoting_a_cross_region_replica_unlinks_it_and_turns_backups_on(clients):
    key = clients["dr_kms"].create_key()["KeyMetadata"]["Arn"]
    replica = _create(clients, KmsKeyId=key)
    assert replica["BackupRetentionPeriod"] == 0  # a replica has no automated backups of its own

    started = time.monotonic()
    promoted = clients["dr"].promote_read_replica(DBInstanceIdentifier=REPLICA)["DBInstance"]
    assert promoted["DBInstanceStatus"] == "rebooting"
    deadline = started + 10
    while _instance(clients["dr"], REPLICA)["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline, "not available 10 s after the promotion"
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.5  # the lab's outage, set by the fixture
    standalone = _instance(clients["dr"], REPLICA)
    assert "ReadReplicaSourceDBInstanceIdentifier" not in standalone
    assert standalone["BackupRetentionPeriod"] == 1  # PromoteReadReplica's default
    assert _instance(clients["source"], DB)["ReadReplicaDBInstanceIdentifiers"] == []
    assert _refused(lambda: clients["dr"].promote_read_replica(
        DBInstanceIdentifier=REPLICA))["Code"] == "InvalidDBInstanceState"


def test_a_promotion_keeps_the_backup_retention_it_is_given(clients):
    key = clients["dr_kms"].create_key()["KeyMetadata"]["Arn"]
    _create(clients, KmsKeyId=key)
    promoted = clients["dr"].promote_read_replica(DBInstanceIdentifier=REPLICA, BackupRetentionPeriod=7,
                                                  PreferredBackupWindow="02:00-02:30")["DBInstance"]
    assert (promoted["BackupRetentionPeriod"], promoted["PreferredBackupWindow"]) == (7, "02:00-02:30")


def test_deleting_a_cross_region_replica_unlists_it_from_its_source(clients):
    """moto removes a deleted replica from its source by identifier, but the source lists a cross-Region one by ARN:
    without the lab's fix the delete fails (500) and the source keeps listing the replica."""
    key = clients["dr_kms"].create_key()["KeyMetadata"]["Arn"]
    arn = _create(clients, KmsKeyId=key)["DBInstanceArn"]
    assert _instance(clients["source"], DB)["ReadReplicaDBInstanceIdentifiers"] == [arn]

    clients["dr"].delete_db_instance(DBInstanceIdentifier=REPLICA, SkipFinalSnapshot=True)

    assert _instance(clients["source"], DB)["ReadReplicaDBInstanceIdentifiers"] == []
    assert clients["dr"].describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [REPLICA]}])["DBInstances"] == []
