"""cso_db's read/write split on the host lab: CSO reads from a real read replica, verified.

A read replica of the lab instance is made through the AWS API (``CreateDBInstanceReadReplica``:
the lab serves it with a MariaDB that replicates from the instance's, read-only, with its own
server id and its own certificate). playbooks/cso_db.yml then runs with ``cso_db_read_host`` set:

- a read host that is not a replica (the primary's own endpoint, read_only 0) is refused by the
  preflight before setup.properties changes, and CSO keeps serving;
- the replica's endpoint: the preflight proves verified TLS to it (its own certificate; a CA the
  check generates and a host name the certificate does not carry are refused), read_only 1 there
  and another server id than db.url's; the role writes db.read.url, restarts CSO, checks the
  split again and publishes ``cso_db_result.read_split_verified``. The CSO stand-in then really
  reads through db.read.url (its /health names the server each path landed on: the replica's
  server id for reads, the primary's for writes), its writes reach the replica by replication,
  and the lab probe on CSO's /health (both paths) sees zero failures during the switch.

Keystone on keystone-1, with the same replica (playbooks/keystone_db.yml, opt-in
``keystone_db_read_host``): the primary's endpoint as read host is refused before keystone.conf
changes; the replica's is proved (``read_split_verified``), written as ``slave_connection`` plus
``synchronous_reader = false``, and Keystone then holds connections to the replica.

The module puts today's setup.properties and keystone.conf back and deletes the replica at the end.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phase_support import cso_health

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
DB = "cso-lab-db"
REPLICA = "cso-lab-db-read"
CSO = "cso-1"
PROPS = "/opt/cso/setup.properties"


@pytest.fixture(scope="module")
def env(host_lab):
    from csolab import paths

    state = host_lab.state
    return dict(os.environ, AWS_ENDPOINT_URL=state["endpoint_url"], AWS_REGION=state["region"],
                AWS_DEFAULT_REGION=state["region"], AWS_ACCESS_KEY_ID=state["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=state["aws_secret_access_key"], ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
                ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
                ANSIBLE_SSH_CONTROL_PATH_DIR=str(Path(paths.LAB_DIR) / "ssh" / "cp"))


def cso_db(env, *extra_vars):
    command = [ANSIBLE_PLAYBOOK, "playbooks/cso_db.yml", "-i", "inventories/lab"]
    for variables in extra_vars:
        command += ["-e", json.dumps(variables)]
    began = time.monotonic()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    print(f"{time.monotonic() - began:6.1f} s  rc={completed.returncode}  cso_db.yml {extra_vars}")
    return completed


def failures(completed):
    try:
        plays = json.loads(completed.stdout)["plays"]
    except (json.JSONDecodeError, KeyError):
        return [completed.stdout[-2000:], completed.stderr[-2000:]]
    return [f"{host}: {result.get('msg', '')}" for play in plays for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("failed") and not result.get("ignore_errors")]


def cso_db_result(completed):
    plays = json.loads(completed.stdout)["plays"]
    found = [result["ansible_facts"]["cso_db_result"] for play in plays for task in play["tasks"]
             for host, result in task["hosts"].items() if host == CSO and "cso_db_result" in result.get("ansible_facts", {})]
    assert found, "the role published no cso_db_result"
    return found[-1]


def checksum(path=PROPS):
    from csolab.hosts import fixtures

    return fixtures.sh(CSO, f"sha256sum {path}").stdout.split()[0]


def wait_healthy(timeout=60):
    deadline = time.monotonic() + timeout
    while (answer := cso_health(CSO))[0] != "200":
        assert time.monotonic() < deadline, f"CSO not healthy after {timeout} s: {answer}"
        time.sleep(1)
    return answer[1]


def server_id(instance_id):
    from csolab import dataplane

    return dataplane.sql(instance_id, "SELECT @@server_id, @@read_only")[0]


def put_todays_setup_properties():
    """The fixture's production file (plaintext db.url, no read URL), no role backups, CSO restarted."""
    from csolab.hosts import database, fixtures, topology

    text = fixtures.setup_properties(database.endpoint_name(), topology.lab_secrets()["ssp_db_password"])
    fixtures.put(CSO, PROPS, text, "0640")
    fixtures.sh(CSO, f"chgrp cso {PROPS} && rm -f {PROPS}.cso_db.bak* {PROPS}.cso_db.written && systemctl restart cso")
    wait_healthy()


