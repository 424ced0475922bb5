"""keystone_db with ``keystone_db_auth: iam`` on the host lab: Keystone logs in to the lab database
with IAM authentication tokens its hosts sign with their own identity (an STS session of the role
``lab-keystone-hosts`` in root's credentials file, as an instance profile gives it in AWS), with
no password in keystone.conf.

The lab's verifier checks every token like RDS and logs each decision with the identity that
signed and the lab clock (``csolab.dataplane.iam_verifier.sessions()``), so the test sees each
new login Keystone makes.

The clock: Keystone signs with the host's real clock (the containers share the kernel's), while
the lab checks tokens on its own clock. A lab clock 16 minutes ahead would make every fresh token
arrive 16 minutes old, expired. So the test moves the lab clock by ``CLOCK_MOVE`` (14 minutes) once
the first logins are more than a minute old: the lab's "now" is then more than 15 minutes past them
(their tokens are expired), while a fresh token is 14 minutes old and still valid. Keystone keeps
serving only if it signs a new token for each new connection.

Run under ``flock /work/.dataplane.lock``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phase_support import keystone_round_trips, reset_for_the_next_module
from support import unavailable

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYSTONE_HOSTS = ("keystone-1", "keystone-2")
CONF = "/etc/keystone/keystone.conf"
DB = "cso-lab-db"
IAM_USER = "keystone_iam"
HOSTS_ROLE = "lab-keystone-hosts"
POLICY_NAME = "keystone-db-connect"
TOKEN_LIFETIME = 900
CLOCK_MOVE = TOKEN_LIFETIME - 60
RECYCLE = 5  # keystone_db_connection_recycle_time in inventories/lab
WHEELHOUSE = Path(os.environ.get("CSO_KEYSTONE_WHEELHOUSE", "/var/cache/cso-rds-hardening/wheels"))


def _put_todays_keystone_conf():
    """The fixture's production state (plaintext [database], password user), reloaded gracefully."""
    from csolab.hosts import database, fixtures, topology

    conf = fixtures.keystone_conf(database.endpoint_name(), topology.lab_secrets()["keystone_db_password"])
    for host in KEYSTONE_HOSTS:
        fixtures.put(host, CONF, conf, "0640")
        fixtures.sh(host, f"rm -f {CONF}.keystone_db.bak && systemctl reload keystone")


def _remove_connect_policy(lab):
    iam = lab.boto3("iam")
    for name in iam.list_role_policies(RoleName=HOSTS_ROLE)["PolicyNames"]:
        iam.delete_role_policy(RoleName=HOSTS_ROLE, PolicyName=name)


@pytest.fixture
def iam_keystone_lab(host_lab, request):
    """An IAM database user with Keystone's grants, IAM authentication on, the hosts' role without a
    policy; afterwards the lab clock back and, for the next host module, a reset lab (the plugin
    stays in Keystone's venv, IAM stays on)."""
    from csolab.hosts import database, wait_ready
    from iam_lab import enable_iam_auth

    if not (WHEELHOUSE / "rds_iam_sqlalchemy-1.0.0-py3-none-any.whl").exists() or not list(WHEELHOUSE.glob("botocore-*.whl")):
        unavailable(f"no wheelhouse for Keystone's venv in {WHEELHOUSE}", "run `make keystone-wheels`")
    database.sql([f"CREATE USER IF NOT EXISTS '{IAM_USER}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL",
                  f"GRANT ALL PRIVILEGES ON keystone.* TO '{IAM_USER}'@'%'"])
    enable_iam_auth(host_lab, DB)
    _remove_connect_policy(host_lab)
    _put_todays_keystone_conf()
    wait_ready()
    yield host_lab
    host_lab.set_clock_offset(0)
    reset_for_the_next_module(request)


