"""playbooks/phase2.yml and rollback_phase2.yml end to end on the host lab.

Shares the session's host lab and the helpers of tests/phase_support.py. Starts from phase 1's end
state: test_phase1 leaves it converged for this module (STARTS_FROM_PHASE1_END_STATE), else the
module fixture runs phase1.yml. Phase 2 runs with IAM database authentication on
(CSO_LAB_PHASE2_IAM=true: inventories/lab/phase2.yml); phase 1 before it with it off. In file order:

1. ``--syntax-check`` of both playbooks against inventories/prod (no lab);
2. from phase 1's end state with another name for phase 1's dedicated security group, phase 2's
   preflight refuses, names phase 1's missing step, and makes no mutating call;
3. the Keystone policy on a role the Keystone hosts do not sign with (phase 2 up to step iam, without
   the replica): the database side converges, keystone-1's preflight is refused with its own
   identity, and no Keystone or CSO file changes;
4. ``phase2_run`` (module fixture): phase 2 with the probe running and the password users' lock on
   (``phase2_iam_lock_password_users``), then a second run: the replica exists as hardened as its
   source and really replicates, CSO's ``db.read.url`` names the replica, zero probe failures, the
   second run changes nothing; Keystone and CSO log in with IAM tokens their hosts sign (no database
   password in their files, the data plane's IAM log shows allowed TLS logins of both users by the
   hosts' role sessions); the password users are locked (a login with their passwords gets the
   locked-account error) on the primary and the replica, and both services stay healthy;
5. Keystone keeps serving once its first IAM tokens expired on the lab's clock (moved 14 minutes ahead):
   every new connection logs in with a new token signed by the hosts' own role sessions;
6. rollback_phase2.yml: the password users unlocked before any host play, both services back on them
   (healthy), CSO's read URL goes, no host refers to the replica, the replica is deleted; the IAM users
   and policies stay;
7. the lock refuses while a host is still on its password: phase 2 (IAM and the lock on, no replica, no
   audit) with ``--limit`` leaving keystone-2 out moves keystone-1 and CSO to IAM, then refuses, names
   keystone-2 only, and locks nothing (keystone-2 keeps serving with its password).

When a later module uses the host lab, the module leaves it reset (rollback_tls cannot restore the
files from before phase 2: docs/runbook-phase2.md).
"""

import json
import os
import time
from pathlib import Path

import pytest

from phase_support import (  # noqa: F401  (aws_env_module: a fixture used by name)
    DB, KEYSTONE_HOSTS, REPO_ROOT, SEEDED_CA, aws_env_module, changed_tasks, cso_health, failure_messages, host_checksums,
    instance, instance_ca, keystone_round_trips, keystone_through_lb, leave_host_lab, leaked_secrets, requires_tls,
    run_ansible, total)
from support import unavailable

REPLICA = f"{DB}-replica"
# test_phase1.py's teardown leaves its converged end state for this module instead of rolling it
# back (and phase2_lab then does not converge phase 1 again)
STARTS_FROM_PHASE1_END_STATE = True

# IAM database authentication (inventories/lab/phase2.yml, group_vars/keystone.yml and cso.yml)
KEYSTONE_IAM_USER, CSO_IAM_USER = "keystone_iam", "cso_iam"
KEYSTONE_PASSWORD_USER, CSO_PASSWORD_USER = "keystone", "ssp_user"
KEYSTONE_ROLE, CSO_ROLE = "lab-keystone-hosts", "lab-cso-hosts"
POLICY = f"rds-db-connect-{DB}"  # rds_iam_db_auth's default policy name
# the password users' lock (step lock_password_users): off in the lab's inventory, on for this module's converge
LOCK = ("-e", "phase2_iam_lock_password_users=true")
# a login to a locked account: MySQL 8.0 ER_ACCOUNT_HAS_BEEN_LOCKED, MariaDB's (the lab's data plane)
ACCOUNT_LOCKED_ERRNOS = (3118, 4151)
PASSWORD_SECRETS = {KEYSTONE_PASSWORD_USER: "keystone_db_password", CSO_PASSWORD_USER: "ssp_db_password"}
ELSEWHERE_ROLE = "phase2-test-not-the-keystone-hosts"
# RDS IAM authentication tokens live 15 minutes; the clock test moves the lab's clock 14 minutes ahead
TOKEN_LIFETIME = 900
CLOCK_MOVE = TOKEN_LIFETIME - 60
KEYSTONE_RECYCLE = 5  # keystone_db_connection_recycle_time in inventories/lab
WHEELHOUSE = Path(os.environ.get("CSO_KEYSTONE_WHEELHOUSE", "/var/cache/cso-rds-hardening/wheels"))
JAR_CACHE = Path("/var/cache/cso-rds-hardening/jars")  # cso_db_driver_cache_dir
EC2_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def property_line(key, host="cso-1"):
    from csolab.hosts import fixtures

    return fixtures.sh(host, f"grep '^{key}=' /opt/cso/setup.properties; true").stdout.strip()


