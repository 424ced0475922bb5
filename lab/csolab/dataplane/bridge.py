"""The bridge: polls the AWS lab (~every 0.3 s) and converges the data plane to it.

Per served instance (engines mysql/mariadb): a MariaDB server with the master user, the server
certificate of the instance's CA, the effective ``require_secure_transport``, relays into the
namespace, and firewall rules from its security groups. A restart AWS records (reboot, a
modification applied with a restart: ``moto_ext.restarts``) stops the server for the lab's outage,
cutting live sessions, then starts it again; a failover also moves the instance to another slot,
so its endpoint name resolves to another address and the old one stops answering. Instances that disappear are torn down;
instances restored from a snapshot / point in time / made replicas start with the dumped data.

A read replica's server then replicates from its source's server (GTID from the position of the
dump, TLS verified against the lab's CA bundle, as a per-replica user that requires SSL) and runs
``read_only``; its lag (``Seconds_Behind_Master``, -1 while replication is not active) is
measured every ``LAG_INTERVAL`` s and reported with the next poll (the AWS lab publishes it as
``ReplicaLag``). When the AWS side no longer names a source (a promotion), replication is stopped
and ``read_only`` turned off; a source that moved (failover) is followed.

Blue/green deployments (the rules and their AWS sources: ``csolab.moto_ext.blue_green``): the green is served like a
read replica of the blue. Its switchover is acted out in AWS's order: ``read_only`` on the blue (writes stop; the
green is read-only already), every client session on both killed, the green waits until it has applied the blue's
binary log position (``MASTER_GTID_WAIT``), replication stops, both servers stop (no connection gets in) and the
pair is reported fenced. Once the AWS lab has renamed both, they start again under their new names (the names
and certificates follow), the green writable and the old blue read-only, and the pair is reported done. A green
that has not caught up within the switchover's timeout goes on replicating, the blue takes writes again, and the
switchover is reported rolled back (the AWS lab follows: ``SWITCHOVER_FAILED``).

Audit logging (``csolab.dataplane.audit``): the instance's MariaDB runs ``server_audit`` with the settings of
its option group's ``MARIADB_AUDIT_PLUGIN`` option, and the new lines of its audit file go with the next poll
(the AWS lab publishes them to CloudWatch Logs when the instance exports ``audit``).
"""

import json
import logging
import secrets
import shutil
import signal
import time
import urllib.request
from pathlib import Path

from csolab import netns, paths
from csolab.dataplane import audit, dumps, iam_verifier, layout, mariadb, net, pki

LOG = logging.getLogger("csolab.dataplane")
POLL_INTERVAL = 0.3
RETRY_AFTER = 5.0
ADDRESS_CHECK_INTERVAL = 3.0
SERVED_ENGINES = ("mysql", "mariadb")
MAX_SLOT = 254
RESTART_LOG_SIZE = 50
LAG_INTERVAL = 2.0
CATCH_UP_STEP = 1.0  # s a poll waits for a green to catch up with its blue during a switchover


