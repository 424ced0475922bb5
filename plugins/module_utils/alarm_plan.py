# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The alarm set's plan: the canonical form of an alarm as CloudWatch stores it, the diff of the
desired set against what AWS has, and the plans of the topic and the RDS event subscriptions.
Pure: the only input from AWS is what the caller read (and ``tags_of``, a reader it passes in).

Tags are not returned by ``DescribeAlarms``, and reading them costs one
``ListTagsForResource`` per alarm. So tags are read only where a decision depends on them:

* alarms under the prefix that the set no longer wants (may we delete them?);
* alarms whose configuration differs (may we overwrite them? do their tags need updating?);
* every existing alarm of the set only when ``tag_check=all`` is asked for.

An unchanged alarm therefore costs no call at all on a re-run; the price is that a change of
``tags`` alone reaches existing alarms only with ``tag_check=all`` (or when they change).

Plan items in results have the shape of every module's plan (``common.plan_item``): what,
impact, before, after. Alarms, topics and event subscriptions never interrupt the database, so
their impact is ``none``.
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import OWNER_TAG_KEY
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item

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
# The alarm plan
# --------------------------------------------------------------------------------------------


class AlarmUpdate:
    """An existing alarm whose configuration differs: the PutMetricAlarm request and the changed fields."""

    def __init__(self, request, changes):
        self.request = request
        self.changes = changes

    @property
    def name(self):
        return self.request["AlarmName"]


class Retag:
    """An existing alarm of the set whose tags differ from the wanted ones."""

    def __init__(self, arn, name, to_set, to_remove):
        self.arn = arn
        self.name = name
        self.to_set = to_set
        self.to_remove = to_remove


class Plan:
    """What converging the alarms takes. Lists of names or of the small objects above, never tuples."""

    def __init__(self):
        self.create = []  # PutMetricAlarm requests
        self.update = []  # AlarmUpdate
        self.unchanged = []  # names
        self.delete = []  # names
        self.foreign = []  # names under the prefix that the set does not own
        self.conflicts = []  # names the set wants but another owner has
        self.retag = []  # Retag

    @property
    def changed(self):
        return bool(self.create or self.update or self.delete or self.retag)

    def result(self):
        return {
            "created": [request["AlarmName"] for request in self.create],
            "updated": [update.name for update in self.update],
            "deleted": list(self.delete),
            "unchanged": list(self.unchanged),
            "retagged": [retag.name for retag in self.retag],
            "foreign": list(self.foreign),
            "changes": {update.name: update.changes for update in self.update},
        }

    def items(self, existing_by_name):
        """Plan items (what, impact, before, after) of every alarm that changes."""
        items = [plan_item(f"alarm {request['AlarmName']}", "none", None, _plain_alarm(request), action="create")
                 for request in self.create]
        items += [plan_item(f"alarm {update.name}", "none",
                            {field: change["before"] for field, change in update.changes.items()},
                            {field: change["after"] for field, change in update.changes.items()}, action="update")
                  for update in self.update]
        items += [plan_item(f"alarm {retag.name} tags", "none", {"tag_keys_to_remove": retag.to_remove},
                            {"tags_to_set": retag.to_set}, action="retag") for retag in self.retag]
        items += [plan_item(f"alarm {name}", "none", _plain_alarm(existing_by_name[name]), None, action="delete")
                  for name in self.delete]
        return items


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
            plan.retag.append(Retag(existing["AlarmArn"], name, to_set, to_remove))
        if changes:
            plan.update.append(AlarmUpdate(request, changes))
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
    for update in plan.update:
        before[update.name] = _plain_alarm(existing_by_name[update.name])
        after[update.name] = _plain_alarm(update.request)
    for name in plan.delete:
        before[name] = _plain_alarm(existing_by_name[name])
    for retag in plan.retag:
        after.setdefault(retag.name, {})["tags_to_set"] = retag.to_set
        after[retag.name]["tag_keys_to_remove"] = retag.to_remove
    return {"before": before, "after": after}


def _plain_alarm(alarm):
    return {field: _plain(value) for field, value in canonical_alarm(alarm).items() if value not in (None, (), "")}