def read_url():
    return property_line("db.read.url")


def properties(host="cso-1"):
    from csolab.hosts import fixtures

    text = fixtures.sh(host, "cat /opt/cso/setup.properties").stdout
    return text, dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def keystone_database_section(host):
    from csolab.hosts import fixtures

    conf = fixtures.sh(host, "cat /etc/keystone/keystone.conf").stdout
    return conf, conf.split("[database]")[1].split("\n[")[0]


def iam_accounts(instance_id):
    from csolab import dataplane

    rows = dataplane.sql(instance_id, "SELECT user, plugin, authentication_string, ssl_type FROM mysql.user "
                                      f"WHERE user IN ('{KEYSTONE_IAM_USER}', '{CSO_IAM_USER}') ORDER BY user")
    return [tuple(row) for row in rows]


def users(instance_id):
    from csolab import dataplane

    return {row[0] for row in dataplane.sql(instance_id, "SELECT user FROM mysql.user")}


def password_login(user, instance_id=DB):
    """A verified-TLS login as a service's password user with its stored password (hosts-secrets.json):
    (True, the account it got) or (False, (errno, message))."""
    import pymysql
    from csolab import dataplane
    from csolab.hosts import topology

    try:
        rows = dataplane.sql(instance_id, "SELECT CURRENT_USER()", user=user, password=topology.lab_secrets()[PASSWORD_SECRETS[user]])
    except pymysql.err.OperationalError as error:
        return False, (error.args[0], error.args[1] if len(error.args) > 1 else "")
    return True, rows[0][0]


def account_locked(user, instance_id=DB, host="%"):
    from csolab import dataplane

    return " ACCOUNT LOCK" in dataplane.sql(instance_id, f"SHOW CREATE USER '{user}'@'{host}'")[0][0]


def _wait_locked(user, instance_id, expected, timeout=15):
    """The lock state of ``user`` on ``instance_id`` once it is ``expected`` (the replica's by replication)."""
    deadline = time.monotonic() + timeout
    while (locked := account_locked(user, instance_id)) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    return locked


def play_names(completed):
    """Play names in run order; the json callback records a `serial: 1` play once per batch (host): each name's
    first place is kept."""
    return list(dict.fromkeys(play["play"]["name"] for play in json.loads(completed.stdout)["plays"]))


def replica_instance(lab):
    return instance(lab, REPLICA)


@pytest.fixture(scope="module")
def iam_env(aws_env_module):
    """The environment of every phase-2 run here: phase2_iam on (inventories/lab/phase2.yml)."""
    if not (WHEELHOUSE / "rds_iam_sqlalchemy-1.0.0-py3-none-any.whl").exists() or not list(JAR_CACHE.glob("*.jar")):
        unavailable(f"no wheelhouse for Keystone's venv in {WHEELHOUSE} or no JDBC jars in {JAR_CACHE}",
                    "run `make keystone-wheels jdbc-drivers` (make setup)")
    return dict(aws_env_module, CSO_LAB_PHASE2_IAM="true")