@pytest.fixture(scope="module")
def replica(host_lab):
    """A read replica of the lab instance, served and resolvable on the hosts; deleted at the end
    (after CSO is back on today's file, so no host reads from a deleted replica)."""
    from csolab import dataplane, hosts

    put_todays_setup_properties()
    rds = host_lab.boto3("rds")
    rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=DB)
    try:
        dataplane.wait_ready(REPLICA, timeout=180)
        hosts.sync_etc_hosts_if_changed()
        address = rds.describe_db_instances(DBInstanceIdentifier=REPLICA)["DBInstances"][0]["Endpoint"]["Address"]
        yield address
    finally:
        put_todays_setup_properties()
        rds.delete_db_instance(DBInstanceIdentifier=REPLICA, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)


def test_a_read_host_that_is_not_a_replica_is_refused_before_any_change(replica, env):
    from csolab.hosts import database

    primary = database.endpoint_name()
    before = checksum()
    completed = cso_db(env, {"cso_db_read_host": primary})

    assert completed.returncode != 0, "a writable server as read host must be refused"
    messages = failures(completed)
    assert any("refusing to change" in m and "not a read replica (read_only=0)" in m for m in messages), messages
    assert checksum() == before, "setup.properties changed although the preflight refused"
    assert cso_health(CSO)[0] == "200"


def test_cso_reads_from_the_replica_with_zero_probe_failures(replica, env, tmp_path):
    from csolab import dataplane
    from csolab.hosts import fixtures
    from csolab.probe import BackgroundProbe, format_summary

    primary_id, primary_read_only = server_id(DB)
    replica_id, replica_read_only = server_id(REPLICA)
    assert (primary_read_only, replica_read_only) == (0, 1) and primary_id != replica_id
    before = wait_healthy()
    assert before["read"]["server_id"] == primary_id and not before["read"]["split"], before

    probe = BackgroundProbe(tmp_path / "probe.json", interval=0.3).start()
    try:
        completed = cso_db(env, {"cso_db_read_host": replica})
    finally:
        summary = probe.stop()
    print(format_summary(summary))
    assert completed.returncode == 0, failures(completed)

    result = cso_db_result(completed)
    assert result["changed"] and result["tls_verified"] and result["read_split_verified"], result
    assert (result["write_server_id"], result["read_server_id"]) == (primary_id, replica_id), result
    read_report = result["preflight"][1]
    assert f"//{replica}:3306/" in read_report["url"] and read_report["cipher"], read_report
    assert read_report["negatives"]["untrusted_ca"]["refused"] and read_report["negatives"]["untrusted_ca"]["tls_failure"]
    assert read_report["negatives"]["wrong_host_name"]["refused"]
    assert read_report["negatives"]["wrong_host_name"]["tls_failure"]

    text = fixtures.sh(CSO, f"grep -E '^db\\.(url|read\\.url)=' {PROPS}").stdout
    assert f"db.read.url=jdbc:mariadb://{replica}:3306/ssp?useSSL=true&" in text, text
    assert "trustServerCertificate=false" in text.split("db.read.url=")[1]

    paths = wait_healthy()
    assert paths["read"] == {"server_id": replica_id, "read_only": 1, "split": True}, paths
    assert paths["write"] == {"server_id": primary_id, "read_only": 0}, paths
    # CSO's writes (through db.url, on the primary) reach the replica it reads from
    beats = "SELECT COALESCE(SUM(beats), 0) FROM ssp.cso_heartbeat"
    written = int(dataplane.sql(DB, beats)[0][0])
    deadline = time.monotonic() + 30
    while (replicated := int(dataplane.sql(REPLICA, beats)[0][0])) < written:
        assert time.monotonic() < deadline, (
            f"CSO's {written} heartbeats on the primary never reached the replica ({replicated} there): "
            f"{dataplane.status()['instances']}")
        time.sleep(0.5)

    stats = summary["targets"][f"cso:{CSO}"]
    assert stats["requests"] >= 5, f"the probe barely ran ({stats['requests']} CSO requests)"
    assert stats["failures"] == 0, [f for f in summary["failure_log"] if f["target"] == f"cso:{CSO}"][:3]

    again = cso_db(env, {"cso_db_read_host": replica})
    assert again.returncode == 0, failures(again)
    assert not cso_db_result(again)["changed"] and cso_db_result(again)["read_split_verified"]


