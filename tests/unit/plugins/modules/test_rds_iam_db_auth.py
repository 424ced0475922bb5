"""rds_iam_db_auth against stubbed clients: the exact calls of a first run, a converged re-run that only reads,
check mode, a drifted policy put back, and refusals before any write (a missing role, an instance that is no
replica of the primary, another engine, a bad database user)."""

import json

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import iam_auth_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.modules import rds_iam_db_auth
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

ACCOUNT = "123456789012"
PRIMARY = {"DBInstanceIdentifier": "db", "Engine": "mysql", "EngineVersion": "8.0.42", "DBInstanceStatus": "available",
           "DBInstanceArn": f"arn:aws:rds:eu-west-2:{ACCOUNT}:db:db", "DbiResourceId": "db-PRIMARYRESOURCE",
           "IAMDatabaseAuthenticationEnabled": False, "Endpoint": {"Address": "db.example.internal", "Port": 3306}}
REPLICA = dict(PRIMARY, DBInstanceIdentifier="db-r1", DBInstanceArn=f"arn:aws:rds:eu-west-2:{ACCOUNT}:db:db-r1",
               DbiResourceId="db-REPLICARESOURCE", ReadReplicaSourceDBInstanceIdentifier="db",
               Endpoint={"Address": "db-r1.example.internal", "Port": 3306})
PRIMARY_ARN = f"arn:aws:rds-db:eu-west-2:{ACCOUNT}:dbuser:db-PRIMARYRESOURCE/cso_iam"
REPLICA_ARN = f"arn:aws:rds-db:eu-west-2:{ACCOUNT}:dbuser:db-REPLICARESOURCE/cso_iam"
POLICY_NAME = "rds-db-connect-db"
ROLE = {"Path": "/", "RoleName": "cso-app", "RoleId": "AROAEXAMPLEEXAMPLE01", "Arn": f"arn:aws:iam::{ACCOUNT}:role/cso-app",
        "CreateDate": "2026-01-01T00:00:00Z"}


def document(*resources):
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "RdsDbConnect", "Effect": "Allow", "Action": "rds-db:connect", "Resource": list(resources)}]}


def make_module(check_mode=False, **params):
    base = {"db_instance_identifier": "db", "identities": [{"role_name": "cso-app", "db_users": ["cso_iam"]}]}
    base.update(params)
    return StubbedModule(rds_iam_db_auth.ARGUMENT_SPEC, base, check_mode)


def run(module):
    with pytest.raises(Exited) as exited:
        run_module(module, rds_iam_db_auth.run, "converging IAM database authentication")
    module.assert_all_calls_made()
    return exited.value.result


def refused(module):
    with pytest.raises(Failed) as failed:
        run_module(module, rds_iam_db_auth.run, "converging IAM database authentication")
    module.assert_all_calls_made()  # and nothing else: every write would need a queued response
    assert failed.value.result["msg"].startswith("Nothing was changed")
    return failed.value.result["msg"]


def expect_instances(module, *instances):
    rds = module.stub("rds")
    for instance in instances:
        rds.add_response("describe_db_instances", {"DBInstances": [instance]},
                         {"DBInstanceIdentifier": instance["DBInstanceIdentifier"]})


def expect_role(module, current_document=None):
    iam = module.stub("iam")
    iam.add_response("get_role", {"Role": ROLE}, {"RoleName": "cso-app"})
    if current_document is None:
        iam.add_client_error("get_role_policy", "NoSuchEntity", "not found", 404,
                             expected_params={"RoleName": "cso-app", "PolicyName": POLICY_NAME})
    else:
        iam.add_response("get_role_policy", {"RoleName": "cso-app", "PolicyName": POLICY_NAME,
                                             "PolicyDocument": json.dumps(current_document)},
                         {"RoleName": "cso-app", "PolicyName": POLICY_NAME})


def expect_put(module, *resources):
    module.stub("iam").add_response("put_role_policy", {}, {
        "RoleName": "cso-app", "PolicyName": POLICY_NAME, "PolicyDocument": spec.policy_json(document(*resources))})


