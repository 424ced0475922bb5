# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The alarm set's model: names, input validation and the desired state (alarms, tags, RDS event
subscriptions). Pure: nothing here calls AWS. ``alarm_plan`` compares this desired state with what
AWS has; ``alarm_aws`` reads and writes AWS.

Ownership: an alarm belongs to the set ``NAME`` when its name starts with ``NAME/`` **and** it
carries the tag ``cso-rds-hardening:alarm-set = NAME``. The prefix lets one paginated
``DescribeAlarms(AlarmNamePrefix=NAME/)`` read every candidate; the tag protects alarms that a
person (or another tool) created under the same prefix.
"""

from __future__ import annotations

import re

from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import BAND_OPERATORS
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import CATALOGUE
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import CATALOGUE_BY_KEY
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import COMPARISON_OPERATORS
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import SERVICE_CONNECTIONS_PREFIX
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import STATISTICS
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import TREAT_MISSING_DATA
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import InstanceFacts

OWNER_TAG_KEY = "cso-rds-hardening:alarm-set"
NAMESPACE = "AWS/RDS"
MAX_DESCRIPTION = 1024
MAX_EVALUATION_SECONDS = 86400
SET_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,99}$")
SERVICE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PERCENTILE_PATTERN = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
TOPIC_ARN_PATTERN = re.compile(r"^arn:(aws[a-z-]*):sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}(\.fifo)?)$")
OVERRIDE_FIELDS = ("enabled", "threshold", "period", "evaluation_periods", "datapoints_to_alarm", "comparison",
                   "statistic", "treat_missing_data", "description", "band_width")


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def alarm_prefix(set_name):
    return f"{set_name}/"


def alarm_name(set_name, db_instance_identifier, key):
    return f"{set_name}/{db_instance_identifier}/{key}"


def service_alarm_key(service):
    return f"{SERVICE_CONNECTIONS_PREFIX}{service}"


# --------------------------------------------------------------------------------------------
# Input validation (pure: returns error messages, never calls AWS)
# --------------------------------------------------------------------------------------------


def validate_request(params):
    """Every problem with the module's parameters that can be found without AWS, as messages."""
    errors = []
    if not SET_NAME_PATTERN.match(params["name"]):
        errors.append(f"name {params['name']!r} must start with a letter and contain only letters, digits and hyphens "
                      "(at most 100): it becomes the alarm name prefix and the event subscription names.")
    budgets = params.get("connection_budgets") or []
    services = [budget["service"] for budget in budgets]
    for service in services:
        if not SERVICE_PATTERN.match(service):
            errors.append(f"connection_budgets service {service!r} must be lower case letters, digits and _.")
    if len(set(services)) != len(services):
        errors.append("connection_budgets lists a service twice; give each service one budget.")
    for budget in budgets:
        if budget["max_connections"] < 0:
            errors.append(f"connection_budgets.{budget['service']}.max_connections must not be negative.")
    concurrency = params.get("write_concurrency") or 1
    if not 1 <= concurrency <= 16:
        errors.append(f"write_concurrency {concurrency} must be between 1 and 16.")
    known = set(CATALOGUE_BY_KEY)
    if params.get("service_connections_metric"):
        known.update(service_alarm_key(service) for service in services)
    for key in list(params.get("include") or []) + list(params.get("exclude") or []):
        if key not in known:
            errors.append(f"unknown alarm {key!r} in include/exclude; known alarms: {', '.join(sorted(known))}.")
    for key, override in (params.get("alarms") or {}).items():
        errors.extend(_validate_override(key, override, known))
    topic = params.get("topic") or {}
    if topic.get("arn") and not TOPIC_ARN_PATTERN.match(topic["arn"]):
        errors.append(f"topic.arn {topic['arn']!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME).")
    if (topic.get("arn") or "").endswith(".fifo") or (topic.get("name") or "").endswith(".fifo"):
        errors.append("CloudWatch alarms and RDS events cannot publish to a FIFO topic; use a standard topic.")
    if topic.get("name") and not re.match(r"^[A-Za-z0-9_-]{1,256}$", topic["name"]):
        errors.append(f"topic.name {topic['name']!r} may only contain letters, digits, - and _ (at most 256).")
    return errors


