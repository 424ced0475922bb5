"""The test-only applications on the hosts: Keystone, the CSO stand-in and RabbitMQ.

Configured by the lab through ``podman exec`` (never by the collection's roles), in today's
production state: plaintext database connections with the password inline.

Lab-only settings, chosen so failures show within seconds instead of minutes:
- Keystone ``[database] max_retries = 1``/``retry_interval = 1`` (default 10 x 10 s) and
  ``connection_recycle_time = 5``: pooled plaintext connections survive a switch to
  ``require_secure_transport``, so the pool must recycle for the failure to show;
  ``[identity] password_hash_rounds = 4`` keeps token issue cheap on the shared machine.
- CSO ``db.pool.maxAgeSeconds = 5``: the same reason, for its JDBC pool.
"""

import base64
import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from csolab.hosts import topology
from csolab.hosts.podman import podman

FILES = Path(__file__).with_name("files")
CSO_JAR_CACHE = Path("/var/cache/cso-rds-hardening")
JDBC_JAR = "/usr/share/java/mariadb-java-client.jar"


def sh(host, script, input=None, check=True, timeout=300):
    """Run a shell script on a host as root (through podman, not SSH: this is lab plumbing)."""
    completed = podman("exec", "-i", host, "/bin/sh", "-c", script, input=input, check=False, timeout=timeout)
    if check and completed.returncode != 0:
        raise RuntimeError(f"{host}: `{script[:120]}` failed ({completed.returncode}):\n"
                           f"{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    return completed


def put(host, path, content, mode="0644"):
    directory = shlex.quote(os.path.dirname(path))
    target = shlex.quote(path)
    sh(host, f"mkdir -p {directory} && cat > {target}.new && chmod {mode} {target}.new && mv -f {target}.new {target}",
       input=content)


def put_bytes_file(host, path, local_path):
    podman("cp", str(local_path), f"{host}:{path}")


# --- Keystone -------------------------------------------------------------------------------

KEYSTONE_UNIT = """[Unit]
Description=OpenStack Keystone under uWSGI (lab fixture)
After=network.target

[Service]
Type=notify
NotifyAccess=all
RuntimeDirectory=keystone
Environment=OS_KEYSTONE_CONFIG_DIR=/etc/keystone
ExecStart=/opt/keystone/venv/bin/uwsgi --ini /etc/keystone/uwsgi.ini
# graceful: the master replaces its workers one at a time (--lazy-apps), requests keep flowing
ExecReload=/bin/sh -c 'echo c > /run/keystone/uwsgi.fifo'
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

UWSGI_INI = """[uwsgi]
master = true
http-socket = 0.0.0.0:5000
processes = 2
threads = 1
lazy-apps = true
master-fifo = /run/keystone/uwsgi.fifo
stats = /run/keystone/uwsgi-stats.sock
module = keystone.wsgi.api:application
virtualenv = /opt/keystone/venv
need-app = true
die-on-term = true
enable-threads = true
buffer-size = 65535
"""


def keystone_conf(endpoint_name, db_password):
    return f"""[DEFAULT]
use_stderr = true

[database]
connection = mysql+pymysql://keystone:{db_password}@{endpoint_name}:3306/keystone
max_retries = 1
retry_interval = 1
connection_recycle_time = 5

[identity]
password_hash_rounds = 4

[token]
provider = fernet

[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/

[fernet_receipts]
key_repository = /etc/keystone/fernet-keys/

[credential]
key_repository = /etc/keystone/credential-keys/
"""


def _fernet_keys(seed):
    """Both keystone hosts share their keys (a token issued by one validates on the other)."""
    return {index: base64.urlsafe_b64encode(hashlib.sha256(f"{seed}/{index}".encode()).digest()).decode()
            for index in (0, 1)}


def configure_keystone(host, endpoint_name, lab_secrets):
    # the group Keystone's packages create (the service runs as root here): keystone_db gives
    # keystone.conf root:keystone 0640 and refuses a group that does not exist
    sh(host, "getent group keystone >/dev/null || groupadd --system keystone")
    put(host, "/etc/keystone/keystone.conf", keystone_conf(endpoint_name, lab_secrets["keystone_db_password"]), "0640")
    put(host, "/etc/keystone/uwsgi.ini", UWSGI_INI)
    for repository in ("fernet-keys", "credential-keys"):
        for index, key in _fernet_keys(f"{repository}/{lab_secrets['keystone_db_password']}").items():
            put(host, f"/etc/keystone/{repository}/{index}", key, "0600")
    put(host, "/etc/systemd/system/keystone.service", KEYSTONE_UNIT)
    sh(host, "chmod 700 /etc/keystone/fernet-keys /etc/keystone/credential-keys && systemctl daemon-reload")


def bootstrap_keystone(host, lab_secrets):
    """Schema and admin user, once per database (both commands are idempotent)."""
    manage = "OS_KEYSTONE_CONFIG_DIR=/etc/keystone /opt/keystone/venv/bin/keystone-manage"
    lb_url = f"http://{topology.KEYSTONE_LB[0]}:{topology.KEYSTONE_LB[1]}/v3"
    sh(host, f"{manage} db_sync")
    sh(host, f"{manage} bootstrap --bootstrap-password {shlex.quote(lab_secrets['keystone_admin_password'])}"
             f" --bootstrap-admin-url {lb_url} --bootstrap-public-url {lb_url} --bootstrap-internal-url {lb_url}"
             " --bootstrap-region-id RegionOne")


def start_keystone(host):
    sh(host, "systemctl enable --now keystone.service")


# uWSGI's stats socket: per worker its pid and whether it has loaded Keystone and accepts
# requests. A chain reload skips a worker that is not accepting yet (uWSGI's
# uwsgi_master_check_chain), so whoever reloads must first wait for every worker to accept.
_UWSGI_WORKERS = """/opt/keystone/venv/bin/python -c '
import json, socket
client = socket.socket(socket.AF_UNIX)
client.connect("/run/keystone/uwsgi-stats.sock")
stats = json.loads(b"".join(iter(lambda: client.recv(65536), b"")))
print(json.dumps({"master": stats["pid"], "workers": {str(w["pid"]): w["accepting"] for w in stats["workers"]}}))
'"""


def keystone_workers(host):
    """{"master": pid, "workers": {pid: 1 if accepting else 0}} from uWSGI's stats socket."""
    return json.loads(sh(host, _UWSGI_WORKERS, timeout=30).stdout)


def keystone_workers_accepting(host):
    """Every worker has loaded Keystone and accepts requests (no chain reload is half-way)."""
    workers = keystone_workers(host)["workers"]
    return bool(workers) and all(workers.values())


# --- CSO stand-in ---------------------------------------------------------------------------

# Socket-activated: systemd owns the listener, so a restart (cso_db restarts the service to load
# new database settings) queues health requests in the backlog instead of refusing them. This is
# also what docs/roles/cso_db.md recommends for the real CSO unit.
CSO_SOCKET = """[Unit]
Description=CSO stand-in listener (lab fixture)

[Socket]
ListenStream=8080
Backlog=128

[Install]
WantedBy=sockets.target
"""

CSO_UNIT = f"""[Unit]
Description=CSO stand-in: Java service with a JDBC pool (lab fixture)
Requires=cso.socket
After=network.target cso.socket

[Service]
ExecStart=/usr/bin/java -Xmx48m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp {JDBC_JAR}:/opt/cso/lib/jdbc/*:/opt/cso/cso-service.jar CsoService /opt/cso/setup.properties
StandardInput=socket
StandardOutput=journal
StandardError=journal
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def setup_properties(endpoint_name, db_password):
    """Today's production file (seed 000) with a plaintext URL, plus the lab's short max age."""
    return f"""db.url=jdbc:mysql://{endpoint_name}:3306/ssp
db.username=ssp_user
db.password={db_password}
db.pool.maxActive=50
db.pool.maxIdle=10
db.pool.minIdle=5
db.pool.testOnBorrow=true
db.pool.validationQuery=SELECT 1
# lab only: reopen pooled connections after 5 s, so a TLS requirement shows at once
db.pool.maxAgeSeconds=5
"""


def cso_jar():
    """CsoService.java compiled by the controller's JDK (the hosts carry only a JRE), cached by hash."""
    source = FILES / "CsoService.java"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    jar = CSO_JAR_CACHE / f"cso-service-{digest}.jar"
    if not jar.exists():
        CSO_JAR_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as classes:
            subprocess.run(["javac", "--release", "17", "-cp", JDBC_JAR, "-d", classes, str(source)], check=True)
            partial = jar.with_suffix(".partial")
            subprocess.run(["jar", "cf", str(partial), "-C", classes, "."], check=True)
            partial.replace(jar)
    return jar


def configure_cso(host, endpoint_name, lab_secrets):
    # the service's group (the stand-in runs as root): cso_db gives setup.properties root:cso 0640
    sh(host, "mkdir -p /opt/cso && (getent group cso >/dev/null || groupadd --system cso)")
    put_bytes_file(host, "/opt/cso/cso-service.jar", cso_jar())
    put(host, "/opt/cso/setup.properties", setup_properties(endpoint_name, lab_secrets["ssp_db_password"]), "0640")
    put(host, "/etc/systemd/system/cso.socket", CSO_SOCKET)
    put(host, "/etc/systemd/system/cso.service", CSO_UNIT)
    sh(host, "systemctl daemon-reload && systemctl enable --now cso.socket cso.service")


# --- RabbitMQ -------------------------------------------------------------------------------

RABBITMQ_CONF = """# lab fixture: today's plaintext listener
listeners.tcp.default = 5672
"""


def configure_rabbitmq(host):
    put(host, "/etc/rabbitmq/rabbitmq.conf", RABBITMQ_CONF)
    # --no-block: the broker boots while Keystone is set up; wait_ready checks its listener
    sh(host, "systemctl enable --now --no-block rabbitmq-server.service")


# --- database accounts ----------------------------------------------------------------------

def database_statements(lab_secrets):
    """Schemas and accounts of the applications, created as the master user (as a DBA would)."""
    keystone_pw = lab_secrets["keystone_db_password"]
    ssp_pw = lab_secrets["ssp_db_password"]
    return [
        "CREATE DATABASE IF NOT EXISTS keystone",
        f"CREATE USER IF NOT EXISTS 'keystone'@'%' IDENTIFIED BY '{keystone_pw}'",
        f"ALTER USER 'keystone'@'%' IDENTIFIED BY '{keystone_pw}'",
        "GRANT ALL PRIVILEGES ON keystone.* TO 'keystone'@'%'",
        "CREATE DATABASE IF NOT EXISTS ssp",
        f"CREATE USER IF NOT EXISTS 'ssp_user'@'%' IDENTIFIED BY '{ssp_pw}'",
        f"ALTER USER 'ssp_user'@'%' IDENTIFIED BY '{ssp_pw}'",
        "GRANT ALL PRIVILEGES ON ssp.* TO 'ssp_user'@'%'",
    ]
