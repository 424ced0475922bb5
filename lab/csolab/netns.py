"""The lab's network namespace: where the hosts' bridge, the data plane relays and the
firewall live. Nothing of the lab listens outside it, except on loopback.

Addressing (see docs/development.md): hosts 10.89.10.0/24 (podman bridge), data-plane
endpoints 10.89.20.0/24 (dummy interface ``dataplane0``), all inside namespace ``csolab``
(``CSO_LAB_NETNS`` overrides it).
"""

import os
import subprocess
from pathlib import Path

NAME = os.environ.get("CSO_LAB_NETNS", "csolab")
HOSTS_SUBNET = "10.89.10.0/24"
DATAPLANE_SUBNET = "10.89.20.0/24"
DATAPLANE_INTERFACE = "dataplane0"


def path(name=NAME):
    return Path("/run/netns") / name


def exists(name=NAME):
    return path(name).exists()


def nsenter(argv, name=NAME):
    """argv prefixed so that it runs inside the namespace (keeps /sys, unlike `ip netns exec`)."""
    return ["nsenter", f"--net={path(name)}", *argv]


def run(argv, name=NAME, check=True, **kwargs):
    return subprocess.run(nsenter(argv, name), check=check, text=True, capture_output=True, **kwargs)


def ensure(name=NAME):
    """Create the namespace with loopback up and the data-plane interface; harmless when present."""
    if not exists(name):
        subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-n", name, "-o", "link", "show"], check=True, text=True, capture_output=True).stdout
    if f" {DATAPLANE_INTERFACE}:" not in links:
        added = subprocess.run(["ip", "-n", name, "link", "add", DATAPLANE_INTERFACE, "type", "dummy"],
                               check=False, capture_output=True)
        if added.returncode != 0:  # kernels without the dummy driver: a port-less bridge holds addresses as well
            subprocess.run(["ip", "-n", name, "link", "add", DATAPLANE_INTERFACE, "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", DATAPLANE_INTERFACE, "up"], check=True)


def pids(name=NAME):
    """Processes running in the namespace (a namespace nothing runs in is a leftover)."""
    listed = subprocess.run(["ip", "netns", "pids", name], check=False, text=True, capture_output=True).stdout
    return [int(pid) for pid in listed.split()]


def delete(name=NAME):
    if exists(name):
        subprocess.run(["ip", "netns", "delete", name], check=False)
