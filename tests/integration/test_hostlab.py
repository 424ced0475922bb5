"""The host lab: real Keystone, CSO and RabbitMQ hosts against the data plane, driven from the AWS side.

Brings the full topology up once for the module (``python -m csolab up --hosts``), and tears it
down at the end unless CSO_LAB_KEEP is set. State changed through the AWS API is put back.
"""

import time

import pytest

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

REQUIRE_TLS_GROUP = "cso-lab-hostlab-tls"
# each request of a polling check gives up after this (the deadlines are 15-120 s)
ATTEMPT_TIMEOUT = 8
DEDICATED_SG = "cso-lab-hostlab-db-only"


def _eventually(check, timeout, what, explain=None):
    """Poll ``check`` (each attempt bounded well under ``timeout`` by its own timeout) until it is true.

    On failure the message carries the last error and ``explain()``: the state that says why.
    """
    deadline = time.monotonic() + timeout
    last, attempts = None, 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            if check():
                return
        except Exception as error:  # noqa: BLE001 (keep trying until the deadline)
            last = error
        time.sleep(1)
    context = f"\n{explain()}" if explain else ""
    pytest.fail(f"{what} not within {timeout}s after {attempts} attempts (last error: {last!r}){context}")


def _database_state(lab):
    """What decides who reaches the database: its security groups, the firewall the bridge applied."""
    from csolab import dataplane

    instance = lab.boto3("rds").describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]
    status = dataplane.status()
    served = status.get("instances", {}).get("cso-lab-db", {})
    return (f"instance security groups: {[g['VpcSecurityGroupId'] for g in instance['VpcSecurityGroups']]}\n"
            f"bridge status written {time.time() - status.get('ts', 0):.1f}s ago, instance: {served}\n"
            f"firewall in force:\n{status.get('firewall')}")


def _wait_database_back(rds, timeout=120):
    """After a reboot: the instance is available again (the lab holds it at "rebooting" until the
    data plane's server accepts connections) and no restart is still in progress."""
    from csolab import dataplane

    rds.get_waiter("db_instance_available").wait(
        DBInstanceIdentifier="cso-lab-db", WaiterConfig={"Delay": 1, "MaxAttempts": timeout})
    dataplane.wait_restarts_over(timeout=timeout)


def _fails(action):
    from csolab.probe import in_namespace

    try:
        in_namespace(action)
    except Exception:  # noqa: BLE001 (a failure is what we wait for)
        return True
    return False


def _succeeds(action):
    from csolab.probe import in_namespace

    return in_namespace(action)


def _keystone(host):
    from csolab.hosts.topology import HOSTS
    from csolab.probe import keystone_round_trip

    return lambda: keystone_round_trip(HOSTS[host]["ip"], 5000, timeout=ATTEMPT_TIMEOUT)


def _through_lb():
    from csolab.hosts.topology import KEYSTONE_LB
    from csolab.probe import keystone_round_trip

    return lambda: keystone_round_trip(*KEYSTONE_LB, timeout=ATTEMPT_TIMEOUT)


def _cso():
    from csolab.hosts.topology import HOSTS
    from csolab.probe import cso_health

    return lambda: cso_health(HOSTS["cso-1"]["ip"], timeout=ATTEMPT_TIMEOUT)


def _db_login_from(host, plaintext=False):
    """Log in to the lab database from a host with the Keystone account.

    The mariadb client (10.11) uses TLS when the server offers it; ``plaintext`` forbids that."""
    from csolab import hosts
    from csolab.hosts import database, topology

    password = topology.lab_secrets()["keystone_db_password"]
    # --connect-timeout bounds the TCP connect; `timeout` bounds the rest (handshake, query)
    tls = " --skip-ssl" if plaintext else ""
    return hosts.ssh(host, f"timeout 8 mariadb{tls} --connect-timeout=3 -h {database.endpoint_name()} -u keystone "
                           f"-p'{password}' -N -e 'SELECT 1' keystone", check=False, timeout=12)


def test_topology_is_up_and_reachable_over_ssh(host_lab):
    from csolab import hosts
    from csolab.hosts import database, topology

    states = hosts.status()["containers"]
    assert {name: state for name, state in states.items()} == {name: "running" for name in topology.HOSTS}
    endpoint = database.endpoint_name()
    for name in topology.HOSTS:
        result = hosts.ssh(name, "hostname; systemctl is-system-running; getent hosts " + endpoint, check=False)
        assert result.returncode == 0, (name, result.stderr)
        hostname, system_state, resolved = result.stdout.split("\n")[:3]
        assert hostname == name
        assert system_state in ("running", "degraded")
        assert resolved.startswith("10.89.20."), resolved


