"""Where the data plane keeps its files, relative to a state dir (the lab dir by default).

The two files the host side reads sit at the top of the lab dir (the addressing contract):
``hosts.json`` (written by the host side: host IP -> security groups) and ``dataplane-hosts``
(written here: endpoint names -> namespace addresses, for the containers' /etc/hosts).
Everything else lives under ``<state dir>/dataplane``; instance dirs use a short uid so that
Unix socket paths stay under the 108-byte limit.
"""

from pathlib import Path

from csolab import paths


def state_dir(value=None):
    return Path(value) if value else paths.LAB_DIR


def root(base):
    return Path(base) / "dataplane"


def instance_dir(base, uid):
    return root(base) / "i" / uid


def instances_root(base):
    return root(base) / "i"


def pki_dir(base):
    return root(base) / "pki"


def dump_path(base, label):
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    return root(base) / "dumps" / f"{safe}.sql"


VERIFIER_SOCKET_NAME = "iam-verifier.sock"


def verifier_socket(base):
    """The IAM token verifier's socket (csolab.dataplane.iam_verifier); the plugin of every server asks it."""
    return root(base) / VERIFIER_SOCKET_NAME


def iam_sessions_log(base):
    return root(base) / "iam-sessions.log"


def pid_file(base):
    return root(base) / "bridge.pid"


def log_file(base):
    return root(base) / "bridge.log"


def status_file(base):
    return root(base) / "status.json"


def allocations_file(base):
    return root(base) / "allocations.json"


def hosts_json(base):
    return Path(base) / "hosts.json"


def hosts_fragment_file(base):
    return Path(base) / "dataplane-hosts"


def names_hook_file(base):
    """Written by the host side: the command (JSON argv) that copies the fragment into its hosts."""
    return Path(base) / "names-hook.json"