def _validate_override(key, override, known):
    if key not in known:
        return [f"unknown alarm {key!r} in alarms; known alarms: {', '.join(sorted(known))}."]
    if not isinstance(override, dict):
        return [f"alarms.{key} must be a dictionary of settings ({', '.join(OVERRIDE_FIELDS)})."]
    errors = [f"alarms.{key}.{field} is not a setting; use one of {', '.join(OVERRIDE_FIELDS)}."
              for field in override if field not in OVERRIDE_FIELDS]
    spec = CATALOGUE_BY_KEY.get(key)
    band = bool(spec and spec.anomaly_band_width)
    errors.extend(_validate_numbers(key, override))
    comparison = override.get("comparison")
    if comparison is not None:
        if comparison not in COMPARISON_OPERATORS:
            errors.append(f"alarms.{key}.comparison {comparison!r} is not a CloudWatch comparison operator; use one of "
                          f"{', '.join(COMPARISON_OPERATORS)}.")
        elif (comparison in BAND_OPERATORS) != band:
            kind = "an anomaly-detection band" if band else "a static threshold"
            errors.append(f"alarms.{key}.comparison {comparison!r} does not fit {kind} alarm.")
    statistic = override.get("statistic")
    if statistic is not None and statistic not in STATISTICS and not PERCENTILE_PATTERN.match(str(statistic)):
        errors.append(f"alarms.{key}.statistic {statistic!r} must be one of {', '.join(STATISTICS)} or a percentile such as p90.")
    treat = override.get("treat_missing_data")
    if treat is not None and treat not in TREAT_MISSING_DATA:
        errors.append(f"alarms.{key}.treat_missing_data {treat!r} must be one of {', '.join(TREAT_MISSING_DATA)}.")
    if override.get("threshold") is not None and band:
        errors.append(f"alarms.{key} is an anomaly-detection alarm: set band_width, not threshold.")
    return errors


def _validate_numbers(key, override):
    errors = []
    threshold = override.get("threshold")
    if threshold is not None:
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            errors.append(f"alarms.{key}.threshold must be a number, got {threshold!r}.")
        elif threshold < 0:
            errors.append(f"alarms.{key}.threshold {threshold} is negative; RDS metrics are never negative, so the alarm "
                          "could never (or would always) fire.")
    for field in ("period", "evaluation_periods", "datapoints_to_alarm"):
        value = override.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            errors.append(f"alarms.{key}.{field} must be a positive integer, got {value!r}.")
    period = override.get("period")
    if isinstance(period, int) and period >= 1 and period % 60:
        errors.append(f"alarms.{key}.period {period} is not a multiple of 60; RDS publishes metrics every 60 seconds.")
    band_width = override.get("band_width")
    if band_width is not None and (not isinstance(band_width, (int, float)) or band_width <= 0):
        errors.append(f"alarms.{key}.band_width must be a positive number of standard deviations.")
    return errors


def validate_settings(key, settings):
    """Checks that need the merged (default + override) settings of one alarm."""
    errors = []
    if settings["datapoints_to_alarm"] > settings["evaluation_periods"]:
        errors.append(f"alarms.{key}: datapoints_to_alarm ({settings['datapoints_to_alarm']}) exceeds evaluation_periods "
                      f"({settings['evaluation_periods']}).")
    if settings["period"] * settings["evaluation_periods"] > MAX_EVALUATION_SECONDS:
        errors.append(f"alarms.{key}: period x evaluation_periods exceeds one day ({MAX_EVALUATION_SECONDS} s), which "
                      "CloudWatch rejects; shorten one of them.")
    return errors


# --------------------------------------------------------------------------------------------
# The desired set
# --------------------------------------------------------------------------------------------


