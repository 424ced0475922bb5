"""The Keystone load balancer: Debian's haproxy on the controller, inside the lab's namespace.

Round robin over the keystone hosts. The health check exercises the database (lab-facts: a
Keystone with a broken database still answers ``GET /v3``): it asks for a token for a user that
does not exist, which costs one user lookup and no bcrypt. 401 means Keystone and its database
answer; a 500 (database unreachable or refusing) takes the host out.

When the check fails on *every* host, the cause is shared (the database restarts, a failover):
the load balancer then fails open to the same hosts as backup servers (no check) instead of
answering 503 to everyone, so Keystone can still answer what it does not need the database for
(validations from its token cache). A host that is down for itself is still taken out as long as
another one passes the check.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import time

from csolab import netns, paths
from csolab.hosts import topology

HEALTH_BODY = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "lb-health-check", "domain": {"id": "default"}, "password": "not-a-password"}}}}})

FAIL_OPEN_SUFFIX = "-fail-open"


def _dir():
    return paths.LAB_DIR / "lb"


def pid_file():
    return _dir() / "haproxy.pid"


def config():
    address, port = topology.KEYSTONE_LB
    servers = "\n".join(f"    server {name} {topology.HOSTS[name]['ip']}:5000 check"
                        for name in topology.hosts_of("keystone"))
    servers += "\n" + "\n".join(f"    server {name}{FAIL_OPEN_SUFFIX} {topology.HOSTS[name]['ip']}:5000 backup"
                                for name in topology.hosts_of("keystone"))
    return f"""global
    maxconn 256
    log stderr format short local0 warning
    stats socket {stats_socket()} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 1
    option redispatch

frontend keystone
    bind {address}:{port}
    default_backend keystone

backend keystone
    balance roundrobin
    option allbackups
    option httpchk
    http-check send meth POST uri /v3/auth/tokens ver HTTP/1.1 hdr Host keystone hdr Content-Type application/json body '{HEALTH_BODY}'
    http-check expect status 401
    default-server inter 1s fall 2 rise 2
{servers}
"""


def _running_pid():
    try:
        pid = int(pid_file().read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return None


def start():
    stop()
    _dir().mkdir(parents=True, exist_ok=True)
    cfg = _dir() / "haproxy.cfg"
    cfg.write_text(config())
    address = topology.KEYSTONE_LB[0]
    present = netns.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout
    if f" {address}/" not in present:
        netns.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"])
    subprocess.run(netns.nsenter(["haproxy", "-D", "-f", str(cfg), "-p", str(pid_file())]), check=True,
                   capture_output=True, text=True)


def stop():
    pid = _running_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    pid_file().unlink(missing_ok=True)


def stats_socket():
    return _dir() / "haproxy.sock"


def backend_states():
    """{server: 'UP'|'DOWN'|...} as haproxy's check sees the keystone hosts (fail-open backups left out)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(stats_socket()))
        sock.sendall(b"show stat\n")
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    rows = list(csv.reader(raw.decode().lstrip("# ").splitlines()))
    header = rows[0]
    states = {}
    for row in rows[1:]:
        record = dict(zip(header, row))
        if (record.get("pxname") == "keystone" and record.get("svname") not in ("FRONTEND", "BACKEND")
                and not record["svname"].endswith(FAIL_OPEN_SUFFIX)):
            states[record["svname"]] = record["status"].split()[0]
    return states
