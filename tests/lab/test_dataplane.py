"""The data plane follows the AWS lab: TLS with the instance's CA, require_secure_transport from
the parameter group when it applies, the security-group firewall, and data through snapshots.

Runs its own namespace (``csolab-dptest``) and bridge, so it refuses to run while a host lab (whose
bridge serves the same instances) is up: `make test` runs this layer before the host lab.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from dataplane_support import TEST_NETNS as NETNS, require_data_plane, start_own_data_plane, wait_served

pytestmark = [pytest.mark.lab, pytest.mark.dataplane]

FAKE_KEYSTONE = "10.89.10.211"
FAKE_OUTSIDER = "10.89.10.241"


require_data_plane()

import pymysql  # noqa: E402

from csolab import dataplane, netns  # noqa: E402
from csolab.dataplane import layout, mariadb, net  # noqa: E402


@pytest.fixture(scope="module")
def data_plane(lab):
    created = start_own_data_plane(NETNS)
    yield dataplane
    dataplane.stop()
    hosts_file = layout.hosts_json(layout.state_dir())
    hosts_file.unlink(missing_ok=True)
    begin, _end = net.block_markers(NETNS)
    assert begin not in open("/etc/hosts").read(), "the /etc/hosts block outlived the data plane"
    if created:
        netns.delete(NETNS)


@pytest.fixture
def served(aws_lab, data_plane):
    """The seeded database, served by a freshly provisioned MariaDB."""
    return wait_served(aws_lab, "cso-lab-db")


def connect(endpoint, ca=None, password="lab-master-password-1", user="admin", host=None, **kwargs):
    """Connect by the endpoint's DNS name (as RDS clients must), or by ``host`` when given."""
    tls = {"ssl_ca": str(ca), "ssl_verify_cert": True, "ssl_verify_identity": True} if ca else {"ssl_disabled": True}
    return pymysql.connect(host=host or endpoint["name"], port=endpoint["port"], user=user, password=password,
                           connect_timeout=5, **tls, **kwargs)


def cipher(connection):
    with connection.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        return cursor.fetchone()[1]


def test_tls_verifies_against_the_bundle_and_not_against_a_rogue_ca(served):
    endpoint = dataplane.endpoint_for("cso-lab-db")
    with connect(endpoint, ca=dataplane.ca_bundle_path()) as connection:
        used = cipher(connection)
    print(f"Ssl_cipher with the RDS CA bundle: {used}")
    assert used.startswith("TLS_")
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint, ca=dataplane.rogue_ca_path())


def test_certificate_names_the_rds_endpoint(served):
    endpoint = dataplane.endpoint_for("cso-lab-db")
    assert endpoint["name"] == "cso-lab-db.aaaaaaaaaa.eu-west-2.rds.amazonaws.com"
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"{endpoint['loopback_ip']}:3306", "-starttls", "mysql",
         "-CAfile", str(dataplane.ca_bundle_path()), "-verify_hostname", endpoint["name"], "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=20)
    assert "Verify return code: 0 (ok)" in handshake.stdout, handshake.stdout + handshake.stderr
    etc_hosts = open("/etc/hosts").read()
    assert f"{endpoint['loopback_ip']} {endpoint['name']}" in etc_hosts
    fragment = layout.hosts_fragment_file(layout.state_dir()).read_text()
    assert f"{endpoint['namespace_ip']} {endpoint['name']}\n" in fragment
    assert dataplane.hosts_lines() == [f"{endpoint['namespace_ip']} {endpoint['name']}"]


def test_certificate_names_no_ip_address_and_a_connection_by_address_fails_verification(served):
    """RDS server certificates carry DNS names only: verifying a connection made to the instance's
    IP address fails the host-name check (as in AWS); the same CA and the endpoint name verify."""
    from cryptography import x509

    endpoint = dataplane.endpoint_for("cso-lab-db")
    pem = subprocess.run(
        ["openssl", "s_client", "-connect", f"{endpoint['loopback_ip']}:3306", "-starttls", "mysql",
         "-servername", endpoint["name"]], input="", capture_output=True, text=True, timeout=20).stdout
    served_cert = x509.load_pem_x509_certificate(
        pem[pem.index("-----BEGIN CERTIFICATE-----"):pem.index("-----END CERTIFICATE-----") + 25].encode())
    san = served_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [], san
    assert san.get_values_for_type(x509.DNSName) == [endpoint["name"]]
    with connect(endpoint, ca=dataplane.ca_bundle_path()) as connection:  # by name: verifies
        assert cipher(connection).startswith("TLS_")
    with pytest.raises(pymysql.err.OperationalError, match="IP address mismatch"):  # same CA, by address
        connect(endpoint, ca=dataplane.ca_bundle_path(), host=endpoint["loopback_ip"])
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"{endpoint['loopback_ip']}:3306", "-starttls", "mysql",
         "-CAfile", str(dataplane.ca_bundle_path()), "-verify_ip", endpoint["loopback_ip"], "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=20)
    assert "Verify return code: 0 (ok)" not in handshake.stdout, handshake.stdout
    assert "IP address mismatch" in handshake.stdout + handshake.stderr, handshake.stdout + handshake.stderr


def _use_custom_parameter_group(lab):
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="cso-mysql80-hardened", DBParameterGroupFamily="mysql8.0",
                                  Description="lab")
    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", DBParameterGroupName="cso-mysql80-hardened",
                           ApplyImmediately=True)
    rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")
    wait_available(rds)  # the reboot is an outage; AWS refuses the next reboot until it is over
    wait_served(lab, "cso-lab-db", timeout=30, ready=True)
    return rds


def wait_available(rds, instance_id="cso-lab-db", timeout=30):
    deadline = time.monotonic() + timeout
    while rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline, f"{instance_id} still not available after {timeout} s"
        time.sleep(0.2)


