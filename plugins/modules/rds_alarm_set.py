#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_alarm_set
short_description: Converge the whole set of CloudWatch alarms and RDS event subscriptions for RDS DB instances
version_added: 0.1.0
description:
  - Creates, updates and deletes the CloudWatch metric alarms of a named alarm set for one or more RDS DB
    instances (or the members of an Aurora cluster) in one task, from a built-in catalogue of RDS alarms with
    documented defaults and sources (AWS's CloudWatch recommended alarms for RDS, the hardening plan's thresholds).
  - Reads each instance (class, engine, storage type, storage autoscaling, replica source, Performance Insights)
    and chooses the alarms that apply; the result lists those skipped and why (for example C(burst_balance) on
    gp3 storage, C(replica_lag) on a primary).
  - Reads the existing alarms once (one paginated C(DescribeAlarms) with the set's name prefix), writes only the
    alarms that differ in any field CloudWatch stores, and deletes alarms the set no longer wants. An alarm
    belongs to the set when its name starts with C(NAME/) B(and) it carries the tag
    C(cso-rds-hardening:alarm-set=NAME); other alarms, even under the same prefix, are never touched.
  - Tags are read (one C(ListTagsForResource) per alarm) only for alarms that would be deleted or overwritten,
    or for every alarm of the set with O(tag_check=all). A re-run with nothing to do makes no write and no tag call.
  - Notifies an SNS topic given by ARN, or created by name, optionally encrypted with a customer-managed KMS key,
    with e-mail or HTTPS subscriptions.
  - Subscribes the same topic to the critical RDS events for the instances, their parameter groups and DB
    security groups (and the cluster), as AWS Security Hub controls RDS.19 to RDS.22 ask.
  - Every AWS call goes through C(AWSRetry.jittered_backoff). All input is validated, and every instance, topic
    and KMS key looked up, before the first write.
author:
  - CSO platform engineering (@cso-platform)
options:
  name:
    description:
      - Name of the alarm set. Alarm names are C(NAME/DB_INSTANCE/ALARM); event subscriptions are C(NAME-SOURCE_TYPE).
      - Letters, digits and hyphens, starting with a letter.
    type: str
    required: true
  state:
    description:
      - V(present) converges the set. V(absent) deletes every alarm and event subscription the set owns
        (the SNS topic is left alone, because other sets may use it).
    type: str
    choices: [present, absent]
    default: present
  db_instance_identifiers:
    description: DB instances the alarms watch.
    type: list
    elements: str
    default: []
  db_cluster_identifier:
    description:
      - An Aurora or Multi-AZ DB cluster; its member instances are added to O(db_instance_identifiers) and a
        C(db-cluster) event subscription is added (RDS.19).
    type: str
  topic:
    description: The SNS topic that receives alarm notifications and RDS events. Required with O(state=present).
    type: dict
    suboptions:
      arn:
        description: ARN of an existing topic in the module's region. Mutually exclusive with O(topic.name).
        type: str
      name:
        description: Name of the topic; it is created when it does not exist.
        type: str
      kms_master_key_id:
        description:
          - Customer-managed KMS key (id, ARN or alias) that encrypts the topic. CloudWatch and RDS can only publish
            to an encrypted topic whose key policy lets C(cloudwatch.amazonaws.com) and C(events.rds.amazonaws.com)
            use the key, which an AWS-managed key cannot, so AWS-managed keys are refused.
        type: str
      subscriptions:
        description: Subscriptions the topic must have. Existing other subscriptions are left alone.
        type: list
        elements: dict
        default: []
        suboptions:
          protocol:
            description: Delivery protocol.
            type: str
            choices: [email, https]
            required: true
          endpoint:
            description: E-mail address or HTTPS URL.
            type: str
            required: true
  notify_on:
    description: Alarm state changes that notify the topic.
    type: list
    elements: str
    choices: [alarm, ok, insufficient_data]
    default: [alarm, ok]
  include:
    description: Opt-in catalogue alarms to add (for example V(database_connections_anomaly)).
    type: list
    elements: str
    default: []
  exclude:
    description: Catalogue alarms to leave out.
    type: list
    elements: str
    default: []
  alarms:
    description:
      - Overrides per alarm, keyed by catalogue name (see the module's documentation page for the catalogue).
      - Each value may set V(enabled), V(threshold), V(period) (a multiple of 60), V(evaluation_periods),
        V(datapoints_to_alarm), V(comparison), V(statistic) (V(Average) ... or a percentile such as V(p90)),
        V(treat_missing_data), V(description), and for anomaly alarms V(band_width).
      - An explicit V(threshold) also forces an alarm onto an instance the catalogue would skip.
    type: dict
    default: {}
  connection_budgets:
    description:
      - Normal maximum number of connections per service. C(DatabaseConnections) counts every connection to the
        instance, whatever service opened it, so the instance-wide C(database_connections) alarm uses the B(sum)
        of the budgets as its threshold (Keystone 20 + CSO 50 + RabbitMQ 10 = 80).
      - Per-service alarms need a per-service metric, see O(service_connections_metric).
    type: list
    elements: dict
    default: []
    suboptions:
      service:
        description: Service name (lower case), used in alarm names.
        type: str
        required: true
      max_connections:
        description: Upper end of the service's normal connection count.
        type: int
        required: true
  service_connections_metric:
    description:
      - A metric that counts connections per service (for example published from C(information_schema.processlist)
        by user). When set, each budget also gets an alarm C(database_connections_service_SERVICE) on this metric
        with the dimensions C(DBInstanceIdentifier) and O(service_connections_metric.service_dimension)=SERVICE.
    type: dict
    suboptions:
      namespace:
        description: Metric namespace.
        type: str
        required: true
      metric_name:
        description: Metric name.
        type: str
        required: true
      service_dimension:
        description: Dimension whose value is the service name.
        type: str
        default: Service
  event_subscriptions:
    description: Whether to manage the RDS event subscriptions (RDS.19 to RDS.22) for the set.
    type: bool
    default: true
  event_subscription_scope:
    description:
      - V(set) limits the subscriptions to the set's instances, their parameter groups and DB security groups.
        V(account) subscribes to every source of each type in the region.
    type: str
    choices: [set, account]
    default: set
  write_concurrency:
    description:
      - How many C(PutMetricAlarm) calls may be in flight at once. Each call keeps its own jittered backoff, so
        throttling slows the run down but does not fail it. V(1) writes one alarm at a time.
    type: int
    default: 4
  tag_check:
    description:
      - V(changed) reads tags only of alarms that are updated or may be deleted (no tag call for unchanged alarms).
        V(all) reads the tags of every existing alarm of the set, to bring a change of O(tags) to all of them, at the
        cost of one C(ListTagsForResource) per alarm.
    type: str
    choices: [changed, all]
    default: changed
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports check mode (returns the exact plan, writes nothing) and diff mode (before and after of every alarm
    that would be created, updated or deleted).
  - PutMetricAlarm ignores tags when it updates an alarm, so tags of existing alarms are changed with
    C(TagResource)/C(UntagResource).
  - An existing alarm with one of the set's names but without the set's ownership tag stops the run before any
    write; tag it with C(cso-rds-hardening:alarm-set=NAME) to adopt it, or delete it.
"""

EXAMPLES = r"""
- name: Alarms, events and an encrypted topic for the production database
  cso.rds_hardening.rds_alarm_set:
    name: prod-cso
    db_instance_identifiers: [cso-prod-db]
    topic:
      name: prod-rds-alerts
      kms_master_key_id: alias/prod-sns
      subscriptions:
        - protocol: email
          endpoint: dba@example.com
    connection_budgets:
      - {service: keystone, max_connections: 20}
      - {service: cso, max_connections: 50}
      - {service: rabbitmq, max_connections: 10}
    alarms:
      cpu_utilization:
        threshold: 85
      free_storage_space:
        threshold: 10000000000
    include: [database_connections_anomaly]
    tags:
      Environment: prod

- name: Remove the set (alarms and event subscriptions it owns)
  cso.rds_hardening.rds_alarm_set:
    name: prod-cso
    state: absent
"""

RETURN = r"""
topic_arn:
  description: ARN of the SNS topic the alarms notify (predicted in check mode when the topic would be created).
  returned: state=present
  type: str
  sample: arn:aws:sns:eu-west-2:123456789012:prod-rds-alerts
created:
  description: Names of the alarms created (or that would be).
  returned: always
  type: list
  elements: str
  sample: [prod-cso/cso-prod-db/cpu_utilization]
updated:
  description: Names of the alarms whose configuration changed.
  returned: always
  type: list
  elements: str
deleted:
  description: Names of the alarms deleted because the set no longer wants them.
  returned: always
  type: list
  elements: str
unchanged:
  description: Names of the alarms already as wanted.
  returned: always
  type: list
  elements: str
retagged:
  description: Names of existing alarms whose tags were changed.
  returned: always
  type: list
  elements: str
foreign:
  description: Alarms under the set's name prefix that the set does not own (no ownership tag); never touched.
  returned: always
  type: list
  elements: str
changes:
  description: For each updated alarm, the fields that differ, with C(before) and C(after).
  returned: always
  type: dict
  sample: {"prod-cso/cso-prod-db/cpu_utilization": {"Threshold": {"before": 80.0, "after": 85.0}}}
not_applicable:
  description: Catalogue alarms not created for an instance, and why.
  returned: state=present
  type: list
  elements: dict
  contains:
    db_instance_identifier:
      description: The instance.
      type: str
    alarm:
      description: The catalogue name.
      type: str
    reason:
      description: Why it does not apply.
      type: str
  sample: [{"db_instance_identifier": "cso-prod-db", "alarm": "burst_balance",
            "reason": "storage type is gp3; BurstBalance is published for gp2 only"}]
anomaly_detectors_created:
  description: Anomaly detectors created for band alarms (instance identifiers).
  returned: state=present
  type: list
  elements: str
topic:
  description: What was done to the topic.
  returned: state=present
  type: dict
  contains:
    created:
      description: Whether the topic was created.
      type: bool
    kms_master_key_id:
      description: The key that encrypts the topic (after the run).
      type: str
    kms_key_changed:
      description: Whether the topic's key was set or changed.
      type: bool
    subscriptions_added:
      description: Subscriptions added, as C(protocol:endpoint).
      type: list
      elements: str
event_subscriptions:
  description: RDS event subscription names by outcome.
  returned: always
  type: dict
  contains:
    created:
      description: Created.
      type: list
      elements: str
    updated:
      description: Changed (topic, categories, enabled or source identifiers).
      type: list
      elements: str
    deleted:
      description: Deleted (state=absent).
      type: list
      elements: str
    unchanged:
      description: Already as wanted.
      type: list
      elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_info
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_set as aset
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import describe_kms_key
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_kms_key


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        db_instance_identifiers=dict(type="list", elements="str", default=[]),
        db_cluster_identifier=dict(type="str"),
        topic=dict(
            type="dict",
            options=dict(
                arn=dict(type="str"),
                name=dict(type="str"),
                kms_master_key_id=dict(type="str"),
                subscriptions=dict(
                    type="list", elements="dict", default=[],
                    options=dict(protocol=dict(type="str", choices=["email", "https"], required=True),
                                 endpoint=dict(type="str", required=True)),
                ),
            ),
            mutually_exclusive=[["arn", "name"]],
            required_one_of=[["arn", "name"]],
        ),
        notify_on=dict(type="list", elements="str", choices=["alarm", "ok", "insufficient_data"], default=["alarm", "ok"]),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        alarms=dict(type="dict", default={}),
        connection_budgets=dict(
            type="list", elements="dict", default=[],
            options=dict(service=dict(type="str", required=True), max_connections=dict(type="int", required=True)),
        ),
        service_connections_metric=dict(
            type="dict",
            options=dict(namespace=dict(type="str", required=True), metric_name=dict(type="str", required=True),
                         service_dimension=dict(type="str", default="Service")),
        ),
        event_subscriptions=dict(type="bool", default=True),
        event_subscription_scope=dict(type="str", choices=["set", "account"], default="set"),
        tag_check=dict(type="str", choices=["changed", "all"], default="changed"),
        write_concurrency=dict(type="int", default=4),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )


class Clients:
    """The clients a run needs, each created on first use (a run that needs no SNS call creates no SNS client)."""

    def __init__(self, module):
        self.module = module
        self._clients = {}

    def __getattr__(self, service):
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = aws_client(self.module, service, **aset.RETRY)
        return self._clients[service]


# ------------------------------------------------------------------------------------------------
# Read and validate (no writes)
# ------------------------------------------------------------------------------------------------


def read_instances(module, rds):
    params = module.params
    identifiers = list(dict.fromkeys(params["db_instance_identifiers"]))
    cluster = None
    if params["db_cluster_identifier"]:
        cluster = aset.describe_cluster(rds, params["db_cluster_identifier"])
        if cluster is None:
            module.fail_json(msg=f"DB cluster {params['db_cluster_identifier']!r} does not exist in {module.region}. "
                                 "Check the identifier and the region.")
        identifiers += [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers") or []
                        if m["DBInstanceIdentifier"] not in identifiers]
    if not identifiers:
        module.fail_json(msg="Give db_instance_identifiers or db_cluster_identifier: the set needs instances to watch.")
    instances = aset.describe_instances_by_id(rds, identifiers)
    unknown = sorted(set(identifiers) - {i["DBInstanceIdentifier"] for i in instances})
    if unknown:
        module.fail_json(msg=f"DB instance(s) {', '.join(unknown)} do not exist in {module.region}. "
                             "Check the identifiers and the region; nothing was changed.")
    order = {identifier: index for index, identifier in enumerate(identifiers)}
    return sorted(instances, key=lambda i: order[i["DBInstanceIdentifier"]])


class TopicPlan:
    def __init__(self, arn, exists, kms_key_arn, kms_key_changed, new_subscriptions, name=None):
        self.arn = arn
        self.exists = exists
        self.kms_key_arn = kms_key_arn
        self.kms_key_changed = kms_key_changed
        self.new_subscriptions = new_subscriptions
        self.name = name

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


def plan_topic(module, clients):
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
        arn = aset.topic_arn_for(partition, region, account_id, topic["name"])
    attributes = aset.topic_attributes(clients.sns, arn)
    if attributes is None and topic.get("arn"):
        module.fail_json(msg=f"The SNS topic {arn} does not exist. Create it, or pass topic.name to let this module create it.")
    wanted_key = None
    if topic.get("kms_master_key_id"):
        wanted_key = validate_kms_key(module, clients.kms, topic["kms_master_key_id"], region, "the SNS topic")["Arn"]
    current_key = _current_topic_key(clients.kms, attributes, topic.get("kms_master_key_id"), wanted_key)
    kms_key_changed = bool(wanted_key) and current_key != wanted_key
    if not wanted_key and attributes is not None and not attributes.get("KmsMasterKeyId"):
        module.warn(f"The SNS topic {arn} is not encrypted; set topic.kms_master_key_id to a customer-managed key.")
    wanted_subscriptions = topic.get("subscriptions") or []
    existing_subscriptions = []
    if attributes is not None and wanted_subscriptions:
        existing_subscriptions = aset.list_topic_subscriptions(clients.sns, arn)
    new_subscriptions = aset.missing_subscriptions(existing_subscriptions, wanted_subscriptions)
    return TopicPlan(arn, attributes is not None, wanted_key or current_key, kms_key_changed, new_subscriptions,
                     name=topic.get("name"))


def _current_topic_key(kms, attributes, requested_key, wanted_key_arn):
    key_id = (attributes or {}).get("KmsMasterKeyId")
    if not key_id:
        return None
    if key_id in (requested_key, wanted_key_arn):
        return wanted_key_arn
    key = describe_kms_key(kms, key_id)
    return key["Arn"] if key else key_id


def plan_event_subscriptions(module, rds, instances, topic_arn):
    params = module.params
    if not params["event_subscriptions"]:
        return {}, {}, []
    wanted = aset.desired_event_subscriptions(params["name"], topic_arn, instances, params["db_cluster_identifier"],
                                              params["event_subscription_scope"])
    existing = aset.describe_event_subscriptions(rds)
    create, update, unchanged = {}, {}, []
    for name, request in wanted.items():
        if name not in existing:
            create[name] = request
            continue
        modify, add, remove = aset.event_subscription_changes(existing[name], request)
        if modify or add or remove:
            update[name] = (modify, add, remove)
        else:
            unchanged.append(name)
    return create, update, unchanged


# ------------------------------------------------------------------------------------------------
# Write
# ------------------------------------------------------------------------------------------------


def apply_topic(clients, topic_plan, tags):
    if not topic_plan.exists:
        created_arn = aset.create_topic(clients.sns, topic_plan.name, topic_plan.kms_key_arn, tags)
        topic_plan.arn = created_arn
    elif topic_plan.kms_key_changed:
        aset.set_topic_kms_key(clients.sns, topic_plan.arn, topic_plan.kms_key_arn)
    for subscription in topic_plan.new_subscriptions:
        aset.subscribe(clients.sns, topic_plan.arn, subscription["protocol"], subscription["endpoint"])


def apply_event_subscriptions(rds, create, update, tags):
    for request in create.values():
        aset.create_event_subscription(rds, request, tags)
    for name, (modify, add, remove) in update.items():
        if modify:
            aset.modify_event_subscription(rds, name, modify)
        for source_id in add:
            aset.add_event_source(rds, name, source_id)
        for source_id in remove:
            aset.remove_event_source(rds, name, source_id)


# ------------------------------------------------------------------------------------------------
# present / absent
# ------------------------------------------------------------------------------------------------


def alarm_result(plan):
    return {
        "created": [request["AlarmName"] for request in plan.create],
        "updated": [request["AlarmName"] for request, _changes in plan.update],
        "deleted": list(plan.delete),
        "unchanged": list(plan.unchanged),
        "retagged": [name for _arn, name, _set, _remove in plan.retag],
        "foreign": list(plan.foreign),
        "changes": {request["AlarmName"]: changes for request, changes in plan.update},
    }


def ensure_present(module, clients):
    params = module.params
    if not params["topic"]:
        module.fail_json(msg="state=present needs topic (arn of an existing topic, or name of one to create).")
    instances = read_instances(module, clients.rds)
    topic_plan = plan_topic(module, clients)
    desired = aset.desired_alarms(params, instances, topic_plan.arn)
    if desired.errors:
        module.fail_json(msg="Invalid alarm settings: " + " ".join(desired.errors))
    wanted_tags = aset.desired_tags(params)
    existing = aset.describe_alarms_with_prefix(clients.cloudwatch, aset.alarm_prefix(params["name"]))
    # amazon.aws convention: without tags, existing tags are left alone whatever purge_tags says.
    purge_tags = params["purge_tags"] and params["tags"] is not None
    plan = aset.plan_alarms(desired.alarms, existing, aset.alarm_tag_reader(clients.cloudwatch), wanted_tags,
                            tag_check=params["tag_check"], purge_tags=purge_tags)
    if plan.conflicts:
        module.fail_json(msg=f"Alarm(s) {', '.join(plan.conflicts)} exist but do not carry the tag "
                             f"{aset.OWNER_TAG_KEY}={params['name']}, so this set does not own them. Tag them to adopt "
                             "them, or delete them; nothing was changed.", conflicts=plan.conflicts)
    detectors = aset.missing_anomaly_detectors(clients.cloudwatch, desired.anomaly_instances)
    events_create, events_update, events_unchanged = plan_event_subscriptions(module, clients.rds, instances,
                                                                              topic_plan.arn)

    changed = plan.changed or topic_plan.changed or bool(detectors or events_create or events_update)
    if changed and not module.check_mode:
        apply_topic(clients, topic_plan, wanted_tags)
        for detector in detectors:
            aset.put_anomaly_detector(clients.cloudwatch, detector)
        aset.apply_alarm_plan(clients.cloudwatch, plan, wanted_tags, concurrency=params["write_concurrency"])
        apply_event_subscriptions(clients.rds, events_create, events_update, wanted_tags)

    result = alarm_result(plan)
    result.update(
        changed=changed,
        topic_arn=topic_plan.arn,
        topic=topic_plan.result(),
        not_applicable=desired.skipped,
        anomaly_detectors_created=[d["Dimensions"][0]["Value"] for d in detectors],
        event_subscriptions={"created": sorted(events_create), "updated": sorted(events_update),
                             "deleted": [], "unchanged": sorted(events_unchanged)},
    )
    if module._diff:
        result["diff"] = aset.alarm_diff(plan, existing)
    return result


def _rds_tags(rds, arn):
    return rds.list_tags_for_resource(ResourceName=arn, aws_retry=True)["TagList"]


def owned_event_subscriptions(rds, set_name):
    owned = []
    prefix = f"{set_name}-"
    for name, subscription in aset.describe_event_subscriptions(rds).items():
        if not name.startswith(prefix):
            continue
        tags = boto3_tag_list_to_ansible_dict(_rds_tags(rds, subscription["EventSubscriptionArn"]))
        if tags.get(aset.OWNER_TAG_KEY) == set_name:
            owned.append(name)
    return sorted(owned)


def ensure_absent(module, clients):
    params = module.params
    wanted_tags = aset.desired_tags(params)
    existing = aset.describe_alarms_with_prefix(clients.cloudwatch, aset.alarm_prefix(params["name"]))
    plan = aset.plan_alarms({}, existing, aset.alarm_tag_reader(clients.cloudwatch), wanted_tags, state="absent")
    events = owned_event_subscriptions(clients.rds, params["name"]) if params["event_subscriptions"] else []
    changed = plan.changed or bool(events)
    if changed and not module.check_mode:
        aset.apply_alarm_plan(clients.cloudwatch, plan, wanted_tags)
        for name in events:
            aset.delete_event_subscription(clients.rds, name)
    result = alarm_result(plan)
    result.update(changed=changed,
                  event_subscriptions={"created": [], "updated": [], "deleted": events, "unchanged": []})
    if module._diff:
        result["diff"] = aset.alarm_diff(plan, existing)
    return result


def run(module):
    errors = aset.validate_request(module.params)
    if errors:
        module.fail_json(msg="Invalid parameters, nothing was changed: " + " ".join(errors), errors=errors)
    clients = Clients(module)
    if module.params["state"] == "present":
        return ensure_present(module, clients)
    return ensure_absent(module, clients)


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run, "converging the alarm set")


if __name__ == "__main__":
    main()
