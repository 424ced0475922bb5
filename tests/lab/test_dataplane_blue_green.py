"""The data plane acts out RDS blue/green deployments (the rules and their AWS sources are in
csolab/moto_ext/blue_green.py), seen through boto3 and a real MySQL client with verified TLS (the lab's RDS CA bundle
and the endpoint's host name), as an application would:

* the green is a read-only replica of the blue, ``creating`` until the data plane serves it; a switchover is refused
  while its replication is stopped;
* the switchover stops writes and cuts sessions on both, waits for the green to catch up, and moves the production
  name to the green's address: every write the blue acknowledged is on the green, the write outage is measured, the
  green serves a certificate for the production name and takes writes, the old blue keeps its data read-only under
  ``-old1`` (also for a client that pinned the blue's old address);
* deleting the deployment with its green, or the old blue, removes that server.

Same namespace and bridge rules as test_dataplane.py (own bridge in ``csolab-dptest``, refused while a host lab's data
plane is up)."""

import datetime
import socket
import subprocess
import threading
import time

import pytest
from botocore.exceptions import ClientError

from dataplane_support import own_data_plane, require_data_plane, wait_served

pytestmark = [pytest.mark.lab, pytest.mark.dataplane]

DB = "cso-lab-db"  # seeded: MySQL 8.0.42, master user admin, backups 7 days
PASSWORD = "lab-master-password-1"
PROVISIONING, SWITCHOVER = 0.5, 1.0
# The write outage beyond the lab's switchover period: the bridge's poll (0.3 s), writes stopped and sessions killed,
# both servers stopped and started again under their new names (about 1 s each on 2 cores), the names published and
# the writer's own pace (0.1 s).
WRITE_OUTAGE_BOUND = 6.0


require_data_plane()

import pymysql  # noqa: E402

from csolab import dataplane  # noqa: E402
from csolab.dataplane import layout, mariadb  # noqa: E402


@pytest.fixture(scope="module")
def data_plane(lab):
    yield from own_data_plane()


@pytest.fixture
def rds(aws_lab, data_plane):
    """The seeded database served, with a table and two rows; the lab's blue/green periods short."""
    wait_served(aws_lab, DB)
    aws_lab.set_blue_green(provisioning_seconds=PROVISIONING, switchover_seconds=SWITCHOVER)
    dataplane.sql(DB, "CREATE DATABASE app")
    dataplane.sql(DB, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64))")
    dataplane.sql(DB, "INSERT INTO app.t VALUES (1, 'before the deployment'), (2, 'before the deployment')")
    yield aws_lab.boto3("rds")
    aws_lab.api("blue-green", {"reset": True})


def connect(name, ca=None, host=None, verify_name=True, user="admin", password=PASSWORD, **kwargs):
    """Verified TLS (``ca``: the lab's RDS CA bundle unless given) to the endpoint ``name``, or to ``host`` (an address
    a client pinned) with the certificate checked against the CA only."""
    return pymysql.connect(host=host or name, port=3306, user=user, password=password, autocommit=True,
                           ssl_ca=str(ca or dataplane.ca_bundle_path()), ssl_verify_cert=True,
                           ssl_verify_identity=verify_name and host is None, **kwargs)


def query(connection, statement):
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall()


def endpoint(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]["Address"]