def _set_rst(rds, value, method="immediate"):
    rds.modify_db_parameter_group(DBParameterGroupName="cso-mysql80-hardened", Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": value, "ApplyMethod": method}])


def test_require_secure_transport_follows_the_parameter_group(served, aws_lab):
    rds = _use_custom_parameter_group(aws_lab)
    endpoint = dataplane.endpoint_for("cso-lab-db")
    connect(endpoint).close()  # plaintext works today

    _set_rst(rds, "1")
    wait_served(aws_lab, "cso-lab-db", timeout=10, require_secure_transport=True)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(endpoint)
    assert refused.value.args[0] == 1045
    with connect(endpoint, ca=dataplane.ca_bundle_path()) as connection:
        assert cipher(connection)

    _set_rst(rds, "0")
    wait_served(aws_lab, "cso-lab-db", timeout=10, require_secure_transport=False)
    connect(endpoint).close()


def test_a_pending_reboot_change_waits_for_the_reboot(served, aws_lab):
    rds = _use_custom_parameter_group(aws_lab)
    endpoint = dataplane.endpoint_for("cso-lab-db")
    _set_rst(rds, "1", method="pending-reboot")
    time.sleep(1.5)  # five polls of the bridge
    assert dataplane.status()["instances"]["cso-lab-db"]["require_secure_transport"] is False
    connect(endpoint).close()

    rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")
    wait_served(aws_lab, "cso-lab-db", timeout=10, require_secure_transport=True)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(endpoint)
    assert refused.value.args[0] == 1045


def test_ca_rotation_is_real_for_clients(served, aws_lab):
    rds = aws_lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", CACertificateIdentifier="rds-ca-2019",
                           ApplyImmediately=True)
    wait_served(aws_lab, "cso-lab-db", timeout=15, ca_certificate_identifier="rds-ca-2019")
    endpoint = dataplane.endpoint_for("cso-lab-db")
    old_ca_only = dataplane.ca_path("rds-ca-2019")
    connect(endpoint, ca=old_ca_only).close()

    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", CACertificateIdentifier="rds-ca-rsa2048-g1",
                           ApplyImmediately=True)
    wait_served(aws_lab, "cso-lab-db", timeout=15, ca_certificate_identifier="rds-ca-rsa2048-g1")
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint, ca=old_ca_only)
    with connect(endpoint, ca=dataplane.ca_bundle_path()) as connection:
        assert cipher(connection)
    connect(endpoint, ca=dataplane.ca_path("rds-ca-rsa2048-g1")).close()


NAMESPACE_CLIENT = """
import json, sys, pymysql
host, source = sys.argv[1], sys.argv[2]
try:
    pymysql.connect(host=host, port=3306, user="admin", password="lab-master-password-1", ssl_disabled=True,
                    bind_address=source, connect_timeout=2).close()
    print(json.dumps({"ok": True}))
except pymysql.err.OperationalError as exc:
    print(json.dumps({"ok": False, "error": str(exc)}))
"""


def reach_from(source, endpoint):
    """Connect to the instance's namespace address from ``source`` (a fake host inside the namespace)."""
    completed = subprocess.run(
        netns.nsenter([sys.executable, "-c", NAMESPACE_CLIENT, endpoint["namespace_ip"], source], NETNS),
        capture_output=True, text=True, timeout=30, check=True)
    return json.loads(completed.stdout)


@pytest.fixture
def fake_hosts(aws_lab, data_plane):
    seeded = aws_lab.state["seed"]["network"]
    hosts = {"keystone-fake": {"ip": FAKE_KEYSTONE, "security_group_ids": [seeded["core_security_group_id"],
                                                                          seeded["app_security_group_ids"]["keystone"]]},
             "outsider-fake": {"ip": FAKE_OUTSIDER, "security_group_ids": []}}
    layout.hosts_json(layout.state_dir()).write_text(json.dumps({"hosts": hosts}, indent=2))
    for address in (FAKE_KEYSTONE, FAKE_OUTSIDER):
        subprocess.run(["ip", "-n", NETNS, "addr", "replace", f"{address}/32", "dev", "lo"], check=True)
    yield seeded
    for address in (FAKE_KEYSTONE, FAKE_OUTSIDER):
        subprocess.run(["ip", "-n", NETNS, "addr", "del", f"{address}/32", "dev", "lo"], check=False)
    layout.hosts_json(layout.state_dir()).unlink(missing_ok=True)


def _wait_firewall(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate(dataplane.status()["firewall"] or ""):
        assert time.monotonic() < deadline, dataplane.status()["firewall"]
        time.sleep(0.2)


def test_a_dedicated_security_group_cuts_off_who_it_does_not_allow(served, aws_lab, fake_hosts):
    endpoint = dataplane.endpoint_for("cso-lab-db")
    # today's shared SG allows the whole VPC CIDR: even the outsider gets in
    _wait_firewall(lambda rules: FAKE_OUTSIDER in rules)
    assert reach_from(FAKE_KEYSTONE, endpoint)["ok"]
    assert reach_from(FAKE_OUTSIDER, endpoint)["ok"]

    _move_to_dedicated_group(aws_lab, fake_hosts, [fake_hosts["app_security_group_ids"]["keystone"]])
    _wait_firewall(lambda rules: FAKE_OUTSIDER not in rules and FAKE_KEYSTONE in rules)
    assert reach_from(FAKE_KEYSTONE, endpoint)["ok"]
    cut_off = reach_from(FAKE_OUTSIDER, endpoint)
    assert not cut_off["ok"] and "2003" in cut_off["error"], cut_off


NAMESPACE_SESSION = """
import json, sys, pymysql
host, source = sys.argv[1], sys.argv[2]
connection = pymysql.connect(host=host, port=3306, user="admin", password="lab-master-password-1",
                             ssl_disabled=True, bind_address=source, connect_timeout=2, read_timeout=5)
print("open", flush=True)
for line in sys.stdin:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            print(json.dumps({"ok": True, "id": cursor.fetchone()[0]}), flush=True)
    except pymysql.err.OperationalError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}), flush=True)
"""


def _move_to_dedicated_group(aws_lab, network, allowed_group_ids, name="cso-db-dedicated"):
    ec2 = aws_lab.boto3("ec2")
    dedicated = ec2.create_security_group(GroupName=name, Description="database only",
                                          VpcId=network["vpc_id"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=dedicated, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
        "UserIdGroupPairs": [{"GroupId": group_id} for group_id in allowed_group_ids]}])
    aws_lab.boto3("rds").modify_db_instance(DBInstanceIdentifier="cso-lab-db", VpcSecurityGroupIds=[dedicated],
                                            ApplyImmediately=True)
    return dedicated