def expect_flag(module, instance):
    rds = module.stub("rds")
    identifier = instance["DBInstanceIdentifier"]
    rds.add_response("modify_db_instance", {"DBInstance": {}}, {
        "DBInstanceIdentifier": identifier, "EnableIAMDatabaseAuthentication": True, "ApplyImmediately": True})
    rds.add_response("describe_db_instances", {"DBInstances": [dict(instance, IAMDatabaseAuthenticationEnabled=True)]},
                     {"DBInstanceIdentifier": identifier})  # the wait: available, nothing pending


def test_first_run_puts_the_policy_then_enables_the_flag():
    module = make_module()
    expect_instances(module, PRIMARY)
    expect_role(module)
    expect_put(module, PRIMARY_ARN)
    expect_flag(module, PRIMARY)
    result = run(module)
    assert result["changed"] is True
    assert [(item["what"], item["impact"]) for item in result["plan"]] == [
        ("inline policy", "none"), ("iam_database_authentication_enabled", "none")]
    assert result["plan"][0]["identity"] == "role/cso-app" and result["plan"][0]["before"] is None
    assert result["policy_resources"] == [PRIMARY_ARN]
    assert result["instances"]["db"]["iam_database_authentication_enabled"] is True
    assert result["instances"]["db"]["endpoint"] == {"address": "db.example.internal", "port": 3306}
    assert result["diff"]["before"] == {"db iam_database_authentication_enabled": False,
                                        "role/cso-app policy rds-db-connect-db": None}


def test_replica_resources_are_in_the_policy_and_the_replica_gets_the_flag():
    module = make_module(read_replica_identifiers=["db-r1"])
    expect_instances(module, PRIMARY, REPLICA)
    expect_role(module)
    expect_put(module, PRIMARY_ARN, REPLICA_ARN)
    expect_flag(module, PRIMARY)
    expect_flag(module, REPLICA)
    result = run(module)
    assert result["policy_resources"] == [PRIMARY_ARN, REPLICA_ARN]
    assert [item.get("db_instance_identifier") for item in result["plan"]] == [None, "db", "db-r1"]
    assert result["instances"]["db-r1"]["role"] == "read replica"


def test_converged_rerun_only_reads():
    module = make_module(read_replica_identifiers=["db-r1"])
    enabled = dict(PRIMARY, IAMDatabaseAuthenticationEnabled=True)
    expect_instances(module, enabled, dict(REPLICA, IAMDatabaseAuthenticationEnabled=True))
    # the same policy as AWS keeps it: resources in another order, one statement
    same = {"Version": "2012-10-17", "Statement": [{"Sid": "RdsDbConnect", "Effect": "Allow",
                                                    "Action": ["rds-db:connect"], "Resource": [REPLICA_ARN, PRIMARY_ARN]}]}
    expect_role(module, same)
    result = run(module)  # any write would find no queued response and fail
    assert result["changed"] is False and result["plan"] == []
    assert result["instances"]["db"]["iam_database_authentication_enabled"] is True


def test_check_mode_reports_the_plan_and_writes_nothing():
    module = make_module(check_mode=True)
    expect_instances(module, PRIMARY)
    expect_role(module)
    result = run(module)
    assert result["changed"] is True
    assert [(item["what"], item["impact"], item["after"] if item["what"] != "inline policy" else None)
            for item in result["plan"]] == [("inline policy", "none", None),
                                            ("iam_database_authentication_enabled", "none", True)]
    assert result["plan"][0]["after"] == document(PRIMARY_ARN)
    assert result["instances"]["db"]["iam_database_authentication_enabled"] is False  # not changed yet


def test_a_drifted_policy_is_put_back():
    module = make_module()
    expect_instances(module, dict(PRIMARY, IAMDatabaseAuthenticationEnabled=True))
    drifted = document(PRIMARY_ARN.replace("cso_iam", "*"))
    expect_role(module, drifted)
    expect_put(module, PRIMARY_ARN)
    result = run(module)
    assert [item["what"] for item in result["plan"]] == ["inline policy"]
    assert result["plan"][0]["before"] == drifted and result["plan"][0]["after"] == document(PRIMARY_ARN)


