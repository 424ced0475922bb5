"""What the data-plane bridge needs to know about the emulated RDS instances, read in-process.

``/_lab/dataplane-instances`` answers, per RDS instance in every region: identifier, engine,
endpoint, the CA of the certificate the running server presents, its restarts (sequence, outage,
failover, address index: see ``restarts``), master credentials, the *effective* ``require_secure_transport``
(the parameter group's value once it applies: at once when the group is in sync, only after a
reboot / the maintenance window while it is ``pending-reboot``), the security groups with the
sources their ingress rules allow on the instance's port, and where its data comes from
(snapshot, point-in-time source, read-replica source and the uid of the instance a replica
replicates from), and what the MariaDB Audit Plugin should do (``audit_logs``). The bridge's poll
carries the lag it measured on each replica, which ``read_replicas`` publishes as the ``ReplicaLag``
metric, and the new audit log lines, which ``audit_logs`` publishes to CloudWatch Logs.

Each instance gets a ``uid`` that survives renames (modify with ``NewDBInstanceIdentifier`` keeps
the same moto object), so the data plane keeps its data across the identifier swap of a
re-encryption.

Data follows snapshots: the wrappers below dump a served instance (``mariadb-dump`` over its
Unix socket, as root) when a snapshot is created, when a point-in-time restore or a read replica
is made from it, so the restored instance starts with those rows. A point-in-time restore from
(replicated) automated backups (``SourceDBInstanceAutomatedBackupsArn``, ``SourceDbiResourceId``)
is recorded like one from the source instance: the data of the instance the backups are of, dumped
at the restore, or when it was deleted while its backups were replicated (the DR case). The dumps
live in the data plane's state dir, which the bridge reports with every poll (``state_dir`` in the
payload).
"""

import json
import logging
import threading
import uuid
from pathlib import Path

from moto.ec2.models import ec2_backends
from moto.rds.models import RDSBackend, rds_backends

from csolab.dataplane import dumps, layout
from csolab.labapi import lab_route
from csolab.moto_ext import audit_logs, backup_replication, blue_green, read_replicas, restarts
from csolab.moto_ext._common import around

LOG = logging.getLogger(__name__)

SERVED_ENGINES = ("mysql", "mariadb")
TRUE_VALUES = ("1", "on", "true", "yes")

_LOCK = threading.RLock()
_INSTANCES = {}  # id(moto DBInstance) -> {"obj", "uid", "restored_from"}
_SNAPSHOT_DUMPS = {}  # id(moto DBSnapshot) -> (snapshot object, dump path)
_FINAL_DUMPS = {}  # id(deleted moto DBInstance whose backups are replicated) -> (instance, dump path, binlog copy dir)
_APPLIED_RST = {}  # uid -> require_secure_transport the "running" instance has applied
_STATE = {"state_dir": None}


def _entry(database):
    with _LOCK:
        entry = _INSTANCES.get(id(database))
        if entry is None or entry["obj"] is not database:
            entry = {"obj": database, "uid": uuid.uuid4().hex[:10], "restored_from": None}
            _INSTANCES[id(database)] = entry
        return entry


def _state_dir():
    return Path(_STATE["state_dir"]) if _STATE["state_dir"] else None


def state_dir():
    """The data plane's state dir as the bridge last reported it (None before it polled)."""
    return _state_dir()


def _all_backends():
    for account_id, regions in list(rds_backends.items()):
        for region, backend in list(regions.items()):
            yield account_id, region, backend


# --- parameter groups ---------------------------------------------------------------------


def _group_name_and_status(group):
    if isinstance(group, dict):
        return group.get("DBParameterGroupName"), group.get("ParameterApplyStatus", "in-sync")
    return getattr(group, "name", None), getattr(group, "ParameterApplyStatus", "in-sync")


def _group_value(backend, group_name, parameter):
    group = backend.db_parameter_groups.get((group_name or "").lower())
    if group is None:
        return None
    value = (group.parameters.get(parameter) or {}).get("ParameterValue")
    return None if value is None else str(value)


