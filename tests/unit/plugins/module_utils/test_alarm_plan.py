"""Diff and convergence of an alarm set (alarm_plan, applied with alarm_aws), with botocore's Stubber checking the exact call sequence.

The Stubber fails a test on any call that is not expected, in the expected order with the
expected parameters, so these tests prove: one paginated DescribeAlarms, tag reads only where
ownership or tags decide something, puts only for differing alarms, deletes only of owned ones,
in batches of at most 100.
"""

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_plan

TOPIC = "arn:aws:sns:eu-west-2:123456789012:alerts"
ARN = "arn:aws:cloudwatch:eu-west-2:123456789012:alarm:"
OWNED = [{"Key": alarm_model.OWNER_TAG_KEY, "Value": "prod"}]
WANTED_TAGS = {alarm_model.OWNER_TAG_KEY: "prod"}


@pytest.fixture
def cloudwatch():
    client = boto3.client("cloudwatch", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff(**alarm_aws.RETRY))
        stubber.assert_no_pending_responses()


def request(key, threshold=80.0, instance="db"):
    return alarm_model.static_alarm_request(
        alarm_model.alarm_name("prod", instance, key), "CPUUtilization", [{"Name": "DBInstanceIdentifier", "Value": instance}],
        {"period": 300, "evaluation_periods": 2, "datapoints_to_alarm": 2, "threshold": threshold,
         "comparison": "GreaterThanThreshold", "statistic": "Average", "treat_missing_data": "missing"},
        f"{key} on {instance}", {"AlarmActions": [TOPIC], "OKActions": [TOPIC], "InsufficientDataActions": []})


def described(alarm_request, **changes):
    """The alarm as DescribeAlarms returns it (AWS adds ARN, state; omits empty fields)."""
    alarm = {key: value for key, value in alarm_request.items() if value != []}
    alarm.update(AlarmArn=ARN + alarm_request["AlarmName"], StateValue="OK")
    alarm.update(changes)
    return alarm


def expect_describe(cloudwatch, alarms, prefix="prod/"):
    cloudwatch.stubber.add_response("describe_alarms", {"MetricAlarms": alarms},
                                    {"AlarmNamePrefix": prefix, "AlarmTypes": ["MetricAlarm"]})


def expect_tags(cloudwatch, name, tags):
    cloudwatch.stubber.add_response("list_tags_for_resource", {"Tags": tags}, {"ResourceARN": ARN + name})


def converge(cloudwatch, desired, tag_check="changed"):
    existing = alarm_aws.describe_alarms_with_prefix(cloudwatch, "prod/")
    plan = alarm_plan.plan_alarms(desired, existing, alarm_aws.alarm_tag_reader(cloudwatch), WANTED_TAGS, tag_check=tag_check)
    alarm_aws.apply_alarm_plan(cloudwatch, plan, WANTED_TAGS)
    return plan


def test_equal_alarms_cost_one_describe_and_nothing_else(cloudwatch):
    desired = {r["AlarmName"]: r for r in (request("a"), request("b"))}
    expect_describe(cloudwatch, [described(r) for r in desired.values()])
    plan = converge(cloudwatch, desired)
    assert plan.unchanged == ["prod/db/a", "prod/db/b"] and not plan.changed


def test_aws_defaults_do_not_count_as_differences(cloudwatch):
    wanted = request("a")
    stored = described(wanted, Threshold=80, AlarmActions=[TOPIC], OKActions=[TOPIC], InsufficientDataActions=[])
    stored.pop("DatapointsToAlarm")  # AWS omits it when it equals EvaluationPeriods
    stored.pop("TreatMissingData")  # and TreatMissingData when it is the default, missing
    expect_describe(cloudwatch, [stored])
    assert converge(cloudwatch, {wanted["AlarmName"]: wanted}).unchanged == ["prod/db/a"]


def test_one_threshold_change_is_one_put_after_an_ownership_check(cloudwatch):
    same, changed = request("a"), request("b", threshold=90.0)
    expect_describe(cloudwatch, [described(same), described(request("b"))])
    expect_tags(cloudwatch, "prod/db/b", OWNED)
    cloudwatch.stubber.add_response("put_metric_alarm", {}, changed)
    plan = converge(cloudwatch, {same["AlarmName"]: same, changed["AlarmName"]: changed})
    assert [update.name for update in plan.update] == ["prod/db/b"]
    assert plan.update[0].changes == {"Threshold": {"before": 80.0, "after": 90.0}}


def test_new_alarms_are_created_with_tags(cloudwatch):
    new = request("a")
    expect_describe(cloudwatch, [])
    cloudwatch.stubber.add_response("put_metric_alarm", {}, dict(new, Tags=OWNED))
    assert [r["AlarmName"] for r in converge(cloudwatch, {new["AlarmName"]: new}).create] == ["prod/db/a"]