def test_a_session_opened_before_the_cut_off_survives_and_new_ones_time_out(served, aws_lab, fake_hosts):
    """Security groups track connections: removing the rule that allowed a session leaves it running,
    while a new connection from the same source is dropped and times out within its connect timeout."""
    endpoint = dataplane.endpoint_for("cso-lab-db")
    _wait_firewall(lambda rules: FAKE_OUTSIDER in rules)
    session = subprocess.Popen(netns.nsenter([sys.executable, "-c", NAMESPACE_SESSION, endpoint["namespace_ip"],
                                              FAKE_OUTSIDER], NETNS),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert session.stdout.readline().strip() == "open", session.stderr.read()
        session.stdin.write("query\n")
        session.stdin.flush()
        before = json.loads(session.stdout.readline())
        assert before["ok"], before

        _move_to_dedicated_group(aws_lab, fake_hosts, [fake_hosts["app_security_group_ids"]["keystone"]])
        _wait_firewall(lambda rules: FAKE_OUTSIDER not in rules and FAKE_KEYSTONE in rules)

        session.stdin.write("query\n")
        session.stdin.flush()
        after = json.loads(session.stdout.readline())
        assert after == before, f"the tracked session was cut: {after} (firewall: {dataplane.status()['firewall']})"
        started = time.monotonic()
        refused = reach_from(FAKE_OUTSIDER, endpoint)
        waited = time.monotonic() - started
        assert not refused["ok"] and "2003" in refused["error"], refused
        assert waited < 2 + 3, f"a dropped connect took {waited:.1f}s with a 2-s connect timeout"
    finally:
        session.kill()
        session.communicate()


def test_snapshot_and_restores_carry_the_rows(served, aws_lab):
    dataplane.sql("cso-lab-db", "CREATE DATABASE keystone")
    dataplane.sql("cso-lab-db", "CREATE TABLE keystone.project (id INT PRIMARY KEY, name VARCHAR(64))")
    dataplane.sql("cso-lab-db", "INSERT INTO keystone.project VALUES (1, 'admin'), (2, 'service')")
    dataplane.sql("cso-lab-db", "CREATE USER 'keystone'@'%' IDENTIFIED BY 'ks-pass'")
    rds = aws_lab.boto3("rds")
    rds.create_db_snapshot(DBInstanceIdentifier="cso-lab-db", DBSnapshotIdentifier="before-change")
    dataplane.sql("cso-lab-db", "INSERT INTO keystone.project VALUES (3, 'after-snapshot')")

    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="cso-lab-db-restored",
                                             DBSnapshotIdentifier="before-change")
    wait_served(aws_lab, "cso-lab-db-restored")
    assert dataplane.sql("cso-lab-db-restored", "SELECT id, name FROM keystone.project ORDER BY id") == \
        ((1, "admin"), (2, "service"))
    assert dataplane.sql("cso-lab-db-restored", "SELECT CURRENT_USER()", user="keystone", password="ks-pass")

    rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="cso-lab-db",
                                             TargetDBInstanceIdentifier="cso-lab-db-pitr", UseLatestRestorableTime=True)
    wait_served(aws_lab, "cso-lab-db-pitr")
    assert dataplane.sql("cso-lab-db-pitr", "SELECT COUNT(*) FROM keystone.project") == ((3,),)


def test_a_point_in_time_restore_has_the_data_as_of_restore_time(served, aws_lab):
    """RestoreTime T: rows written before T are there, rows written after T are not (the binary
    log has whole seconds, so T is kept more than a second away from both writes); the latest
    restorable time has both. Also through a restart of the source (a new binary-log file)."""
    import datetime

    dataplane.sql("cso-lab-db", "CREATE DATABASE app")
    dataplane.sql("cso-lab-db", "CREATE TABLE app.t (v VARCHAR(8) PRIMARY KEY)")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES ('A')")
    dataplane.sql("cso-lab-db", "CREATE USER 'early'@'%' IDENTIFIED BY 'early-pass'")
    time.sleep(1.2)
    restore_time = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.2)
    rds = aws_lab.boto3("rds")
    rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")
    wait_available(rds)
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES ('B')")
    dataplane.sql("cso-lab-db", "DROP USER 'early'@'%'")

    rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="cso-lab-db",
                                             TargetDBInstanceIdentifier="cso-lab-db-at-t", RestoreTime=restore_time)
    rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="cso-lab-db",
                                             TargetDBInstanceIdentifier="cso-lab-db-latest", UseLatestRestorableTime=True)
    wait_served(aws_lab, "cso-lab-db-at-t")
    wait_served(aws_lab, "cso-lab-db-latest")
    assert dataplane.sql("cso-lab-db-at-t", "SELECT v FROM app.t ORDER BY v") == (("A",),)
    assert dataplane.sql("cso-lab-db-at-t", "SELECT CURRENT_USER()", user="early", password="early-pass") == \
        (("early@%",),)
    assert dataplane.sql("cso-lab-db-latest", "SELECT v FROM app.t ORDER BY v") == (("A",), ("B",))
    with pytest.raises(pymysql.err.OperationalError, match="1045"):
        dataplane.sql("cso-lab-db-latest", "SELECT 1", user="early", password="early-pass")
    # the restored instance has the source's master user and serves it
    assert dataplane.sql("cso-lab-db-at-t", "SELECT COUNT(*) FROM app.t") == ((1,),)


