"""One MariaDB server per served RDS instance, run as root from its own defaults file.

Everything of an instance lives in its instance dir: ``my.cnf``, ``data/``, ``mysqld.sock``,
``mysqld.pid``, ``mysqld.log`` and the TLS files (``ca.pem``, ``server.pem``, ``server.key``).
The server listens on ``127.0.89.x:3306`` in the root namespace; the lab's namespace reaches it
through the socat relays (so the server sees TCP and ``require_secure_transport`` applies).
Administration goes through the Unix socket as root (socket authentication).

Every server writes a binary log (GTID, ``server-id`` from the instance's uid), as an RDS instance
with automated backups does, so that a read replica can replicate from it; a replica is a server
with a ``CHANGE MASTER`` to its source (TLS, CA-verified) and ``read_only`` on (the ``read-only``
marker file in the instance dir puts it in ``my.cnf``, so a restart never opens a window for
writes).
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from csolab.dataplane import auth_plugin
from csolab.dataplane.dumps import socket_path
from csolab.dataplane.layout import VERIFIER_SOCKET_NAME

DEFAULTS = """\
[mysqld]
user = root
datadir = {dir}/data
socket = {dir}/mysqld.sock
pid-file = {dir}/mysqld.pid
log-error = {dir}/mysqld.log
bind-address = {address}
port = {port}
skip-name-resolve
# the binary log lets a point-in-time restore replay the changes up to RestoreTime (csolab.dataplane.dumps)
# and a read replica replicate from its source (GTID, own server-id)
server-id = {server_id}
log-bin = {dir}/binlog/mysql-bin
relay-log = relay-bin
binlog_format = MIXED
max_binlog_size = 16M
read_only = {read_only}
ssl_ca = {dir}/ca.pem
ssl_cert = {dir}/server.pem
ssl_key = {dir}/server.key
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 300
performance_schema = OFF
innodb_buffer_pool_size = 24M
innodb_log_file_size = 16M
key_buffer_size = 1M
aria_pagecache_buffer_size = 1M
query_cache_size = 0
{auth_plugin}
[client]
socket = {dir}/mysqld.sock
"""

# AWS: RDS User Guide, "IAM database authentication" -- accounts IDENTIFIED WITH
# AWSAuthenticationPlugin AS 'RDS' log in with a token; the plugin asks the lab's verifier.
AUTH_PLUGIN = """\
plugin_dir = {plugin_dir}
plugin-load-add = {plugin_soname}
awsauthenticationplugin-verifier-socket = {verifier_socket}
awsauthenticationplugin-instance = {uid}
"""


def sql_literal(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class Server:
    def __init__(self, directory, address, port=3306, verifier_socket=None):
        self.dir = Path(directory)
        self.address = address
        self.port = port
        if verifier_socket is None and self.dir.parent.name == "i":  # <state dir>/dataplane/i/<uid>
            verifier_socket = self.dir.parent.parent / VERIFIER_SOCKET_NAME
        self.verifier_socket = verifier_socket or ""

    @property
    def defaults_file(self):
        return self.dir / "my.cnf"

    @property
    def pid_file(self):
        return self.dir / "mysqld.pid"

    @property
    def socket(self):
        return socket_path(self.dir)

    def installed(self):
        return (self.dir / "data" / "mysql").is_dir()

    @property
    def server_id(self):
        """Unique per instance (replication needs distinct ids): from the instance dir's hex uid."""
        try:
            return int(self.dir.name[:7], 16) + 2
        except ValueError:
            return 1

    @property
    def read_only_marker(self):
        return self.dir / "read-only"

    def write_defaults(self, with_auth_plugin=True):
        """``with_auth_plugin``: load AWSAuthenticationPlugin (not for mariadb-install-db, which
        overrides ``plugin_dir``)."""
        self.defaults_file.write_text(DEFAULTS.format(
            dir=self.dir, address=self.address, port=self.port, server_id=self.server_id,
            read_only="ON" if self.read_only_marker.exists() else "OFF",
            auth_plugin=AUTH_PLUGIN.format(plugin_dir=auth_plugin.plugin_dir(), plugin_soname=auth_plugin.SONAME,
                                           verifier_socket=self.verifier_socket, uid=self.dir.name)
            if with_auth_plugin else ""))

    def install(self):
        self.write_defaults(with_auth_plugin=False)
        (self.dir / "binlog").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        subprocess.run(
            ["mariadb-install-db", f"--defaults-file={self.defaults_file}", "--auth-root-authentication-method=socket",
             "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )

    def pid(self):
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) and owned(pid, str(self.defaults_file)) else None

    def running(self):
        return self.pid() is not None

    def start(self, timeout=30):
        self.write_defaults()
        (self.dir / "binlog").mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        with open(self.dir / "mysqld.out", "ab") as out:
            process = subprocess.Popen(  # noqa: S603
                ["mariadbd", f"--defaults-file={self.defaults_file}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mariadbd for {self.dir} did not start; see {self.dir / 'mysqld.log'}")
            time.sleep(0.1)
        return process.pid

    def ping(self):
        if not self.socket.exists():
            return False
        return subprocess.run(["mariadb-admin", f"--socket={self.socket}", "--user=root", "ping"],
                              capture_output=True, timeout=10).returncode == 0

    def stop(self, timeout=20):
        pid = self.pid()
        if pid:
            _terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)

    def execute(self, statements, timeout=30, force=False):
        """Run SQL as root over the Unix socket; return stdout (tab-separated, no headers). ``force``: go on after
        a statement fails (the failure is still raised at the end)."""
        completed = subprocess.run(
            ["mariadb", f"--socket={self.socket}", "--user=root", "-N", "-B", *(["--force"] if force else [])],
            input=statements, capture_output=True, text=True, timeout=timeout,
        )
        if completed.returncode:
            raise RuntimeError(f"SQL failed on {self.dir.name}: {completed.stderr.strip()}")
        return completed.stdout

    def drop_anonymous_users(self):
        self.execute("DELETE FROM mysql.global_priv WHERE User = '';\nFLUSH PRIVILEGES;\n")

    def ensure_master(self, username, password):
        user = f"{sql_literal(username)}@'%'"
        self.execute(
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {sql_literal(password)};\n"
            f"ALTER USER {user} IDENTIFIED BY {sql_literal(password)};\n"
            f"GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION;\n"
            # RDS's master user has no SUPER: it cannot write on a read-only replica. In MariaDB
            # 10.11 the privilege that writes despite read_only is READ_ONLY ADMIN (not in SUPER).
            f"REVOKE READ_ONLY ADMIN ON *.* FROM {user};\n"
        )

    # --- replication ------------------------------------------------------------------------

    def set_read_only(self, enabled, lock_wait_seconds=10):
        """``read_only`` waits for the statements that are writing (a global read lock): at most
        ``lock_wait_seconds``."""
        if enabled:
            self.read_only_marker.touch()
        else:
            self.read_only_marker.unlink(missing_ok=True)
        self.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)};\n"
                     f"SET GLOBAL read_only = {'ON' if enabled else 'OFF'};\n")

    def kill_client_sessions(self):
        """End every client session (not replication's own threads: the source's binlog dump, the replica's
        I/O and SQL threads); the number killed."""
        ids = self.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND USER NOT IN ('system user', 'event_scheduler') AND USER NOT LIKE 'rdsrepl\\_%' "
            "AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID');\n").split()
        if ids:
            try:
                self.execute("".join(f"KILL CONNECTION {int(thread)};\n" for thread in ids), force=True)
            except RuntimeError as exc:
                if "Unknown thread id" not in str(exc):  # a session that ended meanwhile
                    raise
        return len(ids)

    def wait_for_gtid(self, position, timeout):
        """Whether this replica's SQL thread has applied ``position`` (a GTID list), waiting up to ``timeout`` s."""
        answer = self.execute(f"SELECT MASTER_GTID_WAIT({sql_literal(position)}, {float(timeout)});\n",
                              timeout=timeout + 30).strip()
        return answer == "0"

    def read_only(self):
        return self.execute("SELECT @@GLOBAL.read_only;\n").strip() == "1"

    def ensure_replication_user(self, username, password):
        """A user the replica connects as (not binlogged: it belongs to this server only); TLS required."""
        user = f"{sql_literal(username)}@'%'"
        self.execute(
            "SET SESSION sql_log_bin = 0;\n"
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {sql_literal(password)} REQUIRE SSL;\n"
            f"ALTER USER {user} IDENTIFIED BY {sql_literal(password)} REQUIRE SSL;\n"
            f"GRANT REPLICATION SLAVE ON *.* TO {user};\n"
        )

    def gtid_binlog_pos(self):
        return self.execute("SELECT @@GLOBAL.gtid_binlog_pos;\n").strip()

    def start_replication(self, host, port, username, password, ca_file, gtid_position):
        """Replicate from ``host:port`` from ``gtid_position`` on, over TLS that verifies the
        source's certificate against ``ca_file`` and its name (``host``: the source's endpoint
        name, which its certificate carries)."""
        self.execute(
            "STOP SLAVE;\nRESET SLAVE ALL;\n"
            f"SET GLOBAL gtid_slave_pos = {sql_literal(gtid_position)};\n"
            f"CHANGE MASTER TO MASTER_HOST = {sql_literal(host)}, MASTER_PORT = {int(port)}, "
            f"MASTER_USER = {sql_literal(username)}, MASTER_PASSWORD = {sql_literal(password)}, "
            f"MASTER_SSL = 1, MASTER_SSL_CA = {sql_literal(ca_file)}, MASTER_SSL_VERIFY_SERVER_CERT = 1, "
            "MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;\n"
            "START SLAVE;\n"
        )

    def move_replication_source(self, host):
        """The source's endpoint moved (a failover): follow it, keeping the position."""
        self.execute(f"STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST = {sql_literal(host)};\nSTART SLAVE;\n")

    def stop_replication(self):
        self.execute("STOP SLAVE;\nRESET SLAVE ALL;\n")

    def replication_status(self):
        """``SHOW SLAVE STATUS`` as a dict (empty when this server replicates from nobody)."""
        completed = subprocess.run(
            ["mariadb", f"--socket={self.socket}", "--user=root", "-E", "-e", "SHOW SLAVE STATUS"],
            capture_output=True, text=True, timeout=30,
        )
        if completed.returncode:
            raise RuntimeError(f"SHOW SLAVE STATUS failed on {self.dir.name}: {completed.stderr.strip()}")
        status = {}
        for line in completed.stdout.splitlines():
            key, sep, value = line.partition(": ")
            if sep and not key.startswith("*"):
                status[key.strip()] = value.strip()
        return status

    def set_require_secure_transport(self, enabled):
        self.execute(f"SET GLOBAL require_secure_transport = {'ON' if enabled else 'OFF'};\n")

    def require_secure_transport(self):
        return self.execute("SELECT @@GLOBAL.require_secure_transport;\n").strip() == "1"

    def reload_tls(self):
        # MariaDB 10.11 has FLUSH SSL; MySQL 8's ALTER INSTANCE RELOAD TLS is a syntax error here
        self.execute("FLUSH SSL;\n")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _terminate(pid, timeout=10):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap(pid)


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def owned(pid, marker):
    """Whether ``pid`` runs a command line that mentions ``marker`` (guards against reused pids)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return marker.encode() in cmdline.read()
    except OSError:
        return False


alive = _alive
terminate = _terminate
