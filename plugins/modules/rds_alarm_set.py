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
          - Before any write the module reads the key policy (of this key, or of the key an existing topic has) and
            fails, naming the statement to add, unless it allows both service principals C(kms:Decrypt) and
            C(kms:GenerateDataKey*) (C(kms:*) and wildcards count; an C(aws:SourceAccount) or C(aws:SourceArn)
            condition is fine). An existing topic under the AWS-managed C(alias/aws/sns) key is refused too.
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
  - cso.rds_hardening.modules
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
plan:
  description:
    - Every change (made, or that check mode would make), in the plan shape all modules of the collection share
      (see also C(rds_hardened_instance)'s plan).
    - C(what) names the alarm, topic or event subscription; C(impact) is what clients of the database notice
      (always V(none) here); C(before) and C(after) are the values that change (V(null) when the object is
      created or deleted); C(action) is V(create), V(update), V(retag) or V(delete).
  returned: always
  type: list
  elements: dict
  sample:
    - {what: "alarm prod-cso/cso-prod-db/cpu_utilization", impact: none, action: update,
       before: {Threshold: 80.0}, after: {Threshold: 85.0}}
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

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_plan
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module


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


def ensure_present(module, clients):
    """Read everything and plan (no write), then write the plan unless in check mode; returns the result."""
    params = module.params
    if not params["topic"]:
        module.fail_json(msg="state=present needs topic (arn of an existing topic, or name of one to create).")
    instances = alarm_aws.read_instances(module, clients.rds)
    topic_plan = alarm_aws.plan_topic(module, clients)
    desired = alarm_model.desired_alarms(params, instances, topic_plan.arn)
    if desired.errors:
        module.fail_json(msg="Invalid alarm settings: " + " ".join(desired.errors))
    wanted_tags = alarm_model.desired_tags(params)
    existing = alarm_aws.describe_alarms_with_prefix(clients.cloudwatch, alarm_model.alarm_prefix(params["name"]))
    # amazon.aws convention: without tags, existing tags are left alone whatever purge_tags says.
    purge_tags = params["purge_tags"] and params["tags"] is not None
    plan = alarm_plan.plan_alarms(desired.alarms, existing, alarm_aws.alarm_tag_reader(clients.cloudwatch), wanted_tags,
                                  tag_check=params["tag_check"], purge_tags=purge_tags)
    if plan.conflicts:
        module.fail_json(msg=f"Alarm(s) {', '.join(plan.conflicts)} exist but do not carry the tag "
                             f"{alarm_model.OWNER_TAG_KEY}={params['name']}, so this set does not own them. Tag them to "
                             "adopt them, or delete them; nothing was changed.", conflicts=plan.conflicts)
    detectors = alarm_aws.missing_anomaly_detectors(clients.cloudwatch, desired.anomaly_instances)
    event_plan = alarm_aws.plan_events(module, clients.rds, instances, topic_plan.arn)

    changed = plan.changed or topic_plan.changed or bool(detectors) or event_plan.changed
    if changed and not module.check_mode:
        alarm_aws.apply_topic(clients, topic_plan, wanted_tags)
        for detector in detectors:
            alarm_aws.put_anomaly_detector(clients.cloudwatch, detector)
        alarm_aws.apply_alarm_plan(clients.cloudwatch, plan, wanted_tags, concurrency=params["write_concurrency"])
        alarm_aws.apply_events(clients.rds, event_plan, wanted_tags)

    result = plan.result()
    result.update(
        changed=changed,
        topic_arn=topic_plan.arn,
        topic=topic_plan.result(),
        not_applicable=desired.skipped,
        anomaly_detectors_created=[d["Dimensions"][0]["Value"] for d in detectors],
        event_subscriptions=event_plan.result(),
        plan=topic_plan.items() + plan.items(existing) + event_plan.items(),
    )
    if module._diff:
        result["diff"] = alarm_plan.alarm_diff(plan, existing)
    return result


def ensure_absent(module, clients):
    params = module.params
    wanted_tags = alarm_model.desired_tags(params)
    existing = alarm_aws.describe_alarms_with_prefix(clients.cloudwatch, alarm_model.alarm_prefix(params["name"]))
    plan = alarm_plan.plan_alarms({}, existing, alarm_aws.alarm_tag_reader(clients.cloudwatch), wanted_tags,
                                  state="absent")
    event_plan = alarm_aws.plan_events_absent(clients.rds, params["name"]) if params["event_subscriptions"] \
        else alarm_plan.EventPlan()
    changed = plan.changed or event_plan.changed
    if changed and not module.check_mode:
        alarm_aws.apply_alarm_plan(clients.cloudwatch, plan, wanted_tags)
        alarm_aws.apply_events(clients.rds, event_plan, wanted_tags)
    result = plan.result()
    result.update(changed=changed, event_subscriptions=event_plan.result(),
                  plan=plan.items(existing) + event_plan.items())
    if module._diff:
        result["diff"] = alarm_plan.alarm_diff(plan, existing)
    return result


def run(module):
    errors = alarm_model.validate_request(module.params)
    if errors:
        module.fail_json(msg="Invalid parameters, nothing was changed: " + " ".join(errors), errors=errors)
    clients = alarm_aws.clients(module)
    if module.params["state"] == "present":
        return ensure_present(module, clients)
    return ensure_absent(module, clients)


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run, "converging the alarm set")


if __name__ == "__main__":
    main()