@pytest.fixture(scope="module")
def phase2_lab(host_lab, aws_env_module, iam_env, request):
    """Phase 1's end state: as test_phase1 left it, else converged here (before IAM: passwords)."""
    if not (requires_tls() and instance_ca(host_lab) == SEEDED_CA):
        completed = run_ansible(dict(aws_env_module, CSO_LAB_PHASE2_IAM="false"), "phase1.yml")
        assert completed.returncode == 0, failure_messages(completed) or completed.stdout[-3000:]
    yield host_lab
    if replica_instance(host_lab):
        completed = run_ansible(iam_env, "rollback_phase2.yml")
        assert completed.returncode == 0, failure_messages(completed) or completed.stdout[-3000:]
    # After rollback_phase2 the newest CSO backup is phase 2's file (reads from the deleted replica):
    # rollback_tls would restore it and fail safe (docs/runbook-phase2.md, "Rolling back phase 1 too").
    leave_host_lab(host_lab, aws_env_module, request, reset_instead_of_rollback=True)


@pytest.mark.parametrize("playbook", ["phase2.yml", "rollback_phase2.yml"])
def test_syntax_check_against_prod(playbook):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
    completed = run_ansible(env, playbook, "--syntax-check", inventories=("inventories/prod",))
    assert completed.returncode == 0, completed.stderr


@pytest.mark.hosts
@pytest.mark.lab
def test_preflight_refuses_when_a_phase1_step_is_missing(phase2_lab, iam_env):
    """The instance is not in the group phase 1 would have made: refused before any change."""
    phase2_lab.clear_calls()
    completed = run_ansible(iam_env, "phase2.yml", "-e", "phase1_security_group_name=not-phase1s-group")
    assert completed.returncode != 0
    messages = " ".join(failure_messages(completed))
    assert "phase 1 is not complete" in messages and "(phase 1 step security_group)" in messages, messages
    assert [(c["service"], c["action"]) for c in phase2_lab.mutating_calls()] == []
    assert replica_instance(phase2_lab) is None and read_url() == ""


@pytest.mark.hosts
@pytest.mark.lab
def test_iam_is_refused_in_keystones_preflight_without_the_hosts_policy(phase2_lab, iam_env):
    """phase2_iam_keystone_identity names a role the Keystone hosts do not sign with, so their own role
    has no rds-db:connect policy: the step's database side converges, keystone-1's keystone_db preflight
    signs with keystone-1's identity, is refused, and the run stops there. No Keystone or CSO file changed
    (keystone-2 and CSO never ran) and Keystone serves. Up to step iam and without the replica: only what
    this refusal needs (phase2_run below converges everything)."""
    from csolab import dataplane
    from csolab.hosts import identities
    from iam_lab import dbuser_arn

    iam = phase2_lab.boto3("iam")
    iam.create_role(RoleName=ELSEWHERE_ROLE, AssumeRolePolicyDocument=EC2_TRUST)
    for name in iam.list_role_policies(RoleName=KEYSTONE_ROLE)["PolicyNames"]:
        iam.delete_role_policy(RoleName=KEYSTONE_ROLE, PolicyName=name)
    before = host_checksums()
    log_start = len(dataplane.iam_sessions())
    completed = run_ansible(iam_env, "phase2.yml", "-e", "phase2_replica=false", "-e", "phase2_stop_after=iam",
                            "-e", json.dumps({"phase2_iam_keystone_identity": {"role_name": ELSEWHERE_ROLE}}))
    assert completed.returncode != 0
    failures = failure_messages(completed)
    assert [failure.split(":")[0] for failure in failures] == ["keystone-1"], failures
    message = " ".join(failures[0].split())
    assert "the database refused the IAM authentication token" in message, message
    session = identities.recorded()["keystone-1"]
    assert f"for {KEYSTONE_IAM_USER}@" in message and f"access key {session['access_key_id']}" in message, message
    assert "Nothing was changed" in message
    assert host_checksums() == before
    keystone_through_lb()
    assert cso_health()[0] == "200"
    assert (f"rds-db:connect on arn:aws:rds-db:eu-west-2:<account>:dbuser:<the instance's DbiResourceId>/"
            f"{KEYSTONE_IAM_USER}") in message, message
    refused = [entry for entry in dataplane.iam_sessions()[log_start:] if entry["user"] == KEYSTONE_IAM_USER]
    assert refused and {(entry["allowed"], entry["identity_arn"]) for entry in refused} == {(False, session["arn"])}, refused
    arn = dbuser_arn(phase2_lab, DB, KEYSTONE_IAM_USER)
    assert {entry["reason"] for entry in refused} == {
        f"{session['arn']}: its policies do not allow rds-db:connect on {arn}"}, refused
    # the refusal is the missing policy: the flag, both users and the policy on the role it was given are there
    assert phase2_lab.boto3("rds").describe_db_instances(
        DBInstanceIdentifier=DB)["DBInstances"][0]["IAMDatabaseAuthenticationEnabled"] is True
    assert iam_accounts(DB) == [(CSO_IAM_USER, "AWSAuthenticationPlugin", "RDS", "ANY"),
                                (KEYSTONE_IAM_USER, "AWSAuthenticationPlugin", "RDS", "ANY")]
    assert iam.list_role_policies(RoleName=ELSEWHERE_ROLE)["PolicyNames"] == [POLICY]
    assert iam.list_role_policies(RoleName=KEYSTONE_ROLE)["PolicyNames"] == []


