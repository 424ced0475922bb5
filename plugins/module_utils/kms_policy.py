# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Does a KMS key policy let AWS services use the key? Pure: reads a policy document, calls nothing.

AWS: Amazon SNS Developer Guide, "Configure AWS KMS permissions for AWS services": CloudWatch alarms
and RDS event notifications can publish to an encrypted topic only when the key policy allows their
service principals (``cloudwatch.amazonaws.com``, ``events.rds.amazonaws.com``) ``kms:Decrypt`` and
``kms:GenerateDataKey*``; the AWS-managed key ``alias/aws/sns`` cannot be used for them, because its
policy cannot be changed.
"""

from __future__ import annotations

import fnmatch
import json

# Who must use the topic's key, and what they call (SNS calls GenerateDataKey and Decrypt for them).
TOPIC_PUBLISHERS = ("cloudwatch.amazonaws.com", "events.rds.amazonaws.com")
TOPIC_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Conditions that only narrow the caller to this account's resources: they do not stop the service.
HARMLESS_CONDITION_KEYS = ("aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid")


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _principal_matches(principal, service):
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if service in _as_list(principal.get("Service")):
        return True
    return "*" in _as_list(principal.get("AWS"))


def _action_matches(actions, action):
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in _as_list(actions))


def _harmless_condition(condition):
    for operators in (condition or {}).values():
        for key in operators or {}:
            if key.lower() not in HARMLESS_CONDITION_KEYS:
                return False
    return True


def _statements(policy):
    document = json.loads(policy) if isinstance(policy, str) else policy
    statements = (document or {}).get("Statement") or []
    return [statements] if isinstance(statements, dict) else statements


def missing_grants(policy, services=TOPIC_PUBLISHERS, actions=TOPIC_KEY_ACTIONS):
    """``[(service, action), ...]`` the policy does not allow (an explicit Deny wins over an Allow).

    An Allow counts when its principal names the service (string or list) or is ``*``, its actions
    match (``kms:*``, ``kms:GenerateDataKey*``, lists) and its conditions only narrow the source
    (aws:SourceAccount, aws:SourceArn, aws:SourceOrgID). NotPrincipal/NotAction statements are not
    counted as allowing anything.
    """
    statements = _statements(policy)
    missing = []
    for service in services:
        for action in actions:
            allowed = denied = False
            for statement in statements:
                if "NotPrincipal" in statement or "NotAction" in statement:
                    continue
                if not (_principal_matches(statement.get("Principal"), service)
                        and _action_matches(statement.get("Action"), action)):
                    continue
                if statement.get("Effect") == "Deny" and not statement.get("Condition"):
                    denied = True
                elif statement.get("Effect") == "Allow" and _harmless_condition(statement.get("Condition")):
                    allowed = True
            if denied or not allowed:
                missing.append((service, action))
    return missing


def topic_key_statement(account_id):
    """The key policy statement a topic key needs (what the failure message tells to add)."""
    return {
        "Sid": "AllowCloudWatchAndRdsEventsToUseTheTopicKey",
        "Effect": "Allow",
        "Principal": {"Service": list(TOPIC_PUBLISHERS)},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    }
