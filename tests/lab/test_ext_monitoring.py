"""Contract: Performance Insights and enhanced monitoring fields kept from create/modify."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
ROLE = "arn:aws:iam::123456789012:role/rds-monitoring-role"


def _instance(rds):
    return rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]


def test_seeded_instance_has_both_off(lab):
    lab.reset()
    instance = _instance(lab.boto3("rds"))

    assert instance["PerformanceInsightsEnabled"] is False
    assert "PerformanceInsightsKMSKeyId" not in instance
    assert instance["MonitoringInterval"] == 0
    assert "EnhancedMonitoringResourceArn" not in instance


def test_enable_both_with_a_customer_key(lab):
    lab.reset()
    rds = lab.boto3("rds")
    key = lab.boto3("kms").create_key()["KeyMetadata"]

    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, EnablePerformanceInsights=True,
                                      PerformanceInsightsKMSKeyId=key["KeyId"], PerformanceInsightsRetentionPeriod=31,
                                      MonitoringInterval=60, MonitoringRoleArn=ROLE)["DBInstance"]

    instance = _instance(rds)
    for shown in (modified, instance):
        assert shown["PerformanceInsightsEnabled"] is True
        assert shown["PerformanceInsightsKMSKeyId"] == key["Arn"]
        assert shown["PerformanceInsightsRetentionPeriod"] == 31
        assert shown["MonitoringInterval"] == 60
        assert shown["MonitoringRoleArn"] == ROLE
        assert shown["EnhancedMonitoringResourceArn"] == (
            f"arn:aws:logs:{lab.region}:123456789012:log-group:RDSOSMetrics:log-stream:{instance['DbiResourceId']}")
        assert shown["PendingModifiedValues"] == {}


def test_enable_without_key_uses_aws_rds_and_seven_days(lab):
    lab.reset()
    rds = lab.boto3("rds")

    instance = rds.modify_db_instance(DBInstanceIdentifier=DB, EnablePerformanceInsights=True)["DBInstance"]

    assert instance["PerformanceInsightsKMSKeyId"] == lab.boto3("kms").describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    assert instance["PerformanceInsightsRetentionPeriod"] == 7


def test_repeating_the_same_values_changes_nothing(lab):
    lab.reset()
    rds = lab.boto3("rds")
    settings = dict(EnablePerformanceInsights=True, PerformanceInsightsRetentionPeriod=7, MonitoringInterval=30,
                    MonitoringRoleArn=ROLE)
    rds.modify_db_instance(DBInstanceIdentifier=DB, **settings)
    before = _instance(rds)

    again = rds.modify_db_instance(DBInstanceIdentifier=DB, PerformanceInsightsKMSKeyId=before["PerformanceInsightsKMSKeyId"],
                                   **settings)["DBInstance"]

    fields = ("PerformanceInsightsEnabled", "PerformanceInsightsKMSKeyId", "PerformanceInsightsRetentionPeriod",
              "MonitoringInterval", "MonitoringRoleArn", "EnhancedMonitoringResourceArn")
    assert {f: again[f] for f in fields} == {f: before[f] for f in fields}
    assert again["PendingModifiedValues"] == {}


def test_create_keeps_the_fields(lab):
    lab.reset()
    rds = lab.boto3("rds")

    created = rds.create_db_instance(DBInstanceIdentifier="ext-pi", Engine="mysql", DBInstanceClass="db.t3.micro",
                                     AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="lab-password-1",
                                     EnablePerformanceInsights=True, MonitoringInterval=15,
                                     MonitoringRoleArn=ROLE)["DBInstance"]

    assert created["PerformanceInsightsEnabled"] is True
    assert created["PerformanceInsightsRetentionPeriod"] == 7
    assert created["EnhancedMonitoringResourceArn"].endswith(created["DbiResourceId"])


@pytest.mark.parametrize("arguments, code", [
    ({"EnablePerformanceInsights": True, "PerformanceInsightsRetentionPeriod": 30}, "InvalidParameterValue"),
    ({"MonitoringInterval": 45, "MonitoringRoleArn": ROLE}, "InvalidParameterValue"),
    ({"MonitoringInterval": 60}, "InvalidParameterCombination"),
])
def test_invalid_settings_are_rejected(lab, arguments, code):
    lab.reset()
    rds = lab.boto3("rds")

    with pytest.raises(ClientError) as error:
        rds.modify_db_instance(DBInstanceIdentifier=DB, **arguments)

    assert error.value.response["Error"]["Code"] == code


def test_the_performance_insights_key_cannot_change_once_set(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=DB, EnablePerformanceInsights=True)
    other = lab.boto3("kms").create_key()["KeyMetadata"]["Arn"]

    with pytest.raises(ClientError) as error:
        rds.modify_db_instance(DBInstanceIdentifier=DB, EnablePerformanceInsights=True, PerformanceInsightsKMSKeyId=other)

    assert error.value.response["Error"]["Code"] == "InvalidParameterCombination"