def test_a_dr_restore_to_a_restore_time_after_the_source_is_deleted(served, aws_lab):
    """The DR case: the source is gone, its replicated backups are restored in the other region to
    a RestoreTime: rows written before it are there, rows written after it are not."""
    import datetime

    rds_dr = aws_lab.boto3("rds", "eu-west-1")
    key = aws_lab.boto3("kms", "eu-west-1").create_key()["KeyMetadata"]["Arn"]
    source_arn = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0][
        "DBInstanceArn"]
    backup = rds_dr.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source_arn, KmsKeyId=key, SourceRegion="eu-west-2")["DBInstanceAutomatedBackup"]
    dataplane.sql("cso-lab-db", "CREATE DATABASE app")
    dataplane.sql("cso-lab-db", "CREATE TABLE app.t (v VARCHAR(8) PRIMARY KEY)")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES ('A')")
    time.sleep(1.2)
    restore_time = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.2)
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES ('B')")
    aws_lab.boto3("rds").delete_db_instance(DBInstanceIdentifier="cso-lab-db", SkipFinalSnapshot=True)

    rds_dr.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=backup["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier="cso-lab-db-dr", RestoreTime=restore_time)
    rds_dr.restore_db_instance_to_point_in_time(
        SourceDBInstanceAutomatedBackupsArn=backup["DBInstanceAutomatedBackupsArn"],
        TargetDBInstanceIdentifier="cso-lab-db-dr-latest", UseLatestRestorableTime=True)
    wait_served(aws_lab, "cso-lab-db-dr")
    wait_served(aws_lab, "cso-lab-db-dr-latest")
    assert dataplane.sql("cso-lab-db-dr", "SELECT v FROM app.t ORDER BY v") == (("A",),)
    assert dataplane.sql("cso-lab-db-dr-latest", "SELECT v FROM app.t ORDER BY v") == (("A",), ("B",))


def test_a_renamed_instance_keeps_its_data_under_the_new_name(served, aws_lab):
    dataplane.sql("cso-lab-db", "CREATE DATABASE app")
    dataplane.sql("cso-lab-db", "CREATE TABLE app.t (v INT)")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (42)")
    uid = served["uid"]
    aws_lab.boto3("rds").modify_db_instance(DBInstanceIdentifier="cso-lab-db",
                                            NewDBInstanceIdentifier="cso-lab-db-old", ApplyImmediately=True)
    entry = dataplane.wait_ready("cso-lab-db-old", timeout=15,
                                 predicate=lambda e: e["name"].startswith("cso-lab-db-old."))
    assert entry["uid"] == uid
    assert dataplane.sql("cso-lab-db-old", "SELECT v FROM app.t") == ((42,),)
    assert f"{entry['loopback_ip']} cso-lab-db-old.aaaaaaaaaa.eu-west-2.rds.amazonaws.com" in open("/etc/hosts").read()


def _runs_mariadbd(pid):
    try:
        return b"mariadbd" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def test_start_recovers_from_a_killed_bridge(served, aws_lab):
    dataplane.sql("cso-lab-db", "CREATE DATABASE survives")
    status = dataplane.status()
    server_pid = int((layout.instance_dir(layout.state_dir(), served["uid"]) / "mysqld.pid").read_text())
    os.kill(status["pid"], signal.SIGKILL)
    time.sleep(0.3)
    assert dataplane.status()["bridge"] == "down"

    dataplane.start(netns_name=NETNS)
    entry = wait_served(aws_lab, "cso-lab-db")
    new_pid = int((layout.instance_dir(layout.state_dir(), entry["uid"]) / "mysqld.pid").read_text())
    assert new_pid != server_pid
    assert not _runs_mariadbd(server_pid), "start() left the killed run's server behind"
    assert ("survives",) in dataplane.sql("cso-lab-db", "SHOW DATABASES")


def test_a_managed_master_password_comes_from_secrets_manager(served, aws_lab):
    rds = aws_lab.boto3("rds")
    created = rds.create_db_instance(
        DBInstanceIdentifier="managed-db", Engine="mariadb", EngineVersion="10.11.9", DBInstanceClass="db.t3.micro",
        AllocatedStorage=20, MasterUsername="boss", ManageMasterUserPassword=True)["DBInstance"]
    secret = aws_lab.boto3("secretsmanager").get_secret_value(SecretId=created["MasterUserSecret"]["SecretArn"])
    password = json.loads(secret["SecretString"])["password"]
    wait_served(aws_lab, "managed-db")
    endpoint = dataplane.endpoint_for("managed-db")
    with connect(endpoint, ca=dataplane.ca_bundle_path(), user="boss", password=password) as connection:
        assert cipher(connection)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(endpoint, ca=dataplane.ca_bundle_path(), user="boss", password="not-the-secret")
    assert refused.value.args[0] == 1045


# --- IAM database authentication (AWSAuthenticationPlugin, csolab.dataplane.iam_verifier) -------


def _iam_login(endpoint, user, token, tls=True):
    """Log in with an IAM token as pymysql does: the server switches it to mysql_clear_password."""
    with connect(endpoint, ca=dataplane.ca_bundle_path() if tls else None, user=user, password=token) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            return cursor.fetchone()[0], cipher(connection)


def _refused(endpoint, user, token, tls=True):
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _iam_login(endpoint, user, token, tls=tls)
    return refused.value.args[0]


def test_iam_logins_are_checked_like_rds(served, aws_lab):
    """AWS: RDS User Guide, "IAM database authentication" and "Connecting to your DB instance using
    IAM authentication": a 15-minute token from generate_db_auth_token, for this endpoint and user,
    signed by an identity allowed rds-db:connect on the user's ARN, over TLS, while the instance
    has IAM authentication enabled. Every refusal is a 1045, and the lab logs why and who signed."""
    from iam_lab import auth_token, connect_policy, dbuser_arn, enable_iam_auth, role_session, user_with_key

    dataplane.sql("cso-lab-db", "CREATE USER 'keystone_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    dataplane.sql("cso-lab-db", "CREATE USER 'cso_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    endpoint = dataplane.endpoint_for("cso-lab-db")
    arn = dbuser_arn(aws_lab, "cso-lab-db", "keystone_iam")
    good = user_with_key(aws_lab, "keystone-db", inline=connect_policy(arn))
    session = role_session(aws_lab, "keystone-role", connect_policy(arn), session_name="keystone-1")
    no_policy = user_with_key(aws_lab, "no-policy")
    other_arn = user_with_key(aws_lab, "cso-db", inline=connect_policy(arn.replace("keystone_iam", "cso_iam")))
    lab_key = {"key": aws_lab.state["aws_access_key_id"], "secret": aws_lab.state["aws_secret_access_key"],
               "session_token": None}

    def token(identity=good, user="keystone_iam", host=endpoint["name"], port=endpoint["port"]):
        return auth_token(identity, host, port, user)

    log_start = len(dataplane.iam_sessions())
    assert _refused(endpoint, "keystone_iam", token()) == 1045  # IAM authentication not enabled yet
    enable_iam_auth(aws_lab, "cso-lab-db")
    started = time.monotonic()
    assert _iam_login(endpoint, "keystone_iam", token())[0] == "keystone_iam@%"
    print(f"an IAM login took {time.monotonic() - started:.3f} s")
    user, used_cipher = _iam_login(endpoint, "keystone_iam", token(session))
    assert (user, used_cipher.startswith("TLS_")) == ("keystone_iam@%", True)
    cli = subprocess.run(
        ["mariadb", f"--host={endpoint['name']}", f"--port={endpoint['port']}", "--user=keystone_iam",
         f"--password={token()}", f"--ssl-ca={dataplane.ca_bundle_path()}", "--ssl-verify-server-cert",
         "--enable-cleartext-plugin", "-N", "-B", "-e", "SELECT CURRENT_USER()"],
        capture_output=True, text=True, timeout=30)
    assert (cli.returncode, cli.stdout.strip().splitlines()[-1:]) == (0, ["keystone_iam@%"]), cli.stdout + cli.stderr

    fresh = token()
    aws_lab.set_clock_offset(16 * 60)
    try:
        assert _refused(endpoint, "keystone_iam", fresh) == 1045  # 16 minutes later: expired
    finally:
        aws_lab.set_clock_offset(0)
    altered = fresh[:-1] + ("0" if fresh[-1] != "0" else "1")
    refused = {
        "another user's token": _refused(endpoint, "keystone_iam", token(user="cso_iam")),
        "another host": _refused(endpoint, "keystone_iam", token(host="other-db.aaaaaaaaaa.eu-west-2.rds.amazonaws.com")),
        "another port": _refused(endpoint, "keystone_iam", token(port=3307)),
        "altered signature": _refused(endpoint, "keystone_iam", altered),
        "unknown key": _refused(endpoint, "keystone_iam", token(lab_key)),
        "identity without the policy": _refused(endpoint, "keystone_iam", token(no_policy)),
        "policy on another user's ARN": _refused(endpoint, "keystone_iam", token(other_arn)),
        "plaintext": _refused(endpoint, "keystone_iam", token(), tls=False),
    }
    assert set(refused.values()) == {1045}, refused
    assert _iam_login(endpoint, "keystone_iam", fresh)[0] == "keystone_iam@%"  # the clock is back: still valid

    logged = dataplane.iam_sessions()[log_start:]
    expected = [  # allowed: who signed; refused: how the reason starts
        (False, "IAM database authentication is not enabled on the instance"),
        (True, good["arn"]), (True, session["arn"]), (True, good["arn"]),
        (False, "token expired 60 s ago"),
        (False, "token is for database user 'cso_iam', not 'keystone_iam'"),
        (False, "token is for other-db.aaaaaaaaaa.eu-west-2.rds.amazonaws.com:3306, not this endpoint"),
        (False, f"token is for {endpoint['name']}:3307, not this endpoint"),
        (False, "signature does not match"),
        (False, f"unknown access key {lab_key['key']}"),
        (False, f"{no_policy['arn']}: its policies do not allow rds-db:connect on {arn}"),
        (False, f"{other_arn['arn']}: its policies do not allow rds-db:connect on {arn}"),
        (False, "IAM authentication requires an SSL/TLS connection"),
        (True, good["arn"]),
    ]
    summary = [(entry["allowed"], entry["identity_arn"] if entry["allowed"] else
                re.sub(r"expired 6\d s ago", "expired 60 s ago", entry["reason"])) for entry in logged]
    assert len(summary) == len(expected), summary
    for (allowed, seen), (want_allowed, want) in zip(summary, expected):
        assert allowed == want_allowed and seen.startswith(want), (seen, want)
    assert {entry["instance"] for entry in logged} == {"cso-lab-db"}
    assert [entry["tls"] for entry in logged][-2:] == [False, True]
    # password logins never ask the verifier
    with connect(endpoint, ca=dataplane.ca_bundle_path()) as connection:
        assert cipher(connection)
    assert len(dataplane.iam_sessions()) == log_start + len(logged)


# --- disruptive events: restarts, failover, CA rotation -----------------------------------------

OUTAGE = 3.0
FAILOVER_OUTAGE = 1.5
POLL = 0.2
# What a client sees beyond the setting: the bridge notices a restart within one poll (0.3 s),
# MariaDB starts in about 1 s, and this client polls every 0.2 s. Measured here (2 cores): +0.4-1.2 s.
OUTAGE_BOUND = 2.5


@pytest.fixture
def outage(aws_lab):
    before = aws_lab.set_outage()
    yield aws_lab.set_outage(seconds=OUTAGE, failover_seconds=FAILOVER_OUTAGE)
    aws_lab.set_outage(seconds=before["seconds"], failover_seconds=before["failover_seconds"])


def _answers(host):
    try:
        pymysql.connect(host=host, port=3306, user="admin", password="lab-master-password-1", ssl_disabled=True,
                        connect_timeout=1).close()
        return True
    except pymysql.err.OperationalError:
        return False


def _measure_outage(host, started, timeout=30):
    """Poll new connections every 0.2 s: (first refused, first answered again) in seconds after ``started``."""
    down = None
    while time.monotonic() - started < timeout:
        if not _answers(host):
            down = down if down is not None else time.monotonic() - started
        elif down is not None:
            return down, time.monotonic() - started
        time.sleep(POLL)
    pytest.fail(f"{host} did not come back within {timeout} s (down since {down})")


def _status(rds):
    instance = rds.describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]
    return instance["DBInstanceStatus"], instance["DBParameterGroups"][0]["ParameterApplyStatus"]


def _session_is_cut(session):
    try:
        with session.cursor() as cursor:
            cursor.execute("SELECT 1")
        return False
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
        return True


def test_a_reboot_cuts_sessions_and_the_outage_lasts_the_setting(served, aws_lab, outage):
    rds = aws_lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="cso-mysql80-hardened", DBParameterGroupFamily="mysql8.0",
                                  Description="lab")
    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", DBParameterGroupName="cso-mysql80-hardened",
                           ApplyImmediately=True)
    assert _status(rds) == ("available", "pending-reboot")
    endpoint = dataplane.endpoint_for("cso-lab-db")
    session = connect(endpoint)

    started = time.monotonic()
    rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")
    assert _status(rds)[0] == "rebooting"
    down, back = _measure_outage(endpoint["loopback_ip"], started)
    status_when_back = _status(rds)
    seen = back - down
    print(f"outage seen by a client polling every {POLL} s: {seen:.2f} s (down at +{down:.2f} s, "
          f"back at +{back:.2f} s), setting {OUTAGE} s; status when back: {status_when_back}")
    assert down <= 0.3 + 2 * POLL  # the bridge notices within one poll
    assert OUTAGE - POLL <= seen <= OUTAGE + OUTAGE_BOUND
    assert _session_is_cut(session)
    deadline = time.monotonic() + 5
    while _status(rds)[0] != "available":
        assert time.monotonic() < deadline, _status(rds)
        time.sleep(0.1)
    assert _status(rds) == ("available", "in-sync")
    connect(endpoint).close()