@pytest.fixture(scope="module")
def phase2_run(phase2_lab, iam_env, tmp_path_factory):
    """Phase 2 (IAM on) twice from phase 1's end state, the probe running; what was observed right after."""
    from csolab import dataplane
    from csolab.probe import BackgroundProbe

    tmp_path = tmp_path_factory.mktemp("phase2-run")
    summary_path, second_summary_path = tmp_path / "phase2-summary.json", tmp_path / "phase2-summary-2.json"
    iam_log_start = len(dataplane.iam_sessions())
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    second = None
    try:
        first = run_ansible(iam_env, "phase2.yml", *LOCK, "-e", f"phase2_summary_path={summary_path}")
        if first.returncode == 0:
            phase2_lab.clear_calls()
            # the preflight's TLS check logs in as the admin user now: the password users are locked
            second = run_ansible(iam_env, "phase2.yml", *LOCK, "-e", f"phase2_summary_path={second_summary_path}")
    finally:
        summary = probe.stop()
    return {"first": first, "second": second, "summary": summary, "iam_log_start": iam_log_start,
            "second_calls": phase2_lab.mutating_calls() if second else None,
            "report": json.loads(summary_path.read_text()) if summary_path.exists() else None,
            "second_report": json.loads(second_summary_path.read_text()) if second_summary_path.exists() else None}


def _wait_rows(instance_id, query, expected, timeout=15):
    from csolab import dataplane

    deadline = time.monotonic() + timeout
    while (rows := dataplane.sql(instance_id, query)) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    return rows


@pytest.mark.hosts
@pytest.mark.lab
def test_phase2_adds_a_hardened_replica_and_cso_reads_from_it(phase2_run, phase2_lab):
    from csolab import dataplane
    from csolab.probe import format_summary

    first, second, summary = phase2_run["first"], phase2_run["second"], phase2_run["summary"]
    print(format_summary(summary))
    assert first.returncode == 0, failure_messages(first) or first.stdout[-3000:]
    assert second.returncode == 0, failure_messages(second)
    assert total(second, "changed") == 0, changed_tasks(second)
    assert phase2_run["second_calls"] == [], phase2_run["second_calls"]
    assert {name: t["failures"] for name, t in summary["targets"].items()} == {n: 0 for n in summary["targets"]}, \
        summary["failure_log"][:5]

    primary = phase2_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    replica = replica_instance(phase2_lab)
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == DB
    assert replica["KmsKeyId"] == primary["KmsKeyId"] and replica["StorageEncrypted"]
    assert [g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]] == \
        [g["VpcSecurityGroupId"] for g in primary["VpcSecurityGroups"]]
    assert replica["DeletionProtection"] and replica["PerformanceInsightsEnabled"]
    assert replica["DBParameterGroups"][0]["DBParameterGroupName"] == f"{DB}-replica-mysql80"

    # the read URL is the write URL (verified TLS, the same truststore) with the replica's name
    write_url = property_line("db.url")
    assert primary["Endpoint"]["Address"] in write_url
    assert read_url() == write_url.replace("db.url=", "db.read.url=", 1).replace(
        primary["Endpoint"]["Address"], replica["Endpoint"]["Address"]), (read_url(), write_url)
    # the replica really replicates: a row written on the primary now reaches it
    marker = int(time.time())
    dataplane.sql(DB, "CREATE DATABASE IF NOT EXISTS phase2_test")
    dataplane.sql(DB, "CREATE TABLE IF NOT EXISTS phase2_test.marker (id BIGINT PRIMARY KEY)")
    dataplane.sql(DB, f"INSERT INTO phase2_test.marker VALUES ({marker})")
    assert _wait_rows(REPLICA, f"SELECT id FROM phase2_test.marker WHERE id = {marker}", ((marker,),)) == ((marker,),)

    report = phase2_run["report"]
    assert set(report["steps"]) >= {"preflight", "replica", "audit", "iam", "read_split", "lock_password_users", "monitoring"}
    split = report["steps"]["read_split"]["cso-1"]
    assert split["changed"] is True and split["read_split_verified"] is True, split
    assert split["read_server_id"] != split["write_server_id"], split