def status(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["DBInstanceStatus"]


def deployment_status(rds, identifier):
    return rds.describe_blue_green_deployments(
        BlueGreenDeploymentIdentifier=identifier)["BlueGreenDeployments"][0]["Status"]


def wait_deployment(rds, identifier, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while (current := deployment_status(rds, identifier)) != wanted:
        assert time.monotonic() < deadline, f"{identifier} still {current} after {timeout} s"
        time.sleep(0.1)


def wait_rows(instance_id, statement, expected, timeout=10):
    deadline = time.monotonic() + timeout
    while (rows := dataplane.sql(instance_id, statement)) != expected:
        assert time.monotonic() < deadline, f"{instance_id}: {rows} instead of {expected} after {timeout} s"
        time.sleep(0.1)


def root_server(instance_id):
    """The instance's MariaDB through its Unix socket as root (what RDS keeps for itself)."""
    entry = dataplane.status()["instances"][instance_id]
    return mariadb.Server(layout.instance_dir(layout.state_dir(), entry["uid"]), entry["loopback_ip"])


def create_deployment(rds):
    source = rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["DBInstanceArn"]
    created = rds.create_blue_green_deployment(BlueGreenDeploymentName="cso-upgrade", Source=source)
    return created["BlueGreenDeployment"]


def available_deployment(rds):
    created = create_deployment(rds)
    wait_deployment(rds, created["BlueGreenDeploymentIdentifier"], "AVAILABLE")
    return created["BlueGreenDeploymentIdentifier"], created["Target"].split(":")[-1]


def is_cut(session):
    try:
        query(session, "SELECT 1")
        return False
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
        return True


def runs_mariadbd(pid):
    try:
        return b"mariadbd" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def wait_unserved(instance_id, pid, timeout=15):
    """Until the data plane no longer serves the deleted ``instance_id`` and its MariaDB (``pid``, read before the
    deletion) has ended."""
    deadline = time.monotonic() + timeout
    while instance_id in dataplane.status()["instances"] or runs_mariadbd(pid):
        assert time.monotonic() < deadline, f"the deleted {instance_id} is still served"
        time.sleep(0.2)


def test_the_green_is_a_read_only_replica_of_the_blue_creating_until_served(rds, aws_lab):
    """"Overview of Amazon RDS Blue/Green Deployments": the green stays in sync with production; it is read-only (best
    practices) and replicates over TLS verified against the lab's CA bundle, by the blue's endpoint name; a switchover
    is refused while its replication is not healthy."""
    created = create_deployment(rds)
    green = created["Target"].split(":")[-1]
    assert (created["Status"], status(rds, green)) == ("PROVISIONING", "creating")
    wait_deployment(rds, created["BlueGreenDeploymentIdentifier"], "AVAILABLE")
    assert status(rds, green) == "available"
    with connect(endpoint(rds, green)) as session:  # available: served, and its name resolves
        assert query(session, "SELECT id, v FROM app.t ORDER BY id") == (
            (1, "before the deployment"), (2, "before the deployment"))  # from the blue's dump

        dataplane.sql(DB, "INSERT INTO app.t VALUES (3, 'written on the blue')")
        wait_rows(green, "SELECT id FROM app.t ORDER BY id", ((1,), (2,), (3,)), timeout=5)
        with pytest.raises(pymysql.err.OperationalError) as refused:  # the master user, as on RDS
            query(session, "INSERT INTO app.t VALUES (4, 'written on the green')")
        assert refused.value.args[0] == 1290 and "read-only" in refused.value.args[1]
        assert query(session, "SELECT @@read_only") == ((1,),)
    assert dataplane.sql(DB, "SELECT @@read_only") == ((0,),)
    replication = root_server(green).replication_status()
    assert (replication["Slave_IO_Running"], replication["Slave_SQL_Running"]) == ("Yes", "Yes"), replication
    assert replication["Master_Host"] == endpoint(rds, DB)
    assert (replication["Master_SSL_Allowed"], replication["Master_SSL_Verify_Server_Cert"]) == ("Yes", "Yes")

    # "Switchover guardrails", "Replication health": with the green's replication stopped (ReplicaLag -1, published
    # as for a read replica) the switchover is refused and nothing changes
    stopped_at = datetime.datetime.now(datetime.timezone.utc)
    root_server(green).execute("STOP SLAVE;\n")
    deadline = time.monotonic() + 8
    while not any(point["Minimum"] == -1 for point in replica_lag_points(aws_lab, green, stopped_at)):
        assert time.monotonic() < deadline, "no ReplicaLag -1 for the green within 8 s"
        time.sleep(0.3)
    with pytest.raises(ClientError) as refused:
        rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=created["BlueGreenDeploymentIdentifier"])
    assert refused.value.response["Error"]["Code"] == "InvalidBlueGreenDeploymentStateFault"
    assert "replication of the green DB instance" in refused.value.response["Error"]["Message"]
    assert deployment_status(rds, created["BlueGreenDeploymentIdentifier"]) == "AVAILABLE"
    assert dataplane.sql(DB, "SELECT @@read_only") == ((0,),)


def replica_lag_points(aws_lab, instance_id, since):
    return aws_lab.boto3("cloudwatch").get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag", StartTime=since, EndTime=since + datetime.timedelta(hours=1),
        Period=1, Statistics=["Minimum", "Maximum"],
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": instance_id}])["Datapoints"]


class Writer(threading.Thread):
    """A client writing through the production name every 0.1 s, each write on a new connection (verified TLS), as
    an application whose pool reconnects: records every acknowledged write with the server that took it."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.endpoint, self.stopping, self.next_id = name, threading.Event(), 100
        self.acknowledged, self.failures = [], []  # (monotonic time, id, server_id) / (monotonic time, error)

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                with connect(self.endpoint, connect_timeout=1, read_timeout=2, write_timeout=2) as connection:
                    query(connection, f"INSERT INTO app.t VALUES ({self.next_id}, 'writer')")
                    server_id = query(connection, "SELECT @@server_id")[0][0]
                self.acknowledged.append((time.monotonic(), self.next_id, server_id))
                self.next_id += 1
            except (pymysql.err.MySQLError, OSError) as exc:
                self.failures.append((time.monotonic(), str(exc)[:120]))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

    def longest_gap(self, after):
        times = [moment for moment, *_ in self.acknowledged]
        gaps = [(later - earlier, earlier) for earlier, later in zip(times, times[1:]) if later >= after]
        return max(gaps)


def test_the_switchover_moves_production_to_the_green_with_a_short_write_outage(rds, aws_lab):
    """"Switching a blue/green deployment in Amazon RDS", "Switchover actions": writes stop and connections drop on
    both, the green catches up, the names move, then connections and writes on the green are allowed; "After
    switchover": the old blue is read-only under ``-old1``."""
    bgd, green = available_deployment(rds)
    production = endpoint(rds, DB)
    green_name = endpoint(rds, green)
    blue_before, green_before = dataplane.endpoint_for(DB), dataplane.endpoint_for(green)
    blue_server_id = dataplane.sql(DB, "SELECT @@server_id")[0][0]
    green_server_id = dataplane.sql(green, "SELECT @@server_id")[0][0]
    assert blue_server_id != green_server_id
    session = connect(production)
    assert query(session, "SELECT @@server_id") == ((blue_server_id,),)
    writer = Writer(production)
    writer.start()
    time.sleep(1.0)  # writes land on the blue

    started = time.monotonic()
    answered = rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd, SwitchoverTimeout=60)
    seen = []  # (seconds since the call, deployment, production's status, green's or -old1's status)
    while True:
        current = deployment_status(rds, bgd)
        names = {i["DBInstanceIdentifier"]: i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]}
        partner = names.get(green, names.get(f"{DB}-old1"))
        seen.append((round(time.monotonic() - started, 2), current, names.get(DB), partner))
        if current == "SWITCHOVER_COMPLETED":
            break
        assert time.monotonic() - started < 60, seen[-5:]
        time.sleep(0.1)
    completed = time.monotonic()
    with connect(production) as first:  # the moment AWS says completed, production takes writes on the green
        query(first, "INSERT INTO app.t VALUES (5, 'right after the switchover')")
        assert query(first, "SELECT @@server_id, @@read_only") == ((green_server_id, 0),)
    time.sleep(1.0)
    writer.stopping.set()
    writer.join(10)

    print(f"statuses during the switchover: {seen}")
    gap, since = writer.longest_gap(started)
    print(f"write outage seen by a client writing every 0.1 s: {gap:.2f} s (from +{since - started:.2f} s), "
          f"switchover setting {SWITCHOVER} s, completed after {completed - started:.2f} s; "
          f"{len(writer.failures)} failed writes, e.g. {sorted({error for _, error in writer.failures})[:4]}")
    assert answered["BlueGreenDeployment"]["Status"] == "SWITCHOVER_IN_PROGRESS"
    assert {state for _, state, *_ in seen[:-1]} == {"SWITCHOVER_IN_PROGRESS"}
    assert "renaming" in {status for _, _, status, _ in seen}, seen  # while both servers are down
    assert {status for _, _, status, _ in seen} <= {"available", "renaming"}, seen
    # writes stop within a poll of the call (0.3 s, and the writer's pace); the renames come after the setting
    assert SWITCHOVER - 0.4 <= gap <= SWITCHOVER + WRITE_OUTAGE_BOUND
    assert any(started <= moment <= completed for moment, _ in writer.failures), "no write failed during the switchover"
    assert is_cut(session), "a session opened on the blue survived the switchover"

    # every write the blue acknowledged was replicated before the green took over; later ones landed on the green
    on_blue = [row_id for moment, row_id, server in writer.acknowledged if server == blue_server_id]
    on_green = [row_id for moment, row_id, server in writer.acknowledged if server == green_server_id]
    assert on_blue and on_green and len(on_blue) + len(on_green) == len(writer.acknowledged)
    assert max(on_blue) < min(on_green)
    rows_on_production = {row_id for (row_id,) in dataplane.sql(DB, "SELECT id FROM app.t")}
    assert {1, 2, 5, *on_blue, *on_green} <= rows_on_production

    # the production name resolves to the green's address, for the controller and the hosts' containers
    after = dataplane.endpoint_for(DB)
    assert (after["name"], after["loopback_ip"], after["namespace_ip"]) == (
        production, green_before["loopback_ip"], green_before["namespace_ip"])
    assert socket.gethostbyname(production) == green_before["loopback_ip"]
    fragment = layout.hosts_fragment_file(layout.state_dir()).read_text()
    assert f"{green_before['namespace_ip']} {production}\n" in fragment
    assert green_name not in fragment
    _verify_name_at(green_before["loopback_ip"], production)  # the green's certificate names production now
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):  # negative: a wrong CA
        connect(production, ca=dataplane.rogue_ca_path())

    # the old blue: its data, read-only, under -old1, at the blue's address
    old = dataplane.endpoint_for(f"{DB}-old1")
    assert old["name"] == endpoint(rds, f"{DB}-old1") and old["name"].startswith(f"{DB}-old1.")
    assert (old["loopback_ip"], old["namespace_ip"]) == (blue_before["loopback_ip"], blue_before["namespace_ip"])
    with connect(old["name"]) as old_session:
        assert query(old_session, "SELECT @@server_id, @@read_only") == ((blue_server_id, 1),)
        assert {1, 2, *on_blue} <= {row_id for (row_id,) in query(old_session, "SELECT id FROM app.t")}
        with pytest.raises(pymysql.err.OperationalError) as refused:
            query(old_session, "INSERT INTO app.t VALUES (6, 'on the old blue')")
        assert refused.value.args[0] == 1290
    with connect(production, host=blue_before["loopback_ip"]) as pinned:  # a client that kept the blue's address
        assert query(pinned, "SELECT @@server_id, @@read_only") == ((blue_server_id, 1),)
        with pytest.raises(pymysql.err.OperationalError) as refused:
            query(pinned, "INSERT INTO app.t VALUES (7, 'through the pinned address')")
        assert refused.value.args[0] == 1290
    _verify_name_at(blue_before["loopback_ip"], old["name"])  # the old blue's certificate names -old1 ...
    with pytest.raises(pymysql.err.OperationalError):  # ... and no longer production
        _verify_name_at(blue_before["loopback_ip"], production)
    assert root_server(DB).replication_status() == {}

    # the old blue is an instance of its own: deleting it removes its server, production goes on
    pid = root_server(f"{DB}-old1").pid()
    rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd)
    rds.delete_db_instance(DBInstanceIdentifier=f"{DB}-old1", SkipFinalSnapshot=True)
    wait_unserved(f"{DB}-old1", pid)
    dataplane.sql(DB, "INSERT INTO app.t VALUES (8, 'production after the old blue is gone')")