def test_a_missing_role_is_refused_before_any_write():
    module = make_module()
    expect_instances(module, PRIMARY)
    module.stub("iam").add_client_error("get_role", "NoSuchEntity", "not found", 404,
                                        expected_params={"RoleName": "cso-app"})
    message = refused(module)
    assert "IAM role cso-app does not exist: create the role" in message and "fix role_name" in message


def test_an_instance_that_is_not_a_replica_of_the_primary_is_refused():
    module = make_module(read_replica_identifiers=["other"])
    other = dict(PRIMARY, DBInstanceIdentifier="other", DBInstanceArn=f"arn:aws:rds:eu-west-2:{ACCOUNT}:db:other")
    expect_instances(module, PRIMARY, other)
    message = refused(module)
    assert "DB instance other is not a read replica of db (its source: none: it is no read replica)" in message


def test_a_replica_of_another_source_is_refused():
    module = make_module(read_replica_identifiers=["db-r1"])
    expect_instances(module, PRIMARY, dict(REPLICA, ReadReplicaSourceDBInstanceIdentifier="another-db"))
    assert "is not a read replica of db (its source: another-db)" in refused(module)


def test_another_engine_is_refused():
    module = make_module()
    expect_instances(module, dict(PRIMARY, Engine="postgres"))
    assert "DB instance db runs postgres: this module manages IAM database authentication for RDS for MySQL" in (
        refused(module))


def test_a_missing_instance_is_refused():
    module = make_module()
    module.stub("rds").add_client_error("describe_db_instances", "DBInstanceNotFound", "not found", 404,
                                        expected_params={"DBInstanceIdentifier": "db"})
    assert "DB instance db does not exist in this region; create it first" in refused(module)


@pytest.mark.parametrize("identities, message", [
    ([{"role_name": "cso-app", "db_users": ["cso%"]}], "wildcard"),
    ([{"role_name": "cso-app", "db_users": ["x" * 33]}], "1 to 32 characters"),
    ([{"role_name": "cso-app", "db_users": ["o'brien"]}], "quote"),
    ([{"role_name": "cso-app", "db_users": []}], "db_users is empty"),
    ([{"role_name": "cso-app", "user_name": "bob", "db_users": ["a"]}], "exactly one of role_name or user_name"),
])
def test_bad_input_is_refused_before_any_call(identities, message):
    module = make_module(identities=identities)
    assert message in refused(module)


def test_disabling_is_an_interruption_for_iam_logins():
    module = make_module(check_mode=True, enabled=False, identities=[])
    expect_instances(module, dict(PRIMARY, IAMDatabaseAuthenticationEnabled=True))
    result = run(module)
    assert [(item["what"], item["impact"], item["after"]) for item in result["plan"]] == [
        ("iam_database_authentication_enabled", "interruption", False)]
    assert "refused" in result["plan"][0]["effect"]


def test_user_identities_get_a_user_policy():
    module = make_module(identities=[{"user_name": "ops", "db_users": ["ops_iam"], "policy_name": "ops-db"}])
    expect_instances(module, dict(PRIMARY, IAMDatabaseAuthenticationEnabled=True))
    iam = module.stub("iam")
    iam.add_response("get_user", {"User": {"Path": "/", "UserName": "ops", "UserId": "AIDAEXAMPLEEXAMPLE01",
                                           "Arn": f"arn:aws:iam::{ACCOUNT}:user/ops", "CreateDate": "2026-01-01T00:00:00Z"}},
                     {"UserName": "ops"})
    iam.add_client_error("get_user_policy", "NoSuchEntity", "not found", 404,
                         expected_params={"UserName": "ops", "PolicyName": "ops-db"})
    ops_arn = PRIMARY_ARN.replace("cso_iam", "ops_iam")
    iam.add_response("put_user_policy", {}, {"UserName": "ops", "PolicyName": "ops-db",
                                             "PolicyDocument": spec.policy_json(document(ops_arn))})
    result = run(module)
    assert result["policies"] == [{"identity": "user/ops", "policy_name": "ops-db", "db_users": ["ops_iam"],
                                   "resources": [ops_arn]}]


