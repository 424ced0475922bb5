"""The data plane's network pieces: addresses, socat relays, the SG firewall and names.

* Each served instance has slot ``x``: ``127.0.89.x:3306`` (MariaDB, root namespace) and
  ``10.89.20.x/32`` on ``dataplane0`` inside the lab namespace.
* Relays: inside the namespace ``socat TCP-LISTEN:3306,bind=10.89.20.x`` → the instance's Unix
  socket ``relay.sock``; in the root namespace ``socat UNIX-LISTEN:relay.sock`` → ``127.0.89.x:3306``.
  Unix sockets cross network namespaces, so nothing in the root namespace talks to 10.89.x.
* Firewall: an nftables table inside the namespace lets a source open a connection to an
  instance's address on 3306 only if the instance's security groups allow it (by source SG or
  CIDR), like a VPC SG. Like a VPC SG it is stateful: a connection opened while it was allowed
  keeps flowing after the rule goes, and a refused one is dropped silently (the client times out).
* Names: a ``# BEGIN csolab`` … ``# END csolab`` block in the controller's /etc/hosts
  (endpoint name → 127.0.89.x) and a fragment for the containers (name → 10.89.20.x).
"""

import ipaddress
import json
import logging
import os
import socket
import subprocess
from pathlib import Path

from csolab import netns
from csolab.dataplane.mariadb import alive, owned, terminate

LOOPBACK_PREFIX = "127.0.89."
NAMESPACE_PREFIX = "10.89.20."
NFT_TABLE = "csolab_dataplane"
ETC_HOSTS = Path("/etc/hosts")
# The lab's host subnet stands in for private subnet "a" of the seeded VPC: CIDR rules such as
# the seeded "10.20.0.0/16 on 3306" match a host through its VPC address (hosts.json "vpc_ip",
# default 10.20.1.<last octet of its lab IP>).
VPC_STAND_IN_PREFIX = "10.20.1."
LOG = logging.getLogger("csolab.dataplane")


def loopback_ip(slot):
    return f"{LOOPBACK_PREFIX}{slot}"


def namespace_ip(slot):
    return f"{NAMESPACE_PREFIX}{slot}"


def loopback_free(slot, port=3306):
    with socket.socket() as probe:
        try:
            probe.bind((loopback_ip(slot), port))
        except OSError:
            return False
    return True


# --- addresses ----------------------------------------------------------------------------


def namespace_addresses(name):
    if not netns.exists(name):
        return set()
    out = subprocess.run(["ip", "-n", name, "-o", "-4", "addr", "show", "dev", netns.DATAPLANE_INTERFACE],
                         capture_output=True, text=True, check=False).stdout
    return {field.split("/")[0] for line in out.splitlines() for field in line.split()[3:4]}


def add_address(name, address):
    subprocess.run(["ip", "-n", name, "addr", "replace", f"{address}/32", "dev", netns.DATAPLANE_INTERFACE],
                   check=True, capture_output=True)


def remove_address(name, address):
    if netns.exists(name):
        subprocess.run(["ip", "-n", name, "addr", "del", f"{address}/32", "dev", netns.DATAPLANE_INTERFACE],
                       check=False, capture_output=True)


# --- relays -------------------------------------------------------------------------------


def _read_pid(path):
    try:
        pid = int(Path(path).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) and owned(pid, str(Path(path).parent / "relay.sock")) else None


def _spawn(argv, pid_file, log_file):
    with open(log_file, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: S603
                                   start_new_session=True)
    Path(pid_file).write_text(str(process.pid))
    return process.pid


def relay_running(instance_dir, which):
    return _read_pid(Path(instance_dir) / f"relay-{which}.pid") is not None


