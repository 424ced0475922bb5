"""Which key policies let CloudWatch and RDS events use an SNS topic's key (kms_policy, pure)."""

import json

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import kms_policy

ACCOUNT = "123456789012"
ROOT = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
ALL_MISSING = [(service, action) for service in kms_policy.TOPIC_PUBLISHERS for action in kms_policy.TOPIC_KEY_ACTIONS]


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": [ROOT, *statements]})


def allow(principal, action, **extra):
    return dict({"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"}, **extra)


BOTH = {"Service": ["cloudwatch.amazonaws.com", "events.rds.amazonaws.com"]}


def test_aws_default_key_policy_allows_neither_service():
    assert kms_policy.missing_grants(policy()) == ALL_MISSING


@pytest.mark.parametrize("statements", [
    [allow(BOTH, ["kms:Decrypt", "kms:GenerateDataKey*"])],
    [allow(BOTH, "kms:*")],
    [allow(BOTH, "kms:*", Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})],
    [allow({"Service": "cloudwatch.amazonaws.com"}, ["kms:Decrypt", "kms:GenerateDataKey"]),
     allow({"Service": "events.rds.amazonaws.com"}, ["kms:decrypt", "kms:GenerateDataKey*"])],
    [allow(BOTH, "kms:Decrypt"), allow(BOTH, "kms:Generate*")],
], ids=["list-and-wildcard", "kms-star", "source-account", "string-principals", "split-statements"])
def test_policies_that_let_both_services_publish(statements):
    assert kms_policy.missing_grants(policy(*statements)) == []


def test_one_service_missing_is_named():
    missing = kms_policy.missing_grants(policy(allow({"Service": "events.rds.amazonaws.com"}, "kms:*")))
    assert missing == [("cloudwatch.amazonaws.com", "kms:Decrypt"), ("cloudwatch.amazonaws.com", "kms:GenerateDataKey")]


def test_generate_data_key_without_plaintext_is_not_enough():
    statements = allow(BOTH, ["kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"])
    assert {action for _service, action in kms_policy.missing_grants(policy(statements))} == {"kms:GenerateDataKey"}


def test_a_condition_that_can_block_the_service_does_not_count():
    statement = allow(BOTH, "kms:*", Condition={"StringEquals": {"kms:ViaService": "rds.eu-west-2.amazonaws.com"}})
    assert kms_policy.missing_grants(policy(statement)) == ALL_MISSING


def test_an_explicit_deny_wins():
    deny = {"Effect": "Deny", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*"}
    assert kms_policy.missing_grants(policy(allow(BOTH, "kms:*"), deny)) == [("cloudwatch.amazonaws.com", "kms:Decrypt")]


def test_the_statement_to_add_satisfies_the_check():
    assert kms_policy.missing_grants(policy(kms_policy.topic_key_statement(ACCOUNT))) == []