def _resolve(name):
    import socket

    return socket.gethostbyname(name)


def _names_address(ruleset, address):
    """Whether the nft ruleset names this address (10.89.20.1 is not 10.89.20.14)."""
    return re.search(re.escape(address) + r"(?![0-9])", ruleset) is not None


def test_a_failover_is_a_shorter_outage_and_moves_the_endpoint_address(served, aws_lab, outage):
    rds = aws_lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", MultiAZ=True, ApplyImmediately=True)
    before = dataplane.endpoint_for("cso-lab-db")
    assert _resolve(before["name"]) == before["loopback_ip"]
    session = connect(before)

    started = time.monotonic()
    rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db", ForceFailover=True)
    assert _status(rds)[0] == "rebooting"
    entry = dataplane.wait_ready("cso-lab-db", timeout=20,
                                 predicate=lambda e: e["loopback_ip"] != before["loopback_ip"])
    back = time.monotonic() - started
    after = dataplane.endpoint_for("cso-lab-db")
    print(f"failover: {before['loopback_ip']} -> {after['loopback_ip']} ({before['namespace_ip']} -> "
          f"{after['namespace_ip']} in the namespace), serving again {back:.2f} s after the call "
          f"(failover outage {FAILOVER_OUTAGE} s, reboot outage {OUTAGE} s)")
    assert entry["name"] == before["name"]
    assert after["namespace_ip"] != before["namespace_ip"]
    assert _resolve(before["name"]) == after["loopback_ip"]
    assert f"{after['namespace_ip']} {after['name']}\n" in layout.hosts_fragment_file(layout.state_dir()).read_text()
    assert FAILOVER_OUTAGE <= back <= FAILOVER_OUTAGE + OUTAGE_BOUND
    assert back < OUTAGE + 0.5
    assert _session_is_cut(session)
    assert not _answers(before["loopback_ip"]), "the old primary's address still answers"
    connect(before).close()  # by name: the new address
    assert _names_address(dataplane.status()["firewall"], after["namespace_ip"])
    assert not _names_address(dataplane.status()["firewall"], before["namespace_ip"])


