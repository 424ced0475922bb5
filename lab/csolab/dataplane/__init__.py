"""The lab's RDS data plane: MariaDB with TLS per emulated RDS instance, driven by the AWS lab.

Python API (the host side and the tests use it; see docs/development.md "Data plane API")::

    start(state_dir=None, netns_name=None)   # the bridge daemon; copes with a killed earlier run
    stop(state_dir=None)  /  status(state_dir=None)
    ca_bundle_path() / ca_path("rds-ca-2019") / rogue_ca_path()
    endpoint_for("cso-lab-db") -> {"name", "loopback_ip", "namespace_ip", "port"}
    wait_ready("cso-lab-db", timeout=30)
    sql("cso-lab-db", "SELECT 1")           # as the master user, by endpoint name (127.0.89.x), TLS verified
    hosts_lines() -> ["10.89.20.1 cso-lab-db.aaaaaaaaaa.eu-west-2.rds.amazonaws.com", ...]
    iam_sessions()                          # IAM logins checked: who signed each accepted one

Heavy imports (cryptography, PyMySQL) happen inside the functions: the moto server imports
this package for the snapshot dumps.
"""

import json
import os
import signal
import subprocess
import sys
import time

from csolab import netns, paths
from csolab.dataplane import layout

START_TIMEOUT = 60


def ca_bundle_path(state_dir=None):
    from csolab.dataplane import pki

    return pki.bundle_path(state_dir)


def ca_path(identifier, state_dir=None):
    from csolab.dataplane import pki

    return pki.ca_path(identifier, state_dir)


def rogue_ca_path(state_dir=None):
    from csolab.dataplane import pki

    return pki.ca_path(pki.ROGUE, state_dir)


def _bridge_pid(base):
    from csolab.dataplane.mariadb import alive

    try:
        pid = int(layout.pid_file(base).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            ours = b"csolab.dataplane" in cmdline.read()
    except OSError:
        ours = False
    return pid if ours and alive(pid) else None


def _read_status(base):
    try:
        return json.loads(layout.status_file(base).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def start(state_dir=None, netns_name=None, wait=True, timeout=START_TIMEOUT):
    """Start the bridge unless it runs; first undo what a killed earlier run left behind."""
    from csolab.dataplane import bridge, pki

    base = layout.state_dir(state_dir)
    name = netns_name or netns.NAME
    if _bridge_pid(base):
        return status(base)
    layout.root(base).mkdir(parents=True, exist_ok=True)
    bridge.cleanup_leftovers(base, name)
    _netns_record(base).write_text(name)  # what stop() cleans up, even after a crash
    netns.ensure(name)
    pki.ensure(base)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(paths.REPO_ROOT / "lab"),
                                                                     os.environ.get("PYTHONPATH")])))
    with open(layout.log_file(base), "ab") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "csolab.dataplane", "run", "--state-dir", str(base), "--netns", name,
             "--aws-state", str(paths.AWS_STATE_FILE)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    layout.pid_file(base).write_text(str(process.pid))
    if wait:
        deadline = time.monotonic() + timeout
        while not (_read_status(base) or {}).get("instances") is not None:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(base)
                raise RuntimeError(f"the data-plane bridge did not come up; see {layout.log_file(base)}")
            time.sleep(0.2)
    return status(base)


def stop(state_dir=None, timeout=60):
    """Stop the bridge (it tears down servers, relays, addresses, firewall, names); clean leftovers."""
    from csolab.dataplane import bridge
    from csolab.dataplane.mariadb import alive

    base = layout.state_dir(state_dir)
    pid = _bridge_pid(base)
    name = (_read_status(base) or {}).get("netns") or _recorded_netns(base)
    if name is None:
        # no bridge ever ran from this lab dir (e.g. an AWS-only lab): the namespace's firewall and
        # /etc/hosts names belong to another lab's bridge and must stay
        layout.pid_file(base).unlink(missing_ok=True)
        return
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    bridge.cleanup_leftovers(base, name)
    layout.pid_file(base).unlink(missing_ok=True)
    # cleaned up: a later stop (`csolab down` again) has nothing of this lab to clean, and the namespace's
    # names and firewall may by then belong to another lab's bridge
    _netns_record(base).unlink(missing_ok=True)


def _netns_record(base):
    return layout.root(base) / "netns"


def _recorded_netns(base):
    try:
        return _netns_record(base).read_text().strip() or None
    except FileNotFoundError:
        return None


