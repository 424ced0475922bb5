# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only checks of a hardened instance's inputs against AWS, run before any mutating call.

Each check fails the module with a message that says what to do when AWS's answer means the input
is wrong (a missing group, an unknown version); any other AWS error goes up to the module's one
handler (``common.run_module``). Clients come from ``common.aws_client``.
"""

from __future__ import annotations

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_storage as storage
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_kms_key

CA_EXPIRY_WARNING_DAYS = 90


def keys_in_use(instance):
    """The KMS key ARNs an existing instance uses now, by purpose (None where it uses none)."""
    instance = instance or {}
    secret = instance.get("MasterUserSecret") or {}
    return {
        "storage": instance.get("KmsKeyId") if instance.get("StorageEncrypted") else None,
        "performance_insights": instance.get("PerformanceInsightsKMSKeyId")
        if instance.get("PerformanceInsightsEnabled")
        else None,
        "master_user_secret": secret.get("KmsKeyId"),
    }


def validate_keys(module, kms, params, region, instance=None):
    """Full ARNs of the storage, Performance Insights and master secret keys.

    Each must be customer-managed, except a key the instance already uses for that purpose (an
    instance created under ``aws/rds`` keeps it until it is re-encrypted): that one is warned about.
    """
    in_use = keys_in_use(instance)
    storage = validate_kms_key(
        module, kms, params["kms_key_id"], region, "storage encryption", key_in_use=in_use["storage"]
    )["Arn"]
    arns = {"storage": storage, "performance_insights": storage, "master_user_secret": storage}
    others = (
        ("performance_insights", params["performance_insights_kms_key_id"], "Performance Insights"),
        ("master_user_secret", params["master_user_secret_kms_key_id"], "the master user secret"),
    )
    for purpose, key_id, what in others:
        if key_id:
            arns[purpose] = validate_kms_key(module, kms, key_id, region, what, key_in_use=in_use[purpose])["Arn"]
    return arns


def describe_engine_version(module, rds, engine, version):
    """The DBEngineVersion of ``engine`` ``version``; fails when AWS does not offer that version."""
    versions = rds.describe_db_engine_versions(Engine=engine, EngineVersion=version, aws_retry=True)["DBEngineVersions"]
    if not versions:
        module.fail_json(
            msg=f"Engine version {version} of {engine} is not offered by RDS in {module.region}. "
            f"List the available ones with `aws rds describe-db-engine-versions --engine {engine}` and set engine_version."
        )
    return versions[0]


def validate_engine_version(module, rds, engine, version):
    """The parameter group family of ``engine`` ``version``; fails when AWS does not offer that version."""
    return describe_engine_version(module, rds, engine, version)["DBParameterGroupFamily"]


def validate_rotation_without_restart(module, engine_version, current_ca, desired_ca):
    """``ca_certificate_rotation_restart=false`` only where the engine version rotates without a restart.

    AWS: RDS API Reference, DBEngineVersion ``SupportsCertificateRotationWithoutRestart``; elsewhere
    (ModifyDBInstance ``CertificateRotationRestart``) the certificate is not updated until the instance restarts.
    """
    if module.params.get("ca_certificate_rotation_restart", True) or not desired_ca or desired_ca == current_ca:
        return
    if not engine_version.get("SupportsCertificateRotationWithoutRestart"):
        module.fail_json(
            msg=f"{engine_version['Engine']} {engine_version['EngineVersion']} does not support rotating the server "
            f"certificate without a restart (DescribeDBEngineVersions: SupportsCertificateRotationWithoutRestart is "
            f"{engine_version.get('SupportsCertificateRotationWithoutRestart')}): with ca_certificate_rotation_restart=false "
            f"the instance would stay on the {current_ca} certificate until its next restart. Run with "
            "ca_certificate_rotation_restart=true and allow_reboot=true inside a maintenance window (one restart), or "
            "upgrade the engine first. Nothing was changed."
        )


def validate_parameter_group(module, rds, name, family):
    try:
        groups = rds.describe_db_parameter_groups(DBParameterGroupName=name, aws_retry=True)["DBParameterGroups"]
    except is_boto3_error_code("DBParameterGroupNotFound"):
        groups = []
    if not groups:
        module.fail_json(
            msg=f"DB parameter group {name} does not exist. Create it first (family {family}), "
            "for example with amazon.aws.rds_instance_param_group."
        )
    if groups[0]["DBParameterGroupFamily"] != family:
        module.fail_json(
            msg=f"DB parameter group {name} is of family {groups[0]['DBParameterGroupFamily']}, but the engine version "
            f"needs family {family}. Use a parameter group of family {family}."
        )


def subnet_group_vpc(module, rds, name):
    try:
        groups = rds.describe_db_subnet_groups(DBSubnetGroupName=name, aws_retry=True)["DBSubnetGroups"]
    except is_boto3_error_code("DBSubnetGroupNotFoundFault"):
        module.fail_json(msg=f"DB subnet group {name} does not exist. Create it first or fix db_subnet_group_name.")
    return groups[0]["VpcId"]


def validate_security_groups(module, ec2, group_ids, vpc_id):
    try:
        groups = ec2.describe_security_groups(GroupIds=group_ids, aws_retry=True)["SecurityGroups"]
    except is_boto3_error_code(["InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidGroupId.NotFound"]) as e:
        module.fail_json(
            msg=f"Security group(s) {', '.join(group_ids)} not found ({e.response['Error']['Message']}). "
            "Create the dedicated database security group first or fix vpc_security_group_ids."
        )
    found = {group["GroupId"]: group["VpcId"] for group in groups}
    missing = sorted(set(group_ids) - set(found))
    if missing:
        module.fail_json(
            msg=f"Security group(s) {', '.join(missing)} not found. Create them first or fix vpc_security_group_ids."
        )
    elsewhere = sorted(group for group, group_vpc in found.items() if group_vpc != vpc_id)
    if elsewhere:
        module.fail_json(
            msg=f"Security group(s) {', '.join(elsewhere)} are not in the DB subnet group's VPC {vpc_id}. "
            f"Use security groups of VPC {vpc_id}."
        )


def describe_certificate(module, rds, certificate_id):
    """The certificate, or None when RDS does not offer it."""
    try:
        certificates = rds.describe_certificates(CertificateIdentifier=certificate_id, aws_retry=True)["Certificates"]
    except is_boto3_error_code("CertificateNotFound"):
        return None
    return certificates[0] if certificates else None


def validate_ca(module, rds, certificate_id):
    if describe_certificate(module, rds, certificate_id) is None:
        module.fail_json(
            msg=f"CA certificate {certificate_id} is not offered by RDS in {module.region}. "
            "Use one of `aws rds describe-certificates` (for example rds-ca-rsa2048-g1)."
        )


def _expires_soon(valid_till, now):
    if isinstance(valid_till, str):
        valid_till = datetime.datetime.fromisoformat(valid_till.replace("Z", "+00:00"))
    return valid_till - now < datetime.timedelta(days=CA_EXPIRY_WARNING_DAYS)


def warn_if_ca_expires(module, rds, instance, desired_ca, now=None):
    """Warn when the CA the instance keeps (the current one, unless a new one is wanted) expires within 90 days."""
    current_ca = instance.get("CACertificateIdentifier")
    if not current_ca or (desired_ca and desired_ca != current_ca):
        return
    now = now or datetime.datetime.now(datetime.timezone.utc)
    valid_till = (instance.get("CertificateDetails") or {}).get("ValidTill")
    if valid_till is None:
        certificate = describe_certificate(module, rds, current_ca)
        valid_till = certificate.get("ValidTill") if certificate else None
    if valid_till is not None and _expires_soon(valid_till, now):
        module.warn(
            f"The CA certificate {current_ca} of {instance['DBInstanceIdentifier']} expires on {valid_till}, in under "
            f"{CA_EXPIRY_WARNING_DAYS} days. Plan the rotation: set ca_certificate_identifier (needs allow_reboot, "
            "or ca_certificate_rotation_restart=false where the engine version rotates without a restart) after the "
            "clients trust the new CA."
        )


def validate_monitoring_role(module, iam, role_arn):
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        iam.get_role(RoleName=role_name, aws_retry=True)
    except is_boto3_error_code("NoSuchEntity"):
        module.fail_json(
            msg=f"Enhanced monitoring role {role_arn} does not exist. Create it (trust monitoring.rds.amazonaws.com, "
            "policy AmazonRDSEnhancedMonitoringRole) or fix monitoring_role_arn."
        )


def _describe_option_group(rds, name):
    if not name or name.startswith("default:"):
        return None  # a default group holds no option (and is not always describable by name)
    try:
        return rds.describe_option_groups(OptionGroupName=name, aws_retry=True)["OptionGroupsList"][0]
    except is_boto3_error_code("OptionGroupNotFoundFault"):
        return None


def validate_option_group(module, rds, name, engine, version):
    """The option group exists and is made for the engine and major version the instance will run."""
    if name.startswith("default:"):
        return
    group = _describe_option_group(rds, name)
    major = ".".join(str(version).split(".")[:2])
    if group is None:
        module.fail_json(msg=f"Option group {name} does not exist. Create it first ({engine} {major}), for example "
                             "with cso.rds_hardening.rds_audit_logging or amazon.aws.rds_option_group. Nothing was changed.")
    if (group.get("EngineName"), group.get("MajorEngineVersion")) != (engine, major):
        module.fail_json(msg=f"Option group {name} is for {group.get('EngineName')} {group.get('MajorEngineVersion')}, "
                             f"the instance runs {engine} {version}. Use an option group for {engine} {major}. "
                             "Nothing was changed.")


def drops_audit_plugin(rds, current_name, desired_name):
    """Whether moving from ``current_name`` to ``desired_name`` removes the MariaDB Audit Plugin (AWS restarts then)."""
    def has_plugin(name):
        group = _describe_option_group(rds, name)
        return any(option.get("OptionName") == "MARIADB_AUDIT_PLUGIN" for option in (group or {}).get("Options") or [])
    return has_plugin(current_name) and not has_plugin(desired_name)


@AWSRetry.jittered_backoff(retries=10, delay=3, max_delay=60)
def _recent_events(rds, identifier, minutes):
    paginator = rds.get_paginator("describe_events")
    pages = paginator.paginate(SourceIdentifier=identifier, SourceType="db-instance", Duration=minutes)
    return pages.build_full_result().get("Events", [])


def storage_change_refusal(rds, instance, current, now=None):
    """Why AWS would refuse a storage change of ``instance`` now, as a message that says when to retry (None: it
    would not). From its status (``storage-optimization``) and its storage events of the last six hours
    (DescribeEvents; ``instance_storage.change_refusal``); ``current`` is its storage, named in the message."""
    minutes = int(storage.STORAGE_CHANGE_COOLDOWN.total_seconds() // 60)
    events = _recent_events(rds, instance["DBInstanceIdentifier"], minutes)
    return storage.change_refusal(instance, events, now or datetime.datetime.now(datetime.timezone.utc), current)
