"""The host lab: systemd containers in the lab's namespace with the fixtures, and their load balancer.

``up()`` brings up the full topology (AWS lab, data plane, five hosts, Keystone, CSO, RabbitMQ,
the Keystone load balancer); ``down()`` removes all of it, including what a killed run left.
``reset()`` puts a running topology back to its seeded state without rebuilding it; ``acquire()``
and ``release()`` let every test layer and Molecule scenario share one running lab (a user that
finds none brings it up and takes it down again). Addresses and names follow the host-lab
contract in docs/development.md.
"""

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

from csolab import events, netns, paths
from csolab.hosts import database, fixtures, identities, lb, podman, topology
from csolab.hosts.topology import HOSTS

LABEL_SG = "csolab.sg"
BASE_ETC_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
PROXY_COMMAND = f"nsenter --net={netns.path()} socat STDIO TCP:%h:%p"


# --- SSH ------------------------------------------------------------------------------------

def ensure_ssh_key():
    key = topology.ssh_key()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "csolab", "-f", str(key)], check=True)
    return key


def ssh_options():
    return ["-i", str(topology.ssh_key()), "-o", f"ProxyCommand={PROXY_COMMAND}", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={topology.ssh_dir() / 'known_hosts'}", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]


def ssh(host, command, check=True, timeout=60):
    """Run a command on a host over SSH, the way Ansible reaches it."""
    return subprocess.run(["ssh", *ssh_options(), f"root@{HOSTS[host]['ip']}", command], check=check,
                          capture_output=True, text=True, timeout=timeout)


def _write_ssh_config():
    lines = []
    for name, host in HOSTS.items():
        lines += [f"Host {name}", f"    HostName {host['ip']}", "    User root", f"    IdentityFile {topology.ssh_key()}",
                  f"    ProxyCommand {PROXY_COMMAND}", "    StrictHostKeyChecking no",
                  f"    UserKnownHostsFile {topology.ssh_dir() / 'known_hosts'}", ""]
    (topology.ssh_dir() / "config").write_text("\n".join(lines))


# --- /etc/hosts -----------------------------------------------------------------------------

def etc_hosts_content():
    lines = [BASE_ETC_HOSTS]
    lines += [f"{host['ip']}\t{name}\n" for name, host in HOSTS.items()]
    lines.append(f"{topology.KEYSTONE_LB[0]}\t{topology.KEYSTONE_LB_NAME}\n")
    dataplane_file = topology.dataplane_hosts_path()
    if dataplane_file.exists():
        lines.append("# data plane (csolab.dataplane)\n" + dataplane_file.read_text())
    return "".join(lines)


def sync_etc_hosts(hosts=None):
    """Rewrite the containers' /etc/hosts from the host table and ``<lab dir>/dataplane-hosts``.

    Call it after the data plane changes that file (new instance, endpoint moved). Written in
    place: podman's /etc/hosts is not replaced by a rename inside the container.
    """
    content = etc_hosts_content()
    marker = paths.LAB_DIR / "hosts-etc-hosts.synced"
    for host in hosts or HOSTS:
        fixtures.sh(host, "cat > /etc/hosts", input=content)
    marker.write_text(content)
    return content


def sync_etc_hosts_if_changed():
    """``sync_etc_hosts()`` only when the names changed since the last sync; True if it wrote."""
    marker = paths.LAB_DIR / "hosts-etc-hosts.synced"
    if marker.exists() and marker.read_text() == etc_hosts_content():
        return False
    sync_etc_hosts()
    return True


def follow_dataplane_names():
    """The data plane's names hook: its names go to the running containers as soon as they change
    (a new replica or restore resolves on the hosts before the AWS lab calls it available)."""
    running = set(podman.podman("ps", "--format", "{{.Names}}", check=False).stdout.split())
    hosts = [host for host in HOSTS if host in running]
    if hosts:
        sync_etc_hosts(hosts)


def _register_names_hook():
    from csolab.dataplane import layout

    hook = {"argv": [sys.executable, "-c", "from csolab import hosts; hosts.follow_dataplane_names()"],
            "env": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}}
    layout.names_hook_file(paths.LAB_DIR).write_text(json.dumps(hook) + "\n")


def memory():
    """Memory in MB: per container (its cgroup) and the lab's processes on the controller."""
    listed = podman.podman("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", check=False).stdout
    report = {}
    for line in listed.splitlines():
        name, usage = line.split("\t", 1)
        report[name] = usage.split("/")[0].strip()
    return report


