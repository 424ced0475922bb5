"""playbooks/phase2.yml and rollback_phase2.yml end to end on the host lab.

Shares the session's host lab and the helpers of tests/phase_support.py. Starts from phase 1's end
state: test_phase1 leaves it converged for this module (STARTS_FROM_PHASE1_END_STATE), else the
module fixture runs phase1.yml. In file order:

1. ``--syntax-check`` of both playbooks against inventories/prod (no lab);
2. from phase 1's end state with another name for phase 1's dedicated security group, phase 2's
   preflight refuses, names phase 1's missing step, and makes no mutating call;
3. ``phase2_run`` (module fixture): phase 2 with the probe running, then a
   second run: the replica exists as hardened as its source and really replicates, CSO's
   ``db.read.url`` names the replica, zero probe failures, the second run changes nothing;
4. rollback_phase2.yml: CSO's read URL goes, no host refers to the replica, the replica is deleted.

When a later module uses the host lab, the module leaves it rolled back (rollback_tls.yml with the
hosts restored), as test_phase1 does.
"""

import json
import os
import time

import pytest

from phase_support import (  # noqa: F401  (aws_env_module: a fixture used by name)
    DB, REPO_ROOT, SEEDED_CA, aws_env_module, changed_tasks, failure_messages, instance_ca, leave_host_lab,
    leaked_secrets, requires_tls, run_ansible, total)

REPLICA = f"{DB}-replica"
# test_phase1.py's teardown leaves its converged end state for this module instead of rolling it
# back (and phase2_lab then does not converge phase 1 again)
STARTS_FROM_PHASE1_END_STATE = True
# test_phase1 (before this module) leaves its converged end state instead of rolling back
STARTS_FROM_PHASE1_END_STATE = True


def property_line(key, host="cso-1"):
    from csolab.hosts import fixtures

    return fixtures.sh(host, f"grep '^{key}=' /opt/cso/setup.properties; true").stdout.strip()


def read_url():
    return property_line("db.read.url")


def replica_instance(lab):
    rds = lab.boto3("rds")
    found = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [REPLICA]}])["DBInstances"]
    return found[0] if found else None


@pytest.fixture(scope="module")
def phase2_lab(host_lab, aws_env_module, request):
    """Phase 1's end state: as test_phase1 left it, else converged here."""
    if not (requires_tls() and instance_ca(host_lab) == SEEDED_CA):
        completed = run_ansible(aws_env_module, "phase1.yml")
        assert completed.returncode == 0, failure_messages(completed) or completed.stdout[-3000:]
    yield host_lab
    if replica_instance(host_lab):
        completed = run_ansible(aws_env_module, "rollback_phase2.yml")
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
def test_preflight_refuses_when_a_phase1_step_is_missing(phase2_lab, aws_env_module):
    """The instance is not in the group phase 1 would have made: refused before any change."""
    phase2_lab.clear_calls()
    completed = run_ansible(aws_env_module, "phase2.yml", "-e", "phase1_security_group_name=not-phase1s-group")
    assert completed.returncode != 0
    messages = " ".join(failure_messages(completed))
    assert "phase 1 is not complete" in messages and "(phase 1 step security_group)" in messages, messages
    assert [(c["service"], c["action"]) for c in phase2_lab.mutating_calls()] == []
    assert replica_instance(phase2_lab) is None and read_url() == ""


@pytest.fixture(scope="module")
def phase2_run(phase2_lab, aws_env_module, tmp_path_factory):
    """Phase 2 twice from phase 1's end state, the probe running; what was observed right after."""
    from csolab.probe import BackgroundProbe

    tmp_path = tmp_path_factory.mktemp("phase2-run")
    summary_path = tmp_path / "phase2-summary.json"
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    second = None
    try:
        first = run_ansible(aws_env_module, "phase2.yml", "-e", f"phase2_summary_path={summary_path}")
        if first.returncode == 0:
            phase2_lab.clear_calls()
            second = run_ansible(aws_env_module, "phase2.yml")
    finally:
        summary = probe.stop()
    return {"first": first, "second": second, "summary": summary,
            "second_calls": phase2_lab.mutating_calls() if second else None,
            "report": json.loads(summary_path.read_text()) if summary_path.exists() else None}


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
    assert set(report["steps"]) >= {"preflight", "replica", "read_split", "monitoring"}
    split = report["steps"]["read_split"]["cso-1"]
    assert split["changed"] is True and split["read_split_verified"] is True, split
    assert split["read_server_id"] != split["write_server_id"], split


@pytest.mark.hosts
@pytest.mark.lab
def test_rollback_phase2_stops_reads_then_deletes_the_replica(phase2_run, phase2_lab, aws_env_module):
    assert phase2_run["first"].returncode == 0, "needs phase 2's end state"
    completed = run_ansible(aws_env_module, "rollback_phase2.yml")
    assert completed.returncode == 0, failure_messages(completed) or completed.stdout[-3000:]
    assert read_url() == ""
    assert replica_instance(phase2_lab) is None or replica_instance(phase2_lab)["DBInstanceStatus"] == "deleting"
    assert not leaked_secrets(completed, "rollback_phase2")