class DesiredSet:
    """The alarms one run wants, plus those skipped and why."""

    def __init__(self):
        self.alarms = {}  # name -> PutMetricAlarm request (without Tags)
        self.skipped = []  # {"db_instance_identifier", "alarm", "reason"}
        self.errors = []
        self.anomaly_instances = []


def _merged_settings(spec, facts, override):
    settings = {
        "threshold": spec.default_threshold(facts),
        "period": spec.period,
        "evaluation_periods": spec.evaluation_periods,
        "datapoints_to_alarm": spec.datapoints,
        "comparison": spec.comparison,
        "statistic": spec.extended_statistic or spec.statistic,
        "treat_missing_data": spec.treat_missing_data,
        "description": None,
        "band_width": spec.anomaly_band_width,
    }
    settings.update({field: value for field, value in override.items() if value is not None and field != "enabled"})
    if "evaluation_periods" in override and "datapoints_to_alarm" not in override:
        settings["datapoints_to_alarm"] = min(settings["datapoints_to_alarm"], settings["evaluation_periods"])
    return settings


def _enabled(spec_key, default_enabled, params):
    override = (params.get("alarms") or {}).get(spec_key) or {}
    if override.get("enabled") is not None:
        return override["enabled"]
    if spec_key in (params.get("exclude") or []):
        return False
    return default_enabled or spec_key in (params.get("include") or [])


def _description(spec_description, facts, set_name, source, custom):
    text = custom or f"{spec_description} on {facts.identifier}. Alarm set {set_name}; default from {source}."
    return text[:MAX_DESCRIPTION]


def _actions(params, topic_arn):
    notify = set(params.get("notify_on") or ["alarm", "ok"])
    return {
        "AlarmActions": [topic_arn] if "alarm" in notify else [],
        "OKActions": [topic_arn] if "ok" in notify else [],
        "InsufficientDataActions": [topic_arn] if "insufficient_data" in notify else [],
    }


def _statistic_fields(statistic):
    if PERCENTILE_PATTERN.match(statistic):
        return {"ExtendedStatistic": statistic}
    return {"Statistic": statistic}


def static_alarm_request(name, metric, dimensions, settings, description, actions, namespace=NAMESPACE):
    request = {
        "AlarmName": name,
        "AlarmDescription": description,
        "ActionsEnabled": True,
        "MetricName": metric,
        "Namespace": namespace,
        "Dimensions": dimensions,
        "Period": settings["period"],
        "EvaluationPeriods": settings["evaluation_periods"],
        "DatapointsToAlarm": settings["datapoints_to_alarm"],
        "Threshold": float(settings["threshold"]),
        "ComparisonOperator": settings["comparison"],
        "TreatMissingData": settings["treat_missing_data"],
    }
    request.update(_statistic_fields(settings["statistic"]))
    request.update(actions)
    return request


def anomaly_alarm_request(name, metric, dimensions, settings, description, actions):
    band_width = settings["band_width"]
    request = {
        "AlarmName": name,
        "AlarmDescription": description,
        "ActionsEnabled": True,
        "EvaluationPeriods": settings["evaluation_periods"],
        "DatapointsToAlarm": settings["datapoints_to_alarm"],
        "ComparisonOperator": settings["comparison"],
        "TreatMissingData": settings["treat_missing_data"],
        "ThresholdMetricId": "band",
        "Metrics": [
            {
                "Id": "m1",
                "ReturnData": True,
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                    "Period": settings["period"],
                    "Stat": settings["statistic"],
                },
            },
            {
                "Id": "band",
                "Expression": f"ANOMALY_DETECTION_BAND(m1, {_format_number(band_width)})",
                "Label": f"{metric} (expected)",
                "ReturnData": True,
            },
        ],
    }
    request.update(actions)
    return request


