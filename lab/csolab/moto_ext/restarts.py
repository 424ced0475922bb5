"""What AWS does when it restarts a DB instance, recorded for the data plane to act out.

Rules, from the RDS User Guide:

* "Rebooting a DB instance": rebooting restarts the database engine; it causes a momentary
  outage, during which the instance status is ``rebooting``. A reboot is refused unless the
  instance is ``available`` (RebootDBInstance: InvalidDBInstanceState).
* "Multi-AZ failover" / "Rebooting a DB instance" (RebootDBInstance ``ForceFailover``): on a
  Multi-AZ instance, a reboot with failover promotes the standby; RDS points the endpoint's DNS
  record at the standby, so clients must reconnect, and a client that pinned the old address
  fails. The outage is usually shorter than a plain restart. ``ForceFailover`` on a Single-AZ
  instance is refused (InvalidParameterCombination).
* "Working with parameter groups": pending-reboot parameters are applied by a reboot
  *without* failover (``pending`` keeps ``ParameterApplyStatus`` ``pending-reboot`` after a
  failover reboot).
* "Updating applications to connect using new SSL/TLS certificates" / ModifyDBInstance
  ``CertificateRotationRestart``: "The certificate is not updated until the DB instance is
  restarted" - the certificate a server presents changes with a restart, or at once where the
  engine version supports rotation without restart and the call asked for it (``pending`` decides;
  ``served_ca`` tells the data plane which CA the running server's certificate is from).

* "DB instance status" / "Creating an Amazon RDS DB instance": a new instance (a read replica, a
  restore) is ``creating`` until it can accept connections; its endpoint's DNS name answers from
  then on. While a data plane serves the lab, a new instance stays ``creating`` until the data
  plane reports it served with its name published to the hosts (at most ``CREATE_GRACE_SECONDS``,
  so a data plane that cannot serve it does not hold it forever). Without a data plane (pure AWS
  tests) moto's immediate ``available`` stays.

Which modifications restart the instance is decided in ``pending`` (the "Settings for DB
instances" downtime column); this module only records a restart and answers what it implies.

The outage lasts a lab setting (``/_lab/outage``, ``LabClient.set_outage``; the defaults come from
the environment ``CSO_LAB_OUTAGE_SECONDS`` / ``CSO_LAB_FAILOVER_OUTAGE_SECONDS`` when the server
starts, else 3 s / 2 s, and a lab reset restores them): short so tests stay fast; the demo sets
25 s / 15 s. The status is ``rebooting`` for at least that long and, while a data
plane serves the instance, until the data plane reports the server back (it acknowledges each
restart by its sequence number), so ``available`` means "accepts connections" as in AWS.
"""

import os
import time

from moto.core.responses import ActionResult
from moto.rds.exceptions import InvalidDBInstanceStateError, RDSClientError
from moto.rds.models import DBInstance, RDSBackend

from csolab.labapi import lab_route
from csolab.moto_ext._common import around, rds_action

DEFAULT_OUTAGE_SECONDS = 3.0
DEFAULT_FAILOVER_OUTAGE_SECONDS = 2.0
DEFAULTS = {
    "reboot_seconds": float(os.environ.get("CSO_LAB_OUTAGE_SECONDS", DEFAULT_OUTAGE_SECONDS)),
    "failover_seconds": float(os.environ.get("CSO_LAB_FAILOVER_OUTAGE_SECONDS", DEFAULT_FAILOVER_OUTAGE_SECONDS)),
}
OUTAGE = dict(DEFAULTS)
# A data plane that polled within this many seconds is serving; one that has not brought the
# server back this long after the outage no longer holds the status at "rebooting".
DATAPLANE_FRESH_SECONDS = 3.0
DATAPLANE_GRACE_SECONDS = 60.0
CREATE_GRACE_SECONDS = 180.0
_DATAPLANE = {"polled": 0.0}


def restart_of(instance):
    return instance.__dict__.get("_lab_restart") or {"seq": 0, "address_index": 0, "failover": False}


def restart(instance, reason, failover=False):
    """Record that AWS restarts ``instance`` now (a failover also moves its endpoint's address)."""
    previous = restart_of(instance)
    seconds = OUTAGE["failover_seconds" if failover else "reboot_seconds"]
    instance._lab_restart = {
        "seq": previous["seq"] + 1, "reason": reason, "failover": failover, "outage_seconds": seconds,
        "until": time.monotonic() + seconds,
        "address_index": previous.get("address_index", 0) + (1 if failover else 0),
    }
    instance._lab_served_ca = None  # a restarted server loads the certificate of the current CA


