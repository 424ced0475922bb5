"""The rds_iam_auth role (module rds_iam_db_auth + community.mysql.mysql_user) against the lab's data plane, which
checks IAM tokens as RDS does: check mode plans without writing; a converge writes exactly the policy and the flag
and creates the IAM database user; a session of the role then logs in over TLS with a token as that user, while an
identity without the policy, a token for another database user and a plaintext login are refused; a re-run changes
nothing."""

import json
import sys

import pymysql
import pytest

from iam_lab import auth_token
from iam_lab import dbuser_arn

pytestmark = pytest.mark.lab

DB = "cso-lab-db"  # seeded: MySQL 8.0.42, no IAM authentication
ROLE = "cso-iam-app"
OTHER_ROLE = "cso-iam-outsider"
POLICY = f"rds-db-connect-{DB}"
TASK = "cso.rds_hardening.rds_iam_auth : Ensure IAM database authentication and the identities' rds-db:connect policies"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: cso.rds_hardening.rds_iam_auth
      vars:
        rds_iam_auth_db_instance_identifier: cso-lab-db
        rds_iam_auth_users:
          - name: cso_iam
            identity: {role_name: cso-iam-app}
            priv: "iamcheck.*:SELECT"
  post_tasks:
    - name: Show the published result
      ansible.builtin.debug:
        var: rds_iam_auth_result
