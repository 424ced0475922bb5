# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWS side of rds_hardened_replica: the read-only checks run before any write, the waiter, the writes.

Checks fail the module with a message that says what to do; other AWS errors go up to ``common.run_module``.
Clients come from ``common.aws_client`` and every call passes ``aws_retry=True``.
"""

from __future__ import annotations

import math

try:
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.rds import ensure_tags
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_checks as checks
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import describe_kms_key
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_kms_key

# Seconds between two polls of the waiter (amazon.aws's wait_for_instance_status polls every 60 s).
WAIT_DELAY = 5
TLS_PARAMETER = "require_secure_transport"
TLS_ON = ("1", "ON", "on", "true", "TRUE")


def wait_available(module, rds, identifier):
    """botocore's ``db_instance_available`` waiter, polling every ``WAIT_DELAY`` s for at most ``wait_timeout`` s."""
    attempts = max(1, math.ceil(module.params["wait_timeout"] / WAIT_DELAY))
    try:
        rds.get_waiter("db_instance_available").wait(
            DBInstanceIdentifier=identifier, WaiterConfig={"Delay": WAIT_DELAY, "MaxAttempts": attempts}
        )
    except WaiterError as e:
        module.fail_json(
            msg=f"Instance {identifier} did not become available within {module.params['wait_timeout']} s ({e}). "
            "AWS goes on with the change: check the instance's status and events, then run this task again "
            "(it resumes from what AWS has)."
        )


def validate_keys(module, kms, params, source, instance):
    """Full ARNs of the storage key (always the source's) and the Performance Insights key."""
    region, name = module.region, source["DBInstanceIdentifier"]
    in_use = checks.keys_in_use(instance)
    source_key = describe_kms_key(kms, source["KmsKeyId"])
    if source_key is None or source_key.get("KeyState") != "Enabled":
        module.fail_json(
            msg=f"The KMS key {source['KmsKeyId']} of source {name} is {'missing' if source_key is None else source_key.get('KeyState')}; "
            "a replica is encrypted with its source's key, which must be Enabled. Enable the key (or cancel its deletion) first."
        )
    if source_key.get("KeyManager") != "CUSTOMER" and source_key["Arn"] != in_use["storage"]:
        inherited = (f"Source {name} is encrypted with the AWS-managed key {source_key['Arn']}, and a same-region replica "
                     "always uses its source's key (AWS: CreateDBInstanceReadReplica, KmsKeyId)")
        if not params["allow_aws_managed_source_key"]:
            module.fail_json(
                msg=f"{inherited}. Re-encrypt the source under a customer-managed key first (rds_hardened_instance with "
                "kms_key_id and allow_replacement=true), or set allow_aws_managed_source_key=true to accept it."
            )
        module.warn(f"{inherited}: the replica inherits it. Re-encrypting the source under a customer-managed key "
                    "later means making the replica again.")
    storage = source_key["Arn"]
    if params["kms_key_id"]:
        wanted = validate_kms_key(module, kms, params["kms_key_id"], region, "the replica's storage encryption")["Arn"]
        if wanted != storage:
            module.fail_json(
                msg=f"kms_key_id {params['kms_key_id']} is not the key of source {name} ({storage}). A read replica in the "
                "same region is always encrypted with its source's key; AWS refuses another one (AWS: "
                f"CreateDBInstanceReadReplica, KmsKeyId). Leave kms_key_id unset or set it to {storage}."
            )
    performance_insights = storage
    if params["performance_insights_kms_key_id"]:
        performance_insights = validate_kms_key(
            module, kms, params["performance_insights_kms_key_id"], region, "Performance Insights",
            key_in_use=in_use["performance_insights"],
        )["Arn"]
    return {"storage": storage, "performance_insights": performance_insights}


def validate_cross_region_keys(module, kms, params, instance):
    """Full ARNs of a cross-Region replica's keys: ``kms_key_id`` (required; a customer-managed key of the replica's
    Region, not the source's) and the Performance Insights key (by default the same)."""
    region, in_use = module.region, checks.keys_in_use(instance)
    storage = validate_kms_key(module, kms, params["kms_key_id"], region, "the cross-Region replica's storage encryption",
                               key_in_use=in_use["storage"])["Arn"]
    performance_insights = storage
    if params["performance_insights_kms_key_id"]:
        performance_insights = validate_kms_key(
            module, kms, params["performance_insights_kms_key_id"], region, "Performance Insights",
            key_in_use=in_use["performance_insights"],
        )["Arn"]
    return {"storage": storage, "performance_insights": performance_insights}


