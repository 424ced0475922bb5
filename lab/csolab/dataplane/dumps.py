"""Copy a served instance's data: ``mariadb-dump`` over its Unix socket as root (socket auth).

Used for snapshots, point-in-time restores and read replicas: the dump holds the user databases
and the accounts (``mysql.global_priv`` and the grant tables), as an RDS snapshot would.

A point-in-time restore to a ``RestoreTime`` replays the instance's binary log instead (AWS: RDS
User Guide, "Restoring a DB instance to a specified time": RDS restores from a backup and applies
the transaction logs up to the requested time). Every served instance logs to ``binlog/`` from its
first start; :func:`mark_binlog_start` records where its own history begins (after the server's
fresh datadir, which every instance shares: a copy of the same template), and
:func:`replay_until` writes the SQL of every change from there up to the requested time. Loaded
into a fresh server, that gives the source's data as of that time: rows written later are absent.
The binary log has whole seconds: events in the second that ``RestoreTime`` falls into are left
out (``mariadb-binlog --stop-datetime`` stops at the first event at or after it).

A dump for a read replica also records the source's binlog position (GTID) it is consistent with,
as the ``-- SET GLOBAL gtid_slave_pos='…';`` comment ``mariadb-dump --gtid --master-data=2``
writes; the replica replicates from there (:func:`gtid_position`).
"""

import datetime
import json
import os
import re
import shutil
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


BINLOG_DIR = "binlog"
BINLOG_START = "binlog-start.json"


def _binlog_dir(instance_dir):
    return Path(instance_dir) / BINLOG_DIR


def mark_binlog_start(instance_dir):
    """Record the binary-log position where this instance's own history starts (call it on a fresh
    datadir, before anything but the shared template setup happened)."""
    out = subprocess.run(_client(instance_dir, "-N", "-B", "-e", "SHOW MASTER STATUS"),
                         check=True, capture_output=True, text=True, timeout=30).stdout.split()
    start = {"file": out[0], "position": int(out[1])}
    (Path(instance_dir) / BINLOG_START).write_text(json.dumps(start))
    return start


def keep_binlog(instance_dir, target_dir):
    """Copy the instance's binary logs and start mark to ``target_dir`` (data that outlives the
    instance, e.g. backups replicated to another region). None when there is no history."""
    instance_dir, target_dir = Path(instance_dir), Path(target_dir)
    if not (instance_dir / BINLOG_START).exists():
        return None
    if socket_path(instance_dir).exists():
        subprocess.run(_client(instance_dir, "-e", "FLUSH BINARY LOGS"), capture_output=True, timeout=30)
    shutil.rmtree(target_dir, ignore_errors=True)
    shutil.copytree(_binlog_dir(instance_dir), target_dir / BINLOG_DIR)
    shutil.copy(instance_dir / BINLOG_START, target_dir / BINLOG_START)
    return str(target_dir)


def replay_until(history_dir, restore_time, target):
    """Write to ``target`` the SQL of the changes in ``history_dir`` (an instance dir, or a copy made
    by :func:`keep_binlog`) before ``restore_time`` (an aware datetime); raise :class:`NotServed`
    when there is no recorded history."""
    history_dir = Path(history_dir)
    if not (history_dir / BINLOG_START).exists():
        raise NotServed(str(history_dir))
    start = json.loads((history_dir / BINLOG_START).read_text())
    if socket_path(history_dir).exists():
        # close the file being written, so the reader sees complete events only
        subprocess.run(_client(history_dir, "-e", "FLUSH BINARY LOGS"), check=True, capture_output=True, timeout=30)
    binlogs = _binlog_dir(history_dir)
    names = [Path(line.strip()).name for line in (binlogs / "mysql-bin.index").read_text().splitlines() if line.strip()]
    files = [str(binlogs / name) for name in names[names.index(start["file"]):]]
    stop = restore_time.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with open(partial, "w") as out:
        # --stop-datetime is read in the local time zone: UTC here
        subprocess.run(["mariadb-binlog", f"--start-position={start['position']}", f"--stop-datetime={stop}", *files],
                       check=True, stdout=out, stderr=subprocess.PIPE, timeout=120, env=dict(os.environ, TZ="UTC"))
    partial.replace(target)
    return target