@pytest.mark.hosts
@pytest.mark.lab
def test_keystone_and_cso_log_in_with_their_hosts_iam_tokens_and_no_password(phase2_run, phase2_lab):
    from csolab import dataplane
    from csolab.hosts import identities, topology
    from iam_lab import dbuser_arn

    first = phase2_run["first"]
    assert first.returncode == 0, failure_messages(first) or first.stdout[-3000:]
    assert not leaked_secrets(first, "phase2 (first run)")
    secrets = topology.lab_secrets()
    sessions = identities.recorded()
    replica_endpoint = replica_instance(phase2_lab)["Endpoint"]["Address"]

    # no database password on any host; the IAM users, the wrapper, the plugin
    for host in KEYSTONE_HOSTS:
        conf, database = keystone_database_section(host)
        assert f"connection = mysql+pymysql://{KEYSTONE_IAM_USER}@" in database, f"{host}: {database}"
        assert "connection_parameters = plugin=rds_iam&rds_iam_region=eu-west-2" in database, database
        assert secrets["keystone_db_password"] not in conf, host
    text, props = properties()
    assert props["db.username"] == CSO_IAM_USER and props["db.url"].startswith("jdbc:aws-wrapper:mysql://"), props
    assert props["db.read.url"].startswith(f"jdbc:aws-wrapper:mysql://{replica_endpoint}:"), props["db.read.url"]
    assert "db.password" not in props and "db.read.password" not in props, sorted(props)
    assert secrets["ssp_db_password"] not in text

    # both services serve through the database now, with new logins (the lab's pools live 5 s)
    keystone_round_trips()
    status, body = cso_health()
    assert status == "200", body
    time.sleep(6)
    assert cso_health()[0] == "200"

    # every IAM login since phase 2 began: allowed, TLS, signed by the hosts' own role sessions; CSO's
    # on the primary (writes) and the replica (reads); none refused (users and policies came first)
    logins = [entry for entry in dataplane.iam_sessions()[phase2_run["iam_log_start"]:]
              if entry["user"] in (KEYSTONE_IAM_USER, CSO_IAM_USER)]
    assert [entry for entry in logins if not (entry["allowed"] and entry["tls"])] == [], logins[:5]
    assert {(entry["user"], entry["identity_arn"]) for entry in logins} == {
        (KEYSTONE_IAM_USER, sessions["keystone-1"]["arn"]), (KEYSTONE_IAM_USER, sessions["keystone-2"]["arn"]),
        (CSO_IAM_USER, sessions["cso-1"]["arn"])}
    assert {sessions[host]["role_name"] for host in (*KEYSTONE_HOSTS, "cso-1")} == {KEYSTONE_ROLE, CSO_ROLE}
    assert {entry["instance"] for entry in logins if entry["user"] == CSO_IAM_USER} == {DB, REPLICA}

    # the database side: the flag on both instances, the users there (the replica's by replication) next
    # to the password users, the grants of the password users, one exact policy per hosts' role
    rds, iam = phase2_lab.boto3("rds"), phase2_lab.boto3("iam")
    for instance_id in (DB, REPLICA):
        assert rds.describe_db_instances(
            DBInstanceIdentifier=instance_id)["DBInstances"][0]["IAMDatabaseAuthenticationEnabled"] is True
        assert iam_accounts(instance_id) == [(CSO_IAM_USER, "AWSAuthenticationPlugin", "RDS", "ANY"),
                                             (KEYSTONE_IAM_USER, "AWSAuthenticationPlugin", "RDS", "ANY")], instance_id
        assert {KEYSTONE_PASSWORD_USER, CSO_PASSWORD_USER} <= users(instance_id), instance_id
    grants = {user: " ".join(row[0] for row in dataplane.sql(DB, f"SHOW GRANTS FOR '{user}'@'%'"))
              for user in (KEYSTONE_IAM_USER, CSO_IAM_USER)}
    assert "GRANT ALL PRIVILEGES ON `keystone`.*" in grants[KEYSTONE_IAM_USER], grants
    assert "GRANT ALL PRIVILEGES ON `ssp`.*" in grants[CSO_IAM_USER], grants
    for role, user in ((KEYSTONE_ROLE, KEYSTONE_IAM_USER), (CSO_ROLE, CSO_IAM_USER)):
        statements = iam.get_role_policy(RoleName=role, PolicyName=POLICY)["PolicyDocument"]["Statement"]
        assert [(statement["Effect"], statement["Action"], sorted(statement["Resource"])) for statement in statements] == [
            ("Allow", "rds-db:connect", sorted([dbuser_arn(phase2_lab, DB, user), dbuser_arn(phase2_lab, REPLICA, user)]))]

    steps = phase2_run["report"]["steps"]
    assert steps["iam"]["changed"] is True, steps["iam"]
    assert {host: (result["changed"], result["auth"]) for host, result in steps["iam"]["keystone"].items()} == \
        dict.fromkeys(KEYSTONE_HOSTS, (True, "iam")), steps["iam"]["keystone"]
    assert steps["read_split"]["cso-1"]["auth"] == "iam", steps["read_split"]["cso-1"]


