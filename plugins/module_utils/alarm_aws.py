# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The alarm set's AWS side: CloudWatch alarms and anomaly detectors, the SNS topic (and its KMS
key and its policy), RDS event subscriptions and instances. Reads feed ``alarm_plan``; writes carry out its plans.

Clients come from ``common.aws_client`` with ``RETRY`` (every call ``aws_retry=True``); paginated
reads are decorated with ``retry`` because the client wrapper does not retry paginators. Error
codes that mean something (a missing topic or cluster) become ``None``; every other AWS error goes
up to the module's handler.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_info
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_plan
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import NAMESPACE
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import OWNER_TAG_KEY
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import topic_arn_for
from ansible_collections.cso.rds_hardening.plugins.module_utils import kms_policy
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import Clients
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import describe_kms_key
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_kms_key

DELETE_BATCH = 100  # DeleteAlarms accepts at most 100 names
# Short first delays: a run makes many small calls. Clients use these via aws_client(); paginated
# reads via the decorator (the client wrapper does not retry paginators).
RETRY = dict(retries=10, delay=1, max_delay=20)
retry = AWSRetry.jittered_backoff(**RETRY)


def clients(module):
    """The alarm set's clients, each made on first use (a run with no SNS call makes no SNS client)."""
    return Clients(module, **RETRY)


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
    puts = [dict(request, Tags=boto_tags) for request in plan.create] + [update.request for update in plan.update]
    if concurrency > 1 and len(puts) > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(puts))) as pool:
            for future in [pool.submit(put_alarm, cloudwatch, request) for request in puts]:
                future.result()
    else:
        for request in puts:
            put_alarm(cloudwatch, request)
    for retag in plan.retag:
        if retag.to_set:
            tag_alarm(cloudwatch, retag.arn, retag.to_set)
        if retag.to_remove:
            untag_alarm(cloudwatch, retag.arn, retag.to_remove)
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
    dimensions = tuple(sorted((d["Name"], d["Value"]) for d in single.get("Dimensions") or []))
    return (single.get("Namespace"), single.get("MetricName"), dimensions, single.get("Stat"))


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


@retry
def describe_event_subscriptions(rds):
    paginator = rds.get_paginator("describe_event_subscriptions")
    subscriptions = paginator.paginate().build_full_result().get("EventSubscriptionsList", [])
    return {sub["CustSubscriptionId"]: sub for sub in subscriptions}


def create_event_subscription(rds, request, tags):
    rds.create_event_subscription(Tags=ansible_dict_to_boto3_tag_list(tags), aws_retry=True, **request)


def modify_event_subscription(rds, name, changes):
    rds.modify_event_subscription(SubscriptionName=name, aws_retry=True, **changes)


def add_event_source(rds, name, source_id):
    rds.add_source_identifier_to_subscription(SubscriptionName=name, SourceIdentifier=source_id, aws_retry=True)


def remove_event_source(rds, name, source_id):
    rds.remove_source_identifier_from_subscription(SubscriptionName=name, SourceIdentifier=source_id, aws_retry=True)


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


# --------------------------------------------------------------------------------------------
# Read and plan (no writes): instances, topic, event subscriptions
# --------------------------------------------------------------------------------------------


def read_instances(module, rds):
    """The set's DBInstance dicts in the order given; fails (naming them) when some do not exist."""
    params = module.params
    identifiers = list(dict.fromkeys(params["db_instance_identifiers"]))
    if params["db_cluster_identifier"]:
        cluster = describe_cluster(rds, params["db_cluster_identifier"])
        if cluster is None:
            module.fail_json(msg=f"DB cluster {params['db_cluster_identifier']!r} does not exist in {module.region}. "
                                 "Check the identifier and the region.")
        identifiers += [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers") or []
                        if m["DBInstanceIdentifier"] not in identifiers]
    if not identifiers:
        module.fail_json(msg="Give db_instance_identifiers or db_cluster_identifier: the set needs instances to watch.")
    instances = describe_instances_by_id(rds, identifiers)
    unknown = sorted(set(identifiers) - {i["DBInstanceIdentifier"] for i in instances})
    if unknown:
        module.fail_json(msg=f"DB instance(s) {', '.join(unknown)} do not exist in {module.region}. "
                             "Check the identifiers and the region; nothing was changed.")
    order = {identifier: index for index, identifier in enumerate(identifiers)}
    return sorted(instances, key=lambda i: order[i["DBInstanceIdentifier"]])