def _run_keystone_db(aws_env, hosts):
    extra = {"keystone_db_hosts": hosts, "keystone_db_user": IAM_USER, "keystone_db_auth": "iam",
             "keystone_db_iam_region": "eu-west-2", "keystone_db_iam_wheelhouse": str(WHEELHOUSE)}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/keystone_db.yml",
               "-i", "inventories/lab", "-e", json.dumps(extra)]
    env = dict(aws_env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    started = time.monotonic()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(f"keystone_db (auth iam) on {hosts}: rc {completed.returncode}, {time.monotonic() - started:.0f} s")
    return completed


def _stats(completed):
    return json.loads(completed.stdout)["stats"]


def _failed_messages(completed):
    return [result.get("msg", "") for play in json.loads(completed.stdout)["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


def _checksums():
    from csolab.hosts import fixtures

    return {host: fixtures.sh(host, f"sha256sum {CONF}").stdout.split()[0] for host in KEYSTONE_HOSTS}


def _iam_logins(since):
    from csolab.dataplane import iam_verifier

    return [entry for entry in iam_verifier.sessions()[since:] if entry["user"] == IAM_USER]


def test_keystone_logs_in_with_iam_tokens_of_its_hosts(iam_keystone_lab, aws_env):
    from csolab.dataplane import iam_verifier
    from csolab.hosts import fixtures, identities, topology
    from iam_lab import connect_policy, dbuser_arn

    lab = iam_keystone_lab
    sessions = {host: identities.recorded()[host] for host in KEYSTONE_HOSTS}
    assert {session["role_name"] for session in sessions.values()} == {HOSTS_ROLE}

    # without the policy: refused in the preflight, keystone.conf untouched
    before = _checksums()
    log_start = len(iam_verifier.sessions())
    refused = _run_keystone_db(aws_env, "keystone-1")
    assert refused.returncode != 0
    assert _checksums() == before
    messages = " ".join(_failed_messages(refused))
    assert "the database refused the IAM authentication token" in messages, messages[:2000]
    assert f"access key {sessions['keystone-1']['access_key_id']}" in messages
    assert f"rds-db:connect on arn:aws:rds-db:eu-west-2:<account>:dbuser:<the instance's DbiResourceId>/{IAM_USER}" in messages
    denied = _iam_logins(log_start)
    arn = dbuser_arn(lab, DB, IAM_USER)
    assert denied and {(entry["allowed"], entry["reason"]) for entry in denied} == {
        (False, f"{sessions['keystone-1']['arn']}: its policies do not allow rds-db:connect on {arn}")}

    # with the policy on the hosts' role: both hosts converge, no password in keystone.conf
    lab.boto3("iam").put_role_policy(RoleName=HOSTS_ROLE, PolicyName=POLICY_NAME, PolicyDocument=connect_policy(arn))
    log_start = len(iam_verifier.sessions())
    converged = _run_keystone_db(aws_env, "keystone")
    assert converged.returncode == 0, converged.stdout[-4000:] + converged.stderr[-2000:]
    assert {host for host, counts in _stats(converged).items() if counts.get("changed")} == set(KEYSTONE_HOSTS)
    db_password = topology.lab_secrets()["keystone_db_password"]
    for host in KEYSTONE_HOSTS:
        conf = fixtures.sh(host, f"cat {CONF}").stdout
        assert f"connection = mysql+pymysql://{IAM_USER}@" in conf, f"{host}: {conf}"
        assert "connection_parameters = plugin=rds_iam&rds_iam_region=eu-west-2" in conf
        assert db_password not in conf and "keystone:" not in conf.split("[database]")[1].split("\n[")[0]
    keystone_round_trips()
    first = _iam_logins(log_start)
    signers = {entry["identity_arn"] for entry in first if entry["allowed"]}
    assert signers == {sessions[host]["arn"] for host in KEYSTONE_HOSTS}, first
    assert [entry for entry in first if not entry["allowed"]] == []

    # second run: nothing to change (wheels installed, keystone.conf in place)
    again = _run_keystone_db(aws_env, "keystone")
    assert again.returncode == 0, again.stdout[-4000:]
    assert {host: counts.get("changed") for host, counts in _stats(again).items()} == dict.fromkeys(KEYSTONE_HOSTS, 0)

    # past the first tokens' 15 minutes on the lab's clock: new connections need new tokens
    first_login = min(entry["lab_time"] for entry in first if entry["allowed"])
    time.sleep(max(0.0, first_login + (TOKEN_LIFETIME - CLOCK_MOVE) + 5 - time.time()))
    lab.set_clock_offset(CLOCK_MOVE)
    moved = len(iam_verifier.sessions())
    time.sleep(RECYCLE + 1)  # every pooled connection is then past connection_recycle_time
    keystone_round_trips()
    later = _iam_logins(moved)
    assert [entry for entry in later if not entry["allowed"]] == [], later
    fresh = {entry["identity_arn"] for entry in later if entry["lab_time"] > first_login + TOKEN_LIFETIME}
    assert fresh == {sessions[host]["arn"] for host in KEYSTONE_HOSTS}, later
    print(f"first IAM login at lab time {first_login:.0f}; {len(later)} new logins after the clock move, "
          f"lab time {min(entry['lab_time'] for entry in later) - first_login:.0f}-"
          f"{max(entry['lab_time'] for entry in later) - first_login:.0f} s after it")
