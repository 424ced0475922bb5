"""RDS blue/green deployments of DB instances, where moto's model differs from AWS.

moto 5.2.5 makes the green instance and reports the deployment ``AVAILABLE`` at once, refuses none of AWS's
documented limitations, and its switchover asks ``modify_db_instance`` for the renames without
``ApplyImmediately`` (so the lab's ``pending`` defers them to a maintenance window that never comes: nothing is
renamed). The rules here, each from the AWS page named (never from the collection's ``blue_green_spec``: the lab is
what the module is checked against):

* RDS API Reference, BlueGreenDeployment ``Status``: ``PROVISIONING`` (resources are being created in the green
  environment), ``AVAILABLE``, ``SWITCHOVER_IN_PROGRESS``, ``SWITCHOVER_COMPLETED``, ... The lab keeps a new
  deployment ``PROVISIONING`` for ``provisioning_seconds`` and its green instance ``creating`` meanwhile ("DB
  instance status"), then ``AVAILABLE``; a switchover is ``SWITCHOVER_IN_PROGRESS`` for ``switchover_seconds``, then
  ``SWITCHOVER_COMPLETED``. ``SwitchoverDetails[].Status`` follows.
* RDS User Guide, "Switching a blue/green deployment in Amazon RDS", "Switchover actions": RDS renames the green
  instance to the blue instance's name and the blue instance by appending ``-oldn`` (n a number: the lab takes the
  first free one, ``-old1`` first); the endpoints follow the names, so applications need no change; each resource
  keeps its resource id (``DbiResourceId``). The lab applies both renames at once when the switchover completes
  (the lab's endpoint address is made from the identifier), and the deployment's ``Source`` / ``Target`` then name
  the old blue and the new production instance.
* RDS User Guide, "Creating a blue/green deployment in Amazon RDS", "Preparing an RDS for MySQL or RDS for MariaDB
  DB instance for a blue/green deployment": automated backups must be enabled. Refused with
  ``SourceDatabaseNotSupportedFault`` ("The source DB instance isn't supported for a blue/green deployment", the
  fault the API Reference lists for CreateBlueGreenDeployment).
* RDS User Guide, "Limitations and considerations for Amazon RDS blue/green deployments", "General limitations":
  blue/green deployments don't support cross-Region read replicas (``SourceDatabaseNotSupportedFault``); nor
  managing the master user password with Secrets Manager (moto refuses that one itself); "You can't change a blue
  DB instance to a higher engine version than its corresponding green DB instance" - so the green's engine version
  is never lower than the blue's (``InvalidParameterCombination``).
* RDS API Reference, CreateBlueGreenDeployment ``TargetEngineVersion`` ("Specify the engine version to upgrade to
  in the green environment") and DescribeDBEngineVersions ``ValidUpgradeTarget``: a version other than the blue's
  must be one of the blue version's upgrade targets (``InvalidParameterCombination``, as ModifyDBInstance answers
  an engine version it cannot upgrade to).
* RDS API Reference, CreateBlueGreenDeployment errors: ``InvalidDBInstanceState`` when the source is not
  ``available``; ``DBParameterGroupNotFound`` when ``TargetDBParameterGroupName`` does not exist (the engines
  extension refuses a group of another family, as CreateDBInstance).
* RDS API Reference, DeleteBlueGreenDeployment ``DeleteTarget``: "You can't specify this option if the blue/green
  deployment status is SWITCHOVER_COMPLETED" (``InvalidParameterCombination``); RDS User Guide, "Deleting a
  blue/green deployment in Amazon RDS": the green instances deleted with ``--delete-target`` "must have deletion
  protection turned off" (refused before anything is deleted; moto removed the deployment first).

The periods are lab settings, short so tests stay fast (``/_lab/blue-green``, ``LabClient.set_blue_green``; defaults
from ``CSO_LAB_BLUE_GREEN_PROVISIONING_SECONDS`` / ``CSO_LAB_BLUE_GREEN_SWITCHOVER_SECONDS`` when the server starts,
else 2 s and 1 s; a lab reset restores them). Not emulated: the data plane (the green as a replica of the blue's
data, writes blocked and connections dropped during the switchover, the old blue read-only afterwards), switchover
guardrails (replica lag, long transactions) and the rollback of a switchover that outlasts ``SwitchoverTimeout``.
"""