def start_root_relay(instance_dir, slot, port=3306):
    instance_dir = Path(instance_dir)
    sock = instance_dir / "relay.sock"
    sock.unlink(missing_ok=True)
    _spawn(["socat", f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600", f"TCP:{loopback_ip(slot)}:{port}"],
           instance_dir / "relay-root.pid", instance_dir / "relay.log")


def start_namespace_relay(instance_dir, slot, name, port=3306):
    instance_dir = Path(instance_dir)
    sock = instance_dir / "relay.sock"
    _spawn(netns.nsenter(["socat", f"TCP-LISTEN:{port},bind={namespace_ip(slot)},fork,reuseaddr",
                          f"UNIX-CONNECT:{sock}"], name),
           instance_dir / "relay-ns.pid", instance_dir / "relay.log")


def stop_relays(instance_dir):
    for which in ("ns", "root"):
        pid_file = Path(instance_dir) / f"relay-{which}.pid"
        pid = _read_pid(pid_file)
        if pid:
            terminate(pid, timeout=5)
            _kill_group(pid)  # socat's forked children still carrying connections
        pid_file.unlink(missing_ok=True)
    (Path(instance_dir) / "relay.sock").unlink(missing_ok=True)


def _kill_group(pgid):
    import os
    import signal

    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


# --- firewall -----------------------------------------------------------------------------


def load_hosts(path):
    """``hosts.json`` written by the host side: {"hosts": {name: {"ip", "security_group_ids"}}}."""
    try:
        return json.loads(Path(path).read_text()).get("hosts", {})
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def vpc_ip(host):
    if host.get("vpc_ip"):
        return host["vpc_ip"]
    return VPC_STAND_IN_PREFIX + host["ip"].rsplit(".", 1)[-1]


def allowed_sources(instance, hosts):
    """Host IPs that the instance's security groups let in on its port."""
    allowed_groups, cidrs = set(), []
    for group in instance.get("security_groups", []):
        allowed_groups.update(group["allowed_security_group_ids"])
        cidrs.extend(ipaddress.ip_network(cidr, strict=False) for cidr in group["allowed_cidrs"])
    sources = set()
    for host in hosts.values():
        if not host.get("ip"):
            continue
        by_group = allowed_groups.intersection(host.get("security_group_ids", []))
        by_cidr = any(ipaddress.ip_address(address) in cidr for cidr in cidrs
                      for address in {host["ip"], vpc_ip(host)} if cidr.version == 4)
        if by_group or by_cidr:
            sources.add(host["ip"])
    return sorted(sources, key=ipaddress.ip_address)


def ruleset(entries, port=3306):
    """nft script for [(namespace ip, [allowed source ips])]: allow those, drop the rest.

    Stateful, as security groups are (Amazon EC2 User Guide, "Security group connection
    tracking"): removing the rule that allowed a tracked flow does not interrupt it; only new
    connections are refused. Without the ``ct state`` rule a connection caught mid-handshake by a
    change lost its packets and hung instead of either working or failing fast.
    """
    lines = [f"table ip {NFT_TABLE} {{", "  chain input {", "    type filter hook input priority 0; policy accept;",
             "    ct state established,related accept"]
    for address, sources in entries:
        if sources:
            lines.append(f"    ip daddr {address} tcp dport {port} ip saddr {{ {', '.join(sources)} }} accept")
        lines.append(f"    ip daddr {address} tcp dport {port} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply_firewall(name, script):
    full = f"table ip {NFT_TABLE} {{}}\ndelete table ip {NFT_TABLE}\n{script}"
    subprocess.run(netns.nsenter(["nft", "-f", "-"], name), input=full, text=True, check=True, capture_output=True)


def remove_firewall(name):
    if netns.exists(name):
        subprocess.run(netns.nsenter(["nft", "delete", "table", "ip", NFT_TABLE], name),
                       check=False, capture_output=True)


# --- names --------------------------------------------------------------------------------


def block_markers(name):
    label = "csolab" if name == "csolab" else f"csolab:{name}"
    return f"# BEGIN {label}", f"# END {label}"


def _without_block(text, begin, end):
    kept, inside = [], False
    for line in text.splitlines():
        if line.strip() == begin:
            inside = True
        elif line.strip() == end and inside:
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def write_etc_hosts_block(lines, name, path=ETC_HOSTS):
    """Replace our block (written in place: /etc/hosts may be a bind mount)."""
    begin, end = block_markers(name)
    current = path.read_text() if path.exists() else ""
    kept = _without_block(current, begin, end)
    if lines:
        kept += [begin, *lines, end]
    content = "\n".join(kept) + "\n"
    if content != current:
        with open(path, "r+") as handle:
            handle.seek(0)
            handle.write(content)
            handle.truncate()


def remove_etc_hosts_block(name, path=ETC_HOSTS):
    write_etc_hosts_block([], name, path)


def run_names_hook(hook_file, timeout=60):
    """Run the host side's command that copies the names fragment into its hosts; True when done
    (or when no host lab asked for it). An endpoint name must resolve on the hosts before the
    instance counts as ready: in AWS its DNS record answers once the instance is available."""
    if not Path(hook_file).exists():
        return True
    hook = json.loads(Path(hook_file).read_text())
    try:
        completed = subprocess.run(hook["argv"], env={**os.environ, **hook.get("env", {})}, capture_output=True,
                                   text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.warning("names hook %s: %s", hook["argv"], exc)
        return False
    if completed.returncode != 0:
        LOG.warning("names hook %s failed (%s): %s", hook["argv"], completed.returncode, completed.stderr[-500:])
    return completed.returncode == 0
