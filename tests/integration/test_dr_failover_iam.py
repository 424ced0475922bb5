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

from iam_lab import LAB_SERVICE_IDENTITIES as IDENTITIES, connect_policy_name, dbuser_arn, phase2_iam_state, \
    role_policy_resources, trust
from phase_support import DB, failure_messages, instance, run_ansible

pytestmark = pytest.mark.lab

DR_REPLICA = f"{DB}-dr"
LIMIT = ("--limit", DB)
WITH_IAM = {"phase2_iam": True}
ONLY_THE_DR_REPLICA = {"phase3_storage": False, "phase3_blue_green": False, "phase3_stop_after": "dr_replica",
                       "phase3_dr_allowed_cidrs": ["10.20.0.0/16"]}
CONFIRM = {"phase3_dr_failover_confirm": DR_REPLICA}
POLICY, DR_POLICY = connect_policy_name(DB), connect_policy_name(DR_REPLICA)


@pytest.fixture
def dr_with_iam(aws_lab, aws_env):
    """The seeded primary with phase 2's IAM state, and phase 3's DR replica of it admitting the lab's VPC."""
    aws_lab.boto3("iam").create_role(RoleName=f"{DB}-rds-monitoring",
                                     AssumeRolePolicyDocument=trust("monitoring.rds.amazonaws.com"))
    phase2_iam_state(aws_lab, DB)
    made = run_ansible(aws_env, "phase3.yml", *LIMIT, "-e", json.dumps(ONLY_THE_DR_REPLICA))
    assert made.returncode == 0, failure_messages(made) or made.stderr[-2000:]
    aws_lab.clear_calls()
    return aws_lab


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
        assert role_policy_resources(dr_with_iam, role, DR_POLICY) == [
            f"arn:aws:rds-db:{region}:{account}:dbuser:{promoted['DbiResourceId']}/{user}"]
        # the primary's policy stays (its Region is lost; docs/phases.md: re-protect, then phase 2 again)
        assert role_policy_resources(dr_with_iam, role, POLICY) == [primary_arns[role]]

    dr_with_iam.clear_calls()
    again = run_ansible(aws_env, "dr_failover.yml", *LIMIT, "-e", json.dumps(dict(CONFIRM, **WITH_IAM)))
    assert again.returncode == 0, failure_messages(again) or again.stderr[-2000:]
    assert dr_with_iam.mutating_calls() == [], "a second failover run makes no mutating call"