import copy
import os
import threading
import time

from moto.rds.exceptions import DBParameterGroupNotFoundError, InvalidParameterCombination, RDSClientError
from moto.rds.models import BlueGreenDeployment, RDSBackend

from csolab.labapi import lab_route
from csolab.moto_ext import engines
from csolab.moto_ext._common import around, arn_region, get, update_periods

PROVISIONING = BlueGreenDeployment.SupportedStates.PROVISIONING
AVAILABLE = BlueGreenDeployment.SupportedStates.AVAILABLE
SWITCHING = BlueGreenDeployment.SupportedStates.SWITCHOVER_IN_PROGRESS
SWITCHED = BlueGreenDeployment.SupportedStates.SWITCHOVER_COMPLETED
DEFAULTS = {
    "provisioning_seconds": float(os.environ.get("CSO_LAB_BLUE_GREEN_PROVISIONING_SECONDS", 2.0)),
    "switchover_seconds": float(os.environ.get("CSO_LAB_BLUE_GREEN_SWITCHOVER_SECONDS", 1.0)),
}
SETTINGS = dict(DEFAULTS)
_ADVANCING = threading.local()


class SourceDatabaseNotSupported(RDSClientError):
    def __init__(self, message):
        super().__init__("SourceDatabaseNotSupportedFault", message)


