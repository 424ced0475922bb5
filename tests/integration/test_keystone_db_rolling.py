"""playbooks/keystone_db.yml on the host lab: a rolling change of Keystone's database connection
to verified TLS fails zero token validations through the load balancer.

The lab probe issues and validates tokens on both Keystone hosts and through the load balancer
while the playbook runs (`serial: 1`: preflight, back up, write, graceful chain reload, token
check, one host after the other). Its summary is printed. The test starts from today's
keystone.conf (the lab fixture's plaintext [database]) and puts it back afterwards, so it can run
again on the same lab.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYSTONE_HOSTS = ("keystone-1", "keystone-2")
KEYSTONE_TARGETS = ("keystone:keystone-1", "keystone:keystone-2", "keystone:lb")
CONF = "/etc/keystone/keystone.conf"


def _put_todays_keystone_conf():
    """The fixture's production state (plaintext [database]), reloaded gracefully on both hosts."""
    from csolab.hosts import database, fixtures, topology

    conf = fixtures.keystone_conf(database.endpoint_name(), topology.lab_secrets()["keystone_db_password"])
    for host in KEYSTONE_HOSTS:
        fixtures.put(host, CONF, conf, "0640")
        fixtures.sh(host, f"rm -f {CONF}.keystone_db.bak && systemctl reload keystone")


@pytest.fixture
def todays_keystone_conf(host_lab):
    """Start from today's keystone.conf (whatever ran before on this lab) and go back to it after."""
    from csolab.hosts import wait_ready

    _put_todays_keystone_conf()
    wait_ready()
    yield
    _put_todays_keystone_conf()


def _run_keystone_db_playbook(aws_env):
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/keystone_db.yml",
               "-i", "inventories/lab", "-e", json.dumps({"keystone_db_hosts": "keystone"})]
    env = dict(aws_env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


def _changed_hosts(completed):
    stats = json.loads(completed.stdout)["stats"]
    return {host for host, counts in stats.items() if counts.get("changed")}


def test_rolling_keystone_db_fails_no_token_validation(host_lab, aws_env, todays_keystone_conf, tmp_path):
    from csolab.hosts import fixtures
    from csolab.probe import BackgroundProbe, format_summary

    probe = BackgroundProbe(tmp_path / "probe.json", interval=0.3).start()
    try:
        completed = _run_keystone_db_playbook(aws_env)
    finally:
        summary = probe.stop()
    print(format_summary(summary))

    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert _changed_hosts(completed) == set(KEYSTONE_HOSTS), "the playbook did not change both hosts"
    for host in KEYSTONE_HOSTS:
        conf = fixtures.sh(host, f"cat {CONF}").stdout
        assert "ssl_check_hostname=true" in conf and "ssl_ca=" in conf, f"{host}: keystone.conf not converged"
    for target in KEYSTONE_TARGETS:
        stats = summary["targets"][target]
        assert stats["requests"] >= 5, f"{target}: the probe barely ran ({stats['requests']} requests)"
        assert stats["failures"] == 0, f"{target}: {stats['failures']} failed token round trips: " + json.dumps(
            [failure for failure in summary["failure_log"] if failure["target"] == target][:3])
