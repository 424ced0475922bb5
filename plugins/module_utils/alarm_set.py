# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Desired alarm set, its diff against CloudWatch, and the few AWS calls that converge it.

Ownership: an alarm belongs to the set ``NAME`` when its name starts with ``NAME/`` **and** it
carries the tag ``cso-rds-hardening:alarm-set = NAME``. The prefix lets one paginated
``DescribeAlarms(AlarmNamePrefix=NAME/)`` read every candidate; the tag protects alarms that a
person (or another tool) created under the same prefix.

Tags are not returned by ``DescribeAlarms``, and reading them costs one
``ListTagsForResource`` per alarm. So tags are read only where a decision depends on them:

* alarms under the prefix that the set no longer wants (may we delete them?);
* alarms whose configuration differs (may we overwrite them? do their tags need updating?);
* every existing alarm of the set only when ``tag_check=all`` is asked for.

An unchanged alarm therefore costs no call at all on a re-run; the price is that a change of
``tags`` alone reaches existing alarms only with ``tag_check=all`` (or when they change).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

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
DELETE_BATCH = 100  # DeleteAlarms accepts at most 100 names
MAX_DESCRIPTION = 1024
MAX_EVALUATION_SECONDS = 86400
SET_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,99}$")
SERVICE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PERCENTILE_PATTERN = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
TOPIC_ARN_PATTERN = re.compile(r"^arn:(aws[a-z-]*):sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}(\.fifo)?)$")
OVERRIDE_FIELDS = ("enabled", "threshold", "period", "evaluation_periods", "datapoints_to_alarm", "comparison",
                   "statistic", "treat_missing_data", "description", "band_width")

# The alarm set's retry settings (short first delays: many small calls); clients use them via
# aws_client(), paginated reads via this decorator (the client wrapper does not retry paginators).
RETRY = dict(retries=10, delay=1, max_delay=20)
retry = AWSRetry.jittered_backoff(**RETRY)


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
            params["name"], "seed-000 (normal connection range per service)", settings["description"])
        desired.alarms[name] = static_alarm_request(name, metric["metric_name"], service_dimensions, settings,
                                                    description, actions, namespace=metric["namespace"])


def desired_tags(params):
    tags = dict(params.get("tags") or {})
    tags[OWNER_TAG_KEY] = params["name"]
    return tags


# --------------------------------------------------------------------------------------------
# Comparison: the canonical form of an alarm, as CloudWatch stores it
# --------------------------------------------------------------------------------------------


def _text(value):
    return value or None


def _dimensions(dimensions):
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions or []))


def _query(query):
    stat = query.get("MetricStat")
    canonical_stat = None
    if stat:
        metric = stat.get("Metric") or {}
        canonical_stat = (metric.get("Namespace"), metric.get("MetricName"), _dimensions(metric.get("Dimensions")),
                          stat.get("Period"), stat.get("Stat"), _text(stat.get("Unit")))
    return (query.get("Id"), canonical_stat, _text(query.get("Expression")), _text(query.get("Label")),
            query.get("ReturnData", True) is not False, query.get("Period"), _text(query.get("AccountId")))


def canonical_alarm(alarm):
    """The fields of a PutMetricAlarm request / DescribeAlarms entry that define the alarm, with AWS's defaults filled in."""
    evaluation_periods = alarm.get("EvaluationPeriods")
    threshold = alarm.get("Threshold")
    return {
        "AlarmDescription": _text(alarm.get("AlarmDescription")),
        "ActionsEnabled": alarm.get("ActionsEnabled", True) is not False,
        "AlarmActions": tuple(sorted(alarm.get("AlarmActions") or [])),
        "OKActions": tuple(sorted(alarm.get("OKActions") or [])),
        "InsufficientDataActions": tuple(sorted(alarm.get("InsufficientDataActions") or [])),
        "MetricName": _text(alarm.get("MetricName")),
        "Namespace": _text(alarm.get("Namespace")),
        "Statistic": _text(alarm.get("Statistic")),
        "ExtendedStatistic": _text(alarm.get("ExtendedStatistic")),
        "Dimensions": _dimensions(alarm.get("Dimensions")),
        "Period": alarm.get("Period") if not alarm.get("Metrics") else None,
        "Unit": _text(alarm.get("Unit")),
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": alarm.get("DatapointsToAlarm") or evaluation_periods,
        "Threshold": None if threshold is None or alarm.get("ThresholdMetricId") else float(threshold),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "TreatMissingData": alarm.get("TreatMissingData") or "missing",
        "EvaluateLowSampleCountPercentile": _text(alarm.get("EvaluateLowSampleCountPercentile")),
        "Metrics": tuple(_query(query) for query in alarm.get("Metrics") or []),
        "ThresholdMetricId": _text(alarm.get("ThresholdMetricId")),
    }