def fetch_instances(endpoint_url, state_dir, restarted=None, timeout=10, replica_lag=None, audit_lines=None, ready=None,
                    switchovers=None):
    """The instances; ``restarted`` ({uid: restart sequence}) tells the AWS lab which restarts the
    servers are back from (it keeps the instance ``rebooting`` until then); ``replica_lag``
    ({uid: seconds, -1 when not replicating}) what was measured on replicas since the last poll; ``audit_lines``
    ({uid: [line]}) the audit log lines read since; ``ready`` the uids served with their names published
    (a new instance is ``creating`` until then); ``switchovers`` ({deployment id: {"seq", "state"}}) how far the
    blue/green switchovers are acted out ("fenced": both servers down, ready for the renames; "done")."""
    request = urllib.request.Request(
        f"{endpoint_url}/_lab/dataplane-instances",
        data=json.dumps({"state_dir": str(state_dir), "restarted": restarted or {},
                         "replica_lag": replica_lag or {}, "audit_lines": audit_lines or {},
                         "ready": sorted(ready or ()), "switchovers": switchovers or {}}).encode(),
        headers={"Content-Type": "application/json", "X-Lab-Internal": "1"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read())["instances"]


def served(instance):
    return instance["engine"] in SERVED_ENGINES and instance["status"] not in ("deleting", "deleted")


class Bridge:
    def __init__(self, state_dir, netns_name=netns.NAME, aws_state_file=paths.AWS_STATE_FILE):
        self.state_dir = Path(state_dir)
        self.netns = netns_name
        self.aws_state_file = Path(aws_state_file)
        self.root = layout.root(self.state_dir)
        self.allocations = self._load_allocations()
        self.applied = {}  # uid -> what the running server has: name, ca, rst, password
        self.errors = {}  # uid -> (message, retry at)
        self.restarted = {}  # uid -> the last restart (sequence number) the server is back from
        self.down_until = {}  # uid -> (monotonic time the outage ends, restart sequence)
        self.finishing = {}  # uid -> restart sequence whose server is being started again
        self.restart_log = []  # the restarts acted out: instance, reason, down/up (epoch seconds)
        self.replica_lag = {}  # uid -> lag measured since the last poll (reported with the next one)
        self.lag_checked = {}  # uid -> monotonic time of the last measurement
        self.audit = audit.Follower()  # audit plugin settings applied, audit lines not reported yet
        self.firewall_script = None
        self.names = None
        self.published = set()  # uids whose names the hosts resolve
        self.switchovers = {}  # deployment id -> the blue/green switchover being acted out (see _step_switchover)
        self.stopping = False
        self.present_addresses, self.addresses_checked = set(), 0.0

    # --- bookkeeping ------------------------------------------------------------------------

    def _load_allocations(self):
        try:
            return json.loads(layout.allocations_file(self.state_dir).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save_allocations(self):
        _write_json(layout.allocations_file(self.state_dir), self.allocations)

    def _allocate(self, uid):
        if uid in self.allocations:
            return self.allocations[uid]["slot"]
        return self._take_free_slot(uid)

    def _take_free_slot(self, uid):
        taken = {item["slot"] for item in self.allocations.values()}
        present = net.namespace_addresses(self.netns)
        for slot in range(1, MAX_SLOT + 1):
            if slot in taken or net.namespace_ip(slot) in present or not net.loopback_free(slot):
                continue
            self.allocations[uid] = {"slot": slot}
            self._save_allocations()
            return slot
        raise RuntimeError("no free data-plane slot")

    def _server(self, uid):
        slot = self.allocations[uid]["slot"]
        return mariadb.Server(layout.instance_dir(self.state_dir, uid), net.loopback_ip(slot))

    # --- one instance -----------------------------------------------------------------------

    def _template(self):
        """A freshly installed datadir, copied for each new instance (install takes ~3 s)."""
        template = self.root / "template"
        if not (template / "data" / "mysql").is_dir():
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir(parents=True)
            mariadb.Server(template, "127.0.0.1").install()
        return template / "data"

    def _issue_certificate(self, instance, uid):
        return pki.issue_server_certificate(
            layout.instance_dir(self.state_dir, uid), instance["ca_certificate_identifier"], instance["address"],
            state_dir=self.state_dir)

    def _provision(self, instance):
        uid = instance["uid"]
        self._allocate(uid)
        directory = layout.instance_dir(self.state_dir, uid)
        directory.mkdir(parents=True, exist_ok=True)
        server = self._server(uid)
        fresh = not server.installed()
        if fresh:
            shutil.copytree(self._template(), directory / "data")
        applied = {"name": instance["address"], "ca": self._issue_certificate(instance, uid)}
        if fresh and instance.get("replica_source_uid"):
            server.read_only_marker.touch()  # read-only from its first start, as an RDS replica
        server.start()
        if fresh:
            try:
                server.drop_anonymous_users()
                dumps.mark_binlog_start(directory)  # the instance's own history starts here
                source = (instance.get("restored_from") or {}).get("dump")
                if source and Path(source).exists():
                    dumps.load(directory, source)
                    LOG.info("%s: loaded %s", instance["id"], source)
                if instance.get("replica_source_uid"):
                    self._start_replication(instance, server, source if source and Path(source).exists() else None)
            except Exception:
                server.stop()  # the next attempt starts from a fresh copy again
                shutil.rmtree(directory / "data", ignore_errors=True)
                raise
        self.applied[uid] = applied
        LOG.info("%s: serving on %s (uid %s)", instance["id"], server.address, uid)

    def _converge_instance(self, instance):
        uid = instance["uid"]
        server = self._server(uid) if uid in self.allocations else None
        if server is None or not server.running() or uid not in self.applied:
            if server is not None and uid not in self.applied:
                server.stop()
            self._provision(instance)
            server = self._server(uid)
        applied = self.applied[uid]
        if (instance["address"], pki.resolve_identifier(instance["ca_certificate_identifier"])) != \
                (applied["name"], applied["ca"]):
            applied["ca"] = self._issue_certificate(instance, uid)
            applied["name"] = instance["address"]
            server.reload_tls()
            LOG.info("%s: certificate from %s for %s", instance["id"], applied["ca"], applied["name"])
        credentials = (instance["master_username"], instance["master_password"])
        if all(credentials) and credentials != applied.get("credentials"):
            server.ensure_master(*credentials)
            applied["credentials"] = credentials
        if instance["require_secure_transport"] != applied.get("rst"):
            server.set_require_secure_transport(instance["require_secure_transport"])
            applied["rst"] = instance["require_secure_transport"]
            LOG.info("%s: require_secure_transport=%s", instance["id"], applied["rst"])
        self._converge_replication(instance, server, applied)
        self.audit.converge(instance, server, applied)
        self._ensure_relays(uid)

    # --- read replicas ----------------------------------------------------------------------

    def _source_server(self, instance):
        source_uid = instance["replica_source_uid"]
        if source_uid not in self.applied or source_uid not in self.allocations:
            raise RuntimeError(f"the source of {instance['id']} is not served yet")
        return self._server(source_uid)

    def _start_replication(self, instance, server, dump_file):
        source = self._source_server(instance)
        position = dumps.gtid_position(dump_file) if dump_file else None
        if position is None:  # the source was not served when the replica was made: from now on
            position = source.gtid_binlog_pos()
        username, password = f"rdsrepl_{instance['uid']}", secrets.token_urlsafe(18)
        source.ensure_replication_user(username, password)
        # By the source's endpoint name, not its address: MASTER_SSL_VERIFY_SERVER_CERT checks the
        # name against the certificate, which carries the endpoint's DNS name only (an address
        # fails with "SSL certificate validation failure"). The name resolves on this machine
        # (the /etc/hosts block of _converge_names) and follows the source when its address moves.
        source_name = self.applied[instance["replica_source_uid"]]["name"]
        server.start_replication(source_name, source.port, username, password,
                                 str(pki.bundle_path(self.state_dir)), position)
        LOG.info("%s: replicating from %s (uid %s) from GTID %r, TLS verified", instance["id"], source_name,
                 instance["replica_source_uid"], position)

    def _converge_replication(self, instance, server, applied):
        replica = bool(instance.get("replica_source_uid"))
        if not replica and applied.get("replicating", True):
            if server.replication_status():  # promoted (or a source that is gone): stand alone
                server.stop_replication()
                LOG.info("%s: replication stopped (no longer a read replica)", instance["id"])
            applied["replicating"] = False
            self.lag_checked.pop(instance["uid"], None)
        elif replica:
            applied["replicating"] = True
        read_only = bool(instance.get("read_only", replica))  # a green, an old blue: read-only too
        if applied.get("read_only") != read_only:
            server.set_read_only(read_only)
            applied["read_only"] = read_only
            LOG.info("%s: read_only=%s", instance["id"], read_only)
        if replica and time.monotonic() - self.lag_checked.get(instance["uid"], 0.0) >= LAG_INTERVAL:
            self._measure_lag(instance, server, applied)

    def _measure_lag(self, instance, server, applied):
        uid = instance["uid"]
        self.lag_checked[uid] = time.monotonic()
        status = server.replication_status()
        source_uid = instance["replica_source_uid"]
        source_name = self.applied.get(source_uid, {}).get("name")
        if source_name and status.get("Master_Host") and status["Master_Host"] != source_name:
            server.move_replication_source(source_name)  # the source was renamed
            LOG.info("%s: the source moved; replicating from %s", instance["id"], source_name)
        behind = status.get("Seconds_Behind_Master")
        lag = int(behind) if behind and behind.isdigit() else -1  # NULL: replication not active
        self.replica_lag[uid] = lag
        applied["replication"] = {
            "lag": lag, "io_running": status.get("Slave_IO_Running"), "sql_running": status.get("Slave_SQL_Running"),
            "master_host": status.get("Master_Host"), "master_ssl_allowed": status.get("Master_SSL_Allowed"),
            "master_ssl_verify_server_cert": status.get("Master_SSL_Verify_Server_Cert"),
            "last_error": status.get("Last_IO_Error") or status.get("Last_SQL_Error") or None,
        }

    def take_replica_lag(self):
        lag, self.replica_lag = self.replica_lag, {}
        return lag

    # --- blue/green switchovers -------------------------------------------------------------

    def _act_out_switchovers(self, wanted):
        """Step each switchover the AWS lab records; forget those it no longer records (completed, deleted)."""
        recorded = set()
        for green in wanted.values():
            deployment = green.get("blue_green") or {}
            switchover = deployment.get("switchover")
            if deployment.get("role") != "green" or not switchover:
                continue
            key = deployment["deployment"]
            recorded.add(key)
            progress = self.switchovers.get(key)
            if progress is None or progress["seq"] != switchover["seq"]:
                progress = self.switchovers[key] = {
                    "seq": switchover["seq"], "state": "fencing", "blue": deployment["partner_uid"],
                    "green": green["uid"], "since": time.monotonic(), "timeout": switchover.get("timeout") or 300}
            try:
                self._step_switchover(progress, switchover["phase"], wanted)
                progress.pop("error", None)
            except Exception as exc:  # noqa: BLE001 (tried again next poll; the others go on)
                LOG.exception("%s: switchover step %s failed", green["id"], progress["state"])
                progress["error"] = f"{type(exc).__name__}: {exc}"
        for key in [key for key in self.switchovers if key not in recorded]:
            del self.switchovers[key]

    def _step_switchover(self, progress, phase, wanted):
        """AWS's switchover actions (RDS User Guide, "Switching a blue/green deployment", "Switchover actions"),
        one state per poll at most: fencing -> catching-up -> fenced -> starting -> done."""
        blue_uid, green_uid = progress["blue"], progress["green"]
        if progress["state"] == "fencing":
            if blue_uid not in self.applied or green_uid not in self.applied:
                return  # a server is not served (yet)
            blue, green = self._server(blue_uid), self._server(green_uid)
            blue.set_read_only(True)  # new writes stop on both primaries (the green is read-only already)
            self.applied[blue_uid]["read_only"] = True
            killed = [server.kill_client_sessions() for server in (blue, green)]  # connections dropped on both
            progress["position"] = blue.gtid_binlog_pos()
            progress["state"] = "catching-up"
            LOG.info("switchover %s: writes stopped, %s sessions killed; the green catches up to %r",
                     progress["seq"], killed, progress["position"])
        if progress["state"] == "catching-up":
            green = self._server(green_uid)
            if not green.wait_for_gtid(progress["position"], CATCH_UP_STEP):
                if time.monotonic() - progress["since"] > progress["timeout"]:
                    self._roll_back_switchover(progress)
                return
            green.stop_replication()
            for uid in (blue_uid, green_uid):  # no new connection until both serve their new names
                self._server(uid).stop()
                self.applied.pop(uid, None)
            progress["state"] = "fenced"
            LOG.info("switchover %s: caught up, replication stopped, both servers down", progress["seq"])
        if progress["state"] == "fenced" and phase in ("renamed", "done"):
            progress["state"] = "starting"  # the per-instance convergence starts both under their new names
            return
        if progress["state"] == "starting" and all(self._serves_name(wanted.get(uid)) for uid in (blue_uid, green_uid)):
            progress["state"] = "done"
            LOG.info("switchover %s: both serve their new names", progress["seq"])

    def _roll_back_switchover(self, progress):
        """Past SwitchoverTimeout before the pair is fenced: the blue takes writes again and the green goes on
        replicating (it was never stopped); nothing was renamed. The AWS lab follows the "rolled-back" report."""
        blue_uid = progress["blue"]
        self._server(blue_uid).set_read_only(False)
        self.applied[blue_uid]["read_only"] = False
        progress["state"] = "rolled-back"
        LOG.info("switchover %s: the green did not catch up with %r within %s s: rolled back, the blue writable",
                 progress["seq"], progress["position"], progress["timeout"])

    def _serves_name(self, instance):
        """Whether ``instance`` is served with its current endpoint name published."""
        if instance is None or instance["uid"] not in self.applied or instance["uid"] in self.errors:
            return False
        slot = self.allocations.get(instance["uid"], {}).get("slot")
        return instance["uid"] in self.published and (instance["address"], slot) in (self.names or [])

    def _held_for_switchover(self):
        """The servers a switchover keeps as they are: fenced, or waiting for the green to catch up."""
        return {uid for progress in self.switchovers.values() if progress["state"] in ("catching-up", "fenced")
                for uid in (progress["blue"], progress["green"])}

    def switchover_progress(self):
        """What the AWS lab waits for: {deployment id: {"seq", "state": "fenced" | "done" | "rolled-back"}}."""
        reported = {"fenced": "fenced", "starting": "fenced", "done": "done", "rolled-back": "rolled-back"}
        return {key: {"seq": progress["seq"], "state": reported[progress["state"]]}
                for key, progress in self.switchovers.items() if progress["state"] in reported}

    # --- restarts AWS makes -----------------------------------------------------------------

    def _hold_for_restart(self, instance):
        """Act out the restarts the AWS lab records. True while the server is down for one."""
        uid, restart = instance["uid"], instance.get("restart") or {}
        seq = restart.get("seq") or 0
        self.restarted.setdefault(uid, seq)  # a bridge that starts does not replay earlier restarts
        if seq > self.restarted[uid] and uid not in self.down_until and uid not in self.finishing:
            self._stop_for_restart(instance)
        if uid in self.down_until:
            until, _seq = self.down_until[uid]
            if time.monotonic() < until:
                return True
            del self.down_until[uid]
            self.finishing[uid] = seq  # a restart recorded during the outage is part of this one
        return False

    def _stop_for_restart(self, instance):
        uid, restart = instance["uid"], instance["restart"]
        if uid in self.allocations:
            self._server(uid).stop()  # the process ends: live sessions are cut
            if restart.get("failover"):
                self._move_to_standby(uid)
        self.applied.pop(uid, None)
        outage = float(restart.get("outage_seconds") or 0)
        self.down_until[uid] = (time.monotonic() + outage, restart["seq"])
        self.restart_log = self.restart_log[-(RESTART_LOG_SIZE - 1):] + [{
            "instance": instance["id"], "uid": uid, "seq": restart["seq"], "reason": restart.get("reason"),
            "failover": bool(restart.get("failover")), "outage_seconds": outage,
            "down": round(time.time(), 3), "up": None}]
        LOG.info("%s: down for %s (%.1f s)", instance["id"], restart.get("reason"), outage)

    def _move_to_standby(self, uid):
        """Failover: the standby has its own address, and the endpoint name moves to it; the old
        address stops answering (as the old primary's does)."""
        old_slot = self.allocations[uid]["slot"]
        net.stop_relays(layout.instance_dir(self.state_dir, uid))
        net.remove_address(self.netns, net.namespace_ip(old_slot))
        self.present_addresses.discard(net.namespace_ip(old_slot))
        del self.allocations[uid]
        new_slot = self._take_free_slot(uid)
        LOG.info("uid %s: failover from slot %s to slot %s", uid, old_slot, new_slot)

    def _finish_restart(self, uid):
        if uid in self.finishing:
            self.restarted[uid] = self.finishing.pop(uid)
            for entry in self.restart_log:
                if entry["uid"] == uid and entry["up"] is None:
                    entry["up"] = round(time.time(), 3)  # the server accepts connections again

    def _ensure_relays(self, uid):
        slot = self.allocations[uid]["slot"]
        directory = layout.instance_dir(self.state_dir, uid)
        if net.namespace_ip(slot) not in self.present_addresses:
            net.add_address(self.netns, net.namespace_ip(slot))
            self.present_addresses.add(net.namespace_ip(slot))
        if not net.relay_running(directory, "root"):
            net.start_root_relay(directory, slot)
        if not net.relay_running(directory, "ns"):
            net.start_namespace_relay(directory, slot, self.netns)

    def _teardown(self, uid, keep_data=False):
        directory = layout.instance_dir(self.state_dir, uid)
        net.stop_relays(directory)
        if uid in self.allocations:
            net.remove_address(self.netns, net.namespace_ip(self.allocations[uid]["slot"]))
            self.present_addresses.discard(net.namespace_ip(self.allocations[uid]["slot"]))
            self._server(uid).stop()
        else:
            _stop_pid_file(directory / "mysqld.pid")
        self.applied.pop(uid, None)
        self.errors.pop(uid, None)
        for progress in (self.restarted, self.down_until, self.finishing, self.replica_lag, self.lag_checked):
            progress.pop(uid, None)
        self.audit.forget(uid)
        for entry in self.restart_log:
            if entry["uid"] == uid and entry["up"] is None:
                entry.update(up=round(time.time(), 3), torn_down=True)
        if not keep_data:
            shutil.rmtree(directory, ignore_errors=True)
            if self.allocations.pop(uid, None) is not None:
                self._save_allocations()

    # --- the whole data plane ---------------------------------------------------------------

    def converge(self, instances):
        wanted = {item["uid"]: item for item in instances if served(item)}
        for uid in [uid for uid in list(self.allocations) if uid not in wanted]:
            LOG.info("uid %s: gone, tearing down", uid)
            self._teardown(uid)
        self._collect_orphan_dirs(wanted)
        now = time.monotonic()
        if now - self.addresses_checked > ADDRESS_CHECK_INTERVAL:  # `ip` is a fork+exec: not every poll
            self.present_addresses, self.addresses_checked = net.namespace_addresses(self.netns), now
        self._act_out_switchovers(wanted)
        held = self._held_for_switchover()
        for uid, instance in wanted.items():
            if uid in held or (uid in self.errors and self.errors[uid][1] > now):
                continue
            try:
                if self._hold_for_restart(instance):
                    continue
                self._converge_instance(instance)
                self._finish_restart(uid)
                self.errors.pop(uid, None)
            except Exception as exc:  # one broken instance must not stop the others
                LOG.exception("%s: converge failed", instance["id"])
                self.errors[uid] = (f"{type(exc).__name__}: {exc}", now + RETRY_AFTER)
        # an instance down for a restart or a switchover keeps its name and firewall rules, as an RDS endpoint does
        live = [item for uid, item in wanted.items() if uid in self.applied or uid in self.down_until or uid in held]
        self._converge_firewall(live)
        self._converge_names(live)
        self._write_status(wanted)

    def _collect_orphan_dirs(self, wanted):
        root = layout.instances_root(self.state_dir)
        if root.is_dir():
            for directory in root.iterdir():
                if directory.name not in wanted and directory.name not in self.allocations:
                    self._teardown(directory.name)

    def _converge_firewall(self, live):
        hosts = net.load_hosts(layout.hosts_json(self.state_dir))
        entries = [(net.namespace_ip(self.allocations[item["uid"]]["slot"]), net.allowed_sources(item, hosts))
                   for item in live]
        script = net.ruleset(sorted(entries))
        if script != self.firewall_script:
            net.apply_firewall(self.netns, script)
            self.firewall_script = script
            LOG.info("firewall: %s", entries)

    def _converge_names(self, live):
        names = sorted((item["address"], self.allocations[item["uid"]]["slot"]) for item in live)
        if names != self.names:
            net.write_etc_hosts_block([f"{net.loopback_ip(slot)} {name}" for name, slot in names], self.netns)
            fragment = "".join(f"{net.namespace_ip(slot)} {name}\n" for name, slot in names)
            _write_text(layout.hosts_fragment_file(self.state_dir), fragment)
            if not net.run_names_hook(layout.names_hook_file(self.state_dir)):
                return  # tried again next poll; the new names' instances are not ready meanwhile
            self.names = names
        self.published = {item["uid"] for item in live}

    def _write_status(self, wanted):
        instances = {}
        for uid, item in wanted.items():
            slot = self.allocations.get(uid, {}).get("slot")
            applied = self.applied.get(uid, {})
            instances[item["id"]] = {
                "uid": uid, "region": item["region"], "name": item["address"], "port": 3306,
                "loopback_ip": net.loopback_ip(slot) if slot else None,
                "namespace_ip": net.namespace_ip(slot) if slot else None,
                "ready": uid in self.applied and uid not in self.errors,
                "restarting": uid in self.down_until,
                "restarted": self.restarted.get(uid),
                "ca_certificate_identifier": applied.get("ca"),
                "require_secure_transport": applied.get("rst"),
                "read_only": applied.get("read_only"),
                "replica_source_uid": item.get("replica_source_uid"),
                "blue_green": self._blue_green_status(item),
                "replication": applied.get("replication") if item.get("replica_source_uid") else None,
                "audit": applied.get("audit"),
                "error": self.errors.get(uid, (None,))[0],
            }
        _write_json(layout.status_file(self.state_dir),
                    {"ts": time.time(), "netns": self.netns, "instances": instances,
                     "firewall": self.firewall_script, "restarts": self.restart_log})

    def _blue_green_status(self, item):
        deployment = item.get("blue_green")
        if not deployment:
            return None
        progress = self.switchovers.get(deployment["deployment"]) or {}
        return {"deployment": deployment["deployment"], "role": deployment["role"],
                "switchover": progress.get("state"), "switchover_error": progress.get("error")}

    def shutdown(self):
        """Stop every server and relay, remove addresses, firewall and names; keep the data."""
        for uid in list(self.allocations):
            self._teardown(uid, keep_data=True)
        net.remove_firewall(self.netns)
        net.remove_etc_hosts_block(self.netns)
        _write_text(layout.hosts_fragment_file(self.state_dir), "")
        layout.status_file(self.state_dir).unlink(missing_ok=True)

    # --- the loop ---------------------------------------------------------------------------

    def run(self):
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        netns.ensure(self.netns)
        pki.ensure(self.state_dir)
        endpoint, last_error = None, None
        verifier = iam_verifier.Verifier(
            self.state_dir, lambda: json.loads(self.aws_state_file.read_text())["endpoint_url"]).start()
        try:
            while not self.stopping:
                started = time.monotonic()
                try:
                    if endpoint is None:
                        endpoint = json.loads(self.aws_state_file.read_text())["endpoint_url"]
                    lag, lines = self.take_replica_lag(), self.audit.take()
                    try:
                        ready = {uid for uid in self.applied if uid in self.published and uid not in self.errors}
                        instances = fetch_instances(endpoint, self.state_dir, self.restarted, replica_lag=lag,
                                                    audit_lines=lines, ready=ready,
                                                    switchovers=self.switchover_progress())
                    except (OSError, ValueError, KeyError):
                        self.replica_lag = {**lag, **self.replica_lag}  # report it with the next poll
                        self.audit.give_back(lines)
                        raise
                    self.converge(instances)
                    last_error = None
                except (OSError, ValueError, KeyError) as exc:
                    endpoint = None
                    if str(exc) != last_error:
                        LOG.warning("AWS lab not reachable (%s); keeping the data plane as it is", exc)
                        last_error = str(exc)
                time.sleep(max(0.05, POLL_INTERVAL - (time.monotonic() - started)))
        finally:
            self.shutdown()
            verifier.stop()

    def _stop(self, *_):
        self.stopping = True


def cleanup_leftovers(state_dir, netns_name):
    """Undo what a killed bridge left: servers, relays, addresses, firewall, names."""
    bridge = Bridge(state_dir, netns_name)
    root = layout.instances_root(state_dir)
    for directory in root.iterdir() if root.is_dir() else []:
        net.stop_relays(directory)
        _stop_pid_file(directory / "mysqld.pid")
    for item in bridge.allocations.values():
        net.remove_address(netns_name, net.namespace_ip(item["slot"]))
    net.remove_firewall(netns_name)
    net.remove_etc_hosts_block(netns_name)
    _write_text(layout.hosts_fragment_file(state_dir), "")
    layout.status_file(state_dir).unlink(missing_ok=True)
    layout.verifier_socket(state_dir).unlink(missing_ok=True)


def _stop_pid_file(pid_file):
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    if mariadb.alive(pid) and mariadb.owned(pid, str(Path(pid_file).parent / "my.cnf")):
        mariadb.terminate(pid, timeout=20)
    Path(pid_file).unlink(missing_ok=True)


def _write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _write_json(path, payload):
    _write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