def test_policy_arn_follows_the_instance_partition():
    china = dict(PRIMARY, DBInstanceArn=f"arn:aws-cn:rds:cn-north-1:{ACCOUNT}:db:db")
    assert spec.dbuser_arn(china, "u") == f"arn:aws-cn:rds-db:cn-north-1:{ACCOUNT}:dbuser:db-PRIMARYRESOURCE/u"


def test_canonical_comparison_ignores_order_but_not_content():
    a = document("arn:b", "arn:a")
    assert spec.same_policy(a, document("arn:a", "arn:b"))
    assert not spec.same_policy(a, document("arn:a"))
    assert not spec.same_policy(a, dict(a, Statement=[dict(a["Statement"][0], Effect="Deny")]))


def test_entries_of_one_identity_and_policy_are_one_policy():
    params = {"db_instance_identifier": "db", "identities": [
        {"role_name": "cso-app", "db_users": ["b_iam"]}, {"role_name": "cso-app", "db_users": ["a_iam", "b_iam"]},
        {"role_name": "cso-app", "db_users": ["c_iam"], "policy_name": "other"}]}
    policies = spec.desired_policies(params, [PRIMARY])
    assert [(policy["policy_name"], policy["db_users"]) for policy in policies] == [
        (POLICY_NAME, ["a_iam", "b_iam"]), ("other", ["c_iam"])]
    assert policies[0]["resources"] == [PRIMARY_ARN.replace("cso_iam", "a_iam"), PRIMARY_ARN.replace("cso_iam", "b_iam")]


GREEN = dict(PRIMARY, DBInstanceIdentifier="db-green-abc123", DBInstanceArn=f"arn:aws:rds:eu-west-2:{ACCOUNT}:db:db-green-abc123",
             DbiResourceId="db-GREENRESOURCE", IAMDatabaseAuthenticationEnabled=True,
             Endpoint={"Address": "db-green-abc123.example.internal", "Port": 3306})
GREEN_ARN = f"arn:aws:rds-db:eu-west-2:{ACCOUNT}:dbuser:db-GREENRESOURCE/cso_iam"


def test_an_also_allowed_instance_is_in_the_policy_and_nothing_else_changes_on_it():
    """A blue/green deployment's green before the switchover: it keeps its DbiResourceId when it takes
    production's name, so the policy must name it before; its flag is not the module's business."""
    module = make_module(also_allow_instance_identifiers=["db-green-abc123"])
    enabled = dict(PRIMARY, IAMDatabaseAuthenticationEnabled=True)
    expect_instances(module, enabled, GREEN)
    expect_role(module, document(PRIMARY_ARN))
    expect_put(module, GREEN_ARN, PRIMARY_ARN)
    result = run(module)  # no modify_db_instance queued: a flag change on either instance would fail here
    assert result["policy_resources"] == [GREEN_ARN, PRIMARY_ARN]
    assert [item["what"] for item in result["plan"]] == ["inline policy"]
    assert result["instances"]["db-green-abc123"]["role"] == "also allowed"
    assert result["instances"]["db"]["role"] == "primary"


def test_a_missing_also_allowed_instance_is_refused_before_any_write():
    module = make_module(also_allow_instance_identifiers=["db-green-gone"])
    expect_instances(module, PRIMARY)
    module.stub("rds").add_client_error("describe_db_instances", "DBInstanceNotFound", "not found", 404,
                                        expected_params={"DBInstanceIdentifier": "db-green-gone"})
    message = refused(module)
    assert "db-green-gone (also_allow_instance_identifiers) does not exist" in message
