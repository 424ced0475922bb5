"""Where a replica's source is, and the cross-Region rules (pure)."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_region as regions

ARN = "arn:aws:rds:eu-west-2:123456789012:db:db"


def params(**overrides):
    found = {"source_db_instance_identifier": "db", "source_region": None, "db_instance_identifier": "db-dr",
             "kms_key_id": "alias/dr", "db_subnet_group_name": "private"}
    found.update(overrides)
    return found


@pytest.mark.parametrize("overrides, region, cross", [
    ({}, "eu-west-2", False),  # a name: the task's own region
    ({"source_db_instance_identifier": ARN}, "eu-west-1", True),
    ({"source_db_instance_identifier": ARN}, "eu-west-2", False),  # an ARN of the same region
    ({"source_region": "eu-west-2"}, "eu-west-1", True),
    ({"source_region": "eu-west-1"}, "eu-west-1", False),
])
def test_the_source_region_comes_from_the_arn_else_source_region_else_the_task(overrides, region, cross):
    assert regions.is_cross_region(params(**overrides), region) is cross
    assert regions.source_name(params(**overrides)) == "db"


def test_a_same_region_replica_adds_no_requirement():
    assert regions.input_errors(params(kms_key_id=None, db_subnet_group_name=None), "eu-west-2") == []


def test_only_replicas_in_other_regions_count_towards_the_five():
    source = {"DBInstanceIdentifier": "db", "DBInstanceArn": ARN, "ReadReplicaDBInstanceIdentifiers": [
        "db-replica", "arn:aws:rds:eu-west-2:123456789012:db:db-replica-2", "arn:aws:rds:eu-west-1:123456789012:db:a",
        "arn:aws:rds:eu-west-3:123456789012:db:b"]}
    assert regions.cross_region_replicas(source) == ["arn:aws:rds:eu-west-1:123456789012:db:a",
                                                     "arn:aws:rds:eu-west-3:123456789012:db:b"]
