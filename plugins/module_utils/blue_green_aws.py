# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWS side of rds_blue_green: the reads the checks need, the waiters, the writes.

The waits poll DescribeBlueGreenDeployments every ``POLL_SECONDS`` through amazon.aws's ``BaseWaiterFactory``
(throttling and 5xx answers are retried) for at most the task's ``wait_timeout``; a status that cannot lead to the
awaited one (``INVALID_CONFIGURATION``, ``SWITCHOVER_FAILED``, or any other) ends the wait at once. Clients come from
``common.aws_client`` and every call passes ``aws_retry=True``.
"""

from __future__ import annotations

try:
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.waiter import BaseWaiterFactory

from ansible_collections.cso.rds_hardening.plugins.module_utils import blue_green_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import waiter_config
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_checks import validate_parameter_group
from ansible_collections.cso.rds_hardening.plugins.module_utils.replica_aws import user_parameters

POLL_SECONDS = 5
# A switchover ends (completed, or rolled back) within its SwitchoverTimeout; the wait allows this much more.
SWITCHOVER_GRACE_SECONDS = 120
_STATUS = "BlueGreenDeployments[0].Status"


def _literal(values):
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def _model(success, passing):
    """Success at ``success``; failure at any status outside ``passing`` (the ones on the way) and ``success``."""
    allowed = _literal((success,) + passing)
    return dict(operation="DescribeBlueGreenDeployments", delay=POLL_SECONDS, maxAttempts=720, acceptors=[
        dict(state="success", matcher="path", argument=_STATUS, expected=success),
        dict(state="failure", matcher="path", argument=f"!contains({allowed}, {_STATUS})", expected=True),
    ])


class _DeploymentWaiters(BaseWaiterFactory):
    @property
    def _waiter_model_data(self):
        return {
            "available": _model(spec.AVAILABLE, (spec.PROVISIONING,)),
            # right after SwitchoverBlueGreenDeployment AWS may still answer AVAILABLE
            "switched_over": _model(spec.SWITCHED, (spec.AVAILABLE, spec.SWITCHING)),
            "deleted": dict(operation="DescribeBlueGreenDeployments", delay=POLL_SECONDS, maxAttempts=720, acceptors=[
                dict(state="success", matcher="error", expected="BlueGreenDeploymentNotFoundFault"),
                dict(state="success", matcher="path", argument="length(BlueGreenDeployments) == `0`", expected=True),
            ]),
        }


def _wait(module, rds, deployment, waiter, what, timeout):
    identifier = deployment["BlueGreenDeploymentIdentifier"]
    client = getattr(rds, "client", rds)  # the waiter polls the plain client; its acceptors retry throttling
    try:
        _DeploymentWaiters().get_waiter(client, waiter).wait(BlueGreenDeploymentIdentifier=identifier,
                                                             WaiterConfig=waiter_config(timeout, pause=POLL_SECONDS))
    except WaiterError as e:
        found = ((e.last_response or {}).get("BlueGreenDeployments") or [{}])[0]
        status, details = found.get("Status"), found.get("StatusDetails")
        if status is None and "Max attempts exceeded" not in str(e):
            module.fail_json_aws(e, msg=f"Blue/green deployment {deployment['BlueGreenDeploymentName']} could not be read "
                                        f"while waiting for it to be {what}; check it with describe-blue-green-deployments.")
        if "Max attempts exceeded" not in str(e):
            module.fail_json(msg=spec.status_refusal(dict(deployment, Status=status, StatusDetails=details), spec.PRESENT)
                             or f"Blue/green deployment {deployment['BlueGreenDeploymentName']} is {status}.",
                             blue_green_deployment_status=status)
        module.fail_json(
            msg=f"Blue/green deployment {deployment['BlueGreenDeploymentName']} was not {what} within {timeout} s (last "
            f"status: {status}; {details or 'no details'}). AWS goes on: check it (describe-blue-green-deployments, "
            "describe-events), then run the task again (with a larger wait_timeout if it is only slow).",
            blue_green_deployment_status=status)


def wait_available(module, rds, deployment):
    _wait(module, rds, deployment, "available", "available", module.params["wait_timeout"])


def wait_switched_over(module, rds, deployment):
    timeout = min(module.params["wait_timeout"], module.params["switchover_timeout"] + SWITCHOVER_GRACE_SECONDS)
    _wait(module, rds, deployment, "switched_over", "switched over", timeout)


def wait_deleted(module, rds, deployment):
    _wait(module, rds, deployment, "deleted", "deleted", module.params["wait_timeout"])


def wait_instance_deleted(module, rds, identifier):
    client = getattr(rds, "client", rds)
    try:
        client.get_waiter("db_instance_deleted").wait(
            DBInstanceIdentifier=identifier, WaiterConfig=waiter_config(module.params["wait_timeout"]))
    except WaiterError as e:
        module.fail_json_aws(e, msg=f"DB instance {identifier} was not deleted within {module.params['wait_timeout']} s. "
                                    "AWS goes on: run the task again later.")


# --- reads ------------------------------------------------------------------------------------------------------


@AWSRetry.jittered_backoff(retries=10, delay=3, max_delay=60)
def all_deployments(rds):
    """Every blue/green deployment of the region (there are few): the task's by name, and the blue's others."""
    paginator = rds.get_paginator("describe_blue_green_deployments")
    return paginator.paginate().build_full_result().get("BlueGreenDeployments", [])


def describe_deployment(rds, deployment):
    try:
        found = rds.describe_blue_green_deployments(
            BlueGreenDeploymentIdentifier=deployment["BlueGreenDeploymentIdentifier"], aws_retry=True,
        )["BlueGreenDeployments"]
    except is_boto3_error_code("BlueGreenDeploymentNotFoundFault"):
        return None
    return found[0] if found else None


def engine_version(rds, engine, version):
    """The DBEngineVersion (None when AWS does not offer it)."""
    versions = rds.describe_db_engine_versions(Engine=engine, EngineVersion=version, aws_retry=True)["DBEngineVersions"]
    return versions[0] if versions else None


def instance(rds, identifier):
    return get_db_instance(rds, identifier) if identifier else None


def green_group_parameters(rds, group):
    return user_parameters(rds, group)


def _fail_on(module, errors):
    if errors:
        module.fail_json(msg="Nothing was changed: " + " ".join(errors), errors=errors)


def validate_new(module, rds, blue, deployments):
    """Every check of a new deployment against AWS; returns the green's settings."""
    params = module.params
    _fail_on(module, spec.source_errors(blue, params, module.region))
    _fail_on(module, spec.membership_errors(deployments, blue["DBInstanceArn"], params))
    blue_version = engine_version(rds, blue["Engine"], blue["EngineVersion"]) or {}
    targets = blue_version.get("ValidUpgradeTarget", [])
    errors = spec.version_errors(blue, params["target_engine_version"], targets)
    major = not errors and spec.is_major_upgrade(params["target_engine_version"], targets)
    errors += spec.major_upgrade_errors(blue, params, major) + spec.storage_errors(blue, params)
    _fail_on(module, errors)
    settings = spec.green_settings(params, blue)
    family = blue_version.get("DBParameterGroupFamily")
    if settings["engine_version"] != blue["EngineVersion"]:
        family = (engine_version(rds, blue["Engine"], settings["engine_version"]) or {}).get("DBParameterGroupFamily")
    if params["target_db_parameter_group_name"]:
        validate_parameter_group(module, rds, settings["db_parameter_group_name"], family)
    group = settings["db_parameter_group_name"]
    _fail_on(module, spec.event_scheduler_errors(group, green_group_parameters(rds, group)))
    return settings


# --- writes -----------------------------------------------------------------------------------------------------


def create(rds, parameters):
    return rds.create_blue_green_deployment(aws_retry=True, **parameters)["BlueGreenDeployment"]


def switch_over(rds, deployment, timeout):
    return rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=deployment["BlueGreenDeploymentIdentifier"],
                                                SwitchoverTimeout=timeout, aws_retry=True)["BlueGreenDeployment"]


def delete(rds, deployment, delete_target):
    parameters = {"BlueGreenDeploymentIdentifier": deployment["BlueGreenDeploymentIdentifier"]}
    if delete_target:
        parameters["DeleteTarget"] = True
    return rds.delete_blue_green_deployment(aws_retry=True, **parameters)["BlueGreenDeployment"]


def turn_off_deletion_protection(rds, identifier):
    rds.modify_db_instance(DBInstanceIdentifier=identifier, DeletionProtection=False, ApplyImmediately=True,
                           aws_retry=True)


def delete_instance(rds, identifier, final_snapshot):
    parameters = ({"FinalDBSnapshotIdentifier": final_snapshot} if final_snapshot else {"SkipFinalSnapshot": True})
    rds.delete_db_instance(DBInstanceIdentifier=identifier, aws_retry=True, **parameters)