# --- bring-up -------------------------------------------------------------------------------

def _create_containers(tag):
    """The hosts from the base image: fresh root file systems, the fixtures not yet configured."""
    key = ensure_ssh_key().with_suffix(".pub").read_text()
    for name, host in HOSTS.items():
        podman.podman("run", "-d", "--name", name, "--hostname", name, "--network", podman.NETWORK,
                      "--ip", host["ip"], "--no-hosts", "--systemd", "always", "--label", f"{LABEL_SG}={host['kind']}",
                      "--label", f"csolab.lab_dir={paths.LAB_DIR}", tag)
    for name in HOSTS:
        fixtures.put(name, "/root/.ssh/authorized_keys", key, "0600")


def _wait_for_systemd(timeout=60):
    deadline = time.monotonic() + timeout
    pending = set(HOSTS)
    while pending:
        for name in sorted(pending):
            state = podman.podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"systemd not running on {sorted(pending)}")
        if pending:
            time.sleep(0.3)


def _in_parallel(jobs):
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def _configure_fixtures():
    from csolab.client import LabClient

    secrets = topology.lab_secrets()
    endpoint = database.endpoint_name()
    database.sql(fixtures.database_statements(secrets))
    keystone_hosts = topology.hosts_of("keystone")
    _in_parallel([lambda h=h: fixtures.configure_keystone(h, endpoint, secrets) for h in keystone_hosts]
                 + [lambda h=h: fixtures.configure_cso(h, endpoint, secrets) for h in topology.hosts_of("cso")]
                 + [lambda h=h: fixtures.configure_rabbitmq(h) for h in topology.hosts_of("rabbitmq")]
                 + [lambda: fixtures.bootstrap_keystone(keystone_hosts[0], secrets)])
    _in_parallel([lambda h=h: fixtures.start_keystone(h) for h in keystone_hosts])
    identities.configure(LabClient())


def _stepper(timings):
    """step(name, action): run ``action`` and record its seconds under ``name`` in ``timings``."""
    def step(name, action):
        begin = time.monotonic()
        result = action()
        timings[name] = round(time.monotonic() - begin, 1)
        return result

    return step


def up():
    """The full topology; returns timings (seconds per step) for the README."""
    from csolab import aws
    from csolab.client import LabClient

    timings = {}
    started = time.monotonic()
    step = _stepper(timings)

    down(keep_aws=True)  # whatever a killed earlier run left
    _claim_netns()
    step("aws", aws.up)
    lab_client = LabClient()
    paths.LAB_DIR.mkdir(parents=True, exist_ok=True)
    netns.ensure()
    _netns_marker().write_text(netns.NAME + "\n")
    topology.write_hosts_json(lab_client)
    podman.write_config()
    tag = step("image", podman.ensure_image)
    step("database", database.start)
    step("network", podman.ensure_network)
    step("containers", lambda: _create_containers(tag))
    step("systemd", _wait_for_systemd)
    _write_ssh_config()
    step("etc_hosts", sync_etc_hosts)
    _register_names_hook()
    step("fixtures", _configure_fixtures)
    step("load_balancer", lb.start)
    step("ready", wait_ready)
    timings["total"] = round(time.monotonic() - started, 1)
    (paths.LAB_DIR / "hosts-up.json").write_text(json.dumps(timings, indent=2) + "\n")
    mark_pristine()
    return timings


def reset():
    """The running topology back to its seeded state, without rebuilding it; returns timings.

    AWS side: the lab's reset (resources, seeded database, call log); the data plane follows
    and serves the seeded instance from a fresh datadir. Hosts: each container is replaced by a
    new one from the same image, so no file or service a test changed survives, and the fixtures
    are configured again. The namespace, network, image, load balancer and AWS server stay.
    """
    from csolab.client import LabClient

    timings = {}
    started = time.monotonic()
    step = _stepper(timings)

    lab_client = LabClient()
    step("aws", lambda: lab_client.reset(seed_database=True))
    topology.write_hosts_json(lab_client)  # the seeded security groups have new ids
    step("database", _wait_for_seeded_database)
    step("containers", _recreate_containers)
    step("systemd", _wait_for_systemd)
    step("etc_hosts", sync_etc_hosts)
    step("fixtures", _configure_fixtures)
    step("ready", wait_ready)
    lab_client.clear_calls()  # the seeded state has an empty call log, as after `up`
    timings["total"] = round(time.monotonic() - started, 1)
    mark_pristine()
    return timings


