"""The catalogue chooses alarms from the instance's facts, and says why it skips the others."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import CATALOGUE_BY_KEY
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import GIB
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import InstanceFacts

TOPIC = "arn:aws:sns:eu-west-2:123456789012:alerts"
BUDGETS = [{"service": "keystone", "max_connections": 20}, {"service": "cso", "max_connections": 50},
           {"service": "rabbitmq", "max_connections": 10}]


def instance(identifier="db", **overrides):
    db = {"DBInstanceIdentifier": identifier, "Engine": "mysql", "DBInstanceClass": "db.c5.4xlarge",
          "StorageType": "gp3", "AllocatedStorage": 50, "MaxAllocatedStorage": 1000}
    db.update(overrides)
    return db


def params(**overrides):
    base = {"name": "prod", "alarms": {}, "include": [], "exclude": [], "connection_budgets": BUDGETS,
            "service_connections_metric": None, "notify_on": ["alarm", "ok"], "tags": None}
    base.update(overrides)
    return base


def keys(desired, identifier="db"):
    return sorted(name.split("/")[2] for name in desired.alarms if name.split("/")[1] == identifier)


def reasons(desired):
    return {entry["alarm"]: entry["reason"] for entry in desired.skipped}


def test_prod_class_gets_no_burst_alarms_and_says_why():
    desired = alarm_model.desired_alarms(params(), [instance()], TOPIC)
    assert keys(desired) == ["cpu_utilization", "database_connections", "disk_queue_depth", "free_storage_space",
                             "freeable_memory", "read_latency", "write_latency"]
    why = reasons(desired)
    assert "not a burstable" in why["cpu_credit_balance"]
    assert "gp2 only" in why["burst_balance"]
    assert "dedicated EBS bandwidth" in why["ebs_byte_balance"]
    assert "storage autoscaling is on" in why["free_storage_space_percent"]
    assert "not a read replica" in why["replica_lag"]
    assert "PostgreSQL" in why["maximum_used_transaction_ids"]
    assert "opt-in" in why["database_connections_anomaly"]


def test_burstable_gp2_dev_instance_gets_credit_and_burst_alarms():
    dev = instance("dev", DBInstanceClass="db.t3.medium", StorageType="gp2", AllocatedStorage=20, MaxAllocatedStorage=20)
    desired = alarm_model.desired_alarms(params(), [dev], TOPIC)
    assert {"burst_balance", "cpu_credit_balance", "ebs_byte_balance", "ebs_io_balance",
            "free_storage_space_percent"} <= set(keys(desired, "dev"))
    percent = desired.alarms["prod/dev/free_storage_space_percent"]
    assert percent["Threshold"] == float(int(20 * GIB * 0.10))
    memory = desired.alarms["prod/dev/freeable_memory"]
    assert memory["Threshold"] == float(int(4 * GIB * 0.10))  # db.t3.medium has 4 GiB


def test_large_gp2_volume_never_bursts():
    big = instance(StorageType="gp2", AllocatedStorage=1500, MaxAllocatedStorage=1500)
    assert "never bursts" in reasons(alarm_model.desired_alarms(params(), [big], TOPIC))["burst_balance"]


def test_replica_and_postgres_alarms():
    replica = instance("r1", Engine="postgres", ReadReplicaSourceDBInstanceIdentifier="db")
    desired = alarm_model.desired_alarms(params(), [replica], TOPIC)
    assert {"replica_lag", "maximum_used_transaction_ids"} <= set(keys(desired, "r1"))


def test_db_load_threshold_is_the_vcpu_count_when_performance_insights_is_on():
    desired = alarm_model.desired_alarms(params(), [instance(PerformanceInsightsEnabled=True)], TOPIC)
    assert desired.alarms["prod/db/db_load"]["Threshold"] == 16.0  # 4xlarge = 16 vCPUs


def test_connection_alarm_uses_the_sum_of_the_service_budgets():
    desired = alarm_model.desired_alarms(params(), [instance()], TOPIC)
    assert desired.alarms["prod/db/database_connections"]["Threshold"] == 80.0


def test_without_budgets_the_connection_alarm_is_skipped_with_a_reason():
    desired = alarm_model.desired_alarms(params(connection_budgets=[]), [instance()], TOPIC)
    assert "no connection_budgets" in reasons(desired)["database_connections"]


def test_per_service_alarms_need_a_per_service_metric():
    metric = {"namespace": "CSO/Database", "metric_name": "ConnectionsByService", "service_dimension": "Service"}
    desired = alarm_model.desired_alarms(params(service_connections_metric=metric), [instance()], TOPIC)
    keystone = desired.alarms["prod/db/database_connections_service_keystone"]
    assert keystone["Namespace"] == "CSO/Database"
    assert keystone["Threshold"] == 20.0
    assert {"Name": "Service", "Value": "keystone"} in keystone["Dimensions"]


def test_overrides_and_forced_alarms():
    overrides = {"cpu_utilization": {"threshold": 90, "period": 60, "evaluation_periods": 5},
                 "burst_balance": {"threshold": 30}, "disk_queue_depth": {"enabled": False}}
    desired = alarm_model.desired_alarms(params(alarms=overrides), [instance()], TOPIC)
    cpu = desired.alarms["prod/db/cpu_utilization"]
    assert (cpu["Threshold"], cpu["Period"], cpu["EvaluationPeriods"], cpu["DatapointsToAlarm"]) == (90.0, 60, 5, 2)
    assert "prod/db/burst_balance" in desired.alarms  # an explicit threshold forces a skipped alarm on
    assert "prod/db/disk_queue_depth" not in desired.alarms


def test_anomaly_alarm_is_a_band_on_the_metric():
    desired = alarm_model.desired_alarms(params(include=["database_connections_anomaly"]), [instance()], TOPIC)
    band = desired.alarms["prod/db/database_connections_anomaly"]
    assert band["ThresholdMetricId"] == "band"
    assert band["Metrics"][1]["Expression"] == "ANOMALY_DETECTION_BAND(m1, 2)"
    assert "Threshold" not in band
    assert desired.anomaly_instances == [("db", "DatabaseConnections", "Average")]


def test_percentile_statistics_use_extended_statistic():
    desired = alarm_model.desired_alarms(params(), [instance()], TOPIC)
    read = desired.alarms["prod/db/read_latency"]
    assert read["ExtendedStatistic"] == "p90" and "Statistic" not in read


def test_notify_on_sets_the_actions():
    desired = alarm_model.desired_alarms(params(notify_on=["alarm", "insufficient_data"]), [instance()], TOPIC)
    cpu = desired.alarms["prod/db/cpu_utilization"]
    assert (cpu["AlarmActions"], cpu["OKActions"], cpu["InsufficientDataActions"]) == ([TOPIC], [], [TOPIC])


@pytest.mark.parametrize("overrides, message", [
    ({"no_such_alarm": {"threshold": 1}}, "unknown alarm 'no_such_alarm'"),
    ({"cpu_utilization": {"comparison": "Above"}}, "not a CloudWatch comparison operator"),
    ({"cpu_utilization": {"comparison": "GreaterThanUpperThreshold"}}, "does not fit a static threshold"),
    ({"cpu_utilization": {"threshold": -1}}, "is negative"),
    ({"cpu_utilization": {"period": 90}}, "not a multiple of 60"),
    ({"cpu_utilization": {"statistic": "Median"}}, "percentile"),
    ({"cpu_utilization": {"treat_missing_data": "zero"}}, "treat_missing_data"),
    ({"cpu_utilization": {"thresold": 3}}, "is not a setting"),
    ({"database_connections_anomaly": {"threshold": 3}}, "set band_width"),
])
def test_bad_overrides_are_reported(overrides, message):
    errors = alarm_model.validate_request(params(alarms=overrides, topic=None))
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize("extra, message", [
    ({"name": "bad/name"}, "must start with a letter"),
    ({"include": ["nope"]}, "unknown alarm 'nope'"),
    ({"topic": {"arn": "arn:aws:sqs:eu-west-2:123456789012:q"}}, "not an SNS topic ARN"),
    ({"topic": {"arn": "arn:aws:sns:eu-west-2:123456789012:q.fifo"}}, "FIFO"),
    ({"connection_budgets": [{"service": "cso", "max_connections": -5}]}, "must not be negative"),
])
def test_bad_parameters_are_reported(extra, message):
    errors = alarm_model.validate_request(params(**extra))
    assert any(message in error for error in errors), errors


def test_merged_settings_are_checked():
    overrides = {"cpu_utilization": {"datapoints_to_alarm": 5}, "freeable_memory": {"period": 3600, "evaluation_periods": 48}}
    desired = alarm_model.desired_alarms(params(alarms=overrides), [instance()], TOPIC)
    assert any("datapoints_to_alarm (5) exceeds" in error for error in desired.errors)
    assert any("exceeds one day" in error for error in desired.errors)


def test_every_entry_names_its_source_and_description():
    for spec in CATALOGUE_BY_KEY.values():
        assert spec.source and spec.description, spec.key


def test_unknown_class_falls_back_for_memory():
    facts = InstanceFacts(instance(DBInstanceClass="db.zz9.weird"))
    assert facts.vcpus is None
    assert CATALOGUE_BY_KEY["freeable_memory"].default_threshold(facts) == float(GIB)