def test_keystone_issues_tokens_through_the_load_balancer(host_lab):
    from csolab.hosts import lb

    assert _succeeds(_through_lb())
    assert _succeeds(_keystone("keystone-1"))
    assert _succeeds(_keystone("keystone-2"))
    assert lb.backend_states() == {"keystone-1": "UP", "keystone-2": "UP"}


def test_cso_health_is_200(host_lab):
    from csolab import hosts

    assert _succeeds(_cso())
    local = hosts.ssh("cso-1", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health")
    assert local.stdout == "200"


def test_keystone_and_cso_hosts_sign_as_their_roles_with_no_policy(host_lab):
    """Each Keystone and CSO host holds an STS session of its kind's role (the lab's instance
    profile), readable by root only; the roles start without any policy."""
    import boto3
    from csolab import hosts
    from csolab.hosts import identities

    iam = host_lab.boto3("iam")
    recorded = identities.recorded()
    expected = {"keystone-1": "lab-keystone-hosts", "keystone-2": "lab-keystone-hosts", "cso-1": "lab-cso-hosts"}
    assert {host: entry["role_name"] for host, entry in recorded.items()} == expected
    for host, role_name in expected.items():
        listing = hosts.ssh(host, "stat -c '%a %U' /root/.aws/credentials; cat /root/.aws/credentials").stdout
        mode_owner, credentials = listing.split("\n", 1)
        assert mode_owner == "600 root"
        fields = dict(line.split(" = ", 1) for line in credentials.splitlines() if " = " in line)
        caller = boto3.client("sts", endpoint_url=host_lab.endpoint_url, region_name="eu-west-2",
                              aws_access_key_id=fields["aws_access_key_id"],
                              aws_secret_access_key=fields["aws_secret_access_key"],
                              aws_session_token=fields["aws_session_token"]).get_caller_identity()
        assert caller["Arn"].endswith(f":assumed-role/{role_name}/{host}"), caller["Arn"]
        assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == []
        assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []


def test_rabbitmq_listens_in_plaintext(host_lab):
    from csolab import hosts

    result = hosts.ssh("rabbitmq-1", "rabbitmq-diagnostics -q check_port_listener 5672", check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_keystone_reload_is_graceful(host_lab, tmp_path):
    """``systemctl reload keystone`` (uWSGI chain reload) loses no request, directly or through the LB.

    A chain reload skips any worker it finds not "accepting" and ignores a request while a chain is
    still running: the reload is sent once every worker accepts, and it is over when every worker is
    new and accepting. A worker the chain skipped anyway is replaced by one more reload (at most two),
    and the journal says why.
    """
    from csolab.hosts import fixtures
    from csolab.probe import BackgroundProbe, format_summary

    probe = BackgroundProbe(tmp_path / "probe.json").start()
    try:
        time.sleep(3)
        for host in ("keystone-1", "keystone-2"):
            _eventually(lambda h=host: fixtures.keystone_workers_accepting(h), 300, f"{host} workers accepting",
                        explain=lambda h=host: str(fixtures.keystone_workers(h)))
            before = fixtures.keystone_workers(host)
            rounds = _chain_reload_until_replaced(host, before)
            print(f"{host}: every worker replaced after {rounds} reload(s)")
        time.sleep(3)
    finally:
        summary = probe.stop()
        print(format_summary(summary))
    assert summary["requests"] > 10
    assert summary["failures"] == 0, summary["failure_log"][:5]


def _chain_reload_until_replaced(host, before, rounds=3):
    from csolab.hosts import fixtures

    for attempt in range(1, rounds + 1):
        fixtures.sh(host, "systemctl reload keystone")
        if _chain_settles(host, before):
            return attempt
        print(f"{host}: the chain left old workers after reload {attempt}: {fixtures.keystone_workers(host)}\n"
              f"{_keystone_journal(host)}")
    pytest.fail(f"{host}: workers not all replaced after {rounds} chain reloads: before {before}, now "
                f"{fixtures.keystone_workers(host)}\n{_keystone_journal(host)}")


def _chain_settles(host, before, timeout=180, quiet=10):
    """True once every worker is new and accepting; False when the workers stop changing for
    ``quiet`` seconds, all accepting, with an old one left (the chain skipped it)."""
    from csolab.hosts import fixtures

    deadline = time.monotonic() + timeout
    last, unchanged_since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = fixtures.keystone_workers(host)
        if _workers_replaced(now, before):
            return True
        if now != last:
            last, unchanged_since = now, time.monotonic()
        elif all(now["workers"].values()) and time.monotonic() - unchanged_since > quiet:
            return False
        time.sleep(1)
    return False


def _keystone_journal(host):
    from csolab.hosts import fixtures

    return fixtures.sh(host, "journalctl -u keystone --no-pager -n 30 | grep -iE 'chain|worker|respawn'",
                       check=False).stdout


def _workers_replaced(now, before):
    """The master stays and every worker is new, as many as before and accepting (a chain reload, not a restart)."""
    return (now["master"] == before["master"] and len(now["workers"]) == len(before["workers"])
            and not now["workers"].keys() & before["workers"].keys() and all(now["workers"].values()))


@pytest.mark.slow
def test_requiring_tls_breaks_keystone_and_cso_until_it_is_lifted(host_lab, tmp_path):
    """Production's failure: the database requires TLS before the clients are reconfigured."""
    from csolab.hosts import lb
    from csolab.probe import BackgroundProbe, format_summary

    rds = host_lab.boto3("rds")
    instance = rds.describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]
    original_group = instance["DBParameterGroups"][0]["DBParameterGroupName"]
    rds.create_db_parameter_group(DBParameterGroupName=REQUIRE_TLS_GROUP, DBParameterGroupFamily="mysql8.0",
                                  Description="host lab: require_secure_transport")
    set_rst = lambda value: rds.modify_db_parameter_group(  # noqa: E731
        DBParameterGroupName=REQUIRE_TLS_GROUP,
        Parameters=[{"ParameterName": "require_secure_transport", "ParameterValue": value, "ApplyMethod": "immediate"}])
    explain = lambda: f"load balancer: {lb.backend_states()}\n{_database_state(host_lab)}"  # noqa: E731
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    try:
        set_rst("0")
        rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", DBParameterGroupName=REQUIRE_TLS_GROUP,
                               ApplyImmediately=True)
        rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")  # a new group applies at reboot
        _wait_database_back(rds)
        _eventually(lambda: _succeeds(_through_lb()) and _succeeds(_cso()), 30, "healthy before TLS is required",
                    explain=explain)

        set_rst("1")  # dynamic: applies at once, through the AWS API only
        _eventually(lambda: _fails(_keystone("keystone-1")) and _fails(_keystone("keystone-2")), 60,
                    "Keystone failing", explain=explain)
        _eventually(lambda: _fails(_through_lb()), 30, "Keystone failing through the load balancer", explain=explain)
        _eventually(lambda: _fails(_cso()), 60, "CSO failing", explain=explain)
        _eventually(lambda: set(lb.backend_states().values()) == {"DOWN"}, 15, "the LB taking both hosts out", explain=explain)

        set_rst("0")
        _eventually(lambda: _succeeds(_keystone("keystone-1")) and _succeeds(_keystone("keystone-2")), 90,
                    "Keystone recovering", explain=explain)
        _eventually(lambda: _succeeds(_through_lb()), 30, "Keystone recovering through the load balancer", explain=explain)
        _eventually(lambda: _succeeds(_cso()), 60, "CSO recovering", explain=explain)
        _eventually(lambda: set(lb.backend_states().values()) == {"UP"}, 15, "the LB taking both hosts back", explain=explain)
        time.sleep(3)
    finally:
        summary = probe.stop()
        print(format_summary(summary))
        rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", DBParameterGroupName=original_group,
                               ApplyImmediately=True)
        rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")
        _wait_database_back(rds)
        rds.delete_db_parameter_group(DBParameterGroupName=REQUIRE_TLS_GROUP)
    for target in ("keystone:keystone-1", "keystone:keystone-2", "keystone:lb", "cso:cso-1"):
        stats = summary["targets"][target]
        assert stats["failures"] > 0, f"{target} never failed while TLS was required"
        last = stats["outages"][-1]
        assert last["end"] < summary["ended"] - 1, f"{target} had not recovered when the probe stopped"


