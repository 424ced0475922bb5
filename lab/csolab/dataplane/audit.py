"""The MariaDB Audit Plugin of a served instance: ``server_audit`` with the settings of the instance's option
group (``csolab.moto_ext.audit_logs`` says which, with AWS's defaults), and the new lines of its audit file,
reported with the next poll so the AWS lab publishes them to ``/aws/rds/instance/<id>/audit``.

MariaDB 10.11 ships the plugin (``server_audit.so``). It is loaded at runtime with ``INSTALL SONAME``: no
restart, as AWS says of adding the option. The server records it in ``mysql.plugin`` and loads it again after
a restart, with logging off until the bridge applies the settings again (a restarted server has no applied
state). Without the option the plugin logs nothing (``server_audit_logging = OFF``). The audit file lives in the
instance dir (``audit/server_audit.log``; RDS: ``/rdsdbdata/log/audit/``) and rotates as the settings say.
"""

import logging
from pathlib import Path

from csolab.dataplane.mariadb import sql_literal

LOG = logging.getLogger("csolab.dataplane")
MAX_READ = 1 << 20  # bytes read per instance and poll; the rest waits for the next poll
# option setting -> (server variable, numeric)
VARIABLES = {
    "SERVER_AUDIT_EVENTS": ("server_audit_events", False),
    "SERVER_AUDIT_EXCL_USERS": ("server_audit_excl_users", False),
    "SERVER_AUDIT_INCL_USERS": ("server_audit_incl_users", False),
    "SERVER_AUDIT_FILE_ROTATE_SIZE": ("server_audit_file_rotate_size", True),
    "SERVER_AUDIT_FILE_ROTATIONS": ("server_audit_file_rotations", True),
    "SERVER_AUDIT_QUERY_LOG_LIMIT": ("server_audit_query_log_limit", True),
}


def audit_file(directory):
    return Path(directory) / "audit" / "server_audit.log"


def plugin_loaded(server):
    return server.execute("SELECT COUNT(*) FROM information_schema.PLUGINS "
                          "WHERE PLUGIN_NAME = 'SERVER_AUDIT' AND PLUGIN_STATUS = 'ACTIVE';\n").strip() == "1"


def statements(settings, path, loaded):
    """The SQL that makes the running server audit as ``settings`` say (None: not at all)."""
    if settings is None:
        return ["SET GLOBAL server_audit_logging = OFF;"] if loaded else []
    sql = [] if loaded else ["INSTALL SONAME 'server_audit';"]
    sql += ["SET GLOBAL server_audit_output_type = 'file';",
            f"SET GLOBAL server_audit_file_path = {sql_literal(path)};"]
    for name, (variable, numeric) in VARIABLES.items():
        value = settings.get(name) or ""
        sql.append(f"SET GLOBAL {variable} = {int(value) if numeric else sql_literal(value)};")
    return sql + ["SET GLOBAL server_audit_logging = ON;"]


def apply(server, settings):
    path = audit_file(server.dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    sql = statements(settings, path, plugin_loaded(server))
    if sql:
        server.execute("\n".join(sql) + "\n")


def read_lines(path, offset):
    """Complete lines of ``path`` from byte ``offset`` on (at most ``MAX_READ`` bytes) and the offset after them."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(MAX_READ)
    except FileNotFoundError:
        return [], offset
    complete = data[:data.rfind(b"\n") + 1]
    return complete.decode("utf-8", "replace").splitlines(), offset + len(complete)


class Follower:
    """Applies the audit settings per instance and collects the lines its server writes."""

    def __init__(self):
        self.position = {}  # uid -> (inode, offset) of the audit file read so far
        self.pending = {}  # uid -> lines not reported yet

    def converge(self, instance, server, applied):
        wanted = (instance.get("audit") or {}).get("plugin")
        if "audit" not in applied or applied["audit"] != wanted:
            apply(server, wanted)
            applied["audit"] = wanted
            LOG.info("%s: audit plugin %s", instance["id"], wanted or "off")
        self.collect(instance["uid"], server.dir)

    def collect(self, uid, directory):
        path = audit_file(directory)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        inode, offset = self.position.get(uid, (stat.st_ino, 0))
        lines = []
        if inode != stat.st_ino:  # rotated: the rest of the file we were reading, now ``.1``
            rotated = path.with_name(path.name + ".1")
            if rotated.exists() and rotated.stat().st_ino == inode:
                lines, _ = read_lines(rotated, offset)
            offset = 0
        elif stat.st_size < offset:
            offset = 0
        new, offset = read_lines(path, offset)
        self.position[uid] = (stat.st_ino, offset)
        if lines or new:
            self.pending.setdefault(uid, []).extend(lines + new)

    def take(self):
        pending, self.pending = self.pending, {}
        return pending

    def give_back(self, pending):
        """A poll that failed: report these with the next one, before what came since."""
        for uid, lines in pending.items():
            self.pending[uid] = lines + self.pending.get(uid, [])

    def forget(self, uid):
        self.position.pop(uid, None)
        self.pending.pop(uid, None)