@pytest.mark.hosts
@pytest.mark.lab
def test_the_password_users_are_locked_once_every_host_is_on_iam_and_the_services_keep_serving(phase2_run, phase2_lab):
    """Step lock_password_users after read_split: a login with a service's stored password gets the locked-account
    error on the primary and the replica (by replication), while Keystone and CSO serve through their IAM users;
    step verify ran after the lock; the second run finds them locked and changes nothing."""
    first, second = phase2_run["first"], phase2_run["second"]
    assert first.returncode == 0, failure_messages(first) or first.stdout[-3000:]
    plays = play_names(first)
    lock = next(i for i, name in enumerate(plays) if name.startswith("Phase 2 / lock_password_users"))
    assert max(i for i, name in enumerate(plays) if name.startswith(("Phase 2 / iam", "Phase 2 / read_split"))) < lock
    assert lock < next(i for i, name in enumerate(plays) if name.startswith("Phase 2 / verify")), plays

    for user in (KEYSTONE_PASSWORD_USER, CSO_PASSWORD_USER):
        ok, answer = password_login(user)
        assert not ok and answer[0] in ACCOUNT_LOCKED_ERRNOS, (user, answer)
        assert "locked" in answer[1].lower(), (user, answer)
        assert account_locked(user, DB) and _wait_locked(user, REPLICA, True), user
    # the IAM users are not locked, and both services serve through them with new logins (pools live 5 s)
    assert not account_locked(KEYSTONE_IAM_USER) and not account_locked(CSO_IAM_USER)
    time.sleep(6)
    keystone_round_trips(rounds=1)
    status, body = cso_health()
    assert status == "200", body

    step = phase2_run["report"]["steps"]["lock_password_users"]
    assert step["changed"] is True, step
    assert step["detail"].startswith(f"locked {KEYSTONE_PASSWORD_USER}@%, {CSO_PASSWORD_USER}@%;"), step
    assert step["detail"].endswith("on IAM: keystone-1, keystone-2, cso-1"), step
    assert second.returncode == 0, failure_messages(second)
    assert phase2_run["second_report"]["steps"]["lock_password_users"] == {
        "changed": False,
        "detail": f"already locked: {KEYSTONE_PASSWORD_USER}@%, {CSO_PASSWORD_USER}@%; on IAM: keystone-1, keystone-2, cso-1"}
    assert not leaked_secrets(second, "phase2 (second run, users locked)")


