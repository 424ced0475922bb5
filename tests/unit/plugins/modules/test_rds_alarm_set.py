"""The module's whole read/plan/write flow against stubbed clients: exact calls, no write in check mode,
bad input rejected before any write."""

import json

from botocore.stub import ANY

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_plan
from ansible_collections.cso.rds_hardening.plugins.modules import rds_alarm_set
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

REGION = "eu-west-2"
ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DB = {"DBInstanceIdentifier": "db", "Engine": "mysql", "DBInstanceClass": "db.t3.large", "StorageType": "gp3",
      "AllocatedStorage": 50, "MaxAllocatedStorage": 1000, "DBParameterGroups": [{"DBParameterGroupName": "default.mysql8.0"}]}

ROOT_STATEMENT = {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                  "Action": "kms:*", "Resource": "*"}
SERVICES_STATEMENT = {"Sid": "services", "Effect": "Allow",
                      "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.rds.amazonaws.com"]},
                      "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
                      "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}
GOOD_POLICY = {"Version": "2012-10-17", "Statement": [ROOT_STATEMENT, SERVICES_STATEMENT]}


def make_module(params, check_mode=False):
    return StubbedModule(rds_alarm_set.argument_spec(), params, check_mode, region=REGION)


def base_params(**overrides):
    params = {"name": "prod", "db_instance_identifiers": ["db"],
              "topic": {"name": "alerts", "arn": None, "kms_master_key_id": "alias/sns", "subscriptions": []},
              "connection_budgets": [{"service": "keystone", "max_connections": 20}]}
    params.update(overrides)
    return params


def expect_reads(module, alarms=(), policy=None):
    policy = policy or GOOD_POLICY
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]},
                                    {"Filters": [{"Name": "db-instance-id", "Values": ["db"]}]})
    module.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/x",
                                                            "UserId": "x"})
    module.stub("sns").add_client_error("get_topic_attributes", "NotFound", "Topic does not exist", 404,
                                        expected_params={"TopicArn": TOPIC_ARN})
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "Arn": KEY_ARN, "KeyState": "Enabled", "KeyManager": "CUSTOMER"}},
        {"KeyId": "alias/sns"})
    module.stub("kms").add_response("get_key_policy", {"Policy": json.dumps(policy)},
                                    {"KeyId": KEY_ARN, "PolicyName": "default"})
    module.stub("cloudwatch").add_response("describe_alarms", {"MetricAlarms": list(alarms)},
                                           {"AlarmNamePrefix": "prod/", "AlarmTypes": ["MetricAlarm"]})
    module.stub("rds").add_response("describe_event_subscriptions", {"EventSubscriptionsList": []}, {})


def run(module):
    try:
        outcome = Exited(rds_alarm_set.ensure_present(module, alarm_aws.clients(module)))
    except Failed as failed:
        outcome = failed
    for stubber in module.stubbers.values():
        stubber.assert_no_pending_responses()
    return outcome


def test_check_mode_reads_everything_and_writes_nothing():
    module = make_module(base_params(), check_mode=True)
    expect_reads(module)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    result = outcome.result
    assert result["changed"] is True
    assert result["topic_arn"] == TOPIC_ARN and result["topic"]["created"] is True
    assert "prod/db/cpu_credit_balance" in result["created"]
    assert "prod/db/burst_balance" not in result["created"]
    assert sorted(result["event_subscriptions"]["created"]) == ["prod-db-instance", "prod-db-parameter-group",
                                                                "prod-db-security-group"]
    assert set(result["diff"]["after"]) == set(result["created"])
    # The plan shape every module shares: what, impact, before, after.
    assert all({"what", "impact", "before", "after"} <= set(item) for item in result["plan"])
    planned = {item["what"]: item for item in result["plan"]}
    assert planned[f"topic {TOPIC_ARN}"]["after"] == {"kms_master_key_id": KEY_ARN}
    assert planned["alarm prod/db/cpu_credit_balance"]["before"] is None
    assert planned["alarm prod/db/cpu_credit_balance"]["after"]["MetricName"] == "CPUCreditBalance"
    assert planned["event subscription prod-db-instance"]["after"]["SourceIds"] == ["db"]
    assert len(result["plan"]) == 1 + len(result["created"]) + 3


def test_apply_writes_topic_alarms_and_events_in_order():
    module = make_module(base_params(write_concurrency=1))  # the Stubber checks the order
    expect_reads(module)
    module.stub("sns").add_response("create_topic", {"TopicArn": TOPIC_ARN},
                                    {"Name": "alerts", "Attributes": {"KmsMasterKeyId": KEY_ARN}, "Tags": ANY})
    desired = alarm_model.desired_alarms(dict(module.params), [DB], TOPIC_ARN)
    for name in sorted(desired.alarms):
        module.stub("cloudwatch").add_response("put_metric_alarm", {}, dict(desired.alarms[name], Tags=ANY))
    for _ in range(3):
        module.stub("rds").add_response("create_event_subscription", {"EventSubscription": {}}, None)
    result = run(module).result
    assert result["changed"] and len(result["created"]) == len(desired.alarms)


def test_unknown_instance_fails_before_any_write():
    module = make_module(base_params(db_instance_identifiers=["db", "nope"]))
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]},
                                    {"Filters": [{"Name": "db-instance-id", "Values": ["db", "nope"]}]})
    outcome = run(module)
    assert isinstance(outcome, Failed) and "nope" in outcome.result["msg"]


def test_aws_managed_topic_key_is_refused_before_any_write():
    module = make_module(base_params())
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]}, None)
    module.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/x",
                                                            "UserId": "x"})
    module.stub("sns").add_client_error("get_topic_attributes", "NotFound", "no", 404)
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {"KeyId": "k", "Arn": KEY_ARN, "KeyState": "Enabled",
                                                                     "KeyManager": "AWS"}})
    outcome = run(module)
    assert isinstance(outcome, Failed) and "customer-managed" in outcome.result["msg"]