def restarting(instance):
    current = restart_of(instance)
    if not current["seq"]:
        return False
    now = time.monotonic()
    if now < current["until"]:
        return True
    return _dataplane_holds(instance, current) and now < current["until"] + DATAPLANE_GRACE_SECONDS


def _dataplane_holds(instance, current):
    seen = instance.__dict__.get("_lab_dataplane_seen", 0.0)
    acknowledged = instance.__dict__.get("_lab_restart_acknowledged", 0)
    return time.monotonic() - seen < DATAPLANE_FRESH_SECONDS and acknowledged < current["seq"]


def dataplane_polled():
    _DATAPLANE["polled"] = time.monotonic()


def dataplane_serving():
    """Whether a data plane polled within ``DATAPLANE_FRESH_SECONDS`` (it acts out what the lab records)."""
    return time.monotonic() - _DATAPLANE["polled"] < DATAPLANE_FRESH_SECONDS


def dataplane_report(instance, acknowledged_seq, ready=False):
    """The data plane serves ``instance`` and has brought it back from restart ``acknowledged_seq``;
    ``ready``: it accepts connections and its name resolves on the hosts."""
    instance._lab_dataplane_seen = time.monotonic()
    if acknowledged_seq is not None:
        instance._lab_restart_acknowledged = int(acknowledged_seq)
    if ready:
        instance._lab_served = True


def created(instance):
    """``instance`` was just created (replica, restore): ``creating`` until a serving data plane has it."""
    instance.__dict__.pop("_lab_served", None)  # moto makes a replica as a shallow copy of its source
    if dataplane_serving():
        instance._lab_creating_until = time.monotonic() + CREATE_GRACE_SECONDS


def creating(instance):
    until = instance.__dict__.get("_lab_creating_until")
    return bool(until) and not instance.__dict__.get("_lab_served") and time.monotonic() < until


def public_restart(instance):
    """What the data plane needs: sequence, whether a failover, outage length, address index."""
    current = restart_of(instance)
    return {key: current.get(key) for key in ("seq", "failover", "outage_seconds", "address_index", "reason")}


def served_ca(instance):
    """The CA the running server's certificate comes from (differs from ``CACertificateIdentifier``
    while a rotation without restart waits for the next restart)."""
    return instance.__dict__.get("_lab_served_ca") or instance.ca_certificate_identifier


def keep_served_ca_until_restart(instance, ca_identifier):
    instance._lab_served_ca = ca_identifier


# --- the status -----------------------------------------------------------------------------


def _status(self):
    stored = self.__dict__.get("_lab_status", "available")
    if stored != "available":
        return stored
    if creating(self):
        return "creating"
    return "rebooting" if restarting(self) else stored


def _set_status(self, value):
    self.__dict__["_lab_status"] = value


DBInstance.status = property(_status, _set_status)


# --- RebootDBInstance -----------------------------------------------------------------------


@around(RDSBackend, "reboot_db_instance")
def _reboot_db_instance(original, backend, db_instance_identifier, force_failover=False):
    instance = backend.describe_db_instances(db_instance_identifier)[0]
    if instance.status != "available":
        raise InvalidDBInstanceStateError(db_instance_identifier, "stop")  # "is not in available state"
    if force_failover and not instance.multi_az:
        raise RDSClientError("InvalidParameterCombination",
                             f"Cannot force a failover: {db_instance_identifier} is not a Multi-AZ instance.")
    instance = original(backend, db_instance_identifier, force_failover=force_failover)
    restart(instance, "reboot with failover" if force_failover else "reboot", failover=force_failover)
    return instance


@rds_action
def reboot_db_instance(self):
    database = self.backend.reboot_db_instance(self.params.get("DBInstanceIdentifier"),
                                               force_failover=bool(self.params.get("ForceFailover")))
    return ActionResult({"DBInstance": database})


# --- lab route ------------------------------------------------------------------------------


@lab_route("outage")
def _outage(payload):
    """Set how long a restart keeps the data plane down: ``{"seconds": 25, "failover_seconds": 15}``;
    ``{"reset": true}`` restores the defaults (a lab reset does); ``{}`` reads the setting."""
    if payload.get("reset"):
        OUTAGE.update(reboot_seconds=DEFAULTS["reboot_seconds"], failover_seconds=DEFAULTS["failover_seconds"])
    for key, name in (("seconds", "reboot_seconds"), ("failover_seconds", "failover_seconds")):
        if payload.get(key) is not None:
            value = float(payload[key])
            if not 0 <= value <= 600:
                raise ValueError(f"{key} must be between 0 and 600 seconds")
            OUTAGE[name] = value
    return {"seconds": OUTAGE["reboot_seconds"], "failover_seconds": OUTAGE["failover_seconds"]}