@pytest.mark.hosts
@pytest.mark.lab
def test_keystone_signs_a_new_token_for_each_new_connection_once_its_first_tokens_expired(phase2_run, phase2_lab):
    """Keystone on IAM (phase 2's end state) keeps serving after its first tokens expired on the lab's clock.

    Keystone signs with the host's clock (the containers share the kernel's), the lab checks tokens on its own.
    Once the first IAM logins are more than a minute old the lab clock moves ``CLOCK_MOVE`` (14 minutes) ahead:
    those tokens are then more than 15 minutes old for the lab (expired), a fresh one is 14 minutes old (valid).
    After ``connection_recycle_time`` every pooled connection is new, so Keystone serves only if each new
    connection carries a new token; every such login is allowed and signed by the hosts' own role sessions.
    CSO is left out: the AWS JDBC wrapper caches a token for up to 15 minutes, which a moved clock would
    declare expired although RDS would not."""
    from csolab import dataplane
    from csolab.hosts import identities

    assert phase2_run["first"].returncode == 0, "needs phase 2's end state"
    sessions = identities.recorded()
    first = [entry for entry in dataplane.iam_sessions()[phase2_run["iam_log_start"]:]
             if entry["user"] == KEYSTONE_IAM_USER and entry["allowed"]]
    assert first, "phase 2 made no IAM login of Keystone"
    first_login = min(entry["lab_time"] for entry in first)
    time.sleep(max(0.0, first_login + (TOKEN_LIFETIME - CLOCK_MOVE) + 5 - time.time()))
    moved = len(dataplane.iam_sessions())
    phase2_lab.set_clock_offset(CLOCK_MOVE)
    try:
        time.sleep(KEYSTONE_RECYCLE + 1)  # every pooled connection is then past connection_recycle_time
        keystone_round_trips()
        later = [entry for entry in dataplane.iam_sessions()[moved:] if entry["user"] == KEYSTONE_IAM_USER]
    finally:
        phase2_lab.set_clock_offset(0)
    assert [entry for entry in later if not entry["allowed"]] == [], later
    fresh = {entry["identity_arn"] for entry in later if entry["lab_time"] > first_login + TOKEN_LIFETIME}
    assert fresh == {sessions[host]["arn"] for host in KEYSTONE_HOSTS}, later
    print(f"first IAM login at lab time {first_login:.0f}; {len(later)} new logins after the clock move, "
          f"lab time {min(entry['lab_time'] for entry in later) - first_login:.0f}-"
          f"{max(entry['lab_time'] for entry in later) - first_login:.0f} s after it")