@pytest.mark.slow
def test_a_host_outside_the_allowed_security_group_is_cut_off(host_lab):
    """Moving the instance from the shared core SG to a dedicated one cuts off everyone it does not allow."""
    ec2 = host_lab.boto3("ec2")
    rds = host_lab.boto3("rds")
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups()["SecurityGroups"]}
    instance = rds.describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]
    original_sgs = [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]]
    assert _db_login_from("keystone-1").returncode == 0
    before = _db_login_from("outsider-1")
    assert before.returncode == 0, "today the shared SG's VPC-wide rule lets the outsider in: " + before.stderr

    dedicated = ec2.create_security_group(GroupName=DEDICATED_SG, Description="database: keystone and cso only",
                                          VpcId=groups["core-servers"]["VpcId"])["GroupId"]
    try:
        ec2.authorize_security_group_ingress(GroupId=dedicated, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
             "UserIdGroupPairs": [{"GroupId": groups["keystone-servers"]["GroupId"]},
                                  {"GroupId": groups["cso-servers"]["GroupId"]}]}])
        rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", VpcSecurityGroupIds=[dedicated],
                               ApplyImmediately=True)
        _eventually(lambda: _db_login_from("outsider-1").returncode != 0, 30, "outsider-1 cut off",
                    explain=lambda: _database_state(host_lab))
        assert _db_login_from("rabbitmq-1").returncode != 0, "rabbitmq-1 is not allowed either"
        assert _db_login_from("keystone-1").returncode == 0, "keystone-1 is still allowed"
        assert _succeeds(_cso())
    finally:
        rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", VpcSecurityGroupIds=original_sgs,
                               ApplyImmediately=True)
        _eventually(lambda: _db_login_from("outsider-1").returncode == 0, 30, "outsider-1 allowed again",
                    explain=lambda: _database_state(host_lab))
        ec2.delete_security_group(GroupId=dedicated)