def test_topic_in_another_region_is_refused():
    module = make_module(base_params(topic={"arn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts", "name": None,
                                           "kms_master_key_id": None, "subscriptions": []}))
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]}, None)
    outcome = run(module)
    assert isinstance(outcome, Failed) and "own region" in outcome.result["msg"]


def test_changed_event_subscription_is_modified_and_its_sources_moved():
    module = make_module(base_params())
    rds = alarm_aws.clients(module).rds
    stubber = module.stub("rds")
    stubber.add_response("modify_event_subscription", {"EventSubscription": {}},
                         {"SubscriptionName": "prod-db-instance", "SnsTopicArn": TOPIC_ARN})
    stubber.add_response("add_source_identifier_to_subscription", {"EventSubscription": {}},
                         {"SubscriptionName": "prod-db-instance", "SourceIdentifier": "db"})
    stubber.add_response("remove_source_identifier_from_subscription", {"EventSubscription": {}},
                         {"SubscriptionName": "prod-db-instance", "SourceIdentifier": "old"})
    existing = {"SnsTopicArn": "arn:aws:sns:eu-west-2:123456789012:old", "SourceType": "db-instance", "Enabled": True,
                "EventCategoriesList": ["configuration change", "failure", "maintenance"], "SourceIdsList": ["old"]}
    wanted = alarm_plan.desired_event_subscriptions("prod", TOPIC_ARN, [DB])["prod-db-instance"]
    update = {"prod-db-instance": alarm_plan.event_subscription_changes(existing, wanted)}
    alarm_aws.apply_events(rds, alarm_plan.EventPlan(update=update), {})
    stubber.assert_no_pending_responses()


def test_topic_key_whose_policy_misses_cloudwatch_fails_before_any_write():
    events_only = dict(SERVICES_STATEMENT, Principal={"Service": "events.rds.amazonaws.com"})
    module = make_module(base_params())
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]}, None)
    module.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/x",
                                                            "UserId": "x"})
    module.stub("sns").add_client_error("get_topic_attributes", "NotFound", "no", 404)
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {"KeyId": "k", "Arn": KEY_ARN, "KeyState": "Enabled",
                                                                     "KeyManager": "CUSTOMER"}})
    module.stub("kms").add_response("get_key_policy", {"Policy": json.dumps(
        {"Version": "2012-10-17", "Statement": [ROOT_STATEMENT, events_only]})}, {"KeyId": KEY_ARN, "PolicyName": "default"})
    outcome = run(module)  # the Stubber fails on any call not queued: no write can have been made
    assert isinstance(outcome, Failed), outcome.result
    msg = outcome.result["msg"]
    assert "cloudwatch.amazonaws.com use kms:Decrypt" in msg and "cloudwatch.amazonaws.com use kms:GenerateDataKey" in msg
    assert "events.rds.amazonaws.com use" not in msg
    assert '"aws:SourceAccount": "123456789012"' in msg and "kms:GenerateDataKey*" in msg
    assert outcome.result["missing_grants"] == [{"service": "cloudwatch.amazonaws.com", "action": "kms:Decrypt"},
                                                {"service": "cloudwatch.amazonaws.com", "action": "kms:GenerateDataKey"}]


def test_topic_key_with_the_services_in_its_policy_proceeds():
    module = make_module(base_params(), check_mode=True)
    expect_reads(module, policy={"Statement": [ROOT_STATEMENT, dict(SERVICES_STATEMENT, Action="kms:*")]})
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True and outcome.result["topic"]["kms_master_key_id"] == KEY_ARN


def test_existing_topic_under_the_aws_managed_sns_key_is_refused():
    aws_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/aws-managed"
    module = make_module(base_params(topic={"name": "alerts", "arn": None, "kms_master_key_id": None,
                                            "subscriptions": []}))
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]}, None)
    module.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/x",
                                                            "UserId": "x"})
    module.stub("sns").add_response("get_topic_attributes", {"Attributes": {"TopicArn": TOPIC_ARN,
                                                                            "KmsMasterKeyId": "alias/aws/sns"}})
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {"KeyId": "aws-managed", "Arn": aws_key,
                                                                     "KeyState": "Enabled", "KeyManager": "AWS"}},
                                    {"KeyId": "alias/aws/sns"})
    outcome = run(module)
    assert isinstance(outcome, Failed) and "AWS-managed key" in outcome.result["msg"]
    assert "alias/aws/sns" in outcome.result["msg"] and "customer-managed" in outcome.result["msg"]


def test_an_unencrypted_topic_given_by_arn_costs_no_kms_client():
    # Each client is a boto3 session's worth of start-up time; a run only creates those it calls.
    module = make_module(base_params(topic={"name": None, "arn": TOPIC_ARN, "kms_master_key_id": None,
                                            "subscriptions": []}, event_subscriptions=False), check_mode=True)
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [DB]},
                                    {"Filters": [{"Name": "db-instance-id", "Values": ["db"]}]})
    module.stub("sns").add_response("get_topic_attributes", {"Attributes": {"TopicArn": TOPIC_ARN}},
                                    {"TopicArn": TOPIC_ARN})
    module.stub("cloudwatch").add_response("describe_alarms", {"MetricAlarms": []},
                                           {"AlarmNamePrefix": "prod/", "AlarmTypes": ["MetricAlarm"]})
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert sorted(module.clients) == ["cloudwatch", "rds", "sns"]
    assert any("is not encrypted" in warning for warning in module.warnings)
