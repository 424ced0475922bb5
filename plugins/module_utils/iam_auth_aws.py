# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWS side of rds_iam_db_auth: reading the identities and their inline policies, writing the policies and
the instances' IAM authentication flag. Only ``NoSuchEntity`` is caught here (a missing identity or policy); every
other AWS error goes up to ``common.run_module``. Clients come from ``common.aws_client``; every call passes
``aws_retry=True``."""

from __future__ import annotations

import json
from urllib.parse import unquote

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.cso.rds_hardening.plugins.module_utils import iam_auth_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_applied
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_available


def identity_exists(iam, kind, name):
    try:
        if kind == "role":
            iam.get_role(RoleName=name, aws_retry=True)
        else:
            iam.get_user(UserName=name, aws_retry=True)
    except is_boto3_error_code("NoSuchEntity"):
        return False
    return True


def _document(raw):
    """IAM returns the document URL-encoded; botocore usually decodes it into a dict already."""
    if isinstance(raw, str):
        return json.loads(unquote(raw))
    return raw


def inline_policy(iam, kind, name, policy_name):
    """The inline policy's document, or None when the identity has no policy of that name."""
    try:
        if kind == "role":
            answer = iam.get_role_policy(RoleName=name, PolicyName=policy_name, aws_retry=True)
        else:
            answer = iam.get_user_policy(UserName=name, PolicyName=policy_name, aws_retry=True)
    except is_boto3_error_code("NoSuchEntity"):
        return None
    return _document(answer["PolicyDocument"])


def read_identities(iam, policies):
    """(names of missing identities as (kind, name), current documents by (kind, name, policy name))."""
    missing, documents, checked = [], {}, {}
    for policy in policies:
        identity = (policy["kind"], policy["name"])
        if identity not in checked:
            checked[identity] = identity_exists(iam, *identity)
            if not checked[identity]:
                missing.append(identity)
        if checked[identity]:
            documents[identity + (policy["policy_name"],)] = inline_policy(iam, *identity, policy["policy_name"])
    return missing, documents


def put_policy(iam, item):
    kind, name = item["identity"].split("/", 1)
    document = spec.policy_json(item["after"])
    if kind == "role":
        iam.put_role_policy(RoleName=name, PolicyName=item["policy_name"], PolicyDocument=document, aws_retry=True)
    else:
        iam.put_user_policy(UserName=name, PolicyName=item["policy_name"], PolicyDocument=document, aws_retry=True)


def set_flag(module, rds, item, status):
    """ModifyDBInstance EnableIAMDatabaseAuthentication, applied at once, then wait until AWS shows it applied."""
    identifier = item["db_instance_identifier"]
    if status != "available":
        wait_available(module, rds, identifier)
    parameters = {"EnableIAMDatabaseAuthentication": item["after"], "ApplyImmediately": True}
    rds.modify_db_instance(DBInstanceIdentifier=identifier, aws_retry=True, **parameters)
    wait_applied(module, rds, identifier, parameters)


def apply(module, rds, iam, items, instances):
    status = {instance["DBInstanceIdentifier"]: instance.get("DBInstanceStatus") for instance in instances}
    for item in items:
        if item["what"] == spec.POLICY:
            put_policy(iam, item)
        else:
            set_flag(module, rds, item, status[item["db_instance_identifier"]])
