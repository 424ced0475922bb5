"""cso_db with ``cso_db_auth: iam`` on the host lab: CSO logs in with IAM tokens signed by cso-1's
AWS identity (an STS session of the role ``lab-cso-hosts`` in root's credentials file, as an
instance profile gives it) through the AWS Advanced JDBC Wrapper and MySQL Connector/J.

- Without a policy on the host's role the role fails in its preflight, naming the rds-db:connect
  policy, and setup.properties is unchanged (checksum).
- With the policy: the pinned jars are installed, setup.properties holds the wrapper URL and no
  password, CSO's /health answers 200 through the database (writes and reads), and the lab's IAM
  verifier saw cso_iam logins signed by cso-1's lab-cso-hosts session.

Run under ``flock /work/.dataplane.lock`` when the lab is shared.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from phase_support import reset_for_the_next_module

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
DB = "cso-lab-db"
CSO = "cso-1"
PROPS = "/opt/cso/setup.properties"
DB_USER = "cso_iam"
HOST_ROLE = "lab-cso-hosts"


@pytest.fixture(scope="module")
def env(host_lab):
    from csolab import paths

    state = host_lab.state
    return dict(os.environ, AWS_ENDPOINT_URL=state["endpoint_url"], AWS_REGION=state["region"],
                AWS_DEFAULT_REGION=state["region"], AWS_ACCESS_KEY_ID=state["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=state["aws_secret_access_key"], ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
                ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
                ANSIBLE_SSH_CONTROL_PATH_DIR=str(Path(paths.LAB_DIR) / "ssh" / "cp"))


@pytest.fixture(scope="module")
def iam_user(host_lab, request):
    """cso_iam with CSO's grants on ssp, IAM authentication enabled on the instance; no policy yet.
    Afterwards (policy, drivers and CSO's IAM mode stay behind) the next host module gets a reset lab."""
    from csolab import dataplane
    from iam_lab import enable_iam_auth

    dataplane.sql(DB, f"CREATE USER '{DB_USER}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL")
    dataplane.sql(DB, f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON ssp.* TO '{DB_USER}'@'%'")
    enable_iam_auth(host_lab, DB)
    yield host_lab
    reset_for_the_next_module(request)


def cso_db(env, variables):
    command = [ANSIBLE_PLAYBOOK, "playbooks/cso_db.yml", "-i", "inventories/lab", "-e", json.dumps(variables)]
    began = time.monotonic()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(f"{time.monotonic() - began:6.1f} s  rc={completed.returncode}  cso_db.yml {variables}")
    return completed


def failures(completed):
    try:
        plays = json.loads(completed.stdout)["plays"]
    except (json.JSONDecodeError, KeyError):
        return [completed.stdout[-2000:], completed.stderr[-2000:]]
    return [f"{host}: {result.get('msg', '')}" for play in plays for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("failed") and not result.get("ignore_errors")]


def sh(command, check=True):
    from csolab.hosts import fixtures

    return fixtures.sh(CSO, command, check=check).stdout


def health():
    out = sh("curl -s -m 10 -w '\\n%{http_code}' http://127.0.0.1:8080/health", check=False)
    body, _, status = out.rstrip("\n").rpartition("\n")
    return status, body


IAM_VARS = {"cso_db_auth": "iam", "cso_db_username": DB_USER}


def test_without_the_policy_the_preflight_refuses_and_nothing_changes(iam_user, env):
    from csolab import dataplane

    before = sh(f"sha256sum {PROPS}").split()[0]
    log_start = len(dataplane.iam_sessions())
    completed = cso_db(env, IAM_VARS)
    assert completed.returncode != 0
    messages = " ".join(failures(completed))
    assert "the IAM login as cso_iam was refused" in messages, messages
    assert f"rds-db:connect on arn:aws:rds-db:eu-west-2:<account id>:dbuser:<the instance's DbiResourceId>/{DB_USER}" \
        in " ".join(messages.split()), messages
    assert "Nothing was changed" in messages
    assert sh(f"sha256sum {PROPS}").split()[0] == before
    assert health()[0] == "200"
    refused = [entry for entry in dataplane.iam_sessions()[log_start:] if entry["user"] == DB_USER]
    assert refused and not any(entry["allowed"] for entry in refused), refused
    assert "its policies do not allow rds-db:connect" in refused[0]["reason"]


def test_with_the_policy_cso_logs_in_with_the_hosts_identity_and_no_password(iam_user, env):
    from csolab import dataplane
    from csolab.hosts import identities
    from iam_lab import connect_policy, dbuser_arn

    arn = dbuser_arn(iam_user, DB, DB_USER)
    iam_user.boto3("iam").put_role_policy(RoleName=HOST_ROLE, PolicyName="cso-db-connect",
                                          PolicyDocument=connect_policy(arn))
    host_session = identities.recorded()[CSO]["arn"]
    log_start = len(dataplane.iam_sessions())
    completed = cso_db(env, IAM_VARS)
    assert completed.returncode == 0, failures(completed)

    props = dict(line.split("=", 1) for line in sh(f"cat {PROPS}").splitlines() if "=" in line and not line.startswith("#"))
    assert props["db.url"].startswith("jdbc:aws-wrapper:mysql://" + dataplane.endpoint_for(DB)["name"]), props["db.url"]
    assert "wrapperPlugins=iam" in props["db.url"] and "sslMode=VERIFY_IDENTITY" in props["db.url"]
    assert props["db.username"] == DB_USER
    assert "db.password" not in props and "db.read.password" not in props, sorted(props)
    secrets = json.loads(Path(os.environ.get("CSO_LAB_DIR", REPO_ROOT / ".lab"), "hosts-secrets.json").read_text())
    assert secrets["ssp_db_password"] not in sh(f"cat {PROPS}")
    assert sh("ls /opt/cso/lib/jdbc | grep -c 'jar$'").strip() == str(
        sum(1 for line in (REPO_ROOT / "roles/cso_db/files/jdbc-drivers.lock").read_text().splitlines()
            if line and not line.startswith("#")))

    status, body = health()
    assert status == "200", body
    time.sleep(6)  # the pool's connections live 5 s in the lab: the next /health opens new IAM logins
    assert health()[0] == "200"
    logins = [entry for entry in dataplane.iam_sessions()[log_start:] if entry["user"] == DB_USER]
    assert logins and all(entry["allowed"] and entry["tls"] for entry in logins), logins
    assert {entry["identity_arn"] for entry in logins} == {host_session}, logins
    assert host_session.split("/")[-2:] == [HOST_ROLE, CSO]
