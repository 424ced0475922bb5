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
* RDS User Guide, "Overview of Amazon RDS Blue/Green Deployments": the green is a copy of the production instance and
  "includes the features used by the DB instance", among them Performance Insights and Enhanced Monitoring; "Creating
  a blue/green deployment in Amazon RDS": "This DB instance is copied to the green environment". moto's green leaves
  out IAM database authentication, Enhanced Monitoring, Performance Insights and the option group; the lab copies them
  from the blue (so a green that becomes production still takes the IAM logins the blue took, with its own
  ``DbiResourceId`` in the ``rds-db:connect`` resource).
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

While a data plane serves the lab (``csolab.dataplane``), it acts the deployment out, and the statuses follow what it
does (as ``restarts`` does for reboots: ``available`` means "accepts connections"):

* RDS User Guide, "Overview of Amazon RDS Blue/Green Deployments" and "Creating a blue/green deployment in Amazon
  RDS": the green "stays in sync with the current production environment": RDS copies the blue DB instance and
  "configures replication from the DB instance in the blue environment to the DB instance in the green environment";
  "Best practices for Amazon RDS blue/green deployments": keep the green environment read only. The green is a
  MariaDB replica of the blue's (from a dump of the blue with its GTID position, like a read replica,
  ``dataplane_state``), read-only, replicating over verified TLS; it is ``creating`` until the data plane serves it
  with its name published ("DB instance status", the rule ``restarts.created`` applies to every new instance), and the
  deployment stays ``PROVISIONING`` until then. "Monitoring replica lag prior to switchover": its ``ReplicaLag`` is
  published like a read replica's.
* "Switching a blue/green deployment in Amazon RDS", "Switchover actions": RDS stops new writes on both primaries,
  drops the connections to both and allows no new ones, waits for replication to catch up in the green environment,
  renames both, then allows connections to both and, last, writes on the new production primary. The data plane
  does the first steps on its own (``csolab.dataplane.bridge``: ``read_only`` on the blue, client sessions killed,
  ``MASTER_GTID_WAIT`` on the green, replication stopped, both servers stopped so that no connection gets in) and
  reports the pair "fenced" (both instances ``renaming`` from then on, a status of "DB instance status": their
  servers accept no connection); the lab renames them once the data plane is
  fenced and ``switchover_seconds`` have passed since the call; the data plane starts both servers again under the
  new names (certificates re-issued for them, the production name now resolving to the green's address, the old
  blue keeping its address under ``<name>-old<n>``), the green writable and the old blue read-only, and reports the
  pair done: both ``available``, ``SWITCHOVER_COMPLETED``. "After switchover": replication between the environments
  has stopped; the old blue stays read-only (``read_only`` on, as RDS sets it) for as long as it exists.
