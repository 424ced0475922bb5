"""playbooks/dr_failover.yml with phase 2's IAM authentication, against the AWS side of the lab (``--limit`` to the
database: the promotion and the identities' policies; the host plays, which test_dr_failover.py runs on the host
lab with password logins, are left out).

The DR replica is made by phase3.yml (step dr_replica only) from a primary with IAM authentication on and each
service identity's rds-db:connect policy naming the primary (what phase 2's step iam leaves). After the failover the
promoted instance takes IAM logins (the flag on), and each identity has a policy of the promoted instance's name
that names its dbuser ARN: its Region and its DbiResourceId ("Creating and using an IAM policy for IAM database
access"); a second failover run makes no mutating call. (The tokens' Region: tests/unit/repository.)
"""

import json

import pytest

from iam_lab import connect_policy, dbuser_arn, enable_iam_auth
from phase_support import DB, failure_messages, instance, run_ansible

pytestmark = pytest.mark.lab

DR_REPLICA = f"{DB}-dr"
LIMIT = ("--limit", DB)
WITH_IAM = {"phase2_iam": True}
ONLY_THE_DR_REPLICA = {"phase3_storage": False, "phase3_blue_green": False, "phase3_stop_after": "dr_replica",
                       "phase3_dr_allowed_cidrs": ["10.20.0.0/16"]}
CONFIRM = {"phase3_dr_failover_confirm": DR_REPLICA}
IDENTITIES = {"lab-keystone-hosts": "keystone_iam", "lab-cso-hosts": "cso_iam"}  # inventories/lab/phase2.yml
POLICY = f"rds-db-connect-{DB}"  # rds_iam_db_auth's default policy name: rds-db-connect-<instance>
DR_POLICY = f"rds-db-connect-{DR_REPLICA}"
MONITORING_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                            "Principal": {"Service": "monitoring.rds.amazonaws.com"}}]}
HOST_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "ec2.amazonaws.com"}}]}


@pytest.fixture
def dr_with_iam(aws_lab, aws_env):
    """The seeded primary with phase 2's IAM state, and phase 3's DR replica of it admitting the lab's VPC."""
    iam = aws_lab.boto3("iam")
    iam.create_role(RoleName=f"{DB}-rds-monitoring", AssumeRolePolicyDocument=json.dumps(MONITORING_TRUST))
    enable_iam_auth(aws_lab, DB)
    aws_lab.boto3("rds").get_waiter("db_instance_available").wait(DBInstanceIdentifier=DB,
                                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    for role, user in IDENTITIES.items():
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(HOST_TRUST))
        policy = connect_policy(dbuser_arn(aws_lab, DB, user))
        iam.put_role_policy(RoleName=role, PolicyName=POLICY, PolicyDocument=policy)
    made = run_ansible(aws_env, "phase3.yml", *LIMIT, "-e", json.dumps(ONLY_THE_DR_REPLICA))
    assert made.returncode == 0, failure_messages(made) or made.stderr[-2000:]
    aws_lab.clear_calls()
    return aws_lab


def policy_resources(lab, role, policy):
    document = lab.boto3("iam").get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    return sorted(resource for statement in document["Statement"] for resource in
                  ([statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]))


def test_after_the_failover_the_policies_name_the_promoted_instance_in_the_dr_region(dr_with_iam, aws_env):
    dr_region = dr_with_iam.state["dr_region"]
    primary_arns = {role: dbuser_arn(dr_with_iam, DB, user) for role, user in IDENTITIES.items()}

    completed = run_ansible(aws_env, "dr_failover.yml", *LIMIT, "-e", json.dumps(dict(CONFIRM, **WITH_IAM)))
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]

    promoted = instance(dr_with_iam, DR_REPLICA, dr_region)
    assert "ReadReplicaSourceDBInstanceIdentifier" not in promoted
    assert promoted["IAMDatabaseAuthenticationEnabled"] is True
    region, account = promoted["DBInstanceArn"].split(":")[3:5]
    assert region == dr_region != dr_with_iam.state["region"]
    for role, user in IDENTITIES.items():
        assert policy_resources(dr_with_iam, role, DR_POLICY) == [
            f"arn:aws:rds-db:{region}:{account}:dbuser:{promoted['DbiResourceId']}/{user}"]
        # the primary's policy stays (its Region is lost; docs/phases.md: re-protect, then phase 2 again)
        assert policy_resources(dr_with_iam, role, POLICY) == [primary_arns[role]]

    dr_with_iam.clear_calls()
    again = run_ansible(aws_env, "dr_failover.yml", *LIMIT, "-e", json.dumps(dict(CONFIRM, **WITH_IAM)))
    assert again.returncode == 0, failure_messages(again) or again.stderr[-2000:]
    assert dr_with_iam.mutating_calls() == [], "a second failover run makes no mutating call"