def test_only_owned_unwanted_alarms_are_deleted(cloudwatch):
    expect_describe(cloudwatch, [described(request("gone")), described(request("manual")),
                                 described(request("other-set"))])
    expect_tags(cloudwatch, "prod/db/gone", OWNED)
    expect_tags(cloudwatch, "prod/db/manual", [])
    expect_tags(cloudwatch, "prod/db/other-set", [{"Key": alarm_model.OWNER_TAG_KEY, "Value": "prod-other"}])
    cloudwatch.stubber.add_response("delete_alarms", {}, {"AlarmNames": ["prod/db/gone"]})
    plan = converge(cloudwatch, {})
    assert plan.delete == ["prod/db/gone"]
    assert plan.foreign == ["prod/db/manual", "prod/db/other-set"]


def test_deletes_go_in_batches_of_100(cloudwatch):
    names = [f"a{index:03d}" for index in range(250)]
    expect_describe(cloudwatch, [described(request(name)) for name in names])
    for name in sorted(names):
        expect_tags(cloudwatch, f"prod/db/{name}", OWNED)
    full = sorted(f"prod/db/{name}" for name in names)
    for start in (0, 100, 200):
        cloudwatch.stubber.add_response("delete_alarms", {}, {"AlarmNames": full[start:start + 100]})
    assert len(converge(cloudwatch, {}).delete) == 250


def test_an_unowned_alarm_with_a_wanted_name_is_a_conflict_and_nothing_is_written(cloudwatch):
    wanted = request("a", threshold=95.0)
    expect_describe(cloudwatch, [described(request("a"))])
    expect_tags(cloudwatch, "prod/db/a", [])
    existing = alarm_aws.describe_alarms_with_prefix(cloudwatch, "prod/")
    plan = alarm_plan.plan_alarms({wanted["AlarmName"]: wanted}, existing, alarm_aws.alarm_tag_reader(cloudwatch), WANTED_TAGS)
    assert plan.conflicts == ["prod/db/a"] and not plan.update


def test_tag_check_all_retags_unchanged_alarms(cloudwatch):
    wanted = request("a")
    expect_describe(cloudwatch, [described(wanted)])
    expect_tags(cloudwatch, "prod/db/a", OWNED + [{"Key": "Team", "Value": "old"}])
    cloudwatch.stubber.add_response("untag_resource", {}, {"ResourceARN": ARN + "prod/db/a", "TagKeys": ["Team"]})
    plan = converge(cloudwatch, {wanted["AlarmName"]: wanted}, tag_check="all")
    assert plan.unchanged == ["prod/db/a"] and [retag.name for retag in plan.retag] == ["prod/db/a"]


def test_throttled_put_is_retried(cloudwatch, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _seconds: None)
    new = request("a")
    expect_describe(cloudwatch, [])
    cloudwatch.stubber.add_client_error("put_metric_alarm", "Throttling", "Rate exceeded", 400)
    cloudwatch.stubber.add_response("put_metric_alarm", {}, dict(new, Tags=OWNED))
    assert len(converge(cloudwatch, {new["AlarmName"]: new}).create) == 1


def test_anomaly_band_alarm_round_trip_is_equal():
    band = alarm_model.anomaly_alarm_request(
        "prod/db/band", "DatabaseConnections", [{"Name": "DBInstanceIdentifier", "Value": "db"}],
        {"period": 300, "evaluation_periods": 3, "datapoints_to_alarm": 3, "comparison": "GreaterThanUpperThreshold",
         "statistic": "Average", "treat_missing_data": "missing", "band_width": 2}, "band", {"AlarmActions": [TOPIC]})
    stored = described(band, Metrics=[dict(q, ReturnData=True) for q in band["Metrics"]])
    assert alarm_plan.alarm_changes(stored, band) == {}
    wider = dict(band, Metrics=[band["Metrics"][0], dict(band["Metrics"][1], Expression="ANOMALY_DETECTION_BAND(m1, 3)")])
    assert set(alarm_plan.alarm_changes(stored, wider)) == {"Metrics"}


def test_event_subscription_changes_split_by_api():
    request = alarm_plan.desired_event_subscriptions("prod", TOPIC, [{"DBInstanceIdentifier": "db", "DBParameterGroups": [
        {"DBParameterGroupName": "pg"}]}])["prod-db-instance"]
    existing = {"SnsTopicArn": TOPIC, "SourceType": "db-instance", "Enabled": True,
                "EventCategoriesList": ["failure"], "SourceIdsList": ["old"]}
    update = alarm_plan.event_subscription_changes(existing, request)
    assert update.modify == {"EventCategories": ["configuration change", "failure", "maintenance"]}
    assert (update.add, update.remove) == (["db"], ["old"])
    item = alarm_plan.EventPlan(update={update.name: update}).items()[0]
    assert set(item) == {"what", "impact", "before", "after", "action"} and item["impact"] == "none"
    assert item["before"] == {"EventCategories": ["failure"], "SourceIds": ["old"]}
    assert item["after"] == {"EventCategories": ["configuration change", "failure", "maintenance"], "SourceIds": ["db"]}