def alarm_changes(existing, desired):
    """{field: {"before": ..., "after": ...}} for every field that differs (empty when equal)."""
    before, after = canonical_alarm(existing), canonical_alarm(desired)
    return {field: {"before": _plain(before[field]), "after": _plain(after[field])}
            for field in after if before[field] != after[field]}


def _plain(value):
    """Tuples (used for hashing/ordering) back to lists for JSON output."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


class Plan:
    def __init__(self):
        self.create = []  # requests
        self.update = []  # (request, changes)
        self.unchanged = []  # names
        self.delete = []  # names
        self.foreign = []  # names under the prefix that the set does not own
        self.conflicts = []  # names the set wants but another owner has
        self.retag = []  # (arn, name, tags_to_set, keys_to_remove)

    @property
    def changed(self):
        return bool(self.create or self.update or self.delete or self.retag)


def plan_alarms(desired_requests, existing_by_name, tags_of, wanted_tags, tag_check="changed", purge_tags=True,
                state="present"):
    """Compare the desired requests with the existing alarms (name -> DescribeAlarms entry).

    ``tags_of(alarm)`` returns the alarm's tags as a dict (it costs one API call, so it is only
    called for alarms where ownership or tags decide something).
    """
    plan = Plan()
    owner = wanted_tags[OWNER_TAG_KEY]
    wanted = desired_requests if state == "present" else {}
    for name, request in sorted(wanted.items()):
        existing = existing_by_name.get(name)
        if existing is None:
            plan.create.append(request)
            continue
        changes = alarm_changes(existing, request)
        if not changes and tag_check != "all":
            plan.unchanged.append(name)
            continue
        current_tags = tags_of(existing)
        if current_tags.get(OWNER_TAG_KEY) != owner:
            plan.conflicts.append(name)
            continue
        to_set, to_remove = compare_aws_tags(current_tags, wanted_tags, purge_tags=purge_tags)
        if to_set or to_remove:
            plan.retag.append((existing["AlarmArn"], name, to_set, to_remove))
        if changes:
            plan.update.append((request, changes))
        else:
            plan.unchanged.append(name)
    for name in sorted(set(existing_by_name) - set(wanted)):
        if tags_of(existing_by_name[name]).get(OWNER_TAG_KEY) == owner:
            plan.delete.append(name)
        else:
            plan.foreign.append(name)
    return plan


def alarm_diff(plan, existing_by_name):
    """``before``/``after`` for Ansible's --diff: only the alarms that change."""
    before, after = {}, {}
    for request in plan.create:
        after[request["AlarmName"]] = _plain_alarm(request)
    for request, _changes in plan.update:
        before[request["AlarmName"]] = _plain_alarm(existing_by_name[request["AlarmName"]])
        after[request["AlarmName"]] = _plain_alarm(request)
    for name in plan.delete:
        before[name] = _plain_alarm(existing_by_name[name])
    for _arn, name, to_set, to_remove in plan.retag:
        after.setdefault(name, {})["tags_to_set"] = to_set
        after[name]["tag_keys_to_remove"] = to_remove
    return {"before": before, "after": after}


def _plain_alarm(alarm):
    return {field: _plain(value) for field, value in canonical_alarm(alarm).items() if value not in (None, (), "")}


# --------------------------------------------------------------------------------------------
# CloudWatch calls
# --------------------------------------------------------------------------------------------


@retry
def describe_alarms_with_prefix(cloudwatch, prefix):
    """Every metric alarm whose name starts with ``prefix``: one paginated DescribeAlarms."""
    paginator = cloudwatch.get_paginator("describe_alarms")
    pages = paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"])
    return {alarm["AlarmName"]: alarm for alarm in pages.build_full_result().get("MetricAlarms", [])}


def _list_alarm_tags(cloudwatch, arn):
    return cloudwatch.list_tags_for_resource(ResourceARN=arn, aws_retry=True)["Tags"]


def alarm_tag_reader(cloudwatch):
    """``tags_of(alarm)`` with a per-run cache, so no alarm's tags are read twice."""
    cache = {}

    def tags_of(alarm):
        arn = alarm["AlarmArn"]
        if arn not in cache:
            cache[arn] = boto3_tag_list_to_ansible_dict(_list_alarm_tags(cloudwatch, arn))
        return cache[arn]

    tags_of.cache = cache
    return tags_of


def put_alarm(cloudwatch, request):
    cloudwatch.put_metric_alarm(aws_retry=True, **request)


def delete_alarm_batch(cloudwatch, names):
    cloudwatch.delete_alarms(AlarmNames=names, aws_retry=True)