# --- Keystone (opt-in keystone_db_read_host) on keystone-1, reusing the replica ----------------

KEYSTONE = "keystone-1"
KEYSTONE_CONF = "/etc/keystone/keystone.conf"


def keystone_db(env, *extra_vars):
    command = [ANSIBLE_PLAYBOOK, "playbooks/keystone_db.yml", "-i", "inventories/lab",
               "-e", json.dumps({"keystone_db_hosts": KEYSTONE})]
    for variables in extra_vars:
        command += ["-e", json.dumps(variables)]
    began = time.monotonic()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    print(f"{time.monotonic() - began:6.1f} s  rc={completed.returncode}  keystone_db.yml {extra_vars}")
    return completed


def put_todays_keystone_conf():
    from csolab.hosts import database, fixtures, topology

    conf = fixtures.keystone_conf(database.endpoint_name(), topology.lab_secrets()["keystone_db_password"])
    fixtures.put(KEYSTONE, KEYSTONE_CONF, conf, "0640")
    fixtures.sh(KEYSTONE, f"rm -f {KEYSTONE_CONF}.keystone_db.bak* {KEYSTONE_CONF}.keystone_db.written "
                          "&& systemctl reload keystone")


@pytest.fixture
def todays_keystone_conf(replica):
    from csolab.hosts import wait_ready

    put_todays_keystone_conf()
    wait_ready()
    yield replica
    put_todays_keystone_conf()
    wait_ready()


def keystone_connections(instance_id):
    from csolab import dataplane

    return dataplane.sql(instance_id, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'keystone'")[0][0]


def test_keystone_read_host_that_is_not_a_replica_is_refused(todays_keystone_conf, env):
    from csolab.hosts import database

    before = checksum_on(KEYSTONE, KEYSTONE_CONF)
    completed = keystone_db(env, {"keystone_db_read_host": database.endpoint_name()})
    assert completed.returncode != 0
    messages = failures(completed)
    assert any("refusing to change" in m and "not a read replica (read_only=0)" in m for m in messages), messages
    assert checksum_on(KEYSTONE, KEYSTONE_CONF) == before


def test_keystone_reads_from_the_replica_when_opted_in(todays_keystone_conf, env):
    from csolab import probe
    from csolab.hosts import fixtures, topology

    replica = todays_keystone_conf
    completed = keystone_db(env, {"keystone_db_read_host": replica})
    assert completed.returncode == 0, failures(completed)
    results = [result["ansible_facts"]["keystone_db_result"] for play in json.loads(completed.stdout)["plays"]
               for task in play["tasks"] for host, result in task["hosts"].items()
               if "keystone_db_result" in result.get("ansible_facts", {})]
    assert results and results[-1]["read_split_verified"], results
    assert results[-1]["read_preflight"]["read_only"] == 1 and results[-1]["preflight"]["read_only"] == 0
    conf = fixtures.sh(KEYSTONE, f"grep -E '^(slave_connection|synchronous_reader)' {KEYSTONE_CONF}").stdout
    assert f"@{replica}:3306/keystone?" in conf and "ssl_check_hostname=true" in conf, conf
    assert "synchronous_reader = false" in conf, conf
    # Keystone itself now holds connections to the replica (its reader engine), and serves tokens
    probe.in_namespace(lambda: probe.keystone_round_trip(topology.HOSTS[KEYSTONE]["ip"], 5000))
    assert keystone_connections(REPLICA) > 0, "Keystone opened no connection to the replica"


def checksum_on(host, path):
    from csolab.hosts import fixtures

    return fixtures.sh(host, f"sha256sum {path}").stdout.split()[0]