def test_ca_rotation_with_restart_serves_the_new_ca_after_the_outage(served, aws_lab, outage):
    rds = aws_lab.boto3("rds")
    endpoint = dataplane.endpoint_for("cso-lab-db")
    old_ca, new_ca = dataplane.ca_path("rds-ca-rsa2048-g1"), dataplane.ca_path("rds-ca-rsa4096-g1")
    session = connect(endpoint, ca=old_ca)

    started = time.monotonic()
    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", CACertificateIdentifier="rds-ca-rsa4096-g1",
                           ApplyImmediately=True)
    assert _status(rds)[0] == "rebooting"
    down, back = _measure_outage(endpoint["loopback_ip"], started)
    print(f"CA rotation with restart: down at +{down:.2f} s, back at +{back:.2f} s (outage {OUTAGE} s)")
    assert OUTAGE - POLL <= back - down <= OUTAGE + OUTAGE_BOUND
    assert _session_is_cut(session)
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint, ca=old_ca)
    connect(endpoint, ca=new_ca).close()


def _ca_with_fingerprint(bundle, sha1_hex, directory):
    """The certificate of ``bundle`` whose SHA-1 fingerprint is ``sha1_hex``, alone in a file (None if none)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    for cert in x509.load_pem_x509_certificates(bundle.read_bytes()):
        if cert.fingerprint(hashes.SHA1()).hex() == sha1_hex:
            path = directory / f"{sha1_hex}.pem"
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            return path
    return None


def test_the_thumbprint_names_the_ca_the_rotated_instance_serves(served, aws_lab, outage, tmp_path):
    """DescribeCertificates' Thumbprint of the instance's new CA picks, out of the global bundle,
    the one CA that verifies the certificate the data plane serves after the rotation."""
    rds = aws_lab.boto3("rds")
    endpoint = dataplane.endpoint_for("cso-lab-db")
    thumbprints = {c["CertificateIdentifier"]: c["Thumbprint"] for c in rds.describe_certificates()["Certificates"]}
    new_ca = _ca_with_fingerprint(dataplane.ca_bundle_path(), thumbprints["rds-ca-rsa4096-g1"], tmp_path)
    old_ca = _ca_with_fingerprint(dataplane.ca_bundle_path(), thumbprints["rds-ca-rsa2048-g1"], tmp_path)
    assert new_ca and old_ca
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint, ca=new_ca)  # not yet: the instance is on the seeded CA

    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", CACertificateIdentifier="rds-ca-rsa4096-g1",
                           ApplyImmediately=True)
    wait_available(rds)
    wait_served(aws_lab, "cso-lab-db", timeout=15, ready=True, ca_certificate_identifier="rds-ca-rsa4096-g1")

    connect(endpoint, ca=new_ca).close()
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint, ca=old_ca)


def test_ca_rotation_without_restart_where_the_engine_supports_it(served, aws_lab, outage):
    rds = aws_lab.boto3("rds")
    version = rds.describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]["EngineVersion"]
    engine = rds.describe_db_engine_versions(Engine="mysql", EngineVersion=version)["DBEngineVersions"][0]
    assert engine["SupportsCertificateRotationWithoutRestart"] is True
    endpoint = dataplane.endpoint_for("cso-lab-db")
    old_ca, new_ca = dataplane.ca_path("rds-ca-rsa2048-g1"), dataplane.ca_path("rds-ca-ecc384-g1")
    session = connect(endpoint, ca=old_ca)

    rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", CACertificateIdentifier="rds-ca-ecc384-g1",
                           CertificateRotationRestart=False, ApplyImmediately=True)
    assert _status(rds)[0] == "available"
    wait_served(aws_lab, "cso-lab-db", timeout=10, ca_certificate_identifier="rds-ca-ecc384-g1")
    assert not _session_is_cut(session), "a rotation without restart cut a live session"
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint, ca=old_ca)
    connect(endpoint, ca=new_ca).close()
    session.close()


# --- read replicas ----------------------------------------------------------------------------

REPLICA = "cso-lab-db-replica"


def _root_server(instance_id):
    """The instance's MariaDB through its Unix socket as root (what RDS keeps for itself)."""
    entry = dataplane.status()["instances"][instance_id]
    return mariadb.Server(layout.instance_dir(layout.state_dir(), entry["uid"]), entry["loopback_ip"])