def tag_alarm(cloudwatch, arn, tags):
    cloudwatch.tag_resource(ResourceARN=arn, Tags=ansible_dict_to_boto3_tag_list(tags), aws_retry=True)


def untag_alarm(cloudwatch, arn, keys):
    cloudwatch.untag_resource(ResourceARN=arn, TagKeys=keys, aws_retry=True)


def apply_alarm_plan(cloudwatch, plan, wanted_tags, concurrency=1):
    """The writes: puts first, then tag changes, then deletes (in batches of 100).

    Puts are independent of each other, so with ``concurrency > 1`` they run on that many
    threads (boto3 clients are thread-safe); each call still has its own jittered backoff, so a
    throttled thread waits without holding up the others.
    """
    boto_tags = ansible_dict_to_boto3_tag_list(wanted_tags)
    # Tags are only honoured by PutMetricAlarm when it creates the alarm.
    puts = [dict(request, Tags=boto_tags) for request in plan.create] + [request for request, _changes in plan.update]
    if concurrency > 1 and len(puts) > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(puts))) as pool:
            for future in [pool.submit(put_alarm, cloudwatch, request) for request in puts]:
                future.result()
    else:
        for request in puts:
            put_alarm(cloudwatch, request)
    for arn, _name, to_set, to_remove in plan.retag:
        if to_set:
            tag_alarm(cloudwatch, arn, to_set)
        if to_remove:
            untag_alarm(cloudwatch, arn, to_remove)
    for start in range(0, len(plan.delete), DELETE_BATCH):
        delete_alarm_batch(cloudwatch, plan.delete[start:start + DELETE_BATCH])


# --------------------------------------------------------------------------------------------
# Anomaly detectors
# --------------------------------------------------------------------------------------------


@retry
def describe_anomaly_detectors(cloudwatch, metric):
    paginator = cloudwatch.get_paginator("describe_anomaly_detectors")
    pages = paginator.paginate(Namespace=NAMESPACE, MetricName=metric)
    return pages.build_full_result().get("AnomalyDetectors", [])


def _detector_key(detector):
    single = detector.get("SingleMetricAnomalyDetector") or detector
    return (single.get("Namespace"), single.get("MetricName"), _dimensions(single.get("Dimensions")), single.get("Stat"))


def missing_anomaly_detectors(cloudwatch, anomaly_instances):
    """SingleMetricAnomalyDetector dicts the set's band alarms need and CloudWatch does not have yet."""
    wanted = {}
    for identifier, metric, stat in anomaly_instances:
        detector = {"Namespace": NAMESPACE, "MetricName": metric,
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}], "Stat": stat}
        wanted[_detector_key(detector)] = detector
    if not wanted:
        return []
    existing = set()
    for metric in sorted({metric for _identifier, metric, _stat in anomaly_instances}):
        existing.update(_detector_key(detector) for detector in describe_anomaly_detectors(cloudwatch, metric))
    return [detector for key, detector in sorted(wanted.items()) if key not in existing]


def put_anomaly_detector(cloudwatch, detector):
    cloudwatch.put_anomaly_detector(SingleMetricAnomalyDetector=detector, aws_retry=True)


# --------------------------------------------------------------------------------------------
# SNS topic
# --------------------------------------------------------------------------------------------


def topic_arn_for(partition, region, account_id, name):
    return f"arn:{partition}:sns:{region}:{account_id}:{name}"


def _get_topic_attributes(sns, arn):
    return sns.get_topic_attributes(TopicArn=arn, aws_retry=True)["Attributes"]


def topic_attributes(sns, arn):
    """The topic's attributes, or None when it does not exist."""
    try:
        return _get_topic_attributes(sns, arn)
    except is_boto3_error_code("NotFound"):
        return None


@retry
def list_topic_subscriptions(sns, arn):
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    return paginator.paginate(TopicArn=arn).build_full_result().get("Subscriptions", [])


def missing_subscriptions(existing, wanted):
    have = {(sub["Protocol"], sub["Endpoint"]) for sub in existing}
    return [sub for sub in wanted if (sub["protocol"], sub["endpoint"]) not in have]


def create_topic(sns, name, kms_key_arn, tags):
    attributes = {"KmsMasterKeyId": kms_key_arn} if kms_key_arn else {}
    return sns.create_topic(Name=name, Attributes=attributes, Tags=ansible_dict_to_boto3_tag_list(tags),
                            aws_retry=True)["TopicArn"]


def set_topic_kms_key(sns, arn, kms_key_arn):
    sns.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=kms_key_arn, aws_retry=True)


def subscribe(sns, arn, protocol, endpoint):
    sns.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=endpoint, aws_retry=True)


