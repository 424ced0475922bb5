# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""IAM database authentication of an RDS for MySQL instance and its read replicas: the checks of the input,
the ``rds-db:connect`` policy each identity needs, and the plan. Pure: no AWS call (``rds_iam_db_auth`` reads
AWS and makes the changes).

AWS: RDS User Guide, "IAM database authentication for MariaDB, MySQL, and PostgreSQL":

* "Enabling and disabling IAM database authentication": ``ModifyDBInstance`` with
  ``EnableIAMDatabaseAuthentication``; with ``ApplyImmediately`` the change is made at once, and it causes no
  outage (enabling or disabling it does not restart the instance).
* "Creating and using an IAM policy for IAM database access": the identity needs ``rds-db:connect`` on
  ``arn:<partition>:rds-db:<region>:<account-id>:dbuser:<DbiResourceId>/<db-user-name>``; the resource id is the
  instance's ``DbiResourceId``, so a read replica (its own resource id) needs its own resource in the policy.
"""

from __future__ import annotations

import json
import re

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item

ENGINE = "mysql"
ACTION = "rds-db:connect"
POLICY_VERSION = "2012-10-17"
FLAG = "iam_database_authentication_enabled"
POLICY = "inline policy"
# MySQL 8.0 account names are at most 32 characters ("Account Names" in the MySQL manual). Quotes and
# backslashes would need escaping in CREATE USER; '%' is a host-pattern wildcard; '*' and '?' are IAM wildcards,
# so a policy resource with them would allow other database users too.
MAX_DB_USER_LENGTH = 32
_BAD_DB_USER = re.compile(r"""['"`\\%*?\s]""")
_IAM_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
DISABLE_EFFECT = ("New logins with IAM authentication tokens to {instance} are refused (error 1045) until it is "
                  "enabled again; password logins and open sessions are not affected.")


def default_policy_name(db_instance_identifier):
    return f"rds-db-connect-{db_instance_identifier}"


def identity_of(entry):
    """("role" or "user", name) of one ``identities`` entry."""
    if entry.get("role_name"):
        return "role", entry["role_name"]
    return "user", entry.get("user_name")


def policy_name_of(entry, db_instance_identifier):
    return entry.get("policy_name") or default_policy_name(db_instance_identifier)


def db_user_errors(db_user):
    """Why ``db_user`` cannot be an IAM database user (empty list: it can)."""
    if not db_user or len(db_user) > MAX_DB_USER_LENGTH:
        return [f"db user {db_user!r} must be 1 to {MAX_DB_USER_LENGTH} characters long (MySQL's limit)."]
    if _BAD_DB_USER.search(db_user):
        return [f"db user {db_user!r} contains a quote, backslash, whitespace or wildcard (% * ?): a wildcard in the "
                "policy resource would allow other database users too. Use a plain account name such as cso_app."]
    return []


def _identity_errors(index, entry):
    where = f"identities[{index}]"
    given = [key for key in ("role_name", "user_name") if entry.get(key)]
    if len(given) != 1:
        return [f"{where} must name exactly one of role_name or user_name (got {given or 'neither'})."]
    errors = []
    if not _IAM_NAME.match(entry[given[0]]):
        errors.append(f"{where}.{given[0]} {entry[given[0]]!r} is not an IAM {given[0].split('_')[0]} name "
                      "(1-128 characters: letters, digits and +=,.@_-).")
    if entry.get("policy_name") is not None and not _IAM_NAME.match(entry["policy_name"]):
        errors.append(f"{where}.policy_name {entry['policy_name']!r} is not an IAM policy name "
                      "(1-128 characters: letters, digits and +=,.@_-).")
    db_users = entry.get("db_users") or []
    if not db_users:
        errors.append(f"{where}.db_users is empty: name the database users this identity may log in as.")
    for db_user in db_users:
        errors += [f"{where}: {message}" for message in db_user_errors(db_user)]
    return errors


def input_errors(params):
    """Problems with the options themselves (no AWS call needed), as messages that say what to do."""
    primary = params["db_instance_identifier"]
    replicas = params.get("read_replica_identifiers") or []
    errors = []
    if primary in replicas:
        errors.append(f"read_replica_identifiers lists the primary {primary}; list only its read replicas.")
    repeated = sorted({replica for replica in replicas if replicas.count(replica) > 1})
    if repeated:
        errors.append(f"read_replica_identifiers lists {repeated} more than once; list each replica once.")
    for index, entry in enumerate(params.get("identities") or []):
        errors += _identity_errors(index, entry)
    return errors


def instance_errors(primary_id, primary, replicas):
    """Problems of the instances as AWS describes them. ``replicas``: identifier -> DBInstance or None."""
    if primary is None:
        return [f"DB instance {primary_id} does not exist in this region; create it first (rds_hardened_instance) "
                "or fix db_instance_identifier."]
    errors = []
    if primary.get("Engine") != ENGINE:
        errors.append(f"DB instance {primary_id} runs {primary.get('Engine')}: this module manages IAM database "
                      f"authentication for RDS for MySQL ({ENGINE}) only.")
    for replica_id, replica in replicas.items():
        if replica is None:
            errors.append(f"Read replica {replica_id} does not exist in this region; create it first "
                          "(rds_hardened_replica) or remove it from read_replica_identifiers.")
        elif replica.get("ReadReplicaSourceDBInstanceIdentifier") not in (primary_id, primary.get("DBInstanceArn")):
            source = replica.get("ReadReplicaSourceDBInstanceIdentifier") or "none: it is no read replica"
            errors.append(f"DB instance {replica_id} is not a read replica of {primary_id} (its source: {source}); "
                          "remove it from read_replica_identifiers.")
        elif replica.get("Engine") != ENGINE:
            errors.append(f"Read replica {replica_id} runs {replica.get('Engine')}, not {ENGINE}.")
    return errors


def also_allowed_errors(instances):
    """``instances``: identifier -> DBInstance or None, for also_allow_instance_identifiers."""
    return [f"DB instance {identifier} (also_allow_instance_identifiers) does not exist in this region; create it first "
            "or remove it from the list." for identifier, instance in instances.items() if instance is None]


def missing_identity_error(kind, name):
    option = f"{kind}_name"
    return (f"IAM {kind} {name} does not exist: create the {kind} (for example with amazon.aws.iam_{kind}) "
            f"or fix {option}.")


def dbuser_arn(instance, db_user):
    """arn:<partition>:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<db user> of ``instance``."""
    partition, region, account = _arn_parts(instance["DBInstanceArn"])
    return f"arn:{partition}:rds-db:{region}:{account}:dbuser:{instance['DbiResourceId']}/{db_user}"


def _arn_parts(arn):
    parts = arn.split(":")
    return parts[1], parts[3], parts[4]


def policy_resources(instances, db_users):
    """Every (instance, db user) resource, sorted."""
    return sorted({dbuser_arn(instance, db_user) for instance in instances for db_user in db_users})


def policy_document(resources):
    return {"Version": POLICY_VERSION, "Statement": [
        {"Sid": "RdsDbConnect", "Effect": "Allow", "Action": ACTION, "Resource": list(resources)}]}


def policy_json(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _as_sorted_list(value):
    values = value if isinstance(value, list) else [value]
    return sorted(str(item) for item in values)


def canonical(document):
    """A policy document in a form where the order of statements, actions and resources does not count, nor
    whether a single action or resource is a string or a one-item list (IAM treats them the same)."""
    if document is None:
        return None
    statements = document.get("Statement") or []
    statements = statements if isinstance(statements, list) else [statements]
    normalised = []
    for statement in statements:
        item = dict(statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in item:
                item[key] = _as_sorted_list(item[key])
        normalised.append(item)
    return {"Version": document.get("Version"),
            "Statement": sorted(normalised, key=lambda item: json.dumps(item, sort_keys=True))}


def same_policy(current, desired):
    return canonical(current) == canonical(desired)


def desired_policies(params, instances):
    """One entry per (identity, policy name): kind, name, policy_name, db_users, resources, document. Entries of
    ``identities`` with the same identity and policy name are one policy (their database users together)."""
    primary = params["db_instance_identifier"]
    db_users = {}
    for entry in params.get("identities") or []:
        key = identity_of(entry) + (policy_name_of(entry, primary),)
        db_users.setdefault(key, set()).update(entry["db_users"])
    policies = []
    for (kind, name, policy_name), users in db_users.items():
        resources = policy_resources(instances, users)
        policies.append({"kind": kind, "name": name, "policy_name": policy_name, "db_users": sorted(users),
                         "resources": resources, "document": policy_document(resources)})
    return policies


def flag_items(instances, enabled):
    """One item per instance whose ``IAMDatabaseAuthenticationEnabled`` differs (applied at once, no restart)."""
    items = []
    for instance in instances:
        current = bool(instance.get("IAMDatabaseAuthenticationEnabled"))
        if current == enabled:
            continue
        identifier = instance["DBInstanceIdentifier"]
        items.append(plan_item(FLAG, "none" if enabled else "interruption", current, enabled,
                               db_instance_identifier=identifier, apply="immediately",
                               effect=None if enabled else DISABLE_EFFECT.format(instance=identifier)))
    return items


def policy_items(policies, current_documents):
    """One item per policy whose document differs from AWS's. ``current_documents``: (kind, name, policy) -> doc."""
    items = []
    for policy in policies:
        current = current_documents.get((policy["kind"], policy["name"], policy["policy_name"]))
        if same_policy(current, policy["document"]):
            continue
        items.append(plan_item(POLICY, "none", current, policy["document"], identity=f"{policy['kind']}/{policy['name']}",
                               policy_name=policy["policy_name"], db_users=policy["db_users"], effect=None))
    return items


def plan(params, instances, policies, current_documents):
    """Every change, in the order it is made: the policies first (they change nothing for the database's clients
    until the instances accept tokens), then the instances' flags."""
    return policy_items(policies, current_documents) + flag_items(instances, params["enabled"])


def diff_key(item):
    if item["what"] == FLAG:
        return f"{item['db_instance_identifier']} {FLAG}"
    return f"{item['identity']} policy {item['policy_name']}"


def diff(items):
    return {"before": {diff_key(item): item["before"] for item in items},
            "after": {diff_key(item): item["after"] for item in items}}