def _parameter_state(database, backend):
    """(group name, apply status, value of require_secure_transport in the group)."""
    try:
        groups = database.db_parameter_group_status_list
    except Exception:  # a half-built instance (e.g. during a restore) has no groups yet
        return None, "in-sync", None
    if not groups:
        return None, "in-sync", None
    name, status = _group_name_and_status(groups[0])
    return name, status, _group_value(backend, name, "require_secure_transport")


def _effective_rst(uid, apply_status, group_value):
    """The value the database runs with: the group's once it applies, the previous one before."""
    wanted = (group_value or "0").strip().lower() in TRUE_VALUES
    if uid not in _APPLIED_RST or apply_status in ("in-sync", "applying"):
        _APPLIED_RST[uid] = wanted
    return _APPLIED_RST[uid]


# --- security groups ----------------------------------------------------------------------


def _rule_covers_port(rule, port):
    protocol = str(rule.ip_protocol or "-1").lower()
    if protocol in ("-1", "all"):
        return True
    if protocol not in ("tcp", "6"):
        return False
    return rule.from_port is not None and int(rule.from_port) <= port <= int(rule.to_port)


def _security_groups(account_id, region, group_ids, port):
    ec2 = ec2_backends[account_id][region]
    described = []
    for group_id in group_ids:
        group = ec2.get_security_group_from_id(group_id)
        allowed_groups, allowed_cidrs = set(), set()
        for rule in group.ingress_rules if group else []:
            if not _rule_covers_port(rule, port):
                continue
            if rule.source_group.get("GroupId"):
                allowed_groups.add(rule.source_group["GroupId"])
            if rule.ip_range.get("CidrIp"):
                allowed_cidrs.add(rule.ip_range["CidrIp"])
        described.append({"id": group_id, "exists": group is not None,
                          "allowed_security_group_ids": sorted(allowed_groups), "allowed_cidrs": sorted(allowed_cidrs)})
    return described


# --- master password ----------------------------------------------------------------------


def _master_password(database):
    if getattr(database, "manage_master_user_password", False) and hasattr(database, "master_user_secret"):
        secret = database.master_user_secret
        try:
            value = secret.secretsmanager.get_secret_value(secret.secret.arn, None, "AWSCURRENT")
            return json.loads(value["SecretString"] if isinstance(value, dict) else value[1] or "{}").get("password")
        except Exception:  # noqa: BLE001 (fall through to the secret object's own value)
            try:
                return json.loads(secret.secret.secret_string).get("password")
            except Exception:  # noqa: BLE001
                return None
    return getattr(database, "_master_user_password", None)


def _blue_green(database):
    """The data plane's part in a blue/green deployment (``blue_green.dataplane_view``), with uids for objects."""
    view = blue_green.dataplane_view(database)
    if view is None:
        return None
    partner = view.pop("partner")
    source = view.pop("replicates_from")
    return dict(view, partner_uid=_entry(partner)["uid"] if partner is not None else None,
                replicates_from_uid=_entry(source)["uid"] if source is not None else None)


def _describe(account_id, region, backend, database):
    entry = _entry(database)
    port = int(database.port or 3306)
    group_name, apply_status, group_value = _parameter_state(database, backend)
    deployment = _blue_green(database)
    replica_source_uid = _replica_source_uid(database) or (deployment or {}).get("replicates_from_uid")
    return {
        "uid": entry["uid"],
        "id": database.db_instance_identifier,
        "account_id": account_id,
        "region": region,
        "engine": database.engine,
        "engine_version": database.engine_version,
        "status": database.status,
        "address": database.address,
        "port": port,
        "ca_certificate_identifier": restarts.served_ca(database),
        "restart": restarts.public_restart(database),
        "master_username": database.master_username,
        "master_password": _master_password(database),
        "parameter_group": group_name,
        "parameter_apply_status": apply_status,
        "require_secure_transport_in_group": group_value,
        "require_secure_transport": _effective_rst(entry["uid"], apply_status, group_value),
        "security_groups": _security_groups(account_id, region, list(database.vpc_security_group_ids or []), port),
        "restored_from": entry["restored_from"],
        "replica_source": database.source_db_instance_identifier if getattr(database, "is_replica", False) else None,
        "replica_source_uid": replica_source_uid,
        # a replica, a green before its switchover and an old blue after it refuse writes
        "read_only": bool(replica_source_uid) or bool((deployment or {}).get("read_only")),
        "blue_green": deployment,
        "audit": audit_logs.describe(database),
    }