* A data plane that stops polling is not waited for (the switchover then completes on time alone, as without one).
* "Switching a blue/green deployment in Amazon RDS", "Switchover guardrails": RDS checks that the environments are
  ready and refuses the switchover otherwise, before anything changes (``InvalidBlueGreenDeploymentStateFault``, the
  fault SwitchoverBlueGreenDeployment answers with, e.g. "DB instance ... is not in available state"): both instances
  ``available``; "Replication health" (the green's replication running: its last measured ``ReplicaLag`` is not -1)
  and "Replication lag" (within what the switchover timeout allows: the lab refuses a lag above
  ``SwitchoverTimeout``), both only while a data plane measures them.

The periods are lab settings, short so tests stay fast (``/_lab/blue-green``, ``LabClient.set_blue_green``; defaults
from ``CSO_LAB_BLUE_GREEN_PROVISIONING_SECONDS`` / ``CSO_LAB_BLUE_GREEN_SWITCHOVER_SECONDS`` when the server starts,
else 2 s and 1 s; a lab reset restores them). Not emulated: the guardrails on active or long-running writes and
DDL.
* SwitchoverBlueGreenDeployment, ``SwitchoverTimeout`` (API Reference): "If the switchover takes longer than the
  specified duration, then any changes are rolled back, and no changes are made to the environments." The data plane
  decides, since only it knows whether the pair was fenced: a green that has not caught up within the timeout goes
  on replicating, the blue takes writes again, and the data plane reports the switchover "rolled-back"; the lab then
  marks the deployment ``SWITCHOVER_FAILED`` (a status of the API's BlueGreenDeployment) with the reason in
  ``StatusDetails``, no instance renamed, both ``available``. Once fenced the renames follow within a poll, so no
  rollback is emulated past that point. Without a data plane the lab setting ``green_catch_up_seconds`` (0 by
  default) stands for the green's lag: above ``SwitchoverTimeout`` the switchover is rolled back the same way once
  the timeout has passed. The documents do not say whether a rolled-back deployment takes another
  switchover; the lab refuses one (``InvalidBlueGreenDeploymentState``, as from every status but ``AVAILABLE``):
  delete it and create it again.
"""

import copy
import os
import threading
import time

from moto.rds.exceptions import DBParameterGroupNotFoundError, InvalidParameterCombination, RDSClientError
from moto.rds.models import BlueGreenDeployment, RDSBackend, rds_backends

from csolab.labapi import lab_route
from csolab.moto_ext import engines, restarts
from csolab.moto_ext._common import around, arn_region, get, update_periods

PROVISIONING = BlueGreenDeployment.SupportedStates.PROVISIONING
AVAILABLE = BlueGreenDeployment.SupportedStates.AVAILABLE
SWITCHING = BlueGreenDeployment.SupportedStates.SWITCHOVER_IN_PROGRESS
SWITCHED = BlueGreenDeployment.SupportedStates.SWITCHOVER_COMPLETED
SWITCHOVER_FAILED = BlueGreenDeployment.SupportedStates.SWITCHOVER_FAILED
DEFAULTS = {
    "provisioning_seconds": float(os.environ.get("CSO_LAB_BLUE_GREEN_PROVISIONING_SECONDS", 2.0)),
    "switchover_seconds": float(os.environ.get("CSO_LAB_BLUE_GREEN_SWITCHOVER_SECONDS", 1.0)),
    # without a data plane: how long a green takes to catch up once writes stop (a data plane measures it instead)
    "green_catch_up_seconds": 0.0,
}
SETTINGS = dict(DEFAULTS)
# The blue's settings moto's green does not get (the lab's monitoring extension keeps Performance Insights' key and
# retention in the _lab_pi_* attributes)
GREEN_COPIES = ("enable_iam_database_authentication", "monitoring_interval", "monitoring_role_arn",
                "performance_insights_enabled", "_lab_pi_kms_key_id", "_lab_pi_retention", "_option_group_name")
_ADVANCING = threading.local()
# The bridge's poll and API calls advance deployments from different threads; a Describe never sees one rename of a
# switchover without the other (re-entrant: the renames describe instances themselves).
_ADVANCE_LOCK = threading.RLock()


class SourceDatabaseNotSupported(RDSClientError):
    def __init__(self, message):
        super().__init__("SourceDatabaseNotSupportedFault", message)


class InvalidDBInstanceState(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidDBInstanceState", message)


class InvalidBlueGreenDeploymentState(RDSClientError):
    def __init__(self, message):
        super().__init__("InvalidBlueGreenDeploymentStateFault", message)


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
    state = _lab(deployment)
    state["provisioned_at"] = provisioned_at
    deployment.set_status(PROVISIONING)
    green = backend.find_db_from_id(deployment.target)
    if source is not None and not backend._is_cluster(bg_kwargs.get("source", "")):
        _copy_what_moto_leaves_out(source, green)
        state.update(blue=source, green=green)  # the objects: a rename keeps them
    green._lab_creating_until = provisioned_at  # restarts' status: creating until then (and until served)
    return answer


def _copy_what_moto_leaves_out(blue, green):
    for attribute in GREEN_COPIES:
        if attribute in blue.__dict__:
            setattr(green, attribute, getattr(blue, attribute))


# --- the deployment's progress ------------------------------------------------------------------------------


def _free_old_name(backend, name):
    n = 1
    while f"{name}-old{n}" in backend.databases:
        n += 1
    return f"{name}-old{n}"


def _rename(backend, instance, new_name):
    return backend.modify_db_instance(instance.db_instance_identifier,
                                      {"new_db_instance_identifier": new_name, "apply_immediately": True})


def _rename_pair(backend, deployment):
    blue = backend.find_db_from_id(deployment.source)
    green = backend.find_db_from_id(deployment.target)
    production_name = blue.db_instance_identifier
    old_blue = _rename(backend, blue, _free_old_name(backend, production_name))
    new_production = _rename(backend, green, production_name)
    deployment.source, deployment.target = old_blue.db_instance_arn, new_production.db_instance_arn
    old_blue._lab_old_blue = True  # "After switchover": read-only for as long as it exists
    return old_blue, new_production


def _complete_switchover(backend, deployment):
    state = _lab(deployment)
    switchover = state.get("switchover") or {}
    if not switchover.get("renamed"):
        _rename_pair(backend, deployment)
    for instance in (state.get("blue"), state.get("green")):
        if instance is not None and instance.__dict__.get("_lab_status") == "renaming":
            instance.status = "available"
    switchover["phase"] = "completed"
    deployment.set_status(SWITCHED)
    deployment.status_details = "Switchover completed"


def _advance_switchover(backend, deployment, now):
    """SWITCHOVER_IN_PROGRESS: on time alone without a data plane; with one, the renames wait until it has fenced
    the pair, and the completion until it serves both under their new names (``dataplane_progress``)."""
    state = _lab(deployment)
    switchover = state.get("switchover") or {}
    if now < state.get("switched_at", 0):
        return
    acted_out = switchover.get("dataplane") and restarts.dataplane_serving()
    if not acted_out:
        if SETTINGS["green_catch_up_seconds"] <= switchover["timeout"]:
            _complete_switchover(backend, deployment)
        elif now >= switchover["requested_at"] + switchover["timeout"]:
            _roll_back_switchover(deployment, switchover)
    elif switchover.get("phase") == "fenced":
        _rename_pair(backend, deployment)
        switchover.update(phase="renamed", renamed=True)
    elif switchover.get("phase") == "done":
        _complete_switchover(backend, deployment)


def renames_held():
    """Hold while reading instances that must not change names meanwhile (the data plane's poll)."""
    return _ADVANCE_LOCK


def advance(backend):
    """Move each deployment on whose period has passed (provisioned, switched over)."""
    if getattr(_ADVANCING, "busy", False):
        return  # the renames below describe and modify instances themselves
    with _ADVANCE_LOCK:
        _ADVANCING.busy = True
        try:
            _advance(backend)
        finally:
            _ADVANCING.busy = False


def _advance(backend):
    now = time.monotonic()
    for deployment in list(backend.blue_green_deployments.values()):
        state = _lab(deployment)
        if deployment.status == PROVISIONING.name and now >= state.get("provisioned_at", 0):
            green = state.get("green")
            if green is None or not restarts.creating(green):
                deployment.set_status(AVAILABLE)
        elif deployment.status == SWITCHING.name:
            _advance_switchover(backend, deployment, now)


# --- what the data plane acts out ----------------------------------------------------------------------------


def _deployments_of(instance):
    backend = rds_backends[instance.account_id][instance.region]
    for deployment in list(backend.blue_green_deployments.values()):
        state = _lab(deployment)
        if instance is state.get("blue") or instance is state.get("green"):
            yield deployment, state


def dataplane_view(instance):
    """What the data plane does with ``instance`` for a blue/green deployment, or None (none of it):
    ``role`` (blue, green, old-blue), ``replicates_from`` (the blue, while the green replicates), ``read_only``,
    ``partner`` (the other instance), ``deployment`` and ``switchover`` (``seq``, ``phase``, ``timeout``)."""
    for deployment, state in _deployments_of(instance):
        if deployment.status in (SWITCHED.name, BlueGreenDeployment.SupportedStates.DELETING.name):
            continue
        green = instance is state["green"]
        switchover = state.get("switchover") if deployment.status == SWITCHING.name else None
        renamed = bool(switchover) and switchover.get("phase") in ("renamed", "done")
        return {
            "deployment": deployment.blue_green_deployment_identifier,
            "role": "green" if green else "blue",
            "partner": state["blue"] if green else state["green"],
            "replicates_from": state["blue"] if green and not renamed else None,
            "read_only": (not renamed) if green else renamed,
            "switchover": ({key: switchover.get(key) for key in ("seq", "phase", "timeout")}
                           if switchover and switchover.get("dataplane") else None),
        }
    if instance.__dict__.get("_lab_old_blue"):
        return {"deployment": None, "role": "old-blue", "partner": None, "replicates_from": None, "read_only": True,
                "switchover": None}
    return None


def dataplane_progress(progress):
    """The data plane's report: ``{deployment id: {"seq": n, "state": "fenced" | "done" | "rolled-back"}}``."""
    if not progress:
        return
    with _ADVANCE_LOCK:
        for _account, regions in list(rds_backends.items()):
            for backend in list(regions.values()):
                for identifier, deployment in list(backend.blue_green_deployments.items()):
                    report = progress.get(identifier)
                    switchover = _lab(deployment).get("switchover")
                    if report and switchover and report.get("seq") == switchover["seq"] and \
                            deployment.status == SWITCHING.name:
                        _follow_dataplane(deployment, switchover, report.get("state"))


def _roll_back_switchover(deployment, switchover):
    switchover["phase"] = "rolled-back"
    deployment.set_status(SWITCHOVER_FAILED)
    deployment.status_details = (f"Switchover rolled back: the green did not catch up within the switchover "
                                 f"timeout ({switchover['timeout']} s); no changes were made to the environments")


def _follow_dataplane(deployment, switchover, reported):
    state = _lab(deployment)
    if reported == "rolled-back" and switchover["phase"] == "requested":
        _roll_back_switchover(deployment, switchover)
    elif reported == "fenced" and switchover["phase"] == "requested":
        switchover["phase"] = "fenced"
        for instance in (state["blue"], state["green"]):  # both servers are down until the renames are served
            instance.status = "renaming"
    elif reported == "done" and switchover["phase"] == "renamed":
        switchover["phase"] = "done"


@around(RDSBackend, "describe_blue_green_deployments")
def _describe_blue_green_deployments(original, backend, *args, **kwargs):
    advance(backend)
    with _ADVANCE_LOCK:
        return original(backend, *args, **kwargs)


@around(RDSBackend, "describe_db_instances")
def _describe_db_instances(original, backend, *args, **kwargs):
    advance(backend)
    with _ADVANCE_LOCK:
        return original(backend, *args, **kwargs)


# --- SwitchoverBlueGreenDeployment, DeleteBlueGreenDeployment -----------------------------------------------


def _check_guardrails(state, timeout):
    """Refuse a switchover the environments are not ready for, before anything changes."""
    for instance in (state.get("blue"), state.get("green")):
        if instance is not None and instance.status != "available":
            raise InvalidBlueGreenDeploymentState(
                f"DB instance {instance.db_instance_identifier} is not in available state (it is {instance.status}).")
    green = state.get("green")
    lag = green.__dict__.get("_lab_replica_lag") if green is not None else None
    if lag is None or not restarts.dataplane_serving():
        return  # nothing measured: no data plane serves the green
    name = green.db_instance_identifier
    if lag < 0:
        raise InvalidBlueGreenDeploymentState(
            f"Switchover guardrail: the replication of the green DB instance {name} is not healthy (ReplicaLag -1, "
            "replication not active). Fix the replication, then switch over again.")
    if lag > timeout:
        raise InvalidBlueGreenDeploymentState(
            f"Switchover guardrail: the green DB instance {name} lags {lag:.0f} s behind the blue, more than the "
            f"switchover timeout ({timeout} s) allows. Wait until ReplicaLag drops, or set a longer SwitchoverTimeout.")


@around(RDSBackend, "switchover_blue_green_deployment")
def _switchover_blue_green_deployment(original, backend, blue_green_deployment_identifier, switchover_timeout=300,
                                      **_ignored):
    advance(backend)
    deployment = backend.blue_green_deployments.get(blue_green_deployment_identifier)
    if deployment is not None and deployment.status == SWITCHOVER_FAILED.name:
        raise InvalidBlueGreenDeploymentState(
            f"The blue/green deployment {blue_green_deployment_identifier} can't be switched over: its status is "
            f"{deployment.status} ({deployment.status_details}).")
    if deployment is None or deployment.status != AVAILABLE.name:
        return original(backend, blue_green_deployment_identifier, switchover_timeout)  # moto's refusals
    state = _lab(deployment)
    _check_guardrails(state, int(switchover_timeout or 300))
    state["switched_at"] = time.monotonic() + SETTINGS["switchover_seconds"]
    state["switchover_timeout"] = int(switchover_timeout or 300)
    pair = [state.get("blue"), state.get("green")]
    state["switchover"] = {
        "seq": (state.get("switchover") or {}).get("seq", 0) + 1, "phase": "requested",
        "timeout": state["switchover_timeout"], "requested_at": time.monotonic(),
        # acted out by the data plane when it serves both (else on time alone, as without one)
        "dataplane": restarts.dataplane_serving() and all(
            instance is not None and instance.__dict__.get("_lab_served") for instance in pair),
    }
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