# --------------------------------------------------------------------------------------------
# The SNS topic
# --------------------------------------------------------------------------------------------


class TopicPlan:
    """The topic the alarms notify: created or kept, its KMS key, the subscriptions to add."""

    def __init__(self, arn, exists, kms_key_arn, kms_key_changed, new_subscriptions, name=None, current_key=None):
        self.arn = arn
        self.exists = exists
        self.kms_key_arn = kms_key_arn
        self.kms_key_changed = kms_key_changed
        self.new_subscriptions = new_subscriptions
        self.name = name
        self.current_key = current_key

    @property
    def changed(self):
        return not self.exists or self.kms_key_changed or bool(self.new_subscriptions)

    def result(self):
        return {
            "created": not self.exists,
            "kms_master_key_id": self.kms_key_arn,
            "kms_key_changed": self.kms_key_changed and self.exists,
            "subscriptions_added": [f"{s['protocol']}:{s['endpoint']}" for s in self.new_subscriptions],
        }

    def items(self):
        items = []
        if not self.exists:
            items.append(plan_item(f"topic {self.arn}", "none", None, {"kms_master_key_id": self.kms_key_arn},
                                   action="create"))
        elif self.kms_key_changed:
            items.append(plan_item(f"topic {self.arn} KMS key", "none", self.current_key, self.kms_key_arn,
                                   action="update"))
        items += [plan_item(f"topic {self.arn} subscription", "none", None, f"{s['protocol']}:{s['endpoint']}",
                            action="create") for s in self.new_subscriptions]
        return items


def missing_subscriptions(existing, wanted):
    have = {(sub["Protocol"], sub["Endpoint"]) for sub in existing}
    return [sub for sub in wanted if (sub["protocol"], sub["endpoint"]) not in have]


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
    return EventSubscriptionUpdate(request["SubscriptionName"], modify, sorted(want - have), sorted(have - want),
                                   existing)


class EventSubscriptionUpdate:
    """An existing subscription that differs: ModifyEventSubscription fields, source ids to add and remove."""

    def __init__(self, name, modify, add, remove, existing=None):
        self.name = name
        self.modify = modify
        self.add = add
        self.remove = remove
        self.existing = existing or {}

    def __bool__(self):
        return bool(self.modify or self.add or self.remove)


class EventPlan:
    """The set's RDS event subscriptions: requests to create, updates, unchanged and owned ones to delete."""

    def __init__(self, create=None, update=None, unchanged=None, delete=None):
        self.create = create or {}  # name -> CreateEventSubscription request
        self.update = update or {}  # name -> EventSubscriptionUpdate
        self.unchanged = unchanged or []
        self.delete = delete or []

    @property
    def changed(self):
        return bool(self.create or self.update or self.delete)

    def result(self):
        return {"created": sorted(self.create), "updated": sorted(self.update), "deleted": sorted(self.delete),
                "unchanged": sorted(self.unchanged)}

    def items(self):
        items = [plan_item(f"event subscription {name}", "none", None, request, action="create")
                 for name, request in sorted(self.create.items())]
        for name, update in sorted(self.update.items()):
            before = {field: update.existing.get({"EventCategories": "EventCategoriesList"}.get(field, field))
                      for field in update.modify}
            after = dict(update.modify)
            if update.add or update.remove:
                before["SourceIds"] = sorted(update.existing.get("SourceIdsList") or [])
                after["SourceIds"] = sorted((set(before["SourceIds"]) | set(update.add)) - set(update.remove))
            items.append(plan_item(f"event subscription {name}", "none", before, after, action="update"))
        items += [plan_item(f"event subscription {name}", "none", name, None, action="delete")
                  for name in sorted(self.delete)]
        return items


def plan_event_subscriptions(wanted, existing):
    """EventPlan for the wanted requests (``desired_event_subscriptions``) against the existing ones by name."""
    plan = EventPlan()
    for name, request in wanted.items():
        if name not in existing:
            plan.create[name] = request
            continue
        update = event_subscription_changes(existing[name], request)
        if update:
            plan.update[name] = update
        else:
            plan.unchanged.append(name)
    return plan
