# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting for a DB instance after a change, polling every few seconds.

amazon.aws's ``wait_for_instance_status`` polls every 60 s, so each reboot or CA rotation cost at
least a minute of waiting. These waits poll every ``POLL_SECONDS`` (``common.waiter_config``) for
at most the task's ``wait_timeout``, through amazon.aws's ``BaseWaiterFactory`` (throttling and
5xx answers are retried, as the client calls are).

A wait after a change must not end on the answer from *before* the change: right after
``ModifyDBInstance`` or ``RebootDBInstance`` AWS may still answer ``available`` with the old
values (the instance has not begun ``modifying``/``rebooting``). So each wait names what proves
the change happened, not only the status:

* :func:`wait_available`: ``available`` (a creation, a rename: the new name is not found until then);
* :func:`wait_usable`: before a modification: ``available`` or ``storage-optimization`` (the instance
  serves and takes modifications while AWS optimizes its storage);
* :func:`wait_applied`: after ``ModifyDBInstance`` with ``ApplyImmediately``: ``available`` (or
  ``storage-optimization``, which a storage change leads to), nothing left in ``PendingModifiedValues``,
  and each requested setting that restarts the instance (CA, class, engine version, storage type,
  backup retention) or that is storage (size, IOPS, throughput) shows the requested value;
* :func:`wait_storage_optimized`: after that, when the task asks for it: ``available`` again, i.e. the
  storage-optimization that the storage change started has finished (polled every
  ``OPTIMIZATION_POLL_SECONDS``: it takes minutes to more than a day);
* :func:`wait_rebooted`: after ``RebootDBInstance`` to apply a pending-reboot parameter group:
  ``available`` and no parameter group ``pending-reboot`` (the answer before the reboot still has one);
* :func:`wait_promoted`: after ``PromoteReadReplica``: ``available`` and no
  ``ReadReplicaSourceDBInstanceIdentifier`` (the answer right after the call still names the source).
