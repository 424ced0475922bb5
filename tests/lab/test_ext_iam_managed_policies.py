"""Contract: the AWS managed policy AmazonRDSEnhancedMonitoringRole exists, as AWS defines it, and
can be attached to a role; a managed policy AWS does not define cannot."""

import json

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

ARN = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}


def test_the_enhanced_monitoring_policy_exists_as_aws_defines_it(lab):
    lab.reset()
    iam = lab.boto3("iam")
    policy = iam.get_policy(PolicyArn=ARN)["Policy"]
    assert (policy["PolicyName"], policy["Path"], policy["DefaultVersionId"]) == (
        "AmazonRDSEnhancedMonitoringRole", "/service-role/", "v1")
    document = iam.get_policy_version(PolicyArn=ARN, VersionId="v1")["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    actions = sorted(action for statement in document["Statement"] for action in statement["Action"])
    assert actions == sorted(["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:CreateLogStream",
                              "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"])


def test_it_attaches_and_an_unknown_aws_policy_does_not(lab):
    lab.reset()
    iam = lab.boto3("iam")
    iam.create_role(RoleName="rds-monitoring", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName="rds-monitoring", PolicyArn=ARN)
    attached = iam.list_attached_role_policies(RoleName="rds-monitoring")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [ARN]
    with pytest.raises(ClientError) as error:
        iam.attach_role_policy(RoleName="rds-monitoring",
                               PolicyArn="arn:aws:iam::aws:policy/service-role/NoSuchAwsPolicy")
    assert error.value.response["Error"]["Code"] == "NoSuchEntity"