def _wait_rows(instance_id, query, expected, timeout=10):
    started = time.monotonic()
    while (rows := dataplane.sql(instance_id, query)) != expected:
        assert time.monotonic() - started < timeout, f"{instance_id}: {rows} instead of {expected} after {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _replica_lag_points(aws_lab, instance_id, since):
    points = aws_lab.boto3("cloudwatch").get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag", StartTime=since, EndTime=since + datetime.timedelta(hours=1),
        Period=1, Statistics=["Minimum", "Maximum"],
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": instance_id}])["Datapoints"]
    return sorted(points, key=lambda point: point["Timestamp"])


@pytest.fixture
def replica(served, aws_lab):
    """A read replica of the seeded database, made after a row was written on the source."""
    dataplane.sql("cso-lab-db", "CREATE DATABASE app")
    dataplane.sql("cso-lab-db", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32))")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (1, 'before the replica')")
    aws_lab.boto3("rds").create_db_instance_read_replica(DBInstanceIdentifier=REPLICA,
                                                         SourceDBInstanceIdentifier="cso-lab-db")
    served_entry = wait_served(aws_lab, REPLICA)
    # served first, then `available` once the hosts know its name: AWS refuses most calls before
    wait_available(aws_lab.boto3("rds"), REPLICA)
    return served_entry


def test_a_new_replica_is_creating_until_served_with_its_name_on_the_hosts(served, aws_lab, tmp_path):
    """AWS ("DB instance status"): a new instance is ``creating`` until it accepts connections, and
    its DNS name answers from then on. The lab's hosts learn names through the names hook: while the
    hook fails, the replica stays ``creating`` even though its server runs."""
    base = layout.state_dir()
    published = tmp_path / "names"
    copy = f"import shutil; shutil.copy({str(layout.hosts_fragment_file(base))!r}, {str(published)!r})"
    hook = layout.names_hook_file(base)
    hook.write_text(json.dumps({"argv": [sys.executable, "-c", "raise SystemExit(1)"]}))
    rds = aws_lab.boto3("rds")
    try:
        created = rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA,
                                                      SourceDBInstanceIdentifier="cso-lab-db")["DBInstance"]
        assert created["DBInstanceStatus"] == "creating"
        wait_served(aws_lab, REPLICA)  # the server runs ...
        time.sleep(3)
        assert rds.describe_db_instances(DBInstanceIdentifier=REPLICA)["DBInstances"][0]["DBInstanceStatus"] == "creating"
        hook.write_text(json.dumps({"argv": [sys.executable, "-c", copy]}))  # ... the hosts can now learn its name
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=REPLICA,
                                                      WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    finally:
        hook.unlink(missing_ok=True)
    address = rds.describe_db_instances(DBInstanceIdentifier=REPLICA)["DBInstances"][0]["Endpoint"]["Address"]
    assert address in published.read_text()
    assert dataplane.sql(REPLICA, "SELECT @@read_only") == ((1,),)


