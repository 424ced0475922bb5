"""Contract: modify_event_subscription, add_/remove_source_identifier_to/from_subscription."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
NAME = "lab-events"
SHAPE = {"CustSubscriptionId", "SnsTopicArn", "Status", "SourceType", "SourceIdsList", "EventCategoriesList",
         "Enabled", "EventSubscriptionArn"}


def _setup(lab, **create):
    lab.reset()
    rds, sns = lab.boto3("rds"), lab.boto3("sns")
    topic = sns.create_topic(Name="lab-events-a")["TopicArn"]
    request = dict(SubscriptionName=NAME, SnsTopicArn=topic, SourceType="db-instance",
                   EventCategories=["failure"], SourceIds=[DB], Enabled=True)
    request.update(create)
    rds.create_event_subscription(**{key: value for key, value in request.items() if value is not None})
    return rds, sns, topic


def _described(rds, name=NAME):
    return rds.describe_event_subscriptions(SubscriptionName=name)["EventSubscriptionsList"][0]


def _error(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"], error.value.response["ResponseMetadata"]["HTTPStatusCode"]


# --- ModifyEventSubscription --------------------------------------------------------------------


def test_modify_changes_topic_categories_and_enabled(lab):
    rds, sns, _topic = _setup(lab)
    other = sns.create_topic(Name="lab-events-b")["TopicArn"]

    answer = rds.modify_event_subscription(SubscriptionName=NAME, SnsTopicArn=other,
                                           EventCategories=["failure", "maintenance"], Enabled=False)

    modified = answer["EventSubscription"]
    assert set(modified) == SHAPE
    assert modified["CustSubscriptionId"] == NAME
    assert modified["SnsTopicArn"] == other
    assert modified["SourceType"] == "db-instance"
    assert modified["EventCategoriesList"] == ["failure", "maintenance"]
    assert modified["SourceIdsList"] == [DB]  # the source identifiers are not changed by this call
    assert modified["Enabled"] is False
    assert modified["Status"] == "active"
    assert modified["EventSubscriptionArn"].endswith(f":es:{NAME}")
    assert _described(rds) == modified


def test_modify_with_only_the_name_changes_nothing(lab):
    rds, _sns, _topic = _setup(lab)
    before = _described(rds)

    after = rds.modify_event_subscription(SubscriptionName=NAME)["EventSubscription"]

    assert after == before


def test_modify_source_type_keeps_categories_valid_for_it(lab):
    rds, _sns, _topic = _setup(lab, EventCategories=["configuration change"], SourceIds=[])

    answer = rds.modify_event_subscription(SubscriptionName=NAME, SourceType="db-parameter-group")

    modified = answer["EventSubscription"]
    assert modified["SourceType"] == "db-parameter-group"
    assert modified["EventCategoriesList"] == ["configuration change"]


def test_modify_unknown_subscription(lab):
    rds, _sns, _topic = _setup(lab)

    assert _error(rds.modify_event_subscription, SubscriptionName="no-such-subscription",
                  Enabled=True) == ("SubscriptionNotFound", 404)


def test_modify_to_a_topic_that_does_not_exist(lab):
    rds, _sns, topic = _setup(lab)
    missing = topic.rsplit(":", 1)[0] + ":no-such-topic"

    assert _error(rds.modify_event_subscription, SubscriptionName=NAME, SnsTopicArn=missing,
                  Enabled=False) == ("SNSTopicArnNotFound", 404)
    assert _error(rds.modify_event_subscription, SubscriptionName=NAME,
                  SnsTopicArn="not-an-arn") == ("SNSTopicArnNotFound", 404)
    unchanged = _described(rds)
    assert unchanged["SnsTopicArn"] == topic and unchanged["Enabled"] is True  # a failed call changes nothing


def test_modify_to_a_topic_of_another_region(lab):
    rds, _sns, _topic = _setup(lab)
    elsewhere = lab.boto3("sns", region="us-east-1").create_topic(Name="lab-events-elsewhere")["TopicArn"]

    assert _error(rds.modify_event_subscription, SubscriptionName=NAME,
                  SnsTopicArn=elsewhere) == ("SNSTopicArnNotFound", 404)


def test_modify_with_a_category_the_source_type_does_not_have(lab):
    rds, _sns, _topic = _setup(lab)

    assert _error(rds.modify_event_subscription, SubscriptionName=NAME,
                  EventCategories=["failure", "no such category"]) == ("SubscriptionCategoryNotFound", 404)
    assert _error(rds.modify_event_subscription, SubscriptionName=NAME, SourceType="db-parameter-group",
                  EventCategories=["low storage"]) == ("SubscriptionCategoryNotFound", 404)
    # changing only the source type: the kept categories must exist for the new one
    assert _error(rds.modify_event_subscription, SubscriptionName=NAME,
                  SourceType="db-parameter-group") == ("SubscriptionCategoryNotFound", 404)
    unchanged = _described(rds)
    assert unchanged["SourceType"] == "db-instance" and unchanged["EventCategoriesList"] == ["failure"]


def test_modify_with_an_invalid_source_type(lab):
    rds, _sns, _topic = _setup(lab)

    assert _error(rds.modify_event_subscription, SubscriptionName=NAME,
                  SourceType="db-banana") == ("InvalidParameterValue", 400)
    assert _described(rds)["SourceType"] == "db-instance"


# --- AddSourceIdentifierToSubscription ----------------------------------------------------------


def test_add_an_instance_and_adding_it_again_is_a_no_op(lab):
    rds, _sns, _topic = _setup(lab, SourceIds=[])

    added = rds.add_source_identifier_to_subscription(SubscriptionName=NAME, SourceIdentifier=DB)["EventSubscription"]
    again = rds.add_source_identifier_to_subscription(SubscriptionName=NAME, SourceIdentifier=DB)["EventSubscription"]

    assert set(added) == SHAPE
    assert added["SourceIdsList"] == [DB]
    assert again == added
    assert _described(rds)["SourceIdsList"] == [DB]


def test_add_a_parameter_group_including_an_aws_default_one(lab):
    rds, _sns, _topic = _setup(lab, SourceType="db-parameter-group", EventCategories=["configuration change"],
                               SourceIds=[])
    rds.create_db_parameter_group(DBParameterGroupName="lab-events-pg", DBParameterGroupFamily="mysql8.0",
                                  Description="event subscription source")

    rds.add_source_identifier_to_subscription(SubscriptionName=NAME, SourceIdentifier="lab-events-pg")
    answer = rds.add_source_identifier_to_subscription(SubscriptionName=NAME, SourceIdentifier="default.mysql8.0")

    assert answer["EventSubscription"]["SourceIdsList"] == ["lab-events-pg", "default.mysql8.0"]


def test_add_to_an_unknown_subscription(lab):
    rds, _sns, _topic = _setup(lab)

    assert _error(rds.add_source_identifier_to_subscription, SubscriptionName="no-such-subscription",
                  SourceIdentifier=DB) == ("SubscriptionNotFound", 404)


def test_add_a_source_that_does_not_exist(lab):
    rds, _sns, _topic = _setup(lab, SourceIds=[])

    assert _error(rds.add_source_identifier_to_subscription, SubscriptionName=NAME,
                  SourceIdentifier="no-such-db") == ("SourceNotFound", 404)
    assert _described(rds)["SourceIdsList"] == []


def test_add_a_parameter_group_that_does_not_exist(lab):
    rds, _sns, _topic = _setup(lab, SourceType="db-parameter-group", EventCategories=["configuration change"],
                               SourceIds=[])

    assert _error(rds.add_source_identifier_to_subscription, SubscriptionName=NAME,
                  SourceIdentifier="no-such-group") == ("SourceNotFound", 404)
    # an instance identifier is not a source of a parameter-group subscription
    assert _error(rds.add_source_identifier_to_subscription, SubscriptionName=NAME,
                  SourceIdentifier=DB) == ("SourceNotFound", 404)


def test_add_to_a_subscription_without_a_source_type(lab):
    rds, _sns, _topic = _setup(lab, SourceType=None, EventCategories=[], SourceIds=[])

    assert _error(rds.add_source_identifier_to_subscription, SubscriptionName=NAME,
                  SourceIdentifier=DB) == ("SourceNotFound", 404)


# --- RemoveSourceIdentifierFromSubscription -----------------------------------------------------


def test_remove_a_source(lab):
    rds, _sns, _topic = _setup(lab)

    removed = rds.remove_source_identifier_from_subscription(SubscriptionName=NAME,
                                                             SourceIdentifier=DB)["EventSubscription"]

    assert set(removed) == SHAPE
    assert removed["SourceIdsList"] == []
    assert _described(rds)["SourceIdsList"] == []


def test_remove_from_an_unknown_subscription(lab):
    rds, _sns, _topic = _setup(lab)

    assert _error(rds.remove_source_identifier_from_subscription, SubscriptionName="no-such-subscription",
                  SourceIdentifier=DB) == ("SubscriptionNotFound", 404)


def test_remove_a_source_that_is_not_in_the_subscription(lab):
    rds, _sns, _topic = _setup(lab)

    assert _error(rds.remove_source_identifier_from_subscription, SubscriptionName=NAME,
                  SourceIdentifier="no-such-db") == ("SourceNotFound", 404)
    assert _described(rds)["SourceIdsList"] == [DB]