def status(state_dir=None):
    base = layout.state_dir(state_dir)
    pid = _bridge_pid(base)
    report = _read_status(base) if pid else None
    return {"bridge": "up" if pid else "down", "pid": pid, "state_dir": str(base),
            "instances": (report or {}).get("instances", {}), "netns": (report or {}).get("netns"),
            "firewall": (report or {}).get("firewall"), "restarts": (report or {}).get("restarts", []),
            "ca_bundle": str(layout.pki_dir(base) / "global-bundle.pem"),
            "iam_verifier_socket": str(layout.verifier_socket(base)),
            "iam_sessions_log": str(layout.iam_sessions_log(base)),
            "hosts_fragment": str(layout.hosts_fragment_file(base))}


def restarts_since(epoch_seconds, state_dir=None):
    """The restarts the data plane acted out since ``epoch_seconds`` (oldest first): instance,
    reason, failover, outage_seconds, down, up (``up`` is None while the server is still down)."""
    return [entry for entry in status(state_dir)["restarts"] if entry["down"] >= epoch_seconds]


def wait_restarts_over(timeout=120, state_dir=None):
    """Wait until no restart is in progress (every server the data plane stopped is back)."""
    deadline = time.monotonic() + timeout
    while any(entry["up"] is None for entry in status(state_dir)["restarts"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"a database restart did not finish within {timeout}s: {status(state_dir)['restarts'][-3:]}")
        time.sleep(0.3)


def iam_sessions(state_dir=None):
    """The IAM logins the data plane checked (oldest first): ts, lab_time, instance, uid, user, client,
    tls, allowed, identity_arn (who signed the token), access_key_id, reason
    (``csolab.dataplane.iam_verifier``; the file is ``<state dir>/dataplane/iam-sessions.log``)."""
    from csolab.dataplane import iam_verifier

    return iam_verifier.sessions(state_dir)


def endpoint_for(instance_id, state_dir=None):
    """{name, loopback_ip, namespace_ip, port} of a served instance (KeyError if not served)."""
    instance = (_read_status(layout.state_dir(state_dir)) or {}).get("instances", {})[instance_id]
    return {key: instance[key] for key in ("name", "loopback_ip", "namespace_ip", "port")}


def wait_ready(instance_id, timeout=30, state_dir=None, predicate=None):
    """Wait until the bridge serves ``instance_id`` (and ``predicate(status entry)`` holds).

    Only the instance the AWS lab has *now* counts: after a lab reset the status file may still
    describe the previous instance of the same name until the bridge catches up.
    """
    deadline = time.monotonic() + timeout
    while True:
        entry = (_read_status(layout.state_dir(state_dir)) or {}).get("instances", {}).get(instance_id)
        current = entry and entry["ready"] and entry["uid"] == _current_uid(instance_id)
        if current and (predicate is None or predicate(entry)):
            return entry
        if time.monotonic() > deadline:
            raise TimeoutError(f"data plane did not serve {instance_id!r} within {timeout}s: {entry}")
        time.sleep(0.2)


def _current_uid(instance_id):
    from csolab.client import LabClient

    for item in LabClient().api("dataplane-instances")["instances"]:
        if item["id"] == instance_id:
            return item["uid"]
    return None


def hosts_lines(state_dir=None):
    """Lines "10.89.20.x <endpoint name>" for the containers' /etc/hosts."""
    instances = (_read_status(layout.state_dir(state_dir)) or {}).get("instances", {})
    return [f"{item['namespace_ip']} {item['name']}" for item in instances.values() if item["ready"]]


def master_credentials(instance_id, lab=None):
    from csolab.client import LabClient

    lab = lab or LabClient()
    for item in lab.api("dataplane-instances")["instances"]:
        if item["id"] == instance_id:
            return item["master_username"], item["master_password"]
    raise KeyError(f"no RDS instance {instance_id!r} in the AWS lab")


def sql(instance_id, query, user=None, password=None, state_dir=None, tls=True):
    """Run one query as the master user (or ``user``); return the rows.

    Connects by the endpoint's DNS name (the controller's /etc/hosts maps it to 127.0.89.x), as an
    RDS client must: the server certificate names no IP address, so host-name verification by
    address fails."""
    import pymysql

    endpoint = endpoint_for(instance_id, state_dir)
    if user is None:
        user, master_password = master_credentials(instance_id)
        password = master_password if password is None else password
    ssl_args = {"ssl_ca": str(ca_bundle_path(state_dir)), "ssl_verify_cert": True, "ssl_verify_identity": True} \
        if tls else {}
    connection = pymysql.connect(host=endpoint["name"], port=endpoint["port"], user=user,
                                 password=password or "", connect_timeout=5, autocommit=True, **ssl_args)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()
    finally:
        connection.close()