"""

from __future__ import annotations

import json

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.waiter import BaseWaiterFactory

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import waiter_config

POLL_SECONDS = 5
OPTIMIZATION_POLL_SECONDS = 15
DEFAULT_TIMEOUT = 3600
# ModifyDBInstance parameters that restart the instance when applied, and whose DescribeDBInstances
# field has the same name: the wait ends only once the instance shows the requested value.
RESTARTING_FIELDS = ("CACertificateIdentifier", "DBInstanceClass", "EngineVersion", "StorageType", "BackupRetentionPeriod")
# Storage parameters with a field of the same name (Iops 0, sent to leave Provisioned IOPS for magnetic, shows as none).
STORAGE_FIELDS = ("AllocatedStorage", "Iops", "StorageThroughput")
# RDS User Guide, "Viewing Amazon RDS DB instance status": the instance can be used (and modified) while AWS
# optimizes its storage after a storage change.
USABLE_STATES = ("available", "storage-optimization")
_INSTANCE = "DBInstances[0]"
_FAILED_STATES = ("deleting", "failed", "incompatible-restore", "incompatible-parameters", "incompatible-network",
                  "storage-full", "inaccessible-encryption-credentials")


def _literal(value):
    return f"`{json.dumps(value)}`"


def _model(conditions):
    """A DescribeDBInstances waiter: success when every JMESPath condition holds (all on one instance)."""
    acceptors = [dict(state="success", matcher="path", expected=True, argument=" && ".join(conditions))]
    acceptors += [dict(state="failure", matcher="pathAny", expected=state, argument="DBInstances[].DBInstanceStatus")
                  for state in _FAILED_STATES]
    acceptors.append(dict(state="retry", matcher="error", expected="DBInstanceNotFound"))
    return dict(operation="DescribeDBInstances", delay=POLL_SECONDS, maxAttempts=DEFAULT_TIMEOUT // POLL_SECONDS,
                acceptors=acceptors)


class _InstanceWaiters(BaseWaiterFactory):
    def __init__(self, conditions):
        self._conditions = conditions
        super().__init__()

    @property
    def _waiter_model_data(self):
        return {"instance": _model(self._conditions)}


def available_conditions():
    return [f"{_INSTANCE}.DBInstanceStatus == 'available'"]


def usable_conditions():
    return [f"contains({_literal(list(USABLE_STATES))}, {_INSTANCE}.DBInstanceStatus)"]


def _shown(parameters):
    """Conditions that the instance shows each requested value of ``parameters`` that has a field of its name."""
    conditions = []
    for field in RESTARTING_FIELDS + STORAGE_FIELDS:
        if parameters.get(field) is None or (field in STORAGE_FIELDS and not parameters[field]):
            continue
        if field == "EngineVersion":  # a requested 8.0 is applied as the 8.0.x AWS chooses
            conditions.append(f"starts_with({_INSTANCE}.EngineVersion || '', {_literal(parameters[field])})")
        else:
            conditions.append(f"{_INSTANCE}.{field} == {_literal(parameters[field])}")
    return conditions


def applied_conditions(parameters):
    """What shows that a ``ModifyDBInstance(ApplyImmediately=True, **parameters)`` was applied."""
    return usable_conditions() + [f"!({_INSTANCE}.PendingModifiedValues)"] + _shown(parameters)


def optimized_conditions(parameters):
    """What shows that the storage-optimization after that modification has finished."""
    return available_conditions() + [f"!({_INSTANCE}.PendingModifiedValues)"] + _shown(parameters)


def rebooted_conditions():
    return available_conditions() + [f"!({_INSTANCE}.DBParameterGroups[?ParameterApplyStatus == 'pending-reboot'])"]


def promoted_conditions():
    return available_conditions() + [f"!({_INSTANCE}.ReadReplicaSourceDBInstanceIdentifier)"]


def _wait(module, rds, identifier, conditions, what, pause=POLL_SECONDS):
    timeout = (module.params or {}).get("wait_timeout") or DEFAULT_TIMEOUT
    client = getattr(rds, "client", rds)  # the waiter polls the plain client; its acceptors retry throttling
    try:
        _InstanceWaiters(conditions).get_waiter(client, "instance").wait(
            DBInstanceIdentifier=identifier, WaiterConfig=waiter_config(timeout, pause=pause)
        )
    except WaiterError as e:
        status = ((e.last_response or {}).get("DBInstances") or [{}])[0].get("DBInstanceStatus")
        module.fail_json_aws(
            e,
            msg=f"DB instance {identifier} was not {what} within wait_timeout ({timeout} s; last status: {status}). "
            "AWS goes on with the change: check the instance in the RDS console or with describe-db-instances, "
            "then run the task again (with a larger wait_timeout if it is only slow).",
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not read DB instance {identifier} while waiting for it to be {what}")


def wait_available(module, rds, identifier):
    _wait(module, rds, identifier, available_conditions(), "available")


def wait_usable(module, rds, identifier):
    _wait(module, rds, identifier, usable_conditions(), "available (or in storage-optimization)")


def wait_applied(module, rds, identifier, parameters):
    """After ``ModifyDBInstance``: with ``ApplyImmediately`` until the change shows, else until the instance is usable
    (``available``, or ``storage-optimization``, which can last a day and takes modifications)."""
    if not parameters.get("ApplyImmediately"):
        wait_usable(module, rds, identifier)
        return
    _wait(module, rds, identifier, applied_conditions(parameters), "available with the change applied")


def wait_rebooted(module, rds, identifier):
    _wait(module, rds, identifier, rebooted_conditions(), "available after the reboot")


def wait_storage_optimized(module, rds, identifier, parameters):
    """After ``wait_applied`` of a storage change: until AWS has finished optimizing the storage."""
    _wait(module, rds, identifier, optimized_conditions(parameters), "available with its storage optimized",
          pause=OPTIMIZATION_POLL_SECONDS)


def wait_promoted(module, rds, identifier):
    _wait(module, rds, identifier, promoted_conditions(), "available as a standalone instance")