class InvalidDBInstanceState(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidDBInstanceState", message)


def _lab(deployment):
    return deployment.__dict__.setdefault("_lab_blue_green", {})


# --- CreateBlueGreenDeployment: AWS's refusals --------------------------------------------------------------


def _source_of(backend, arn):
    try:
        return backend.find_db_from_id(arn)
    except Exception:  # noqa: BLE001 (moto raises DBInstanceNotFound; its own create reports that)
        return None


def _cross_region_replicas(source):
    return [replica for replica in source.replicas if arn_region(replica) not in (None, source.region)]


def _check_engine_version(source, target_version):
    if not target_version or target_version == source.engine_version:
        return
    entries = list(engines.engine_versions(engine=source.engine, version=source.engine_version))
    targets = [target["EngineVersion"] for entry in entries for target in entry["ValidUpgradeTarget"]]
    if target_version not in targets:
        raise InvalidParameterCombination(
            f"Cannot upgrade {source.engine} from {source.engine_version} to {target_version}: the green environment's "
            f"engine version must be {source.engine_version} or one of its upgrade targets ({', '.join(targets) or 'none'}).")


def _check_source(backend, source, kwargs):
    name = source.db_instance_identifier
    if source.status != "available":
        raise InvalidDBInstanceState(f"DB instance {name} is not in available state (it is {source.status}).")
    if not source.backup_retention_period:
        raise SourceDatabaseNotSupported(
            f"Automated backups are not enabled for DB instance {name}: a blue/green deployment of RDS for MySQL or "
            "MariaDB needs them. Set a backup retention period greater than 0.")
    cross_region = _cross_region_replicas(source)
    if cross_region:
        raise SourceDatabaseNotSupported(
            f"DB instance {name} has cross-Region read replicas ({', '.join(cross_region)}), which blue/green "
            "deployments don't support.")
    _check_engine_version(source, get(kwargs, "target_engine_version"))
    group = get(kwargs, "target_db_parameter_group_name")
    if group:
        engines.ensure_default_parameter_group(backend, group)
        if group not in backend.db_parameter_groups:
            raise DBParameterGroupNotFoundError(group)


@around(RDSBackend, "create_blue_green_deployment")
def _create_blue_green_deployment(original, backend, bg_kwargs):
    source = _source_of(backend, bg_kwargs.get("source", ""))
    if source is not None and not backend._is_cluster(bg_kwargs.get("source", "")):
        _check_source(backend, source, bg_kwargs)
    answer = original(backend, bg_kwargs)
    deployment = backend.blue_green_deployments[answer.blue_green_deployment_identifier]
    provisioned_at = time.monotonic() + SETTINGS["provisioning_seconds"]
    _lab(deployment)["provisioned_at"] = provisioned_at
    deployment.set_status(PROVISIONING)
    green = backend.find_db_from_id(deployment.target)
    green._lab_creating_until = provisioned_at  # restarts' status: creating until then
    return answer


# --- the deployment's progress ------------------------------------------------------------------------------


def _free_old_name(backend, name):
    n = 1
    while f"{name}-old{n}" in backend.databases:
        n += 1
    return f"{name}-old{n}"


def _rename(backend, instance, new_name):
    return backend.modify_db_instance(instance.db_instance_identifier,
                                      {"new_db_instance_identifier": new_name, "apply_immediately": True})


def _complete_switchover(backend, deployment):
    blue = backend.find_db_from_id(deployment.source)
    green = backend.find_db_from_id(deployment.target)
    production_name = blue.db_instance_identifier
    old_blue = _rename(backend, blue, _free_old_name(backend, production_name))
    new_production = _rename(backend, green, production_name)
    deployment.source, deployment.target = old_blue.db_instance_arn, new_production.db_instance_arn
    deployment.set_status(SWITCHED)
    deployment.status_details = "Switchover completed"


def advance(backend):
    """Move each deployment on whose period has passed (provisioned, switched over)."""
    if getattr(_ADVANCING, "busy", False):
        return  # the renames below describe and modify instances themselves
    _ADVANCING.busy = True
    try:
        now = time.monotonic()
        for deployment in list(backend.blue_green_deployments.values()):
            state = _lab(deployment)
            if deployment.status == PROVISIONING.name and now >= state.get("provisioned_at", 0):
                deployment.set_status(AVAILABLE)
            elif deployment.status == SWITCHING.name and now >= state.get("switched_at", 0):
                _complete_switchover(backend, deployment)
    finally:
        _ADVANCING.busy = False


@around(RDSBackend, "describe_blue_green_deployments")
def _describe_blue_green_deployments(original, backend, *args, **kwargs):
    advance(backend)
    return original(backend, *args, **kwargs)


@around(RDSBackend, "describe_db_instances")
def _describe_db_instances(original, backend, *args, **kwargs):
    advance(backend)
    return original(backend, *args, **kwargs)


# --- SwitchoverBlueGreenDeployment, DeleteBlueGreenDeployment -----------------------------------------------


@around(RDSBackend, "switchover_blue_green_deployment")
def _switchover_blue_green_deployment(original, backend, blue_green_deployment_identifier, switchover_timeout=300,
                                      **_ignored):
    advance(backend)
    deployment = backend.blue_green_deployments.get(blue_green_deployment_identifier)
    if deployment is None or deployment.status != AVAILABLE.name:
        return original(backend, blue_green_deployment_identifier, switchover_timeout)  # moto's refusals
    _lab(deployment)["switched_at"] = time.monotonic() + SETTINGS["switchover_seconds"]
    _lab(deployment)["switchover_timeout"] = int(switchover_timeout or 300)
    deployment.set_status(SWITCHING)
    return copy.copy(deployment)


@around(RDSBackend, "delete_blue_green_deployment")
def _delete_blue_green_deployment(original, backend, blue_green_deployment_identifier, delete_target=False,
                                  **_ignored):
    advance(backend)
    deployment = backend.blue_green_deployments.get(blue_green_deployment_identifier)
    if deployment is not None and delete_target:
        if deployment.status == SWITCHED.name:
            raise InvalidParameterCombination(
                "You can't specify DeleteTarget for a blue/green deployment whose status is SWITCHOVER_COMPLETED.")
        green = _source_of(backend, deployment.target)
        if green is not None and green.deletion_protection:
            raise InvalidParameterCombination(
                f"Cannot delete the green DB instance {green.db_instance_identifier}: turn off its deletion protection "
                "first.")
    return original(backend, blue_green_deployment_identifier, delete_target=bool(delete_target))


# --- lab route ------------------------------------------------------------------------------------------------


@lab_route("blue-green")
def _blue_green(payload):
    """Set the periods: ``{"provisioning_seconds": 2, "switchover_seconds": 1}``; ``{"reset": true}`` restores the
    defaults (a lab reset does); ``{}`` reads them."""
    return update_periods(SETTINGS, DEFAULTS, payload)