@pytest.mark.hosts
@pytest.mark.lab
def test_rollback_phase2_restores_passwords_first_then_stops_reads_and_deletes_the_replica(phase2_run, phase2_lab, iam_env):
    from csolab.hosts import topology

    assert phase2_run["first"].returncode == 0, "needs phase 2's end state"
    assert password_login(KEYSTONE_PASSWORD_USER)[0] is False, "needs the password users locked by phase2_run"
    # without -e phase2_iam_lock_password_users: the rollback unlocks whenever phase2_iam is on
    completed = run_ansible(iam_env, "rollback_phase2.yml")
    assert completed.returncode == 0, failure_messages(completed) or completed.stdout[-3000:]
    plays = play_names(completed)
    assert plays[0].startswith("Rollback phase 2 / unlock") and plays[1].startswith("Rollback phase 2 / iam: Keystone") \
        and plays[2].startswith("Rollback phase 2 / read_split"), plays
    assert {task.split(":")[0] for task in changed_tasks(completed)} >= {DB, *KEYSTONE_HOSTS, "cso-1"}, changed_tasks(completed)
    assert f"{DB}: Lock (or, in the rollback, unlock) the password users' accounts" in changed_tasks(completed)
    for user in (KEYSTONE_PASSWORD_USER, CSO_PASSWORD_USER):
        assert password_login(user) == (True, f"{user}@%"), user
        assert not account_locked(user, DB), user

    # the password users again, with the stored passwords, and both services healthy
    secrets = topology.lab_secrets()
    for host in KEYSTONE_HOSTS:
        _, database = keystone_database_section(host)
        assert f"connection = mysql+pymysql://{KEYSTONE_PASSWORD_USER}:{secrets['keystone_db_password']}@" in database, host
        assert "connection_parameters" not in database, database
    _, props = properties()
    assert (props["db.username"], props["db.password"]) == (CSO_PASSWORD_USER, secrets["ssp_db_password"])
    assert props["db.url"].startswith("jdbc:mariadb://"), props["db.url"]
    keystone_round_trips(rounds=1)
    assert cso_health()[0] == "200"

    assert read_url() == ""
    assert replica_instance(phase2_lab) is None or replica_instance(phase2_lab)["DBInstanceStatus"] == "deleting"
    # what the rollback leaves (docs/runbook-iam.md): the IAM users and policies, and a reminder
    assert iam_accounts(DB) == [(CSO_IAM_USER, "AWSAuthenticationPlugin", "RDS", "ANY"),
                                (KEYSTONE_IAM_USER, "AWSAuthenticationPlugin", "RDS", "ANY")]
    iam = phase2_lab.boto3("iam")
    assert all(POLICY in iam.list_role_policies(RoleName=role)["PolicyNames"] for role in (KEYSTONE_ROLE, CSO_ROLE))
    assert "phase2_iam is still true in the inventory" in completed.stdout
    assert not leaked_secrets(completed, "rollback_phase2")


@pytest.mark.hosts
@pytest.mark.lab
def test_the_lock_is_refused_while_a_host_is_still_on_its_password(phase2_run, phase2_lab, iam_env):
    """After the rollback every host is on its password again. Phase 2 with IAM and the lock on, without the
    replica and audit (only what the refusal needs), and --limit leaving keystone-2 out: keystone-1 and CSO
    move to IAM and are proven, keystone-2 is not, so the lock step refuses, names keystone-2 alone and locks
    nothing; keystone-2 keeps serving with its password (the module's teardown resets the lab)."""
    from csolab.hosts import topology

    password = topology.lab_secrets()[PASSWORD_SECRETS[KEYSTONE_PASSWORD_USER]]
    password_url = f"connection = mysql+pymysql://{KEYSTONE_PASSWORD_USER}:{password}@"
    assert password_url in keystone_database_section("keystone-2")[1], "needs the rollback's end state"
    assert [password_login(user)[0] for user in PASSWORD_SECRETS] == [True, True], "needs the password users unlocked"

    completed = run_ansible(iam_env, "phase2.yml", *LOCK, "-e", "phase2_replica=false", "-e", "phase2_audit=false",
                            "--limit", "all:!keystone-2")
    assert completed.returncode != 0
    failures = failure_messages(completed)
    assert [failure.split(":")[0] for failure in failures] == [DB], failures
    message = " ".join(failures[0].split())
    assert "this run did not prove keystone-2 on IAM database authentication" in message, message
    assert "Nothing was locked" in message and "keystone-1" not in message and "cso-1" not in message, message
    assert not [name for name in changed_tasks(completed) if "password users' accounts" in name], changed_tasks(completed)
    # the others did move (so the refusal is about keystone-2 alone), and nothing is locked
    assert f"connection = mysql+pymysql://{KEYSTONE_IAM_USER}@" in keystone_database_section("keystone-1")[1]
    assert properties()[1]["db.username"] == CSO_IAM_USER
    for user in PASSWORD_SECRETS:
        assert password_login(user) == (True, f"{user}@%"), user
        assert not account_locked(user, DB), user
    assert password_url in keystone_database_section("keystone-2")[1]
    keystone_round_trips(rounds=1)
    assert cso_health()[0] == "200"