# --------------------------------------------------------------------------------------------
# RDS event subscriptions (FSBP RDS.19-RDS.22)
# --------------------------------------------------------------------------------------------

EVENT_SUBSCRIPTIONS = (
    # (suffix, SourceType, EventCategories, Security Hub control)
    ("db-instance", "db-instance", ("configuration change", "failure", "maintenance"), "RDS.20"),
    ("db-parameter-group", "db-parameter-group", ("configuration change",), "RDS.21"),
    ("db-security-group", "db-security-group", ("configuration change", "failure"), "RDS.22"),
)
CLUSTER_EVENT_SUBSCRIPTION = ("db-cluster", "db-cluster", ("failure", "maintenance"), "RDS.19")


def desired_event_subscriptions(set_name, topic_arn, db_instances, cluster_identifier=None, scope="set"):
    """{SubscriptionName: request} for the set's critical RDS events."""
    source_ids = {
        "db-instance": sorted(i["DBInstanceIdentifier"] for i in db_instances),
        "db-parameter-group": sorted({g["DBParameterGroupName"] for i in db_instances
                                      for g in i.get("DBParameterGroups") or []}),
        "db-security-group": sorted({g["DBSecurityGroupName"] for i in db_instances
                                     for g in i.get("DBSecurityGroups") or []}),
        "db-cluster": [cluster_identifier] if cluster_identifier else [],
    }
    kinds = EVENT_SUBSCRIPTIONS + ((CLUSTER_EVENT_SUBSCRIPTION,) if cluster_identifier else ())
    wanted = {}
    for suffix, source_type, categories, _control in kinds:
        request = {
            "SubscriptionName": f"{set_name}-{suffix}",
            "SnsTopicArn": topic_arn,
            "SourceType": source_type,
            "EventCategories": list(categories),
            "Enabled": True,
        }
        if scope == "set" and source_ids[source_type]:
            request["SourceIds"] = source_ids[source_type]
        wanted[request["SubscriptionName"]] = request
    return wanted


@retry
def describe_event_subscriptions(rds):
    paginator = rds.get_paginator("describe_event_subscriptions")
    subscriptions = paginator.paginate().build_full_result().get("EventSubscriptionsList", [])
    return {sub["CustSubscriptionId"]: sub for sub in subscriptions}


def event_subscription_changes(existing, request):
    """What differs, split by the API that changes it (ModifyEventSubscription vs source identifiers)."""
    modify = {}
    if existing.get("SnsTopicArn") != request["SnsTopicArn"]:
        modify["SnsTopicArn"] = request["SnsTopicArn"]
    if existing.get("SourceType") != request["SourceType"]:
        modify["SourceType"] = request["SourceType"]
    if sorted(existing.get("EventCategoriesList") or []) != sorted(request["EventCategories"]):
        modify["EventCategories"] = request["EventCategories"]
    if bool(existing.get("Enabled")) is not True:
        modify["Enabled"] = True
    have, want = set(existing.get("SourceIdsList") or []), set(request.get("SourceIds") or [])
    return modify, sorted(want - have), sorted(have - want)


def create_event_subscription(rds, request, tags):
    rds.create_event_subscription(Tags=ansible_dict_to_boto3_tag_list(tags), aws_retry=True, **request)


def modify_event_subscription(rds, name, changes):
    rds.modify_event_subscription(SubscriptionName=name, aws_retry=True, **changes)


def add_event_source(rds, name, source_id):
    rds.add_source_identifier_to_subscription(SubscriptionName=name, SourceIdentifier=source_id, aws_retry=True)


def remove_event_source(rds, name, source_id):
    rds.remove_source_identifier_from_subscription(SubscriptionName=name, SourceIdentifier=source_id,
                                                aws_retry=True)


def delete_event_subscription(rds, name):
    rds.delete_event_subscription(SubscriptionName=name, aws_retry=True)


# --------------------------------------------------------------------------------------------
# DB instances
# --------------------------------------------------------------------------------------------


@retry
def describe_instances_by_id(rds, identifiers):
    """The DBInstance dicts for these identifiers: one paginated call per 100 identifiers."""
    found = []
    paginator = rds.get_paginator("describe_db_instances")
    for start in range(0, len(identifiers), 100):
        filters = [{"Name": "db-instance-id", "Values": identifiers[start:start + 100]}]
        found.extend(paginator.paginate(Filters=filters).build_full_result().get("DBInstances", []))
    return found


def describe_cluster(rds, cluster_identifier):
    try:
        return rds.describe_db_clusters(DBClusterIdentifier=cluster_identifier, aws_retry=True)["DBClusters"][0]
    except is_boto3_error_code("DBClusterNotFoundFault"):
        return None
