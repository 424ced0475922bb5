"""Copy a served instance's data: ``mariadb-dump`` over its Unix socket as root (socket auth).

Used for snapshots, point-in-time restores and read replicas: the dump holds the user databases
and the accounts (``mysql.global_priv`` and the grant tables), as an RDS snapshot would. A dump
for a read replica also records the source's binlog position (GTID) it is consistent with, as the
``-- SET GLOBAL gtid_slave_pos='…';`` comment ``mariadb-dump --gtid --master-data=2`` writes; the
replica replicates from there (:func:`gtid_position`).
"""

import re
import subprocess
from pathlib import Path

SYSTEM_SCHEMAS = {"mysql", "information_schema", "performance_schema", "sys"}
GRANT_TABLES = ("global_priv", "db", "tables_priv", "columns_priv", "procs_priv", "roles_mapping")


class NotServed(Exception):
    """The instance has no running server to dump."""


def socket_path(instance_dir):
    return Path(instance_dir) / "mysqld.sock"


def _client(instance_dir, *argv):
    return ["mariadb", f"--socket={socket_path(instance_dir)}", "--user=root", *argv]


def user_schemas(instance_dir):
    out = subprocess.run(_client(instance_dir, "-N", "-B", "-e", "SHOW DATABASES"),
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return [name for name in out.split() if name not in SYSTEM_SCHEMAS]


GTID_COMMENT = re.compile(r"^-- SET GLOBAL gtid_slave_pos='([^']*)';", re.MULTILINE)


def gtid_position(dump_file):
    """The source's GTID position a replica dump is consistent with (None if it has none)."""
    with open(dump_file) as handle:
        head = handle.read(65536)
    match = GTID_COMMENT.search(head)
    return match.group(1) if match else None


def dump(instance_dir, target, position=False):
    """Write the instance's data to ``target``; raise :class:`NotServed` if it is not running.

    ``position``: also record the binlog position the data is consistent with (for a replica)."""
    if not socket_path(instance_dir).exists():
        raise NotServed(str(instance_dir))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    common = [f"--socket={socket_path(instance_dir)}", "--user=root", "--single-transaction"]
    partial = target.with_suffix(".partial")
    with open(partial, "w") as out:
        schemas = user_schemas(instance_dir)
        if schemas:
            positioned = ["--gtid", "--master-data=2"] if position else []
            subprocess.run(["mariadb-dump", *common, *positioned, "--routines", "--events", "--triggers",
                            "--databases", *schemas], check=True, stdout=out, stderr=subprocess.PIPE, timeout=120)
        elif position:  # no user data: the position now (nothing else to be consistent with)
            pos = subprocess.run(_client(instance_dir, "-N", "-B", "-e", "SELECT @@GLOBAL.gtid_binlog_pos"),
                                 check=True, capture_output=True, text=True, timeout=30).stdout.strip()
            out.write(f"-- SET GLOBAL gtid_slave_pos='{pos}';\n")
        out.write("\nUSE mysql;\n")
        out.flush()
        subprocess.run(["mariadb-dump", *common, "--replace", "--no-create-info", "--skip-triggers",
                        "mysql", *GRANT_TABLES], check=True, stdout=out, stderr=subprocess.PIPE, timeout=120)
        out.write("\nFLUSH PRIVILEGES;\n")
    partial.replace(target)
    return target


def load(instance_dir, source):
    with open(source) as dump_file:
        completed = subprocess.run(_client(instance_dir), stdin=dump_file, capture_output=True, text=True, timeout=300)
    if completed.returncode:
        raise RuntimeError(f"loading {source} failed: {completed.stderr.strip()}")