def test_a_replica_replicates_over_verified_tls_and_refuses_writes(replica, aws_lab):
    assert dataplane.sql(REPLICA, "SELECT id, v FROM app.t") == ((1, "before the replica"),)  # from the dump
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (2, 'after')")
    took = _wait_rows(REPLICA, "SELECT id FROM app.t ORDER BY id", ((1,), (2,)), timeout=5)
    print(f"a row written on the source was on the replica after {took:.2f} s")

    with pytest.raises(pymysql.err.OperationalError) as refused:  # the master user, as on RDS
        dataplane.sql(REPLICA, "INSERT INTO app.t VALUES (3, 'on the replica')")
    assert refused.value.args[0] == 1290 and "read-only" in refused.value.args[1]
    assert dataplane.sql(REPLICA, "SELECT @@read_only") == ((1,),)
    assert dataplane.sql("cso-lab-db", "SELECT @@read_only") == ((0,),)
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (3, 'on the source')")  # the source takes it

    status = _root_server(REPLICA).replication_status()
    source = dataplane.endpoint_for("cso-lab-db")
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes"), status
    assert status["Master_Host"] == source["name"]  # by name: the certificate carries no address
    assert (status["Master_SSL_Allowed"], status["Master_SSL_Verify_Server_Cert"]) == ("Yes", "Yes")
    assert status["Master_SSL_CA_File"] == str(dataplane.ca_bundle_path())
    # on the source: the replication user cannot connect without TLS, and its session is the binlog dump
    grants = dataplane.sql("cso-lab-db", f"SHOW CREATE USER '{status['Master_User']}'@'%'")[0][0]
    assert "REQUIRE SSL" in grants
    dumps = dataplane.sql("cso-lab-db", "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                        f"WHERE USER = '{status['Master_User']}' AND COMMAND = 'Binlog Dump'")
    assert dumps == ((1,),)


def test_replica_lag_is_published_as_the_replicalag_metric(replica, aws_lab):
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (2, 'after')")
    _wait_rows(REPLICA, "SELECT COUNT(*) FROM app.t", ((2,),), timeout=5)
    deadline = time.monotonic() + 6
    while not (points := _replica_lag_points(aws_lab, REPLICA, since)):
        assert time.monotonic() < deadline, "no ReplicaLag datapoint within 6 s"
        time.sleep(0.3)
    print(f"ReplicaLag datapoints: {[(p['Minimum'], p['Maximum']) for p in points]}")
    assert points[-1]["Unit"] == "Seconds"
    assert 0 <= points[-1]["Maximum"] <= 1  # caught up: the replica just had the row
    assert _replica_lag_points(aws_lab, "cso-lab-db", since) == []  # the source is no replica

    # replication stopped (as a broken network would): -1, "replication is currently not active"
    stopped_at = datetime.datetime.now(datetime.timezone.utc)
    _root_server(REPLICA).execute("STOP SLAVE;\n")
    deadline = time.monotonic() + 6
    while not any(point["Minimum"] == -1 for point in _replica_lag_points(aws_lab, REPLICA, stopped_at)):
        assert time.monotonic() < deadline, _replica_lag_points(aws_lab, REPLICA, stopped_at)
        time.sleep(0.3)
    _root_server(REPLICA).execute("START SLAVE;\n")


def test_deleting_the_replica_stops_its_server(replica, aws_lab):
    server = _root_server(REPLICA)
    pid = server.pid()
    assert pid and _runs_mariadbd(pid)
    aws_lab.boto3("rds").delete_db_instance(DBInstanceIdentifier=REPLICA, SkipFinalSnapshot=True)
    deadline = time.monotonic() + 15
    while REPLICA in dataplane.status()["instances"] or _runs_mariadbd(pid):
        assert time.monotonic() < deadline, "the deleted replica is still served"
        time.sleep(0.2)
    assert not _answers(replica["loopback_ip"])
    assert dataplane.sql("cso-lab-db", "SELECT COUNT(*) FROM app.t") == ((1,),)  # the source is untouched


def test_promotion_reboots_into_a_writable_independent_instance(replica, aws_lab, outage):
    rds = aws_lab.boto3("rds")
    aws_lab.set_outage(seconds=1.0)
    started_epoch = time.time()
    rds.promote_read_replica(DBInstanceIdentifier=REPLICA)
    wait_available(rds, REPLICA)
    entry = wait_served(aws_lab, REPLICA, timeout=30, read_only=False)
    restarts = [item for item in dataplane.restarts_since(started_epoch) if item["instance"] == REPLICA]
    assert [item["reason"] for item in restarts] == ["promotion"] and restarts[0]["up"] is not None
    assert entry["replication"] is None
    assert "ReadReplicaSourceDBInstanceIdentifier" not in \
        rds.describe_db_instances(DBInstanceIdentifier=REPLICA)["DBInstances"][0]

    assert _root_server(REPLICA).replication_status() == {}
    dataplane.sql(REPLICA, "INSERT INTO app.t VALUES (10, 'on the promoted instance')")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (20, 'on the former source')")
    # before the promotion a row took well under a second to arrive; give it two
    time.sleep(2)
    assert dataplane.sql(REPLICA, "SELECT id FROM app.t ORDER BY id") == ((1,), (10,))
    assert dataplane.sql("cso-lab-db", "SELECT id FROM app.t ORDER BY id") == ((1,), (20,))


# --- a cross-Region (DR) replica ---------------------------------------------------------------

DR_REPLICA = "cso-lab-db-dr"


@pytest.fixture
def dr_replica(served, aws_lab):
    """A replica of the seeded database in the lab's DR Region (source by ARN, a key of that Region),
    made after a row was written on the source."""
    dataplane.sql("cso-lab-db", "CREATE DATABASE app")
    dataplane.sql("cso-lab-db", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32))")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (1, 'before the replica')")
    dr_region = aws_lab.state["dr_region"]
    source = aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]
    rds_dr = aws_lab.boto3("rds", dr_region)
    key = aws_lab.boto3("kms", dr_region).create_key(Description="dr replica")["KeyMetadata"]["Arn"]
    rds_dr.create_db_instance_read_replica(
        DBInstanceIdentifier=DR_REPLICA, SourceDBInstanceIdentifier=source["DBInstanceArn"],
        SourceRegion=aws_lab.region, KmsKeyId=key, DBSubnetGroupName="cso-db-private")
    served_entry = wait_served(aws_lab, DR_REPLICA)
    wait_available(rds_dr, DR_REPLICA)
    return {"served": served_entry, "rds": rds_dr, "region": dr_region}


def test_a_cross_region_replica_replicates_from_the_source_and_its_promotion_unlinks_it(dr_replica, aws_lab, outage):
    """AWS ("Creating a read replica in a different AWS Region"): the replica's endpoint is in its own
    Region and it replicates asynchronously from the source; "Promoting a read replica": it reboots
    into a standalone, writable instance that no longer receives the source's changes."""
    rds_dr, dr_region = dr_replica["rds"], dr_replica["region"]
    address = rds_dr.describe_db_instances(DBInstanceIdentifier=DR_REPLICA)["DBInstances"][0]["Endpoint"]["Address"]
    assert f".{dr_region}.rds.amazonaws.com" in address
    assert dataplane.endpoint_for(DR_REPLICA)["name"] == address
    assert dataplane.sql(DR_REPLICA, "SELECT id, v FROM app.t") == ((1, "before the replica"),)
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (2, 'after')")
    took = _wait_rows(DR_REPLICA, "SELECT id FROM app.t ORDER BY id", ((1,), (2,)), timeout=5)
    print(f"a row written on the source was on the DR replica after {took:.2f} s")
    assert dataplane.sql(DR_REPLICA, "SELECT @@read_only") == ((1,),)
    status = _root_server(DR_REPLICA).replication_status()
    assert (status["Slave_IO_Running"], status["Master_SSL_Verify_Server_Cert"]) == ("Yes", "Yes"), status
    assert status["Master_Host"] == dataplane.endpoint_for("cso-lab-db")["name"]

    aws_lab.set_outage(seconds=1.0)
    rds_dr.promote_read_replica(DBInstanceIdentifier=DR_REPLICA)
    wait_available(rds_dr, DR_REPLICA)
    wait_served(aws_lab, DR_REPLICA, timeout=30, read_only=False)
    dataplane.sql(DR_REPLICA, "INSERT INTO app.t VALUES (10, 'on the promoted instance')")
    dataplane.sql("cso-lab-db", "INSERT INTO app.t VALUES (20, 'on the former source')")
    time.sleep(2)
    assert dataplane.sql(DR_REPLICA, "SELECT id FROM app.t ORDER BY id") == ((1,), (2,), (10,))
    assert dataplane.sql("cso-lab-db", "SELECT id FROM app.t ORDER BY id") == ((1,), (2,), (20,))
