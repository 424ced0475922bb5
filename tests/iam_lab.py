"""Identities in the lab's emulated IAM for RDS IAM database authentication tests (importable as ``iam_lab``)."""

import json

import boto3


# The identities the lab's services sign with, and their IAM database users (inventories/lab/phase2.yml)
LAB_SERVICE_IDENTITIES = {"lab-keystone-hosts": "keystone_iam", "lab-cso-hosts": "cso_iam"}


def trust(service):
    """A role's trust policy letting ``service`` (e.g. ec2.amazonaws.com) assume it."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def connect_policy_name(instance_id):
    """rds_iam_db_auth's default policy name."""
    return f"rds-db-connect-{instance_id}"


def connect_policy(*resources, effect="Allow"):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": effect, "Action": "rds-db:connect", "Resource": list(resources)}]})


def dbuser_arn(lab, instance_id, db_user):
    """arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>, from DescribeDBInstances."""
    instance = lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
    region, account = instance["DBInstanceArn"].split(":")[3:5]
    return f"arn:aws:rds-db:{region}:{account}:dbuser:{instance['DbiResourceId']}/{db_user}"


def enable_iam_auth(lab, instance_id, enabled=True):
    lab.boto3("rds").modify_db_instance(DBInstanceIdentifier=instance_id, EnableIAMDatabaseAuthentication=enabled,
                                        ApplyImmediately=True)


def user_with_key(lab, name, inline=None, managed=None, group_inline=None):
    """An IAM user with an access key; its policy inline, as an attached managed policy, or through
    a group. Returns {"arn", "key", "secret"}."""
    iam = lab.boto3("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if inline:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-inline", PolicyDocument=inline)
    if managed:
        policy_arn = iam.create_policy(PolicyName=f"{name}-managed", PolicyDocument=managed)["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)
    if group_inline:
        iam.create_group(GroupName=f"{name}-group")
        iam.put_group_policy(GroupName=f"{name}-group", PolicyName="connect", PolicyDocument=group_inline)
        iam.add_user_to_group(GroupName=f"{name}-group", UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"arn": arn, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"], "session_token": None}


def role_session(lab, name, inline, session_name="host-1"):
    """STS AssumeRole credentials of a role with ``inline`` as its policy: {"arn", "key", "secret", "session_token"}."""
    iam = lab.boto3("iam")
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName=f"{name}-inline", PolicyDocument=inline)
    assumed = lab.boto3("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)
    credentials = assumed["Credentials"]
    return {"arn": assumed["AssumedRoleUser"]["Arn"], "key": credentials["AccessKeyId"],
            "secret": credentials["SecretAccessKey"], "session_token": credentials["SessionToken"]}


def auth_token(identity, host, port, db_user, region="eu-west-2"):
    """The token a client makes (boto3's generate_db_auth_token: signing is local, no call to AWS)."""
    client = boto3.client("rds", region_name=region, aws_access_key_id=identity["key"],
                          aws_secret_access_key=identity["secret"], aws_session_token=identity["session_token"])
    return client.generate_db_auth_token(host, port, db_user)


def phase2_iam_state(lab, instance_id, identities=LAB_SERVICE_IDENTITIES):
    """What phase 2's step iam leaves on the AWS side: IAM authentication on (the instance available again), and
    each service role with the rds-db:connect policy of ``instance_id`` naming its database user."""
    iam = lab.boto3("iam")
    enable_iam_auth(lab, instance_id)
    lab.boto3("rds").get_waiter("db_instance_available").wait(DBInstanceIdentifier=instance_id,
                                                              WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    for role, user in identities.items():
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
        iam.put_role_policy(RoleName=role, PolicyName=connect_policy_name(instance_id),
                            PolicyDocument=connect_policy(dbuser_arn(lab, instance_id, user)))


def role_policy_resources(lab, role, policy_name):
    """The sorted Resource entries of a role's inline policy."""
    document = lab.boto3("iam").get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    return sorted(resource for statement in document["Statement"] for resource in
                  ([statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]))
