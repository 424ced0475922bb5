"""rds_alarm_set against the lab: the alarm set of a prod-like MySQL instance and a burstable gp2 dev
instance, minimal writes (counted through the lab's call log), ownership, check mode, throttling."""

import json

import pytest

pytestmark = pytest.mark.lab

SET = "lab-cso"
PROD = "cso-lab-db"  # the seeded instance, resized below to the production class (db.c5.4xlarge)
DEV = "cso-dev-db"
TOPIC_NAME = "lab-rds-alerts"
OWNER_TAG = "cso-rds-hardening:alarm-set"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: alarm set
      cso.rds_hardening.rds_alarm_set: "{{ alarm_set_args }}"
"""


@pytest.fixture
def lab_instances(aws_lab):
    """The seeded instance on the production class, a burstable gp2 dev instance, and a topic key."""
    rds = aws_lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=PROD, DBInstanceClass="db.c5.4xlarge", ApplyImmediately=True)
    rds.create_db_instance(
        DBInstanceIdentifier=DEV, Engine="mysql", EngineVersion="8.0.42", DBInstanceClass="db.t3.medium",
        AllocatedStorage=20, StorageType="gp2", MasterUsername="admin", MasterUserPassword="lab-dev-password-1",
        DBSubnetGroupName=aws_lab.state["seed"]["network"]["db_subnet_group"])
    kms = aws_lab.boto3("kms")
    account = aws_lab.boto3("sts").get_caller_identity()["Account"]
    # AWS: SNS Developer Guide, "Configure AWS KMS permissions for AWS services": CloudWatch and RDS
    # events publish to the encrypted topic only if the key policy lets their service principals use it.
    key = kms.create_key(Description="SNS alerts", Policy=topic_key_policy(account))["KeyMetadata"]
    kms.create_alias(AliasName="alias/lab-sns", TargetKeyId=key["KeyId"])
    # A key with AWS's default key policy (the account only): the module must refuse it.
    default = kms.create_key(Description="SNS alerts, default key policy")["KeyMetadata"]
    kms.create_alias(AliasName="alias/lab-sns-default-policy", TargetKeyId=default["KeyId"])
    aws_lab.clear_calls()
    return key["Arn"]


def topic_key_policy(account):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "Publishers", "Effect": "Allow",
         "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.rds.amazonaws.com"]},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
    ]})


def args(**overrides):
    base = {
        "name": SET,
        "db_instance_identifiers": [PROD, DEV],
        "topic": {"name": TOPIC_NAME, "kms_master_key_id": "alias/lab-sns",
                  "subscriptions": [{"protocol": "email", "endpoint": "dba@example.com"}]},
        "connection_budgets": [{"service": "keystone", "max_connections": 20},
                               {"service": "cso", "max_connections": 50},
                               {"service": "rabbitmq", "max_connections": 10}],
        "tags": {"Environment": "lab"},
    }
    base.update(overrides)
    return {"alarm_set_args": base}


def alarms_of(result, identifier, key="created"):
    return sorted(name.split("/")[2] for name in result[key] if name.split("/")[1] == identifier)


def reasons_of(result, identifier):
    return {s["alarm"]: s["reason"] for s in result["not_applicable"] if s["db_instance_identifier"] == identifier}


def writes(aws_lab):
    return [call["action"] for call in aws_lab.mutating_calls()]


def stored_alarms(aws_lab, prefix=SET + "/"):
    query = {"AlarmNamePrefix": prefix} if prefix else {}
    pages = aws_lab.boto3("cloudwatch").get_paginator("describe_alarms").paginate(**query)
    return {alarm["AlarmName"]: alarm for page in pages for alarm in page["MetricAlarms"]}


def test_prod_and_dev_get_the_alarms_their_instances_need(aws_lab, lab_instances, run_playbook):
    run = run_playbook(PLAYBOOK, extra_vars=args())
    assert run.returncode == 0, run
    result = run.result("alarm set")
    # Both: phase 1's CPU / memory / storage / connections, and latency and queue depth.
    common = {"cpu_utilization", "freeable_memory", "free_storage_space", "database_connections", "read_latency",
              "write_latency", "disk_queue_depth"}
    assert set(alarms_of(result, PROD)) == common
    # dev is db.t3.medium (CPU credits, burstable EBS bandwidth) on a 20 GiB gp2 volume without autoscaling.
    assert set(alarms_of(result, DEV)) == common | {"cpu_credit_balance", "burst_balance", "ebs_byte_balance",
                                                    "ebs_io_balance", "free_storage_space_percent"}
    prod_why = reasons_of(result, PROD)
    assert "not a burstable" in prod_why["cpu_credit_balance"]
    assert "gp2 only" in prod_why["burst_balance"]
    assert "dedicated EBS bandwidth" in prod_why["ebs_io_balance"]
    assert "storage autoscaling is on" in prod_why["free_storage_space_percent"]
    assert "replica_lag" in reasons_of(result, DEV)

    stored = stored_alarms(aws_lab)
    assert set(stored) == set(result["created"])
    assert stored[f"{SET}/{PROD}/database_connections"]["Threshold"] == 80.0
    assert stored[f"{SET}/{PROD}/freeable_memory"]["Threshold"] == float(int(32 * 1024 ** 3 * 0.1))
    assert stored[f"{SET}/{DEV}/cpu_utilization"]["AlarmActions"] == [result["topic_arn"]]
    tags = aws_lab.boto3("cloudwatch").list_tags_for_resource(ResourceARN=stored[f"{SET}/{DEV}/burst_balance"]["AlarmArn"])
    assert {"Key": OWNER_TAG, "Value": SET} in tags["Tags"]

    attributes = aws_lab.boto3("sns").get_topic_attributes(TopicArn=result["topic_arn"])["Attributes"]
    assert attributes["KmsMasterKeyId"] == lab_instances
    subscriptions = aws_lab.boto3("sns").list_subscriptions_by_topic(TopicArn=result["topic_arn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "dba@example.com")]

    events = {s["CustSubscriptionId"]: s for s in
              aws_lab.boto3("rds").describe_event_subscriptions()["EventSubscriptionsList"]}
    instance_events = events[f"{SET}-db-instance"]
    assert instance_events["SnsTopicArn"] == result["topic_arn"]
    assert sorted(instance_events["EventCategoriesList"]) == ["configuration change", "failure", "maintenance"]
    assert sorted(instance_events["SourceIdsList"]) == sorted([PROD, DEV])
    assert {f"{SET}-db-parameter-group", f"{SET}-db-security-group"} <= set(events)


def test_second_run_changes_nothing_and_makes_no_write_call(aws_lab, lab_instances, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args()).returncode == 0
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=args())
    assert run.returncode == 0, run
    result = run.result("alarm set")
    assert result["changed"] is False
    assert result["created"] == result["updated"] == result["deleted"] == []
    assert len(result["unchanged"]) == 19
    assert writes(aws_lab) == []
    actions = [call["action"] for call in aws_lab.calls()]
    assert actions.count("DescribeAlarms") == 1
    assert "ListTagsForResource" not in actions  # unchanged alarms cost no tag read


def test_one_threshold_change_is_exactly_one_put_and_check_mode_writes_nothing(aws_lab, lab_instances, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args()).returncode == 0
    changed_args = args(alarms={"cpu_utilization": {"threshold": 90}})
    name = f"{SET}/{PROD}/cpu_utilization"
    names = [name, f"{SET}/{DEV}/cpu_utilization"]

    aws_lab.clear_calls()
    check = run_playbook(PLAYBOOK, extra_vars=changed_args, check=True, diff=True)
    assert check.returncode == 0, check
    planned = check.result("alarm set")
    assert planned["changed"] is True and sorted(planned["updated"]) == sorted(names)
    assert planned["changes"][name] == {"Threshold": {"before": 80.0, "after": 90.0}}
    assert writes(aws_lab) == []
    assert stored_alarms(aws_lab)[name]["Threshold"] == 80.0

    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=changed_args)
    assert run.returncode == 0, run
    assert sorted(run.result("alarm set")["updated"]) == sorted(names)
    assert writes(aws_lab) == ["PutMetricAlarm", "PutMetricAlarm"]  # one per instance whose alarm changed
    assert stored_alarms(aws_lab)[name]["Threshold"] == 90.0


def test_single_alarm_change_on_one_instance_is_one_put(aws_lab, lab_instances, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=[PROD])).returncode == 0
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=[PROD],
                                                 alarms={"disk_queue_depth": {"threshold": 32}}))
    assert run.returncode == 0, run
    assert run.result("alarm set")["updated"] == [f"{SET}/{PROD}/disk_queue_depth"]
    assert writes(aws_lab) == ["PutMetricAlarm"]


def test_removed_alarm_is_deleted_and_foreign_alarms_are_untouched(aws_lab, lab_instances, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args()).returncode == 0
    cloudwatch = aws_lab.boto3("cloudwatch")
    by_hand = dict(Namespace="AWS/RDS", MetricName="CPUUtilization", Statistic="Average", Period=300,
                   EvaluationPeriods=1, Threshold=50.0, ComparisonOperator="GreaterThanThreshold",
                   Dimensions=[{"Name": "DBInstanceIdentifier", "Value": PROD}])
    cloudwatch.put_metric_alarm(AlarmName=f"{SET}/{PROD}/made-by-hand", **by_hand)
    cloudwatch.put_metric_alarm(AlarmName="cso-lab-db-cpu-by-hand", **by_hand)
    aws_lab.clear_calls()

    run = run_playbook(PLAYBOOK, extra_vars=args(exclude=["disk_queue_depth"]))
    assert run.returncode == 0, run
    result = run.result("alarm set")
    assert sorted(result["deleted"]) == [f"{SET}/{DEV}/disk_queue_depth", f"{SET}/{PROD}/disk_queue_depth"]
    assert result["foreign"] == [f"{SET}/{PROD}/made-by-hand"]
    assert writes(aws_lab) == ["DeleteAlarms"]  # both in one batch
    remaining = set(stored_alarms(aws_lab, prefix=""))
    assert {f"{SET}/{PROD}/made-by-hand", "cso-lab-db-cpu-by-hand"} <= remaining
    assert f"{SET}/{PROD}/disk_queue_depth" not in remaining

    absent = run_playbook(PLAYBOOK, extra_vars={"alarm_set_args": {"name": SET, "state": "absent"}})
    assert absent.returncode == 0, absent
    assert sorted(set(stored_alarms(aws_lab, prefix=""))) == sorted([f"{SET}/{PROD}/made-by-hand", "cso-lab-db-cpu-by-hand"])
    events = aws_lab.boto3("rds").describe_event_subscriptions()["EventSubscriptionsList"]
    assert [e for e in events if e["CustSubscriptionId"].startswith(SET)] == []


@pytest.mark.parametrize("overrides, message", [
    ({"alarms": {"CPUUtilisation": {"threshold": 80}}}, "unknown alarm 'CPUUtilisation'"),
    ({"alarms": {"cpu_utilization": {"comparison": "Bigger"}}}, "not a CloudWatch comparison operator"),
    ({"alarms": {"cpu_utilization": {"threshold": -5}}}, "is negative"),
    ({"alarms": {"cpu_utilization": {"period": 45}}}, "not a multiple of 60"),
    ({"db_instance_identifiers": [PROD, "no-such-db"]}, "no-such-db do not exist"),
    ({"topic": {"arn": "arn:aws:sns:eu-west-2:123456789012:missing-topic"}}, "does not exist"),
    ({"topic": {"arn": "not-an-arn"}}, "not an SNS topic ARN"),
    ({"topic": {"name": TOPIC_NAME, "kms_master_key_id": "alias/does-not-exist"}}, "does not exist"),
    ({"topic": {"name": TOPIC_NAME, "kms_master_key_id": "alias/lab-sns-default-policy"}},
     "cloudwatch.amazonaws.com use kms:Decrypt"),
])
def test_bad_input_fails_before_any_write(aws_lab, lab_instances, run_playbook, overrides, message):
    run = run_playbook(PLAYBOOK, extra_vars=args(**overrides))
    assert run.returncode != 0
    assert message in run.result("alarm set")["msg"]
    assert writes(aws_lab) == []


def test_anomaly_band_alarm_creates_its_detector_and_is_idempotent(aws_lab, lab_instances, run_playbook):
    band_args = args(db_instance_identifiers=[PROD], include=["database_connections_anomaly"])
    run = run_playbook(PLAYBOOK, extra_vars=band_args)
    assert run.returncode == 0, run
    result = run.result("alarm set")
    assert result["anomaly_detectors_created"] == [PROD]
    band = stored_alarms(aws_lab)[f"{SET}/{PROD}/database_connections_anomaly"]
    assert band["ThresholdMetricId"] == "band"
    assert band["ComparisonOperator"] == "GreaterThanUpperThreshold"
    detectors = aws_lab.boto3("cloudwatch").describe_anomaly_detectors(Namespace="AWS/RDS",
                                                                      MetricName="DatabaseConnections")
    assert len(detectors["AnomalyDetectors"]) == 1
    aws_lab.clear_calls()
    again = run_playbook(PLAYBOOK, extra_vars=band_args)
    assert again.result("alarm set")["changed"] is False
    assert writes(aws_lab) == []


def test_thirty_percent_throttling_converges(aws_lab, lab_instances, run_playbook):
    aws_lab.set_faults(0.3, seed=7)
    run = run_playbook(PLAYBOOK, extra_vars=args())
    aws_lab.set_faults(0)
    assert run.returncode == 0, run
    assert any(call["faulted"] for call in aws_lab.calls())
    assert len(run.result("alarm set")["created"]) == 19
    aws_lab.clear_calls()
    again = run_playbook(PLAYBOOK, extra_vars=args())
    assert again.result("alarm set")["changed"] is False
    assert writes(aws_lab) == []


def test_diff_mode_shows_before_and_after(aws_lab, lab_instances, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=[PROD])).returncode == 0
    run = run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=[PROD], exclude=["read_latency"],
                                                 alarms={"write_latency": {"statistic": "p99"}}), check=True, diff=True)
    diff = run.result("alarm set")["diff"]
    assert diff["before"][f"{SET}/{PROD}/read_latency"]["MetricName"] == "ReadLatency"
    assert f"{SET}/{PROD}/read_latency" not in diff["after"]
    assert diff["after"][f"{SET}/{PROD}/write_latency"]["ExtendedStatistic"] == "p99"
    assert json.dumps(diff)  # serialisable


def test_moving_the_set_to_another_topic_modifies_the_event_subscriptions(aws_lab, lab_instances, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=[PROD])).returncode == 0
    other = aws_lab.boto3("sns").create_topic(Name="lab-other-alerts")["TopicArn"]
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=[PROD], topic={"arn": other}))
    assert run.returncode == 0, run
    result = run.result("alarm set")
    assert sorted(result["event_subscriptions"]["updated"]) == [f"{SET}-db-instance", f"{SET}-db-parameter-group",
                                                                f"{SET}-db-security-group"]
    assert writes(aws_lab).count("ModifyEventSubscription") == 3