def plan_topic(module, clients):
    """TopicPlan for ``module.params['topic']``: reads the topic, its key and subscriptions."""
    topic = module.params["topic"]
    region = module.region
    if topic.get("arn"):
        arn = topic["arn"]
        topic_region = arn.split(":")[3]
        if topic_region != region:
            module.fail_json(msg=f"The SNS topic {arn} is in {topic_region}; CloudWatch alarms can only notify a topic in "
                                 f"their own region ({region}). Use a topic in {region}.")
    else:
        account_id, partition = get_aws_account_info(module)
        arn = topic_arn_for(partition, region, account_id, topic["name"])
    attributes = topic_attributes(clients.sns, arn)
    if attributes is None and topic.get("arn"):
        module.fail_json(msg=f"The SNS topic {arn} does not exist. Create it, or pass topic.name to let this module create it.")
    wanted = None
    if topic.get("kms_master_key_id"):  # validate_kms_key refuses an AWS-managed key (alias/aws/sns)
        wanted = validate_kms_key(module, clients.kms, topic["kms_master_key_id"], region, "the SNS topic")
    wanted_key = wanted["Arn"] if wanted else None
    current_key, current_manager = _current_topic_key(clients, attributes, topic.get("kms_master_key_id"), wanted)
    if not wanted and current_manager == "AWS":
        module.fail_json(msg=f"The SNS topic {arn} is encrypted with the AWS-managed key {current_key} (alias/aws/sns): "
                             "CloudWatch alarms and RDS events cannot publish to it, because that key's policy cannot "
                             "grant them the key. Set topic.kms_master_key_id to a customer-managed key whose policy "
                             "allows them; nothing was changed.")
    if wanted_key or current_key:
        require_publishable_key(module, clients.kms, wanted_key or current_key, arn)
    kms_key_changed = bool(wanted_key) and current_key != wanted_key
    if not wanted_key and attributes is not None and not attributes.get("KmsMasterKeyId"):
        module.warn(f"The SNS topic {arn} is not encrypted; set topic.kms_master_key_id to a customer-managed key.")
    wanted_subscriptions = topic.get("subscriptions") or []
    existing_subscriptions = []
    if attributes is not None and wanted_subscriptions:
        existing_subscriptions = list_topic_subscriptions(clients.sns, arn)
    new_subscriptions = alarm_plan.missing_subscriptions(existing_subscriptions, wanted_subscriptions)
    return alarm_plan.TopicPlan(arn, attributes is not None, wanted_key or current_key, kms_key_changed,
                                new_subscriptions, name=topic.get("name"), current_key=current_key)


def _current_topic_key(clients, attributes, requested_key, wanted):
    """(ARN, KeyManager) of the key that encrypts the topic now, or (None, None); no KMS client without a key."""
    key_id = (attributes or {}).get("KmsMasterKeyId")
    if not key_id:
        return None, None
    if wanted and key_id in (requested_key, wanted["Arn"]):
        return wanted["Arn"], wanted.get("KeyManager")
    key = describe_kms_key(clients.kms, key_id)
    return (key["Arn"], key.get("KeyManager")) if key else (key_id, None)


def require_publishable_key(module, kms, key_arn, topic_arn):
    """Fail (before any write) unless the key policy lets CloudWatch and RDS events use the topic's key."""
    try:
        policy = kms.get_key_policy(KeyId=key_arn, PolicyName="default", aws_retry=True)["Policy"]
    except is_boto3_error_code("NotFoundException"):
        module.fail_json(msg=f"The KMS key {key_arn} of the SNS topic {topic_arn} does not exist. Set "
                             "topic.kms_master_key_id to a customer-managed key; nothing was changed.")
    missing = kms_policy.missing_grants(policy)
    if missing:
        account = key_arn.split(":")[4] if key_arn.startswith("arn:") else "ACCOUNT_ID"
        module.fail_json(
            msg=f"The key policy of {key_arn} (it encrypts the SNS topic {topic_arn}) does not let "
                + "; ".join(f"{service} use {action}" for service, action in missing)
                + ", so CloudWatch alarms and RDS event notifications could not publish to the topic. Add this statement "
                f"to the key policy, then run again (nothing was changed): "
                f"{json.dumps(kms_policy.topic_key_statement(account), sort_keys=True)}",
            missing_grants=[{"service": service, "action": action} for service, action in missing])


def plan_events(module, rds, instances, topic_arn):
    """EventPlan of the set's RDS event subscriptions (empty with event_subscriptions=false)."""
    params = module.params
    if not params["event_subscriptions"]:
        return alarm_plan.EventPlan()
    wanted = alarm_plan.desired_event_subscriptions(params["name"], topic_arn, instances,
                                                    params["db_cluster_identifier"], params["event_subscription_scope"])
    return alarm_plan.plan_event_subscriptions(wanted, describe_event_subscriptions(rds))


def _rds_tags(rds, arn):
    return rds.list_tags_for_resource(ResourceName=arn, aws_retry=True)["TagList"]


def plan_events_absent(rds, set_name):
    """EventPlan deleting the subscriptions the set owns (name prefix and ownership tag)."""
    owned = []
    prefix = f"{set_name}-"
    for name, subscription in describe_event_subscriptions(rds).items():
        if not name.startswith(prefix):
            continue
        tags = boto3_tag_list_to_ansible_dict(_rds_tags(rds, subscription["EventSubscriptionArn"]))
        if tags.get(OWNER_TAG_KEY) == set_name:
            owned.append(name)
    return alarm_plan.EventPlan(delete=sorted(owned))


# --------------------------------------------------------------------------------------------
# Write the topic and event plans
# --------------------------------------------------------------------------------------------


def apply_topic(clients, topic_plan, tags):
    if not topic_plan.exists:
        topic_plan.arn = create_topic(clients.sns, topic_plan.name, topic_plan.kms_key_arn, tags)
    elif topic_plan.kms_key_changed:
        set_topic_kms_key(clients.sns, topic_plan.arn, topic_plan.kms_key_arn)
    for subscription in topic_plan.new_subscriptions:
        subscribe(clients.sns, topic_plan.arn, subscription["protocol"], subscription["endpoint"])


def apply_events(rds, event_plan, tags):
    for request in event_plan.create.values():
        create_event_subscription(rds, request, tags)
    for name, update in event_plan.update.items():
        if update.modify:
            modify_event_subscription(rds, name, update.modify)
        for source_id in update.add:
            add_event_source(rds, name, source_id)
        for source_id in update.remove:
            remove_event_source(rds, name, source_id)
    for name in event_plan.delete:
        delete_event_subscription(rds, name)