def _replica_source_uid(database):
    """The uid of the instance a read replica replicates from (None: not a replica, or the source is gone)."""
    if not getattr(database, "is_replica", False) or not database.source_db_instance_identifier:
        return None
    try:
        backend = rds_backends[database.account_id][database.region]
        source = backend.find_db_from_id(database.source_db_instance_identifier)
    except Exception:  # noqa: BLE001 (the source was deleted)
        return None
    return _entry(source)["uid"]


@lab_route("dataplane-instances")
def _instances(payload):
    """Every RDS instance the data plane may serve. ``state_dir``: where the bridge keeps its data;
    ``restarted``: {uid: restart sequence number} the bridge has completed (see ``restarts``)."""
    from_bridge = bool(payload.get("state_dir"))
    if from_bridge:
        _STATE["state_dir"] = payload["state_dir"]
    restarted = payload.get("restarted") or {}  # uid -> the last restart the bridge brought the server back from
    replica_lag = payload.get("replica_lag") or {}  # uid -> Seconds_Behind_Master the bridge measured (-1: not replicating)
    audit_lines = payload.get("audit_lines") or {}  # uid -> lines of the audit log the bridge read since its last poll
    ready = set(payload.get("ready") or ())  # uids served whose names the hosts resolve
    if from_bridge:
        restarts.dataplane_polled()
    with _LOCK, blue_green.renames_held():
        if from_bridge:
            blue_green.dataplane_progress(payload.get("switchovers") or {})  # {deployment id: {seq, state}}
            for _account_id, _region, backend in _all_backends():
                blue_green.advance(backend)  # the renames wait for the data plane, not for the next Describe
        described, seen = [], set()
        for account_id, region, backend in _all_backends():
            for database in list(backend.databases.values()):
                if getattr(database, "db_cluster_identifier", None):
                    continue
                item = _describe(account_id, region, backend, database)
                seen.add(id(database))
                if from_bridge and database.engine in SERVED_ENGINES:
                    restarts.dataplane_report(database, restarted.get(item["uid"]), ready=item["uid"] in ready)
                    if item["uid"] in replica_lag and item["replica_source_uid"]:
                        read_replicas.publish_replica_lag(database, replica_lag[item["uid"]])
                    audit_logs.publish(database, audit_lines.get(item["uid"]))
                described.append(item)
        for key in [key for key in _INSTANCES if key not in seen]:
            _APPLIED_RST.pop(_INSTANCES.pop(key)["uid"], None)
        return {"instances": described, "served_engines": list(SERVED_ENGINES)}


# --- data follows snapshots and restores --------------------------------------------------


def _dump_instance(database, label, position=False):
    """Dump a served instance now; the path, or None when the data plane does not serve it.
    ``position``: record the binlog position too (a read replica replicates from there)."""
    state_dir = _state_dir()
    if state_dir is None or database is None:
        return None
    uid = _entry(database)["uid"]
    target = layout.dump_path(state_dir, label)
    try:
        return str(dumps.dump(layout.instance_dir(state_dir, uid), target, position=position))
    except dumps.NotServed:
        return None
    except Exception:  # a failed dump must not fail the AWS call; the restored copy starts empty
        LOG.exception("data-plane dump of %s failed", database.db_instance_identifier)
        return None


def _find_snapshot(backend, identifier):
    if identifier.startswith("arn:aws:rds:"):
        region = identifier.split(":")[3]
        identifier = identifier.rsplit(":", 1)[-1]
        backend = rds_backends[backend.account_id][region]
    return backend.database_snapshots.get(identifier)


def _snapshot_dump(snapshot):
    item = _SNAPSHOT_DUMPS.get(id(snapshot))
    return item[1] if item and item[0] is snapshot else None