def iam_login(name, identity, user="app_iam"):
    """An IAM login through the endpoint ``name`` with a token ``identity`` signed for it (verified TLS, as a driver
    does): (CURRENT_USER(), @@server_id)."""
    from iam_lab import auth_token

    checked = len(dataplane.iam_sessions())
    try:
        with connect(name, user=user, password=auth_token(identity, name, 3306, user)) as session:
            return query(session, "SELECT CURRENT_USER(), @@server_id")[0]
    except pymysql.err.OperationalError as refused:
        refused.add_note(f"the lab's verdicts: {dataplane.iam_sessions()[checked:]}")
        raise


def iam_refused(name, identity, user="app_iam"):
    with pytest.raises(pymysql.err.OperationalError) as refused:
        iam_login(name, identity, user)
    return refused.value.args[0]


def test_after_the_switchover_iam_logins_need_the_greens_resource_id(rds, aws_lab):
    """"Switchover actions": each instance keeps its DbiResourceId, so production's name now belongs to the green's;
    "Creating and using an IAM policy for IAM database access": rds-db:connect names
    arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>. An identity whose policy names the blue's alone
    loses production at the switchover (and reaches the old blue); one naming the green's as well (what phase3.yml puts
    before it switches over) keeps it. The IAM account, made on the blue, is on the green by replication."""
    from iam_lab import connect_policy, dbuser_arn, enable_iam_auth, role_session

    dataplane.sql(DB, "CREATE USER 'app_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    enable_iam_auth(aws_lab, DB)
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=DB, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    bgd, green = available_deployment(rds)
    blue_arn, green_arn = dbuser_arn(aws_lab, DB, "app_iam"), dbuser_arn(aws_lab, green, "app_iam")
    assert blue_arn != green_arn
    blue_only = role_session(aws_lab, "app-blue-only", connect_policy(blue_arn))
    both = role_session(aws_lab, "app-blue-and-green", connect_policy(blue_arn, green_arn))
    production, green_name = endpoint(rds, DB), endpoint(rds, green)
    blue_server_id = dataplane.sql(DB, "SELECT @@server_id")[0][0]
    green_server_id = dataplane.sql(green, "SELECT @@server_id")[0][0]
    assert iam_login(production, blue_only) == iam_login(production, both) == ("app_iam@%", blue_server_id)
    assert iam_login(green_name, both) == ("app_iam@%", green_server_id)
    assert iam_refused(green_name, blue_only) == 1045

    rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd, SwitchoverTimeout=60)
    wait_deployment(rds, bgd, "SWITCHOVER_COMPLETED")

    assert endpoint(rds, DB) == production
    assert iam_login(production, both) == ("app_iam@%", green_server_id)
    assert iam_refused(production, blue_only) == 1045
    refusal = dataplane.iam_sessions()[-1]
    assert (refusal["allowed"], refusal["identity_arn"]) == (False, blue_only["arn"]), refusal
    assert green_arn in refusal["reason"], refusal
    assert iam_login(endpoint(rds, f"{DB}-old1"), blue_only) == ("app_iam@%", blue_server_id)