SEEDED_FILES = {
    "keystone-1": ["/etc/keystone/keystone.conf", "/etc/keystone/uwsgi.ini"],
    "cso-1": ["/opt/cso/setup.properties"],
    "rabbitmq-1": ["/etc/rabbitmq/rabbitmq.conf"],
}
SERVICES = {"keystone-1": "keystone", "cso-1": "cso", "rabbitmq-1": "rabbitmq-server"}


def _host_state(host):
    """What a scenario may change on a host: its files' content and mode, its service, stray files."""
    from csolab import hosts

    files = " ".join(SEEDED_FILES[host])
    script = (f"for f in {files}; do stat -c '%n %a %U' $f; sha256sum $f; done; "
              f"systemctl is-active {SERVICES[host]}; ls -1 /etc/ssl/rds 2>/dev/null; true")
    return hosts.ssh(host, script, timeout=20).stdout


@pytest.mark.slow
def test_reset_puts_the_hosts_the_database_and_aws_back_to_the_seeded_state(host_lab):
    """What a Molecule scenario or a test changes (files, services, the instance's parameter group and
    TLS requirement, the call log) is back after `hosts.reset()`, without a rebuild."""
    from csolab import dataplane, hosts

    hosts.reset()  # earlier modules leave their files (CA bundles, backups): start from the seeded state
    rds = host_lab.boto3("rds")
    seeded_group = rds.describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0][
        "DBParameterGroups"][0]["DBParameterGroupName"]
    seeded = {host: _host_state(host) for host in SEEDED_FILES}
    assert "active" in seeded["keystone-1"] and "/opt/cso/setup.properties 640" in seeded["cso-1"], seeded
    assert _db_login_from("keystone-1", plaintext=True).returncode == 0, "seeded: plaintext accepted"
    try:
        hosts.ssh("keystone-1", "echo '# changed' >> /etc/keystone/keystone.conf"
                                " && chmod 0644 /etc/keystone/keystone.conf && mkdir -p /etc/ssl/rds"
                                " && echo x > /etc/ssl/rds/rds-ca-bundle.pem && systemctl stop keystone")
        hosts.ssh("cso-1", "sed -i 's/^db.url=jdbc:mysql:/db.url=jdbc:mariadb:/' /opt/cso/setup.properties")
        hosts.ssh("rabbitmq-1", "echo 'listeners.ssl.default = 5671' >> /etc/rabbitmq/rabbitmq.conf")
        rds.create_db_parameter_group(DBParameterGroupName=REQUIRE_TLS_GROUP, DBParameterGroupFamily="mysql8.0",
                                      Description="reset test")
        rds.modify_db_parameter_group(DBParameterGroupName=REQUIRE_TLS_GROUP, Parameters=[
            {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
        rds.modify_db_instance(DBInstanceIdentifier="cso-lab-db", DBParameterGroupName=REQUIRE_TLS_GROUP,
                               ApplyImmediately=True)
        rds.reboot_db_instance(DBInstanceIdentifier="cso-lab-db")
        dataplane.wait_ready("cso-lab-db", timeout=30,
                             predicate=lambda entry: entry["require_secure_transport"] is True)
        assert _db_login_from("keystone-1", plaintext=True).returncode != 0, "plaintext refused once TLS is required"
        changed = {host: _host_state(host) for host in SEEDED_FILES}
        assert all(changed[host] != seeded[host] for host in SEEDED_FILES), changed
        assert host_lab.mutating_calls()
    finally:
        timings = hosts.reset()
        print(f"reset: {timings}")

    assert host_lab.calls() == [], "the call log is empty after a reset"
    assert {host: _host_state(host) for host in SEEDED_FILES} == seeded
    instance = rds.describe_db_instances(DBInstanceIdentifier="cso-lab-db")["DBInstances"][0]
    assert instance["DBParameterGroups"][0]["DBParameterGroupName"] == seeded_group
    assert dataplane.status()["instances"]["cso-lab-db"]["require_secure_transport"] is False
    assert _db_login_from("keystone-1", plaintext=True).returncode == 0, "plaintext accepted again, as seeded"
    assert _succeeds(_through_lb()) and _succeeds(_cso())