@around(RDSBackend, "create_db_snapshot")
def create_db_snapshot(original, self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs):
    with _LOCK:
        snapshot = original(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs)
        label = f"snapshot-{self.region_name}-{db_snapshot_identifier}-{uuid.uuid4().hex[:6]}"
        path = _dump_instance(self.databases.get(db_instance_identifier), label)
        if path:
            _SNAPSHOT_DUMPS[id(snapshot)] = (snapshot, path)
        return snapshot


@around(RDSBackend, "copy_db_snapshot")
def copy_db_snapshot(original, self, source_db_snapshot_identifier, target_db_snapshot_identifier, *args, **kwargs):
    with _LOCK:
        target = original(self, source_db_snapshot_identifier, target_db_snapshot_identifier,
                                        *args, **kwargs)
        source = _find_snapshot(self, source_db_snapshot_identifier)
        path = _snapshot_dump(source) if source is not None else None
        if path:
            _SNAPSHOT_DUMPS[id(target)] = (target, path)
        return target


# The lock is held across moto's call: the instance appears in the backend before the call
# returns, and the bridge must not see it before it knows where its data comes from.

@around(RDSBackend, "restore_db_instance_from_db_snapshot")
def restore_db_instance_from_db_snapshot(original, self, from_snapshot_id, overrides, *args, **kwargs):
    with _LOCK:
        database = original(self, from_snapshot_id, overrides, *args, **kwargs)
        snapshot = _find_snapshot(self, from_snapshot_id)
        _entry(database)["restored_from"] = {
            "kind": "snapshot", "snapshot": from_snapshot_id,
            "dump": _snapshot_dump(snapshot) if snapshot is not None else None,
        }
        _created(database)
        return database


def _is_live(database):
    backend = rds_backends[database.account_id][database.region]
    return backend.databases.get(database.db_instance_identifier) is database


def _point_in_time_source(backend, source_db_identifier, overrides):
    """The instance whose data a point-in-time restore gets: named, or the one the (replicated)
    automated backups are of. None when the request is invalid (the restore itself fails then)."""
    try:
        database, _backup = backup_replication.resolve_restore_source(backend, source_db_identifier, overrides or {})
    except Exception:  # noqa: BLE001 (the wrapped call raises the proper error)
        return None
    return database


def _history_until(database, restore_time, label, kept=None):
    """The source's changes before ``restore_time``, replayed from its binary log (or from the copy
    ``kept`` when it was deleted); None when the data plane has no history of it."""
    state_dir = _state_dir()
    if state_dir is None or (database is None and kept is None):
        return None
    history = kept or layout.instance_dir(state_dir, _entry(database)["uid"])
    try:
        return str(dumps.replay_until(history, backup_replication._as_utc(restore_time),
                                      layout.dump_path(state_dir, label)))
    except dumps.NotServed:
        return None
    except Exception:  # a failed replay must not fail the AWS call; the restored copy starts empty
        LOG.exception("data-plane replay of %s to %s failed", label, restore_time)
        return None


# AWS: RDS User Guide, "Restoring a DB instance to a specified time" -- the new instance has the
# data as of RestoreTime (UseLatestRestorableTime: the latest restorable time; in the lab, now).
@around(RDSBackend, "restore_db_instance_to_point_in_time")
def restore_db_instance_to_point_in_time(original, self, source_db_identifier, target_db_identifier, overrides, *args, **kwargs):
    with _LOCK:
        source = _point_in_time_source(self, source_db_identifier, overrides)
        label = f"pitr-{self.region_name}-{target_db_identifier}-{uuid.uuid4().hex[:6]}"
        requested = (overrides or {}).get("RestoreTime") or (overrides or {}).get("restore_time")
        live = source is None or _is_live(source)
        final = None if live else _FINAL_DUMPS.get(id(source))
        final = final if final and final[0] is source else None
        if requested is not None:
            path = _history_until(source if live else None, requested, label, kept=final and final[2])
        elif live:
            path = _dump_instance(source, label)
        else:  # the backups outlived their instance: its data as it was deleted
            path = final and final[1]
        database = original(self, source_db_identifier, target_db_identifier, overrides, *args, **kwargs)
        _entry(database)["restored_from"] = {
            "kind": "point-in-time",
            "source": source.db_instance_identifier if source is not None else source_db_identifier,
            "source_region": source.region if source is not None else self.region_name,
            "restore_time": str(requested or "latest"), "dump": path,
        }
        _created(database)
        return database