def _verify_name_at(address, name):
    """Raise unless the server at ``address`` presents a certificate that verifies for ``name`` (openssl)."""
    import subprocess

    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:3306", "-starttls", "mysql", "-CAfile",
         str(dataplane.ca_bundle_path()), "-verify_hostname", name, "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=20)
    if "Verify return code: 0 (ok)" not in handshake.stdout:
        raise pymysql.err.OperationalError(2026, handshake.stdout[-300:] + handshake.stderr[-300:])


class TableLock:
    """``LOCK TABLES <table> WRITE`` held on an instance's MariaDB until released, by a session the switchover's fence
    spares (it ends client sessions, not the lab's replication users ``rdsrepl_*``): on a green, the replication
    applier then waits for the lock, as behind a long-running statement, and the green cannot catch up."""

    USER = "rdsrepl_locktest"

    def __init__(self, instance_id, table):
        server = root_server(instance_id)
        server.execute(f"SET sql_log_bin=0;\nCREATE USER IF NOT EXISTS '{self.USER}'@'localhost';\n"
                       f"GRANT SELECT, LOCK TABLES ON {table.split('.')[0]}.* TO '{self.USER}'@'localhost';\n"
                       f"GRANT READ_ONLY ADMIN ON *.* TO '{self.USER}'@'localhost';\n")
        self.session = subprocess.Popen(
            ["mariadb", f"--socket={server.socket}", f"--user={self.USER}", "--unbuffered", "-N", "-B"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.session.stdin.write(f"LOCK TABLES {table} WRITE;\nSELECT 'locked';\n")
        self.session.stdin.flush()
        assert self.session.stdout.readline().strip() == "locked"

    def release(self):
        self.session.communicate("UNLOCK TABLES;\n", timeout=30)


def test_a_switchover_past_its_timeout_is_rolled_back(rds, aws_lab):
    """SwitchoverTimeout (API Reference): if the switchover takes longer, any changes are rolled back and neither
    environment changes. A write lock held on the green keeps its replication from applying the blue's last write,
    so it cannot catch up within a 30 s SwitchoverTimeout (the minimum). The lock is released only once the
    deployment shows SWITCHOVER_FAILED: a lab that rolled back late would then fence and switch over after all."""
    bgd, green = available_deployment(rds)
    green_server_id = dataplane.sql(green, "SELECT @@server_id")[0][0]
    lock = TableLock(green, "app.t")
    try:
        dataplane.sql(DB, "INSERT INTO app.t VALUES (10, 'not yet on the green')")
        started = time.monotonic()
        rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd, SwitchoverTimeout=30)
        wait_deployment(rds, bgd, "SWITCHOVER_FAILED", timeout=45)
        rolled_back_after = time.monotonic() - started
    finally:
        lock.release()
    details = rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=bgd)["BlueGreenDeployments"][0]
    print(f"rolled back after {rolled_back_after:.1f} s: {details.get('StatusDetails')}")
    assert 30 <= rolled_back_after <= 30 + 5
    assert "rolled back" in details.get("StatusDetails", "")

    # nothing changed: same names, the blue writable production again, the green a read-only replica of it
    time.sleep(2)  # a few polls after the lock's release: a late fence would show now
    names = {i["DBInstanceIdentifier"]: i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]}
    assert (names.get(DB), names.get(green), f"{DB}-old1" in names) == ("available", "available", False), names
    assert deployment_status(rds, bgd) == "SWITCHOVER_FAILED"
    wait_rows(DB, "SELECT @@read_only", ((0,),))
    with connect(endpoint(rds, DB)) as session:
        query(session, "INSERT INTO app.t VALUES (11, 'on the blue after the rollback')")
        assert query(session, "SELECT @@server_id") != ((green_server_id,),)
    assert dataplane.sql(green, "SELECT @@read_only") == ((1,),)
    replication = root_server(green).replication_status()
    assert (replication["Slave_IO_Running"], replication["Slave_SQL_Running"]) == ("Yes", "Yes"), replication
    wait_rows(green, "SELECT id FROM app.t WHERE id >= 10 ORDER BY id", ((10,), (11,)), timeout=15)

    # the lab takes no second switchover of a rolled-back deployment; deleting it with its green leaves the blue
    with pytest.raises(ClientError) as refused:
        rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd, SwitchoverTimeout=30)
    assert refused.value.response["Error"]["Code"] == "InvalidBlueGreenDeploymentStateFault", refused.value.response
    pid = root_server(green).pid()
    rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd, DeleteTarget=True)
    wait_unserved(green, pid)
    assert dataplane.sql(DB, "SELECT @@read_only, COUNT(*) FROM app.t WHERE id >= 10") == ((0, 2),)


def test_deleting_the_deployment_with_its_green_removes_the_greens_server(rds, aws_lab):
    """"Deleting a blue/green deployment in Amazon RDS": ``DeleteTarget`` before the switchover deletes the green."""
    bgd, green = available_deployment(rds)
    pid = root_server(green).pid()
    green_address = dataplane.endpoint_for(green)["loopback_ip"]
    assert pid and runs_mariadbd(pid)

    rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bgd, DeleteTarget=True)
    wait_unserved(green, pid)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=green_address, port=3306, user="admin", password=PASSWORD, connect_timeout=1,
                        ssl_disabled=True)
    assert green not in layout.hosts_fragment_file(layout.state_dir()).read_text()
    dataplane.sql(DB, "INSERT INTO app.t VALUES (3, 'the blue goes on')")
    assert dataplane.sql(DB, "SELECT @@read_only, COUNT(*) FROM app.t") == ((0, 3),)
