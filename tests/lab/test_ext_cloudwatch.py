"""Contract: CloudWatch anomaly detectors and anomaly-band alarms."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab


def _detector(instance="cso-lab-db", metric="DatabaseConnections", stat="Average"):
    return {"Namespace": "AWS/RDS", "MetricName": metric, "Stat": stat,
            "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": instance}]}


def test_put_describe_delete_anomaly_detector(lab):
    lab.reset()
    cloudwatch = lab.boto3("cloudwatch")

    cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=_detector())
    cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=_detector(metric="CPUUtilization"))
    cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=_detector(instance="other"))

    everything = cloudwatch.describe_anomaly_detectors()["AnomalyDetectors"]
    by_metric = cloudwatch.describe_anomaly_detectors(Namespace="AWS/RDS", MetricName="CPUUtilization")["AnomalyDetectors"]
    by_dimension = cloudwatch.describe_anomaly_detectors(
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "other"}])["AnomalyDetectors"]

    assert len(everything) == 3
    assert [d["SingleMetricAnomalyDetector"] for d in by_metric] == [_detector(metric="CPUUtilization")]
    assert [d["SingleMetricAnomalyDetector"]["Dimensions"][0]["Value"] for d in by_dimension] == ["other"]
    assert by_metric[0]["StateValue"] == "PENDING_TRAINING"

    cloudwatch.delete_anomaly_detector(SingleMetricAnomalyDetector=_detector(metric="CPUUtilization"))
    assert len(cloudwatch.describe_anomaly_detectors()["AnomalyDetectors"]) == 2


def test_put_twice_updates_the_configuration_not_the_count(lab):
    lab.reset()
    cloudwatch = lab.boto3("cloudwatch")
    cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=_detector())

    cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=_detector(), Configuration={
        "ExcludedTimeRanges": [], "MetricTimezone": "Europe/London"})

    detectors = cloudwatch.describe_anomaly_detectors()["AnomalyDetectors"]
    assert len(detectors) == 1
    assert detectors[0]["Configuration"]["MetricTimezone"] == "Europe/London"


def test_legacy_top_level_form(lab):
    lab.reset()
    cloudwatch = lab.boto3("cloudwatch")

    cloudwatch.put_anomaly_detector(**_detector())

    assert cloudwatch.describe_anomaly_detectors()["AnomalyDetectors"][0]["SingleMetricAnomalyDetector"] == _detector()


def test_delete_unknown_detector_is_not_found(lab):
    lab.reset()
    cloudwatch = lab.boto3("cloudwatch")

    with pytest.raises(ClientError) as error:
        cloudwatch.delete_anomaly_detector(SingleMetricAnomalyDetector=_detector())

    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_missing_stat_is_rejected(lab):
    lab.reset()
    cloudwatch = lab.boto3("cloudwatch")
    detector = _detector()
    del detector["Stat"]

    with pytest.raises(ClientError) as error:
        cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=detector)

    assert error.value.response["Error"]["Code"] == "MissingParameter"


def test_anomaly_band_alarm_round_trips(lab):
    lab.reset()
    cloudwatch = lab.boto3("cloudwatch")
    metrics = [
        {"Id": "m1", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/RDS", "MetricName": "DatabaseConnections",
                       "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "cso-lab-db"}]},
            "Period": 300, "Stat": "Average"}},
        {"Id": "ad1", "Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "Label": "expected", "ReturnData": True},
    ]

    cloudwatch.put_metric_alarm(AlarmName="cso-connections-anomaly", ComparisonOperator="GreaterThanUpperThreshold",
                                EvaluationPeriods=3, Metrics=metrics, ThresholdMetricId="ad1",
                                TreatMissingData="notBreaching")

    alarm = cloudwatch.describe_alarms(AlarmNames=["cso-connections-anomaly"])["MetricAlarms"][0]
    assert alarm["ThresholdMetricId"] == "ad1"
    assert alarm["ComparisonOperator"] == "GreaterThanUpperThreshold"
    assert "Threshold" not in alarm
    shown = {m["Id"]: m for m in alarm["Metrics"]}
    assert shown["ad1"]["Expression"] == "ANOMALY_DETECTION_BAND(m1, 2)"
    assert shown["m1"]["MetricStat"]["Metric"]["MetricName"] == "DatabaseConnections"
    assert shown["m1"]["MetricStat"]["Stat"] == "Average"