def _wait_for_seeded_database(timeout=60):
    """The data plane serves the instance the AWS reset just seeded (a new uid), not the old one."""
    from csolab import dataplane
    from csolab.client import LabClient

    uid = next(item["uid"] for item in LabClient().api("dataplane-instances")["instances"]
               if item["id"] == topology.DB_INSTANCE)
    return dataplane.wait_ready(topology.DB_INSTANCE, timeout=timeout, predicate=lambda entry: entry["uid"] == uid)


def _recreate_containers():
    tag = podman.ensure_image()
    podman.podman("rm", "-f", "-t", "0", *HOSTS)
    _create_containers(tag)


# --- sharing one running lab ----------------------------------------------------------------
#
# ``<lab dir>/hosts-pristine``: written by up() and reset(), removed by acquire() and by any AWS
# reset (which replaces the database the hosts use). ``<lab dir>/hosts-owner.json``: who brought
# the topology up through acquire(), so that only they take it down. ``<lab dir>/hosts-lease-<owner>``:
# that owner acquired it and has not released it yet.

def _pristine_marker():
    return paths.HOSTS_PRISTINE_MARKER


def _owner_file():
    return paths.LAB_DIR / "hosts-owner.json"


def _record(kind, outcome):
    events.log(kind, {key: value for key, value in outcome.items() if key != "timings"})


def mark_pristine():
    _pristine_marker().write_text(f"{time.time()}\n")


def mark_used():
    _pristine_marker().unlink(missing_ok=True)


def acquire(owner, hold_only=False):
    """A running topology in its seeded state for ``owner``: reused (reset unless nobody used it
    since the last reset) or brought up. Returns {"started", "reset", "seconds", "timings"}.

    ``hold_only``: the owner only keeps the lab up for users after it (`make test`, a run of
    several scenarios) and changes nothing itself, so the lab stays pristine for the next user.
    """
    from csolab import aws

    begin = time.monotonic()
    if is_running():
        why = _why_not_pristine()
        timings = reset() if why else {}
        lease = {"started": False, "reset": bool(why), "why": why}
    else:
        aws_was_up = aws.is_up()
        if aws_was_up:  # whatever an earlier user changed on the AWS side goes: the lab comes up seeded
            from csolab.client import LabClient

            LabClient().reset(seed_database=True)
        timings = up()
        _owner_file().write_text(json.dumps({"owner": owner, "aws_was_up": aws_was_up}) + "\n")
        lease = {"started": True, "reset": False}
    if not hold_only:
        mark_used()
        _lease_file(owner).write_text(f"{time.time()}\n")
    lease = dict(lease, owner=owner, seconds=round(time.monotonic() - begin, 1), timings=timings)
    _record("acquire", lease)
    return lease


def _lease_file(owner):
    """Written by ``owner``'s acquire, removed by its release: a release without it took nothing."""
    return paths.LAB_DIR / f"hosts-lease-{owner}"


def _why_not_pristine():
    """Why a running topology needs a reset before its next user ('' when it does not)."""
    if not _pristine_marker().exists():
        return "used since its last reset"
    try:
        wait_ready(timeout=0)
    except RuntimeError as error:
        return f"fixtures not ready: {error}"
    return ""