def _format_number(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def _connection_budget_threshold(params):
    budgets = params.get("connection_budgets") or []
    if not budgets:
        return None
    return float(sum(budget["max_connections"] for budget in budgets))


def desired_alarms(params, db_instances, topic_arn):
    """The alarms the set wants for these DBInstance dicts, and the catalogue entries skipped (with why)."""
    desired = DesiredSet()
    set_name = params["name"]
    overrides = params.get("alarms") or {}
    actions = _actions(params, topic_arn)
    for db_instance in db_instances:
        facts = InstanceFacts(db_instance)
        dimensions = [{"Name": "DBInstanceIdentifier", "Value": facts.identifier}]
        for spec in CATALOGUE:
            _add_catalogue_alarm(desired, spec, facts, params, overrides.get(spec.key) or {}, dimensions, actions)
        _add_service_alarms(desired, facts, params, overrides, dimensions, actions)
    desired.errors = sorted(set(desired.errors))
    return desired


def _skip(desired, facts, key, reason):
    desired.skipped.append({"db_instance_identifier": facts.identifier, "alarm": key, "reason": reason})


def _add_catalogue_alarm(desired, spec, facts, params, override, dimensions, actions):
    if not _enabled(spec.key, spec.default_enabled, params):
        reason = "excluded" if spec.default_enabled else "opt-in: add it to include"
        _skip(desired, facts, spec.key, reason)
        return
    verdict = spec.applies(facts)
    if not verdict and override.get("threshold") is None:
        _skip(desired, facts, spec.key, verdict.reason)
        return
    settings = _merged_settings(spec, facts, override)
    if spec.key == "database_connections" and override.get("threshold") is None:
        settings["threshold"] = _connection_budget_threshold(params)
        if settings["threshold"] is None:
            _skip(desired, facts, spec.key, "no connection_budgets and no alarms.database_connections.threshold")
            return
    desired.errors.extend(validate_settings(spec.key, settings))
    name = alarm_name(params["name"], facts.identifier, spec.key)
    description = _description(spec.description, facts, params["name"], spec.source, settings["description"])
    if spec.anomaly_band_width:
        desired.alarms[name] = anomaly_alarm_request(name, spec.metric, dimensions, settings, description, actions)
        desired.anomaly_instances.append((facts.identifier, spec.metric, settings["statistic"]))
    else:
        desired.alarms[name] = static_alarm_request(name, spec.metric, dimensions, settings, description, actions)


def _add_service_alarms(desired, facts, params, overrides, dimensions, actions):
    """Per-service connection alarms: only with a per-service metric (see the module docs for why)."""
    metric = params.get("service_connections_metric")
    if not metric:
        return
    for budget in params.get("connection_budgets") or []:
        key = service_alarm_key(budget["service"])
        override = overrides.get(key) or {}
        if not _enabled(key, True, params):
            _skip(desired, facts, key, "excluded")
            continue
        settings = {
            "threshold": budget["max_connections"], "period": 300, "evaluation_periods": 2, "datapoints_to_alarm": 2,
            "comparison": "GreaterThanThreshold", "statistic": "Maximum", "treat_missing_data": "missing",
            "description": None,
        }
        settings.update({field: value for field, value in override.items() if value is not None and field != "enabled"})
        desired.errors.extend(validate_settings(key, settings))
        service_dimensions = dimensions + [{"Name": metric["service_dimension"], "Value": budget["service"]}]
        name = alarm_name(params["name"], facts.identifier, key)
        description = _description(
            f"{budget['service']} connections above its normal maximum of {budget['max_connections']}", facts,
            params["name"], "connection_budgets (normal connection range per service)", settings["description"])
        desired.alarms[name] = static_alarm_request(name, metric["metric_name"], service_dimensions, settings,
                                                    description, actions, namespace=metric["namespace"])


def desired_tags(params):
    tags = dict(params.get("tags") or {})
    tags[OWNER_TAG_KEY] = params["name"]
    return tags


def topic_arn_for(partition, region, account_id, name):
    return f"arn:{partition}:sns:{region}:{account_id}:{name}"
