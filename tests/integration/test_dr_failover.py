"""playbooks/dr_failover.yml on the host lab: the DR replica in the lab's DR Region (a MariaDB replicating from the
primary's) is promoted, and Keystone and CSO move to its endpoint with verified TLS.

The DR replica is made by phase3.yml (``--limit`` to the database: its step dr_replica only; no storage change, no
blue/green), first with phase 3's default security group (it admits nobody), then admitting the lab's VPC.

1. without the confirmation: refused, no mutating call;
2. a DR replica whose security group admits nobody: refused before the promotion, saying what to set;
3. the failover: a row written on the primary before it is on the promoted instance; the DR instance is
   standalone and writable; keystone.conf and setup.properties name the DR endpoint with verified TLS; tokens
   are issued and validated through every Keystone host and the load balancer, CSO answers its health check,
   and the promoted instance sees the services' sessions.

The lab is reset for the next module that uses it.
"""

import json

import pytest

from phase_support import DB, KEYSTONE_HOSTS, aws_env_module, cso_health, failure_messages, keystone_round_trips, run_ansible  # noqa: F401
from phase_support import reset_for_the_next_module

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

DR_REPLICA = f"{DB}-dr"
LIMIT = ("--limit", DB)
ONLY_THE_DR_REPLICA = {"phase3_storage": False, "phase3_blue_green": False, "phase3_stop_after": "dr_replica"}
LAB_VPC = ["10.20.0.0/16"]  # the hosts' VPC addresses (csolab.dataplane.net: 10.20.1.x)
CONFIRM = {"phase3_dr_failover_confirm": DR_REPLICA}
# phase 1's enhanced-monitoring role, which the DR replica uses (the seeded lab has not run phase 1)
MONITORING_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                            "Principal": {"Service": "monitoring.rds.amazonaws.com"}}]}


@pytest.fixture(scope="module")
def dr_lab(host_lab, aws_env_module, request):
    """The host lab with phase 3's DR replica (admitting nobody yet) and a row written on the primary before it."""
    from csolab import dataplane

    dataplane.sql(DB, "CREATE DATABASE IF NOT EXISTS drtest")
    dataplane.sql(DB, "CREATE TABLE IF NOT EXISTS drtest.t (id INT PRIMARY KEY, v VARCHAR(32))")
    dataplane.sql(DB, "INSERT INTO drtest.t VALUES (1, 'before the failover')")
    host_lab.set_outage(seconds=2.0, failover_seconds=1.0)
    host_lab.boto3("iam").create_role(RoleName=f"{DB}-rds-monitoring", AssumeRolePolicyDocument=json.dumps(MONITORING_TRUST))
    made = run_ansible(aws_env_module, "phase3.yml", *LIMIT, "-e", json.dumps(ONLY_THE_DR_REPLICA))
    assert made.returncode == 0, failure_messages(made) or made.stderr[-2000:]
    yield host_lab
    reset_for_the_next_module(request)


def failover(env, **extra):
    return run_ansible(env, "dr_failover.yml", "-e", json.dumps(extra))


def test_without_the_confirmation_nothing_happens(dr_lab, aws_env_module):
    dr_lab.clear_calls()
    completed = failover(aws_env_module)
    assert completed.returncode != 0
    assert any(f"-e phase3_dr_failover_confirm={DR_REPLICA}" in m for m in failure_messages(completed))
    assert dr_lab.mutating_calls() == []


def test_a_dr_replica_that_admits_nobody_is_not_promoted(dr_lab, aws_env_module):
    dr_lab.clear_calls()
    completed = failover(aws_env_module, **CONFIRM)
    assert completed.returncode != 0
    assert any("admit nobody" in m and "phase3_dr_allowed_cidrs" in m for m in failure_messages(completed))
    assert dr_lab.mutating_calls() == []


def test_the_failover_promotes_the_dr_replica_and_moves_keystone_and_cso(dr_lab, aws_env_module):
    from csolab import dataplane
    from csolab.hosts import fixtures

    opened = run_ansible(aws_env_module, "phase3.yml", *LIMIT, "-e",
                         json.dumps(dict(ONLY_THE_DR_REPLICA, phase3_dr_allowed_cidrs=LAB_VPC)))
    assert opened.returncode == 0, failure_messages(opened)
    completed = failover(aws_env_module, **CONFIRM)
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]

    rds_dr = dr_lab.boto3("rds", dr_lab.state["dr_region"])
    promoted = rds_dr.describe_db_instances(DBInstanceIdentifier=DR_REPLICA)["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in promoted
    endpoint = promoted["Endpoint"]["Address"]
    assert dataplane.sql(DR_REPLICA, "SELECT id, v FROM drtest.t") == ((1, "before the failover"),)
    dataplane.sql(DR_REPLICA, "INSERT INTO drtest.t VALUES (2, 'written on the promoted instance')")

    for host in KEYSTONE_HOSTS:
        connection = fixtures.sh(host, "grep '^connection' /etc/keystone/keystone.conf").stdout
        assert f"@{endpoint}:" in connection and "ssl_ca=" in connection and "ssl_check_hostname=true" in connection, host
    url = fixtures.sh("cso-1", "grep '^db.url=' /opt/cso/setup.properties").stdout
    assert f"//{endpoint}:" in url, url
    keystone_round_trips()
    # CSO's write and read paths ran on the promoted instance (its answer says where they ran: the lab's pools close
    # connections older than 5 s, so who is connected afterwards is no proof for CSO)
    dr_server = dataplane.sql(DR_REPLICA, "SELECT @@server_id")[0][0]
    status, paths = cso_health()
    assert status == "200", paths
    assert paths["write"] == {"server_id": dr_server, "read_only": 0}, paths
    assert paths["read"]["server_id"] == dr_server, paths
    assert dr_server != dataplane.sql(DB, "SELECT @@server_id")[0][0]
    sessions = dataplane.sql(DR_REPLICA, "SELECT DISTINCT USER FROM information_schema.PROCESSLIST WHERE USER <> 'system user'")
    assert "keystone" in {row[0] for row in sessions}, sessions
