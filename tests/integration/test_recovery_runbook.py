"""docs/recovery.md's commands on the host lab, and rollback_tls.yml's refusal of a stale backup.

1. The runbook's data check (community.mysql.mysql_query, taken from the doc) verifies the server:
   it connects with the RDS CA bundle by the endpoint name, and fails with an untrusted CA and by
   IP address (RDS certificates name no address).
2. The runbook's repoint playbook (taken from the doc) refuses an IP address as the endpoint and
   changes nothing; by name it moves keystone-1 and cso-1 to the roles' verified-TLS settings, the
   roles' preflights having seen the untrusted CA and the wrong host name refused.
3. rollback_tls.yml with rollback_tls_restore_hosts=true refuses, before anything changes, to
   restore a backup older than the current settings (setup.properties changed after cso_db wrote
   it), saying what to do; once the file is what cso_db wrote again, the restore goes ahead.

The module leaves the hosts as it found them: a final rollback restores keystone-1 and cso-1.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "recovery.md"
DB = "cso-lab-db"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
PROPERTIES = "/opt/cso/setup.properties"
KEYSTONE_CONF = "/etc/keystone/keystone.conf"


@pytest.fixture(scope="module")
def env(host_lab):
    from csolab import paths

    state = host_lab.state
    yield dict(os.environ, AWS_ENDPOINT_URL=state["endpoint_url"], AWS_REGION=state["region"],
               AWS_DEFAULT_REGION=state["region"], AWS_ACCESS_KEY_ID=state["aws_access_key_id"],
               AWS_SECRET_ACCESS_KEY=state["aws_secret_access_key"], ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(Path(paths.LAB_DIR) / "ssh" / "cp"))


@pytest.fixture(scope="module")
def repointed_lab(env, tmp_path_factory):
    """keystone-1 and cso-1 repointed by the runbook's playbook (by name); put back at the end."""
    yield repoint(env, tmp_path_factory.mktemp("runbook"), endpoint())
    completed = ansible(env, "rollback_tls.yml", "-e", "rollback_tls_restore_hosts=true",
                        "--limit", f"{DB},keystone-1,cso-1")
    assert completed.returncode == 0, failures(completed) or completed.stderr[-2000:]


def doc_yaml_blocks():
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def doc_task(module):
    return next(task for block in doc_yaml_blocks() if isinstance(block, list) for task in block
                if isinstance(task, dict) and module in task)


def doc_repoint_playbook():
    return next(block for block in doc_yaml_blocks()
                if isinstance(block, list) and block and isinstance(block[0], dict) and "hosts" in block[0])


def endpoint():
    from csolab import dataplane

    return dataplane.endpoint_for(DB)


