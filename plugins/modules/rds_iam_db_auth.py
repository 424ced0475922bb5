#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_iam_db_auth
short_description: IAM database authentication of an RDS for MySQL instance and its read replicas (AWS side)
version_added: 1.1.0
description:
  - Turns IAM database authentication (C(EnableIAMDatabaseAuthentication)) on or off on an RDS for MySQL instance
    and on each of its read replicas listed in O(read_replica_identifiers).
  - Gives each IAM role or user in O(identities) an inline policy that allows exactly C(rds-db:connect) on
    C(arn:<partition>:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<db user>) for each of its database users,
    on the primary and on every listed replica (each instance has its own C(DbiResourceId)). Partition, region and
    account come from the instance's ARN. Inline policies are compared without regard to the order of statements,
    actions and resources.
  - No restart. AWS (RDS User Guide, "Enabling and disabling IAM database authentication") applies the flag at once
    with C(ApplyImmediately) and without an outage. Enabling has impact C(none). Disabling has impact
    C(interruption), since new logins with IAM tokens are refused from then on.
  - The database users themselves (C(CREATE USER ... IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS')) are made in
    the database, not through the AWS API. The role C(cso.rds_hardening.rds_iam_auth) makes them with
    C(community.mysql.mysql_user) after this module.
  - Every input is checked before the first change. This covers the options, the instance (it exists, engine
    C(mysql)), each replica (it exists and is a read replica of O(db_instance_identifier)) and each identity
    (it exists). Each message says what to do, and the run fails with C(Nothing was changed).
  - Check mode returns the plan and makes no mutating call; C(--diff) shows the policy documents and flags before
    and after.
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description: The primary DB instance (engine C(mysql)).
    type: str
    required: true
  read_replica_identifiers:
    description:
      - Read replicas of O(db_instance_identifier), in the module's region, that must accept the same IAM logins.
        Each gets the same flag, and its resources are added to every identity's policy.
      - The database users reach the replicas through replication from the primary.
    type: list
    elements: str
    default: []
  also_allow_instance_identifiers:
    description:
      - Other DB instances in the module's region whose C(DbiResourceId) every identity's policy also names. The
        module reads them and changes nothing on them (their IAM authentication flag included).
      - For the green instance of a blue/green deployment before its switchover. The switchover gives the green
        production's name but the green keeps its own C(DbiResourceId), so a policy that names only the blue's
        refuses every new IAM login from the moment production is the green. Converge again without it after the
        switchover, so the old blue is no longer allowed.
    type: list
    elements: str
    default: []
  enabled:
    description: Whether IAM database authentication is on, on the primary and on every listed replica.
    type: bool
    default: true
  identities:
    description:
      - IAM roles or users that may log in, each as some database users.
      - Entries with the same identity and policy name make one policy, with their database users together.
      - The policies stay when O(enabled=false); removing an identity from this list leaves its policy in place.
    type: list
    elements: dict
    default: []
    suboptions:
      role_name:
        description: Name of an existing IAM role. Exactly one of O(identities[].role_name) and O(identities[].user_name).
        type: str
      user_name:
        description: Name of an existing IAM user. Exactly one of O(identities[].role_name) and O(identities[].user_name).
        type: str
      db_users:
        description:
          - Database users the identity may log in as (1 to 32 characters, no quotes, backslash, whitespace or
            wildcards).
        type: list
        elements: str
        required: true
      policy_name:
        description:
          - Name of the identity's inline policy. The module owns its whole document.
          - Defaults to C(rds-db-connect-<db_instance_identifier>).
        type: str
  wait_timeout:
    description: Seconds to wait, at most, for each instance after its flag is changed.
    type: int
    default: 1800
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - The module writes inline policies with C(PutRolePolicy)/C(PutUserPolicy) and instance flags with
    C(ModifyDBInstance); it never restarts the database.
  - IAM database authentication needs TLS from the client, and a token is valid for 15 minutes (RDS User Guide,
    "Connecting to your DB instance using IAM authentication").
"""

EXAMPLES = r"""
- name: Let the CSO hosts' role log in as cso_iam on the database and its replica
  cso.rds_hardening.rds_iam_db_auth:
    db_instance_identifier: cso-prod-db
    read_replica_identifiers: [cso-prod-db-replica-1]
    identities:
      - role_name: cso-app-hosts
        db_users: [cso_iam]
      - user_name: ops-breakglass
        db_users: [ops_iam]
        policy_name: breakglass-db-connect

- name: Show what would change
  cso.rds_hardening.rds_iam_db_auth:
    db_instance_identifier: cso-prod-db
    identities:
      - role_name: cso-app-hosts
        db_users: [cso_iam]
  check_mode: true
  diff: true
  register: iam_auth_plan
"""

RETURN = r"""
plan:
  description:
    - Every change, in the order it is made. C(what) is C(inline policy) (with C(identity), for example
      C(role/cso-app-hosts), C(policy_name) and C(db_users)) or C(iam_database_authentication_enabled) (with
      C(db_instance_identifier) and C(apply)). C(impact) is C(none), or C(interruption) when the flag is turned
      off; C(effect) says who notices it (null for C(none)).
  returned: always
  type: list
  elements: dict
  sample:
    - what: inline policy
      identity: role/cso-app-hosts
      policy_name: rds-db-connect-cso-prod-db
      db_users: [cso_iam]
      impact: none
      before: null
      after:
        Version: "2012-10-17"
        Statement:
          - Sid: RdsDbConnect
            Effect: Allow
            Action: rds-db:connect
            Resource: ["arn:aws:rds-db:eu-west-2:123456789012:dbuser:db-ABCDEFGHIJKL/cso_iam"]
      effect: null
    - what: iam_database_authentication_enabled
      db_instance_identifier: cso-prod-db
      impact: none
      before: false
      after: true
      apply: immediately
      effect: null
policy_resources:
  description: Every C(rds-db:connect) resource the task's policies allow, sorted.
  returned: always
  type: list
  elements: str
  sample: ["arn:aws:rds-db:eu-west-2:123456789012:dbuser:db-ABCDEFGHIJKL/cso_iam"]
policies:
  description: The inline policy of each identity, as the task wants it.
  returned: always
  type: list
  elements: dict
  contains:
    identity:
      description: C(role/<name>) or C(user/<name>).
      type: str
    policy_name:
      description: Name of the inline policy.
      type: str
    db_users:
      description: The database users the identity may log in as.
      type: list
      elements: str
    resources:
      description: The policy's resources.
      type: list
      elements: str
instances:
  description:
    - Per instance (the primary, each listed replica and each instance of O(also_allow_instance_identifiers)), by
      identifier. C(iam_database_authentication_enabled) is AWS's value after the run (in check mode, the current
      value); C(endpoint) is where clients connect; C(role) is C(primary), C(read replica) or C(also allowed).
  returned: always
  type: dict
  sample:
    cso-prod-db:
      iam_database_authentication_enabled: true
      dbi_resource_id: db-ABCDEFGHIJKL
      endpoint: {address: cso-prod-db.abcdefghijkl.eu-west-2.rds.amazonaws.com, port: 3306}
      role: primary
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import iam_auth_aws as aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import iam_auth_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import NOTHING_CHANGED
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import fail_on
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module

IDENTITY_SPEC = dict(
    role_name=dict(type="str"),
    user_name=dict(type="str"),
    db_users=dict(type="list", elements="str", required=True),
    policy_name=dict(type="str"),
)
ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True),
    read_replica_identifiers=dict(type="list", elements="str", default=[]),
    also_allow_instance_identifiers=dict(type="list", elements="str", default=[]),
    enabled=dict(type="bool", default=True),
    identities=dict(type="list", elements="dict", default=[], options=IDENTITY_SPEC,
                    mutually_exclusive=[("role_name", "user_name")], required_one_of=[("role_name", "user_name")]),
    wait_timeout=dict(type="int", default=1800),
)
BUSY_ERRORS = ["InvalidDBInstanceState"]


