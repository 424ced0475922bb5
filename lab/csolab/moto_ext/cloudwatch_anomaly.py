"""CloudWatch anomaly detectors: ``put_``, ``describe_`` and ``delete_anomaly_detector`` for
single-metric detectors (the legacy top-level Namespace/MetricName/Dimensions/Stat form too).

Anomaly-band alarms (``put_metric_alarm`` with ``Metrics`` and ``ThresholdMetricId``) are
moto's own and round-trip through ``describe_alarms`` unchanged; tests/lab checks that.
"""

import uuid

from moto.cloudwatch.exceptions import CloudWatchException, InvalidParameterCombination, ResourceNotFoundException
from moto.cloudwatch.models import CloudWatchBackend
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult, EmptyResult


class MissingParameter(CloudWatchException):
    code = "MissingParameter"


def _detectors(backend: CloudWatchBackend):
    return backend.__dict__.setdefault("_lab_anomaly_detectors", {})


def _single_metric(params):
    """The detector's metric, from SingleMetricAnomalyDetector or the legacy top-level fields."""
    if params.get("MetricMathAnomalyDetector"):
        raise InvalidParameterCombination("The lab models single-metric anomaly detectors only.")
    single = params.get("SingleMetricAnomalyDetector") or {
        key: params.get(key) for key in ("Namespace", "MetricName", "Dimensions", "Stat") if params.get(key)}
    for required in ("Namespace", "MetricName", "Stat"):
        if not single.get(required):
            raise MissingParameter(f"The parameter {required} is required.")
    return {"Namespace": single["Namespace"], "MetricName": single["MetricName"],
            "Dimensions": [{"Name": d["Name"], "Value": d["Value"]} for d in single.get("Dimensions") or []],
            "Stat": single["Stat"]}


def _key(metric):
    dimensions = tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]))
    return metric["Namespace"], metric["MetricName"], dimensions, metric["Stat"]


def _params(response):
    return {key: response._get_param(key) for key in (
        "Namespace", "MetricName", "Dimensions", "Stat", "Configuration", "MetricCharacteristics",
        "SingleMetricAnomalyDetector", "MetricMathAnomalyDetector", "AnomalyDetectorTypes", "MaxResults",
        "NextToken", "AnomalyDetectorIds", "AnomalyDetectorId")}


def put_anomaly_detector(self):
    params = _params(self)
    metric = _single_metric(params)
    detectors = _detectors(self.cloudwatch_backend)
    existing = detectors.get(_key(metric))
    detector = dict(metric, SingleMetricAnomalyDetector=dict(metric), StateValue="PENDING_TRAINING",
                    AnomalyDetectorId=existing["AnomalyDetectorId"] if existing else str(uuid.uuid4()),
                    Configuration=params.get("Configuration") or {"ExcludedTimeRanges": []})
    if params.get("MetricCharacteristics"):
        detector["MetricCharacteristics"] = params["MetricCharacteristics"]
    detectors[_key(metric)] = detector
    return ActionResult({"AnomalyDetectorId": detector["AnomalyDetectorId"]})


def _dimensions_match(detector, wanted):
    have = {(d["Name"], d["Value"]) for d in detector["Dimensions"]}
    return all((d["Name"], d["Value"]) in have for d in wanted or [])


def describe_anomaly_detectors(self):
    params = _params(self)
    types = params.get("AnomalyDetectorTypes") or ["SINGLE_METRIC"]
    found = [d for d in _detectors(self.cloudwatch_backend).values()
             if "SINGLE_METRIC" in types
             and (not params.get("Namespace") or d["Namespace"] == params["Namespace"])
             and (not params.get("MetricName") or d["MetricName"] == params["MetricName"])
             and (not params.get("AnomalyDetectorIds") or d["AnomalyDetectorId"] in params["AnomalyDetectorIds"])
             and _dimensions_match(d, params.get("Dimensions"))]
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    result = {"AnomalyDetectors": found[start:start + size]}
    if start + size < len(found):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def delete_anomaly_detector(self):
    params = _params(self)
    detectors = _detectors(self.cloudwatch_backend)
    if params.get("AnomalyDetectorId"):
        key = next((k for k, d in detectors.items() if d["AnomalyDetectorId"] == params["AnomalyDetectorId"]), None)
    else:
        key = _key(_single_metric(params))
    if key not in detectors:
        raise ResourceNotFoundException("The anomaly detector you are trying to delete does not exist.")
    del detectors[key]
    return EmptyResult()


for _handler in (put_anomaly_detector, describe_anomaly_detectors, delete_anomaly_detector):
    setattr(CloudWatchResponse, _handler.__name__, _handler)