@AWSRetry.jittered_backoff(retries=10, delay=3, max_delay=60)
def user_parameters(rds, group_name):
    paginator = rds.get_paginator("describe_db_parameters")
    return paginator.paginate(DBParameterGroupName=group_name, Source="user").build_full_result()["Parameters"]


def validate_tls_required(module, rds, group_name):
    values = [p.get("ParameterValue") for p in user_parameters(rds, group_name) if p["ParameterName"] == TLS_PARAMETER]
    if not values or values[0] not in TLS_ON:
        module.fail_json(
            msg=f"DB parameter group {group_name} does not require TLS ({TLS_PARAMETER} is {values[0] if values else 'not set'}). "
            f"Give the replica its own parameter group with {TLS_PARAMETER}=1 (for example the rds_instance role's, "
            "or amazon.aws.rds_instance_param_group) and run again."
        )


def validate_against_aws(module, clients, source, instance, desired):
    """Every check that reads AWS; fails before anything is changed."""
    params, rds = module.params, clients.rds
    family = checks.validate_engine_version(module, rds, source["Engine"], source["EngineVersion"])
    checks.validate_parameter_group(module, rds, desired["db_parameter_group_name"], family)
    validate_tls_required(module, rds, desired["db_parameter_group_name"])
    if params["db_subnet_group_name"]:
        vpc_id = checks.subnet_group_vpc(module, rds, params["db_subnet_group_name"])
    else:
        vpc_id = (instance or source)["DBSubnetGroup"]["VpcId"]
    checks.validate_security_groups(module, clients.ec2, desired["vpc_security_group_ids"], vpc_id)
    if desired["ca_certificate_identifier"]:
        checks.validate_ca(module, rds, desired["ca_certificate_identifier"])
    if instance:
        checks.warn_if_ca_expires(module, rds, instance, desired["ca_certificate_identifier"])
    if desired["monitoring_role_arn"]:
        checks.validate_monitoring_role(module, clients.iam, desired["monitoring_role_arn"])


def create(module, rds, parameters):
    rds.create_db_instance_read_replica(aws_retry=True, **parameters)
    wait_available(module, rds, parameters["DBInstanceIdentifier"])
    return get_db_instance(rds, parameters["DBInstanceIdentifier"])


def reboot_if_pending(module, rds, instance):
    """Reboot to apply a pending-reboot parameter group, when the task allows it and wants changes now."""
    params = module.params
    pending = [g for g in instance.get("DBParameterGroups") or [] if g.get("ParameterApplyStatus") == "pending-reboot"]
    if not pending:
        return False
    if not (params["allow_reboot"] and params["apply"] == planning.IMMEDIATELY):
        module.warn(
            f"Parameter group {pending[0]['DBParameterGroupName']} is pending-reboot on {instance['DBInstanceIdentifier']}: "
            "it takes effect at the next reboot (run with allow_reboot=true and apply=immediately to reboot now)."
        )
        return False
    rds.reboot_db_instance(DBInstanceIdentifier=instance["DBInstanceIdentifier"], aws_retry=True)
    wait_available(module, rds, instance["DBInstanceIdentifier"])
    return True


def converge(module, rds, instance, current, desired, plan):
    """Apply the in-place part of ``plan`` with ModifyDBInstance, the tags, a pending reboot; returns changed."""
    params, identifier = module.params, instance["DBInstanceIdentifier"]
    parameters = planning.modify_parameters(plan, current, desired)
    changed = False
    if parameters:
        if instance["DBInstanceStatus"] != "available":
            wait_available(module, rds, identifier)
        parameters["ApplyImmediately"] = params["apply"] == planning.IMMEDIATELY
        rds.modify_db_instance(DBInstanceIdentifier=identifier, aws_retry=True, **parameters)
        wait_available(module, rds, identifier)
        changed = True
    existing_tags = boto3_tag_list_to_ansible_dict(instance.get("TagList", []))
    changed |= ensure_tags(rds, module, instance["DBInstanceArn"], existing_tags, params["tags"], params["purge_tags"])
    changed |= reboot_if_pending(module, rds, get_db_instance(rds, identifier))
    return changed
