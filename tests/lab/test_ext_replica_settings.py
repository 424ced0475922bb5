"""Contract: the settings a read replica takes from CreateDBInstanceReadReplica itself (moto_ext/replica_settings.py),
through boto3: Performance Insights, enhanced monitoring, log exports, deletion protection, automated backups."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"


def _instance(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _identifiers(rds):
    return {item["DBInstanceIdentifier"] for item in rds.describe_db_instances()["DBInstances"]}


@pytest.fixture
def rds(aws_lab):
    return aws_lab.boto3("rds")


def test_performance_insights_and_monitoring_are_the_replicas_own(aws_lab, rds):
    key = aws_lab.boto3("kms").create_key(Description="pi")["KeyMetadata"]["Arn"]
    role = "arn:aws:iam::123456789012:role/rds-monitoring"
    source = _instance(rds, DB)
    assert source["PerformanceInsightsEnabled"] is False and source["MonitoringInterval"] == 0

    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="with-pi", SourceDBInstanceIdentifier=DB, EnablePerformanceInsights=True,
        PerformanceInsightsKMSKeyId=key, PerformanceInsightsRetentionPeriod=31, MonitoringInterval=30,
        MonitoringRoleArn=role, DeletionProtection=True, EnableCloudwatchLogsExports=["audit", "error"])

    replica = _instance(rds, "with-pi")
    assert (replica["PerformanceInsightsEnabled"], replica["PerformanceInsightsKMSKeyId"],
            replica["PerformanceInsightsRetentionPeriod"]) == (True, key, 31)
    assert (replica["MonitoringInterval"], replica["MonitoringRoleArn"]) == (30, role)
    assert replica["DeletionProtection"] is True
    assert sorted(replica["EnabledCloudwatchLogsExports"]) == ["audit", "error"]
    assert replica["BackupRetentionPeriod"] == 0 and _instance(rds, DB)["BackupRetentionPeriod"] == 7
    after = _instance(rds, DB)  # the source keeps its own settings
    assert (after["PerformanceInsightsEnabled"], after["MonitoringInterval"]) == (False, 0)
    assert after["EnabledCloudwatchLogsExports"] == source["EnabledCloudwatchLogsExports"]


def test_a_replica_does_not_inherit_its_sources_settings(rds):
    rds.modify_db_instance(DBInstanceIdentifier=DB, EnablePerformanceInsights=True, DeletionProtection=True,
                           MonitoringInterval=60, MonitoringRoleArn="arn:aws:iam::123456789012:role/m",
                           CloudwatchLogsExportConfiguration={"EnableLogTypes": ["error"]}, ApplyImmediately=True)
    rds.create_db_instance_read_replica(DBInstanceIdentifier="plain", SourceDBInstanceIdentifier=DB)
    replica = _instance(rds, "plain")
    assert replica["PerformanceInsightsEnabled"] is False and "PerformanceInsightsKMSKeyId" not in replica
    assert replica["MonitoringInterval"] == 0 and replica["DeletionProtection"] is False
    assert replica.get("EnabledCloudwatchLogsExports", []) == []
    rds.modify_db_instance(DBInstanceIdentifier="plain", ApplyImmediately=True,
                           CloudwatchLogsExportConfiguration={"EnableLogTypes": ["slowquery"]})
    assert _instance(rds, DB)["EnabledCloudwatchLogsExports"] == ["error"]  # no list shared with the source


@pytest.mark.parametrize("arguments, code", [
    ({"MonitoringInterval": 60}, "InvalidParameterCombination"),
    ({"MonitoringInterval": 7, "MonitoringRoleArn": "arn:aws:iam::123456789012:role/m"}, "InvalidParameterValue"),
    ({"EnablePerformanceInsights": True, "PerformanceInsightsRetentionPeriod": 30}, "InvalidParameterValue"),
])
def test_invalid_settings_are_refused_and_create_nothing(rds, arguments, code):
    before = _identifiers(rds)
    with pytest.raises(ClientError) as refused:
        rds.create_db_instance_read_replica(DBInstanceIdentifier="refused", SourceDBInstanceIdentifier=DB, **arguments)
    assert refused.value.response["Error"]["Code"] == code
    assert _identifiers(rds) == before