def ansible(env, playbook, *args, inventory="inventories/lab"):
    return subprocess.run([ANSIBLE_PLAYBOOK, str(playbook), "-i", inventory, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


def failures(completed):
    try:
        plays = json.loads(completed.stdout)["plays"]
    except (json.JSONDecodeError, KeyError):
        return []
    return [f"{host}: {result.get('msg', '')}" for play in plays for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("failed") and not result.get("ignore_errors")]


def task_results(completed, name):
    """Results of the task called name; a role's task is reported as "<role> : <name>"."""
    return {host: result for play in json.loads(completed.stdout)["plays"] for task in play["tasks"]
            if task["task"]["name"].split(" : ")[-1] == name for host, result in task["hosts"].items()}


def checksum(host, path):
    from csolab.hosts import fixtures

    return fixtures.sh(host, f"sha256sum {path}").stdout.split()[0]


def repoint(env, directory, target):
    playbook = Path(directory) / "repoint.yml"
    playbook.write_text(yaml.safe_dump(doc_repoint_playbook(), sort_keys=False))
    return ansible(env, playbook, "-e", f"new_endpoint={target['name']}", "--limit", "keystone-1,cso-1")


def run_data_check(env, directory, expected_count=None, expected_error=None, **overrides):
    """The runbook's mysql_query task, run on the controller against the lab's data plane (its
    no_log hides the result from the output: an assert in the same play checks the count, or that
    the task failed with ``expected_error`` in its message)."""
    from csolab import dataplane

    user, password = dataplane.master_credentials(DB)
    task = doc_task("community.mysql.mysql_query")
    arguments = dict(task["community.mysql.mysql_query"], login_host=endpoint()["name"], login_user=user,
                     login_password=password, ca_cert=str(dataplane.ca_bundle_path()), connect_timeout=5)
    arguments.update(overrides)
    playbook = Path(directory) / "data_check.yml"
    tasks = [dict(task, **{"community.mysql.mysql_query": arguments}, register="__data_check")]
    if expected_error is not None:
        tasks[0]["ignore_errors"] = True
        tasks.append({"name": "The error the runbook's query failed with", "ansible.builtin.assert": {
            "that": ["__data_check is failed", f"{expected_error!r} in (__data_check.msg | default(''))"],
            "fail_msg": f"expected a failure with {expected_error!r}"}})
    if expected_count is not None:
        tasks.append({"name": "The count the runbook's query returned", "ansible.builtin.assert": {
            "that": [f"__data_check.query_result[0][0]['COUNT(*)'] | int == {int(expected_count)}"]}})
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}],
                                       sort_keys=False))
    return ansible(env, playbook, "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                   inventory="localhost,")


def test_the_runbooks_data_check_verifies_the_server(env, tmp_path):
    from csolab import dataplane

    expected = dataplane.sql(DB, "SELECT COUNT(*) FROM keystone.project")[0][0]
    assert expected >= 1  # the lab's Keystone has its admin project
    completed = run_data_check(env, tmp_path, expected_count=expected)
    assert completed.returncode == 0, failures(completed) or completed.stdout[-2000:]
    assert task_results(completed, "The count the runbook's query returned")["localhost"]["msg"] == "All assertions passed"
    wrong = run_data_check(env, tmp_path, expected_count=expected + 1)  # the assert can fail
    assert wrong.returncode != 0
    untrusted = run_data_check(env, tmp_path, expected_error="CERTIFICATE_VERIFY_FAILED",
                               ca_cert=str(dataplane.rogue_ca_path()))
    assert untrusted.returncode == 0, failures(untrusted)
    by_address = run_data_check(env, tmp_path, expected_error="IP address mismatch",
                                login_host=endpoint()["loopback_ip"])
    assert by_address.returncode == 0, failures(by_address)
    # the expectation itself can fail: a trusted CA does not produce that error
    trusted = run_data_check(env, tmp_path, expected_error="CERTIFICATE_VERIFY_FAILED")
    assert trusted.returncode != 0


def test_the_runbooks_repoint_refuses_an_ip_address_and_changes_nothing(env, tmp_path):
    before = {"keystone-1": checksum("keystone-1", KEYSTONE_CONF), "cso-1": checksum("cso-1", PROPERTIES)}
    completed = repoint(env, tmp_path, {"name": endpoint()["namespace_ip"]})
    assert completed.returncode != 0, "a repoint by IP address must be refused: the certificate names no address"
    assert failures(completed), completed.stdout[-2000:]
    assert {"keystone-1": checksum("keystone-1", KEYSTONE_CONF), "cso-1": checksum("cso-1", PROPERTIES)} == before


def test_the_runbooks_repoint_moves_both_services_to_the_roles_verified_settings(repointed_lab):
    from csolab.hosts import fixtures

    completed = repointed_lab
    assert completed.returncode == 0, failures(completed) or completed.stderr[-2000:]
    name = endpoint()["name"]
    connection = fixtures.sh("keystone-1", f"grep '^connection' {KEYSTONE_CONF}").stdout
    assert f"@{name}:3306/keystone?" in connection and "ssl_check_hostname=true" in connection
    url = fixtures.sh("cso-1", f"grep '^db.url=' {PROPERTIES}").stdout
    assert url.startswith(f"db.url=jdbc:mariadb://{name}:3306/") and "useSSL=true" in url
    assert "trustServerCertificate=false" in url and "disableSslHostnameVerification=false" in url
    reports = task_results(completed, "Show the preflight results (no secrets)")["cso-1"]["msg"]
    assert [report["negatives"][check]["refused"] for report in reports
            for check in ("untrusted_ca", "wrong_host_name")] == [True, True], reports
    keystone_report = task_results(completed, "Show the preflight result (no secrets)")["keystone-1"]["msg"]
    assert keystone_report["negatives"]["untrusted_ca"]["refused"] is True, keystone_report
    assert keystone_report["negatives"]["wrong_host_name"]["refused"] is True, keystone_report


def test_rollback_refuses_a_backup_older_than_the_current_settings(repointed_lab, env):
    from csolab.hosts import fixtures

    assert repointed_lab.returncode == 0
    backup = PROPERTIES + ".cso_db.bak"
    written = fixtures.sh("cso-1", f"cat {PROPERTIES}").stdout
    # a change after cso_db wrote the file (an operator's edit, a rotated password)
    fixtures.sh("cso-1", f"echo '# changed by hand after cso_db wrote this file' >> {PROPERTIES}")
    edited = checksum("cso-1", PROPERTIES)
    assert edited != checksum("cso-1", backup)
    fixtures.sh("cso-1", f"rm -f {PROPERTIES}.rollback_tls.bak")
    try:
        completed = ansible(env, "rollback_tls.yml", "-e", "rollback_tls_restore_hosts=true", "--limit", f"{DB},cso-1")
        assert completed.returncode != 0, "a backup older than the current settings must not be restored"
        messages = failures(completed)
        assert any("refusing to restore " + backup in m and "changed after cso.rds_hardening.cso_db wrote it" in m
                   and f"diff {backup} {PROPERTIES}" in m for m in messages), messages
        assert checksum("cso-1", PROPERTIES) == edited, "nothing may change"
        assert fixtures.sh("cso-1", f"test -e {PROPERTIES}.rollback_tls.bak", check=False).returncode != 0, \
            "no restore may be attempted (the current file was saved for one)"
        ran = [task["task"]["name"] for play in json.loads(completed.stdout)["plays"] for task in play["tasks"]]
        assert "Set require_secure_transport=0 in the instance's parameter group" not in ran, ran
    finally:
        fixtures.put("cso-1", PROPERTIES, written, "0640")
        fixtures.sh("cso-1", f"chown root:cso {PROPERTIES}")
    # the file is what cso_db wrote again: the same backup is restored
    completed = ansible(env, "rollback_tls.yml", "-e", "rollback_tls_restore_hosts=true", "--limit", f"{DB},cso-1")
    assert completed.returncode == 0, failures(completed) or completed.stderr[-2000:]
    assert checksum("cso-1", PROPERTIES) == checksum("cso-1", backup)