def release(owner):
    """Leave the lab as ``owner`` found it: down if ``owner`` brought it up, else reset (unless nobody
    acquired it since its last reset, e.g. Molecule's destroy before its create)."""
    begin = time.monotonic()
    leased = _lease_file(owner)
    try:
        started_by = json.loads(_owner_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        started_by = {}
    if started_by.get("owner") == owner:
        down(keep_aws=started_by.get("aws_was_up", False))
        outcome = {"owner": owner, "action": "down"}
    elif not is_running():
        outcome = {"owner": owner, "action": "none (not up)"}
    elif not leased.exists() and not _why_not_pristine():
        outcome = {"owner": owner, "action": "none (pristine)"}
    else:
        outcome = {"owner": owner, "action": "reset", "timings": reset()}
    leased.unlink(missing_ok=True)
    outcome["seconds"] = round(time.monotonic() - begin, 1)
    _record("release", outcome)
    return outcome


def _claim_netns(name=None):
    """Delete a namespace of the lab's name that this lab dir did not create, if nothing runs in it.

    Such a leftover (e.g. from a run whose lab dir was removed) keeps the load balancer's
    address, which makes podman refuse the hosts' subnet as "already used on the host".
    One with processes belongs to a live lab: refused rather than broken.
    """
    name = name or netns.NAME
    if not netns.exists(name):
        return
    running = netns.pids(name)
    if running:
        raise RuntimeError(
            f"network namespace {name} is in use by processes {running[:5]} that this lab dir "
            f"({paths.LAB_DIR}) did not start: run `lab down` where that lab runs, take it down from here "
            "with `python -m csolab leftovers --clear`, or give this lab another namespace with CSO_LAB_NETNS")
    netns.delete(name)


def wait_ready(timeout=90):
    """Every fixture answers: tokens through the LB, CSO health, RabbitMQ's listener."""
    from csolab import probe

    deadline = time.monotonic() + timeout
    checks = {
        "keystone-lb": lambda: probe.keystone_round_trip(*topology.KEYSTONE_LB),
        **{name: (lambda n=name: probe.keystone_round_trip(HOSTS[n]["ip"], 5000)) for name in topology.hosts_of("keystone")},
        # one loaded worker answers the round trip; tests start once every worker is loaded
        **{f"{name} workers": (lambda n=name: _all_workers_accepting(n)) for name in topology.hosts_of("keystone")},
        **{name: (lambda n=name: probe.cso_health(HOSTS[n]["ip"])) for name in topology.hosts_of("cso")},
        **{name: (lambda n=name: fixtures.sh(n, "rabbitmq-diagnostics -q check_port_listener 5672", timeout=30))
           for name in topology.hosts_of("rabbitmq")},
    }
    pending = dict(checks)
    errors = {}
    while pending:
        for name, check in list(pending.items()):
            try:
                probe.in_namespace(check)
                del pending[name]
            except Exception as error:  # noqa: BLE001 (retry until the deadline, then report)
                errors[name] = repr(error)
        if pending and time.monotonic() >= deadline:
            raise RuntimeError(f"not ready after {timeout}s: {json.dumps({n: errors[n] for n in pending}, indent=2)}")
        if pending:
            time.sleep(1)


def _all_workers_accepting(host):
    if not fixtures.keystone_workers_accepting(host):
        raise RuntimeError(f"{host}: not every uWSGI worker has loaded Keystone yet: {fixtures.keystone_workers(host)}")


def _netns_marker():
    return paths.LAB_DIR / "hosts-netns"


def is_running():
    """The topology exists: AWS lab, namespace, load balancer, data plane and every container run
    (its fixtures may be broken: a reset repairs that, no rebuild needed)."""
    from csolab import aws, dataplane

    if not (aws.is_up() and netns.exists() and lb._running_pid() and dataplane.status()["bridge"] == "up"):
        return False
    return set(status().get("containers", {}).items()) == {(name, "running") for name in HOSTS}


def is_up():
    """The topology answers: it runs and every fixture is ready."""
    if not is_running():
        return False
    try:
        wait_ready(timeout=0)
    except RuntimeError:
        return False
    return True


def down(keep_aws=False):
    """Remove the load balancer, containers, data plane, namespace; then the AWS lab (unless kept)."""
    owns_netns = _netns_marker().exists() or podman.has_state()
    lb.stop()
    podman.remove_all()
    if (paths.LAB_DIR / "dataplane").exists():  # only a data plane this lab dir ran
        database.stop()
    if owns_netns:  # never another lab's namespace: `down` of a plain AWS lab leaves it alone
        netns.delete()
    for stale in ("hosts-up.json", "hosts-etc-hosts.synced", "names-hook.json", _netns_marker().name, _pristine_marker().name,
                  _owner_file().name):
        (paths.LAB_DIR / stale).unlink(missing_ok=True)
    for lease in paths.LAB_DIR.glob("hosts-lease-*"):
        lease.unlink()
    if not keep_aws:
        from csolab import aws

        aws.down()


def status():
    report = {"netns": netns.exists(), "load_balancer": lb._running_pid() is not None}
    if netns.exists() and (paths.LAB_DIR / "podman" / "containers.conf").exists():
        listed = json.loads(podman.podman("ps", "-a", "--format", "json", check=False).stdout or "[]")
        report["containers"] = {item["Names"][0]: item["State"] for item in listed}
    return report