@around(RDSBackend, "create_db_instance_read_replica")
def create_db_instance_read_replica(original, self, db_kwargs, *args, **kwargs):
    with _LOCK:
        source_id = db_kwargs.get("source_db_instance_identifier", "")
        try:
            source = self.find_db_from_id(source_id)
        except Exception:  # noqa: BLE001 (moto raises the proper error below)
            source = None
        label = f"replica-{self.region_name}-{db_kwargs.get('db_instance_identifier')}-{uuid.uuid4().hex[:6]}"
        path = _dump_instance(source, label, position=True)
        replica = original(self, db_kwargs, *args, **kwargs)
        # moto's replica is a shallow copy of the primary: give it its own entry
        _INSTANCES.pop(id(replica), None)
        _entry(replica)["restored_from"] = {"kind": "read-replica", "source": source_id, "dump": path}
        _created(replica)
        return replica


@around(RDSBackend, "create_blue_green_deployment")
def create_blue_green_deployment(original, self, bg_kwargs, *args, **kwargs):
    """The green starts from a dump of the blue with its GTID position and replicates from there, as a read
    replica does (``blue_green.dataplane_view`` names the blue it replicates from)."""
    with _LOCK:
        try:
            source = self.find_db_from_id(bg_kwargs.get("source", ""))
        except Exception:  # noqa: BLE001 (moto raises the proper error below)
            source = None
        label = f"blue-green-{self.region_name}-{bg_kwargs.get('blue_green_deployment_name')}-{uuid.uuid4().hex[:6]}"
        path = _dump_instance(source, label, position=True) if source is not None else None
        answer = original(self, bg_kwargs, *args, **kwargs)
        deployment = self.blue_green_deployments[answer.blue_green_deployment_identifier]
        try:
            green = self.find_db_from_id(deployment.target)
        except Exception:  # noqa: BLE001 (a cluster: the data plane serves no clusters)
            return answer
        _INSTANCES.pop(id(green), None)
        _entry(green)["restored_from"] = {"kind": "blue-green", "source": bg_kwargs.get("source"), "dump": path}
        provisioned_at = green.__dict__.get("_lab_creating_until") or 0.0
        _created(green)  # creating until the data plane serves it (and at least for the provisioning period)
        green._lab_creating_until = max(green.__dict__.get("_lab_creating_until") or 0.0, provisioned_at)
        return answer


def _created(database):
    if database.engine in SERVED_ENGINES:
        restarts.created(database)


def _keep_history(database, label):
    """Keep the binary log of an instance being deleted (a later point-in-time restore from its
    replicated backups replays it); the copy's dir, or None."""
    state_dir = _state_dir()
    if state_dir is None:
        return None
    try:
        return dumps.keep_binlog(layout.instance_dir(state_dir, _entry(database)["uid"]),
                                 layout.dump_path(state_dir, label).with_suffix(".history"))
    except Exception:  # noqa: BLE001 (keeping history must not fail the AWS call)
        LOG.exception("keeping the binary log of %s failed", database.db_instance_identifier)
        return None


@around(RDSBackend, "delete_db_instance")
def delete_db_instance(original, self, db_instance_identifier, *args, **kwargs):
    """An instance whose automated backups are replicated leaves its data with them (restorable
    in the destination region after the instance is gone)."""
    with _LOCK:
        database = self.databases.get(db_instance_identifier) if db_instance_identifier else None
        path = history = None
        if database is not None and backup_replication.active_replications(database.db_instance_arn):
            label = f"final-{self.region_name}-{database.db_instance_identifier}-{uuid.uuid4().hex[:6]}"
            path = _dump_instance(database, label)
            history = _keep_history(database, label)
        deleted = original(self, db_instance_identifier, *args, **kwargs)
        if path or history:
            _FINAL_DUMPS[id(deleted)] = (deleted, path, history)
        return deleted