def read_instances(module, rds):
    """The primary and the listed replicas, checked; fails before any change when one is wrong."""
    params = module.params
    primary = get_db_instance(rds, params["db_instance_identifier"])
    replicas = {}
    if primary is not None:
        replicas = {replica: get_db_instance(rds, replica) for replica in params["read_replica_identifiers"] or []}
    fail_on(module, spec.instance_errors(params["db_instance_identifier"], primary, replicas), prefix=NOTHING_CHANGED)
    return [primary] + [replicas[replica] for replica in params["read_replica_identifiers"] or []]


def read_also_allowed(module, rds):
    """The instances the policies also name (unchanged otherwise); fails before any change when one is missing."""
    also = {identifier: get_db_instance(rds, identifier) for identifier in module.params["also_allow_instance_identifiers"]}
    fail_on(module, spec.also_allowed_errors(also), prefix=NOTHING_CHANGED)
    return list(also.values())


def instances_result(instances, also_allowed, items, check_mode):
    flags = {item["db_instance_identifier"]: item["after"] for item in items if item["what"] == spec.FLAG}
    result = {}
    roles = ["primary"] + ["read replica"] * (len(instances) - 1) + ["also allowed"] * len(also_allowed)
    for role, instance in zip(roles, instances + also_allowed):
        identifier = instance["DBInstanceIdentifier"]
        enabled = bool(instance.get("IAMDatabaseAuthenticationEnabled"))
        endpoint = instance.get("Endpoint") or {}
        result[identifier] = {
            "iam_database_authentication_enabled": enabled if check_mode else flags.get(identifier, enabled),
            "dbi_resource_id": instance.get("DbiResourceId"),
            "endpoint": {"address": endpoint.get("Address"), "port": endpoint.get("Port")},
            "role": role,
        }
    return result


def run(module):
    fail_on(module, spec.input_errors(module.params), prefix=NOTHING_CHANGED)
    rds = aws_client(module, "rds", extra_error_codes=BUSY_ERRORS)
    iam = aws_client(module, "iam")
    instances = read_instances(module, rds)
    also_allowed = read_also_allowed(module, rds)
    policies = spec.desired_policies(module.params, instances + also_allowed)
    missing, documents = aws.read_identities(iam, policies)
    fail_on(module, [spec.missing_identity_error(kind, name) for kind, name in missing], prefix=NOTHING_CHANGED)
    items = spec.plan(module.params, instances, policies, documents)
    if items and not module.check_mode:
        aws.apply(module, rds, iam, items, instances)
    result = dict(
        changed=bool(items), plan=items,
        policy_resources=sorted({arn for policy in policies for arn in policy["resources"]}),
        policies=[{"identity": f"{policy['kind']}/{policy['name']}", "policy_name": policy["policy_name"],
                   "db_users": policy["db_users"], "resources": policy["resources"]} for policy in policies],
        instances=instances_result(instances, also_allowed, items, module.check_mode),
    )
    if module._diff:
        result["diff"] = spec.diff(items)
    return result


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run, "converging IAM database authentication")


if __name__ == "__main__":
    main()
