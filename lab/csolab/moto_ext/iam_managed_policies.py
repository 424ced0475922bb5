"""The one AWS managed IAM policy the collection attaches: AmazonRDSEnhancedMonitoringRole.

moto loads AWS managed policies only with MOTO_IAM_LOAD_MANAGED_POLICIES (all ~1,200 of them,
about 2 s per reset), so without it ``AttachRolePolicy`` of
``arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole`` fails with NoSuchEntity,
which AWS never does. This adds that policy, as AWS defines it, to every IAM backend.

AWS: AWS Managed Policy Reference Guide, "AmazonRDSEnhancedMonitoringRole" (version v1, path
/service-role/, created 2015-11-11); RDS User Guide, "Setting up and enabling Enhanced Monitoring".
"""

from moto.iam.models import AWSManagedPolicy, IAMBackend

from csolab.moto_ext._common import around

NAME = "AmazonRDSEnhancedMonitoringRole"
DEFINITION = {
    "CreateDate": "2015-11-11T19:58:29+00:00",
    "UpdateDate": "2015-11-11T19:58:29+00:00",
    "DefaultVersionId": "v1",
    "Path": "/service-role/",
    "Document": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EnableCreationAndManagementOfRDSCloudwatchLogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
                "Resource": ["arn:aws:logs:*:*:log-group:RDS*"],
            },
            {
                "Sid": "EnableCreationAndManagementOfRDSCloudwatchLogStreams",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"],
                "Resource": ["arn:aws:logs:*:*:log-group:RDS*:log-stream:*"],
            },
        ],
    },
}


@around(IAMBackend, "_init_aws_policies")
def _init_aws_policies(original, backend):
    policies = original(backend)
    if not any(policy.name == NAME for policy in policies):
        policies.append(AWSManagedPolicy.from_data(NAME, backend.account_id, backend.region_name, DEFINITION))
    return policies