"""


@pytest.fixture
def lab_vars(aws_lab, dataplane):
    """The reset lab with the data plane serving the database, two roles without policies, and a table to read."""
    from csolab import seed

    dataplane.wait_ready(DB, timeout=90)
    for name in (ROLE, OTHER_ROLE):
        aws_lab.boto3("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    dataplane.sql(DB, "CREATE DATABASE iamcheck")
    dataplane.sql(DB, "CREATE TABLE iamcheck.t (id INT PRIMARY KEY)")
    dataplane.sql(DB, "INSERT INTO iamcheck.t VALUES (42)")
    yield {"rds_iam_auth_admin_user": seed.LAB_DB_MASTER_USER, "rds_iam_auth_admin_password": seed.LAB_DB_MASTER_PASSWORD,
           "rds_iam_auth_ca_file": str(dataplane.ca_bundle_path()), "rds_iam_auth_sql_python": sys.executable}
    _leave_host_lab_for_a_reset()


def _leave_host_lab_for_a_reset():
    """This test changed the AWS lab under a running host lab: its next user must reset it."""
    from csolab import hosts

    if hosts.is_running():
        hosts.mark_used()


def writes(aws_lab):
    return [call["action"] for call in aws_lab.mutating_calls()]


def session_of(aws_lab, role_name):
    account_role = aws_lab.boto3("iam").get_role(RoleName=role_name)["Role"]["Arn"]
    credentials = aws_lab.boto3("sts").assume_role(RoleArn=account_role, RoleSessionName="cso-1")["Credentials"]
    return {"key": credentials["AccessKeyId"], "secret": credentials["SecretAccessKey"],
            "session_token": credentials["SessionToken"]}


def login(dataplane, user, token, tls=True):
    """(CURRENT_USER(), the TLS cipher, the row of iamcheck.t) of a login with ``token`` as the password."""
    endpoint = dataplane.endpoint_for(DB)
    ssl = {"ssl_ca": str(dataplane.ca_bundle_path()), "ssl_verify_cert": True, "ssl_verify_identity": True} if tls else {}
    connection = pymysql.connect(host=endpoint["name"], port=endpoint["port"], user=user, password=token,
                                 connect_timeout=5, **ssl)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            current = cursor.fetchone()[0]
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            cipher = cursor.fetchone()[1]
            cursor.execute("SELECT id FROM iamcheck.t")
            return current, cipher, cursor.fetchone()[0]
    finally:
        connection.close()


def refused(dataplane, user, token, tls=True):
    with pytest.raises(pymysql.err.OperationalError) as error:
        login(dataplane, user, token, tls=tls)
    return error.value.args[0]


def account(dataplane, user):
    rows = dataplane.sql(DB, f"SELECT plugin, authentication_string, ssl_type FROM mysql.user WHERE user = '{user}'")
    return [tuple(row) for row in rows]


def test_check_mode_plans_and_writes_nothing(aws_lab, dataplane, lab_vars, run_playbook):
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=lab_vars, check=True, diff=True)
    assert run.returncode == 0, run
    plan = run.result(TASK)["plan"]
    assert [(item["what"], item["impact"]) for item in plan] == [
        ("inline policy", "none"), ("iam_database_authentication_enabled", "none")]
    assert plan[0]["after"]["Statement"][0]["Resource"] == [dbuser_arn(aws_lab, DB, "cso_iam")]
    assert writes(aws_lab) == []
    assert account(dataplane, "cso_iam") == []
    db = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    assert db["IAMDatabaseAuthenticationEnabled"] is False


def test_a_role_session_logs_in_with_a_token_and_nothing_else_does(aws_lab, dataplane, lab_vars, run_playbook):
    arn = dbuser_arn(aws_lab, DB, "cso_iam")
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=lab_vars)
    assert run.returncode == 0, run
    assert writes(aws_lab) == ["PutRolePolicy", "ModifyDBInstance"]
    published = run.result("Show the published result")["rds_iam_auth_result"]
    assert (published["changed"], published["users"], published["policy_resources"]) == (True, ["cso_iam"], [arn])
    assert published["instances"][DB]["iam_database_authentication_enabled"] is True
    document = aws_lab.boto3("iam").get_role_policy(RoleName=ROLE, PolicyName=POLICY)["PolicyDocument"]
    assert document["Statement"] == [{"Sid": "RdsDbConnect", "Effect": "Allow", "Action": "rds-db:connect",
                                      "Resource": [arn]}]
    assert account(dataplane, "cso_iam") == [("AWSAuthenticationPlugin", "RDS", "ANY")]

    # a user the policy does not name, made the same way, for the "another user's token" refusal
    dataplane.sql(DB, "CREATE USER 'other_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL")
    dataplane.sql(DB, "GRANT SELECT ON iamcheck.* TO 'other_iam'@'%'")
    endpoint = dataplane.endpoint_for(DB)
    app = session_of(aws_lab, ROLE)
    current, cipher, row = login(dataplane, "cso_iam", auth_token(app, endpoint["name"], endpoint["port"], "cso_iam"))
    assert (current, cipher.startswith("TLS_"), row) == ("cso_iam@%", True, 42)
    outsider = session_of(aws_lab, OTHER_ROLE)
    refusals = {
        "identity without the policy": refused(
            dataplane, "cso_iam", auth_token(outsider, endpoint["name"], endpoint["port"], "cso_iam")),
        "token for another db user": refused(
            dataplane, "other_iam", auth_token(app, endpoint["name"], endpoint["port"], "other_iam")),
        "plaintext": refused(
            dataplane, "cso_iam", auth_token(app, endpoint["name"], endpoint["port"], "cso_iam"), tls=False),
    }
    assert refusals == {name: 1045 for name in refusals}
    assert login(dataplane, "cso_iam", auth_token(app, endpoint["name"], endpoint["port"], "cso_iam"))[0] == "cso_iam@%"

    aws_lab.clear_calls()
    again = run_playbook(PLAYBOOK, extra_vars=lab_vars)
    assert again.returncode == 0, again
    assert again.changed() == 0, [(r["_task"], r.get("changed")) for r in again.results()]
    assert writes(aws_lab) == []
    assert again.result("Show the published result")["rds_iam_auth_result"]["changed"] is False


def test_a_missing_role_is_refused_before_any_write(aws_lab, dataplane, lab_vars, run_playbook):
    aws_lab.clear_calls()
    playbook = PLAYBOOK.replace("role_name: cso-iam-app", "role_name: cso-iam-missing")
    run = run_playbook(playbook, extra_vars=lab_vars)
    assert run.returncode != 0
    assert "IAM role cso-iam-missing does not exist: create the role" in run.result(TASK)["msg"]
    assert writes(aws_lab) == []
    assert account(dataplane, "cso_iam") == []
