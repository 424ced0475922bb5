"""Phase 1's keys and the IAM role it creates, read back from the lab (AWS side only: --limit to
the database, outside the maintenance window, so only the non-disruptive steps up to ``alarms``
run). moto stores key and trust policies but enforces none of them, so these tests check what
AWS would enforce: who may use each key, under which conditions, and that the alarm topic is
encrypted with the key whose policy lets CloudWatch and RDS events publish."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
DB = "cso-lab-db"
CMK_ALIAS = "alias/cso-lab-db-rds"
TOPIC_KEY_ALIAS = "alias/cso-lab-db-rds-alarm-topic"
TOPIC_NAME = "cso-lab-rds-alerts"
# non-disruptive steps only: outside the window, not forced (the window gate skips security_group)
UP_TO_ALARMS = {"phase1_force_outside_window": False, "phase1_maintenance_window": "sun:04:00-sun:05:00",
                "phase1_now": "2026-11-23T12:00:00Z", "phase1_stop_after": "alarms", "phase1_snapshot": False}
RDS_USE_ACTIONS = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant",
                   "kms:ListGrants", "kms:DescribeKey"}


def run_phase1(env, extra_vars):
    command = [ANSIBLE_PLAYBOOK, "phase1.yml", "-i", "inventories/lab", "--limit", DB, "-e", json.dumps(extra_vars)]
    run_env = dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return subprocess.run(command, cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=900)


def failures(completed):
    try:
        plays = json.loads(completed.stdout)["plays"]
    except ValueError:
        return completed.stdout[-3000:] + completed.stderr[-2000:]
    return [(task["task"]["name"], result.get("msg")) for play in plays for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


def key_arn(lab, alias):
    kms = lab.boto3("kms")
    return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]


def key_policy(lab, alias):
    kms = lab.boto3("kms")
    return json.loads(kms.get_key_policy(KeyId=key_arn(lab, alias), PolicyName="default")["Policy"])


def statements(policy):
    return {statement.get("Sid"): statement for statement in policy["Statement"]}


def as_set(value):
    return set([value] if isinstance(value, str) else value)


def service_principals(policy):
    return set().union(*(as_set(s.get("Principal", {}).get("Service", [])) for s in policy["Statement"]
                         if isinstance(s.get("Principal"), dict)))


def account(lab):
    return lab.boto3("sts").get_caller_identity()["Account"]


@pytest.fixture
def a_cmk_with_the_default_policy(aws_lab):
    """Today's CMK, as an earlier phase 1 created it: AWS's default key policy (account root only)."""
    kms = aws_lab.boto3("kms")
    key = kms.create_key(Description="Phase 1 CMK of cso-lab-db")["KeyMetadata"]
    kms.create_alias(AliasName=CMK_ALIAS, TargetKeyId=key["KeyId"])
    default = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert service_principals(default) == set() and len(default["Statement"]) == 1, default
    aws_lab.clear_calls()
    return key["Arn"]


def test_phase1_gives_each_key_an_explicit_policy_and_the_topic_its_own_key(aws_lab, aws_env,
                                                                          a_cmk_with_the_default_policy):
    completed = run_phase1(aws_env, UP_TO_ALARMS)
    assert completed.returncode == 0, failures(completed)
    account_id = account(aws_lab)
    root = f"arn:aws:iam::{account_id}:root"

    # the CMK (storage, Performance Insights, master secret): the existing key got its new policy
    assert key_arn(aws_lab, CMK_ALIAS) == a_cmk_with_the_default_policy
    cmk = statements(key_policy(aws_lab, CMK_ALIAS))
    assert cmk["AccountAdministersTheKeyThroughIam"]["Principal"] == {"AWS": root}
    assert cmk["AccountAdministersTheKeyThroughIam"]["Action"] == "kms:*"
    rds = cmk["RdsUsesTheKeyForStorageAndPerformanceInsights"]
    assert rds["Effect"] == "Allow" and as_set(rds["Action"]) == RDS_USE_ACTIONS
    assert rds["Condition"] == {"StringEquals": {"kms:CallerAccount": account_id,
                                                 "kms:ViaService": "rds.eu-west-2.amazonaws.com"}}
    secret = cmk["SecretsManagerUsesTheKeyForTheMasterUserSecret"]
    assert secret["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-2.amazonaws.com"
    # every statement that is not the account's own is bound to a service and to this account
    for sid, statement in cmk.items():
        if sid != "AccountAdministersTheKeyThroughIam":
            assert statement["Condition"]["StringEquals"]["kms:CallerAccount"] == account_id, sid
            assert "kms:ViaService" in statement["Condition"]["StringEquals"], sid
    # negative: the storage key names no publishing service
    assert service_principals({"Statement": list(cmk.values())}) == set()

    # the topic's key: CloudWatch and RDS events may generate and decrypt data keys, for this account only
    topic_key = statements(key_policy(aws_lab, TOPIC_KEY_ALIAS))
    assert topic_key["AccountAdministersTheKeyThroughIam"]["Principal"] == {"AWS": root}
    publish = topic_key["CloudWatchAndRdsEventsPublishToTheAlarmTopic"]
    assert as_set(publish["Principal"]["Service"]) == {"cloudwatch.amazonaws.com", "events.rds.amazonaws.com"}
    assert as_set(publish["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": account_id}}
    assert set(topic_key) == {"AccountAdministersTheKeyThroughIam", "CloudWatchAndRdsEventsPublishToTheAlarmTopic"}
    assert key_arn(aws_lab, TOPIC_KEY_ALIAS) != a_cmk_with_the_default_policy
    assert aws_lab.boto3("kms").get_key_rotation_status(KeyId=key_arn(aws_lab, TOPIC_KEY_ALIAS))["KeyRotationEnabled"]

    # the topic is encrypted with its own key, not the CMK
    sns = aws_lab.boto3("sns")
    topic_arn = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":" + TOPIC_NAME))
    assert sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["KmsMasterKeyId"] in (
        key_arn(aws_lab, TOPIC_KEY_ALIAS), TOPIC_KEY_ALIAS)

    # amazon.aws.kms_key compares the policies: an equal one is not put again
    aws_lab.clear_calls()
    again = run_phase1(aws_env, UP_TO_ALARMS)
    assert again.returncode == 0, failures(again)
    assert [call["action"] for call in aws_lab.mutating_calls()] == [], "a second run changes nothing"


# security_group runs only inside the window (phase 1's instance step)
UP_TO_SECURITY_GROUP = dict(UP_TO_ALARMS, phase1_now="2026-11-22T04:30:00Z", phase1_stop_after="security_group")
MONITORING_ROLE = "cso-lab-db-rds-monitoring"
MONITORING_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


def test_phase1_turns_enhanced_monitoring_on_with_a_role_only_this_account_can_use(aws_lab, aws_env):
    rds = aws_lab.boto3("rds")
    before = rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    assert before["MonitoringInterval"] == 0 and "MonitoringRoleArn" not in before

    completed = run_phase1(aws_env, UP_TO_SECURITY_GROUP)
    assert completed.returncode == 0, failures(completed)

    iam = aws_lab.boto3("iam")
    role = iam.get_role(RoleName=MONITORING_ROLE)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                                   "Action": "sts:AssumeRole",
                                   "Condition": {"StringEquals": {"aws:SourceAccount": account(aws_lab)}}}]
    attached = iam.list_attached_role_policies(RoleName=MONITORING_ROLE)["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [MONITORING_POLICY]

    after = rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    assert after["MonitoringInterval"] == 60
    assert after["MonitoringRoleArn"] == role["Arn"]
