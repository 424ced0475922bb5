"""playbooks/phase1.yml and rollback_tls.yml end to end on the host lab.

One host-lab bring-up is shared by every test of this module (session fixture ``host_lab``).
Phase 1 converges ONCE per module: module fixtures make each state once, record what was observed
right after it (run results, probe summaries, AWS calls, the database's TLS requirement, host file
checksums) and every test that needs the state asks for the fixture, not for an earlier test:

- ``refused_run``: phase 1 in the wrong order from the lab's start state: keystone-2 gets a CA
  bundle without the database's CA, so it cannot prove verified TLS; the run stops before
  enforcing, the database still accepts plaintext; the one reboot the new parameter group needs
  is a real outage: validations of issued tokens never fail on keystone-1 (its token cache is on),
  other requests (and keystone-2's validations: its step was refused before the cache) only during
  the restart (+10 s);
- ``converged_run`` (after ``refused_run``): phase 1 converges with the probe running: zero failed
  token validations (per host and through the load balancer) and zero CSO health failures; the
  database refuses plaintext; a second run changes nothing;
- ``converged`` / ``rolled_back`` / ``converged`` (per test): put the lab into the state a
  test starts from, and do nothing when it is already there (the usual case in file order).

The tests:

1. ``--syntax-check`` against inventories/prod (no lab);
2. check mode against the lab's start state: zero mutating AWS calls, no host file changed
   (it runs before any fixture above changes the lab: it is first in the file and asks for none);
3. wrong order refused (``refused_run``);
4. phase 1 converges (``converged_run``);
5. rollback_tls.yml by default only lifts the database's TLS requirement: the hosts' files are
   unchanged and the services work; with ``rollback_tls_restore_hosts=true`` a host whose restored
   file breaks its service gets the file from before the rollback back (and serves); with it on,
   rollback_tls.yml restores the previous state within 60 s and authentication works;
6. an interrupted phase 1 (``phase1_stop_after``) re-run from the rolled-back state reaches the
   same end state as ``converged_run`` (the hosts' files, the database's TLS requirement, the AWS
   resources phase 1 converges), the state ``converged_run``'s second run proved idempotent; the
   resumed run moves both Keystone hosts one after the other and CSO to verified TLS with the probe
   running: zero failed token round trips per Keystone host and through the load balancer, zero CSO
   health failures;
7. CA rotation: a host whose bundle lacks the new CA stops step ca_rotation before the instance is
   touched; then the rotation end to end (one restart, every host verifies the new CA, the probe
   sees failures only during the restart), and a second run changes nothing.

Runs 5 and 6's resumed run are made at ``-vvv --diff`` with the default output, and that output
must hold no secret the lab knows (``csolab.leaks``).

When a later module of the session uses the host lab, this module leaves it as it found it
TLS-wise (the seeded CA, then a rollback with the hosts restored); when none does, it leaves the
lab as it is: the session's ``csolab.hosts.release`` resets it (or takes it down) anyway.
"""

import json
import os
import time

import pytest

from phase_support import (  # noqa: F401  (phase1_lab, aws_env_module: fixtures used by name)
    REPO_ROOT, DB, KEYSTONE_HOSTS, HOST_FILES, RESTORE_HOSTS, phase1_lab, aws_env_module, run_ansible,
    run_ansible_as_a_user_sees_it, leaked_secrets, total, changed_tasks, failure_messages, requires_tls,
    wait_requires_tls, host_checksums, keystone_through_lb, WITHOUT_TOKEN_CACHE, failures_outside_restarts,
    SEEDED_CA, NEW_CA, TO_THE_NEW_CA, served_ca, instance_ca, back_to_the_seeded_ca, rds, aws_state, run_results,
    cso_health)


@pytest.mark.parametrize("playbook", ["phase1.yml", "rollback_tls.yml"])
def test_syntax_check_against_prod(playbook):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
    completed = run_ansible(env, playbook, "--syntax-check", inventories=("inventories/prod",))
    assert completed.returncode == 0, completed.stderr


@pytest.mark.hosts
@pytest.mark.lab
def test_check_mode_changes_nothing(phase1_lab, aws_env_module):
    before = host_checksums()
    phase1_lab.clear_calls()
    completed = run_ansible(aws_env_module, "phase1.yml", "--check", "--diff")
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
    assert [(c["service"], c["action"]) for c in phase1_lab.mutating_calls()] == []
    assert host_checksums() == before
    assert not requires_tls()


@pytest.fixture(scope="module")
def refused_run(phase1_lab, aws_env_module, tmp_path_factory):
    """Phase 1 from the lab's start state with keystone-2's CA bundle unable to verify the database,
    the probe running; what was observed right after it, for test_wrong_order_is_refused."""
    from csolab import dataplane
    from csolab.probe import BackgroundProbe

    tmp_path = tmp_path_factory.mktemp("refused-run")
    overlay = tmp_path / "keystone-2-cannot-verify.yml"
    overlay.write_text(json.dumps({"all": {"children": {"keystone": {"hosts": {"keystone-2": {
        "rds_ca_bundle_sources": [{"src": str(dataplane.rogue_ca_path())}]}}}}}}))
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    started = time.time()
    phase1_lab.clear_calls()
    try:
        completed = run_ansible(aws_env_module, "phase1.yml", inventories=("inventories/lab", str(overlay)))
    finally:
        summary = probe.stop()
    return {"completed": completed, "summary": summary, "calls": phase1_lab.calls(),
            "restarts": dataplane.restarts_since(started), "requires_tls": requires_tls(),
            "through_lb": keystone_through_lb()}


@pytest.fixture(scope="module")
def converged_run(refused_run, phase1_lab, aws_env_module, tmp_path_factory):
    """Phase 1 converged after the refused run (which already rebooted the instance onto its new
    parameter group), the probe running, then a second run; recorded once for every test that
    starts from phase 1's end state."""
    from csolab.probe import BackgroundProbe

    tmp_path = tmp_path_factory.mktemp("converged-run")
    summary_path = tmp_path / "phase1-summary.json"
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    second = None
    try:
        first = run_ansible(aws_env_module, "phase1.yml", "-e", f"phase1_summary_path={summary_path}")
        if first.returncode == 0:
            second = run_ansible(aws_env_module, "phase1.yml")
    finally:
        summary = probe.stop()
    return {"first": first, "second": second, "summary": summary,
            "report": json.loads(summary_path.read_text()) if summary_path.exists() else None,
            "requires_tls": wait_requires_tls(True), "checksums": host_checksums(), "aws_state": aws_state(phase1_lab)}


@pytest.mark.hosts
@pytest.mark.lab
def test_wrong_order_is_refused(refused_run):
    completed, summary, restarts = refused_run["completed"], refused_run["summary"], refused_run["restarts"]
    print("restart:", restarts[:1], "probe:", {name: (t["failures"], t["longest_outage_s"])
                                               for name, t in summary["targets"].items()})
    assert completed.returncode != 0, "phase 1 must stop when a dependent host cannot verify TLS"
    refusal = [message for message in failure_messages(completed) if "NOT enforcing TLS" in message]
    assert refusal and "keystone-2" in refusal[0] and "keystone-1:" not in refusal[0], failure_messages(completed)
    assert refused_run["requires_tls"] is False, "the database must still accept plaintext"
    # the seeded instance is on the engine's default group: the new group needs the one reboot,
    # which the data plane acts out as an outage
    reboots = [call for call in refused_run["calls"] if call["action"] == "RebootDBInstance"]
    assert len(reboots) == 1 and [(r["instance"], r["reason"]) for r in restarts] == [(DB, "reboot")], restarts
    # cso-1 moves to TLS in this run (it can prove TLS): its restart is socket-activated, so
    # health requests wait for the new JVM instead of failing. Logged-in users ride through the
    # reboot; new logins and CSO may fail only while the database is down.
    # keystone-2's hosts_tls step was refused before keystone_db ran, so it has no token cache yet:
    # its validations (and the load balancer's share that reaches it) fail during the restart like
    # any other request; keystone-1, cache on, answers every validation
    from csolab.probe import restart_window

    start, end = restart_window(restarts[0], summary["ended"])
    not_ridden = [failure for failure in failures_outside_restarts(summary, restarts)
                  if not (failure["target"] in WITHOUT_TOKEN_CACHE and start <= failure["ts"] <= end)]
    assert not_ridden == [], not_ridden[:5]
    assert summary["targets"]["keystone-validate:keystone-1"]["failures"] == 0
    assert refused_run["through_lb"]


@pytest.mark.hosts
@pytest.mark.lab
def test_phase1_converges_without_failed_validations(converged_run):
    from csolab.probe import format_summary

    first, second, summary = converged_run["first"], converged_run["second"], converged_run["summary"]
    print(format_summary(summary))
    assert first.returncode == 0, failure_messages(first) or first.stderr[-2000:]
    assert second.returncode == 0, failure_messages(second)
    assert total(second, "changed") == 0, changed_tasks(second)
    assert {name: target["failures"] for name, target in summary["targets"].items()} == {
        name: 0 for name in summary["targets"]}, summary["failure_log"][:5]
    assert {"keystone:keystone-1", "keystone:keystone-2", "keystone:lb", "cso:cso-1"} <= set(summary["targets"])
    assert all(target["requests"] > 0 for target in summary["targets"].values())
    assert converged_run["requires_tls"]
    report = converged_run["report"]
    assert report["plaintext_refused"] is True
    assert report["steps"]["tls_enforcement"]["changed"] is True
    # keystone-1 and cso-1 already moved in the refused run (fixture refused_run); keystone-2 moves now
    assert set(report["steps"]["hosts_tls"]) == set(HOST_FILES)
    assert not [host for host, entry in report["steps"]["hosts_tls"].items() if "NOT verified" in entry["detail"]]
    assert report["steps"]["hosts_tls"]["keystone-2"]["changed"] is True


def hosts_on_tls():
    from csolab.hosts import fixtures

    keystone = all("ssl_ca=" in fixtures.sh(host, "grep '^connection' /etc/keystone/keystone.conf").stdout
                   for host in KEYSTONE_HOSTS)
    return keystone and "useSSL=true" in fixtures.sh("cso-1", "grep '^db.url=' /opt/cso/setup.properties").stdout


@pytest.fixture
def converged(converged_run, phase1_lab, aws_env_module):
    """Phase 1's end state (``converged_run``) on the seeded CA, made again only when a test before
    changed it (in file order only the rollback tests do, and put it back themselves)."""
    assert converged_run["first"].returncode == 0, "phase 1 did not converge: see test_phase1_converges_..."
    if instance_ca(phase1_lab) != SEEDED_CA:  # test_ca_rotation_end_to_end leaves the new CA
        back_to_the_seeded_ca(phase1_lab)
    if not (requires_tls() and hosts_on_tls()):
        completed = run_ansible(aws_env_module, "phase1.yml")
        assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
        assert wait_requires_tls(True) and hosts_on_tls()
    return phase1_lab


@pytest.fixture
def rolled_back(converged_run, phase1_lab, aws_env_module):
    """After phase 1 converged once, rolled back with the hosts restored (the end state of
    test_rollback_restores_authentication_within_60s; rolled back here when it did not run)."""
    if instance_ca(phase1_lab) != SEEDED_CA:
        back_to_the_seeded_ca(phase1_lab)
    if requires_tls() or hosts_on_tls():
        completed = run_ansible(aws_env_module, "rollback_tls.yml", *RESTORE_HOSTS)
        assert completed.returncode == 0, completed.stdout[-3000:]
    return phase1_lab


def instance_require_secure_transport(lab):
    """The value in the instance's parameter group, through the AWS API."""
    client = rds(lab)
    group = client.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["DBParameterGroups"][0]
    pages = client.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group["DBParameterGroupName"])
    values = [p.get("ParameterValue") for page in pages for p in page["Parameters"]
              if p["ParameterName"] == "require_secure_transport"]
    return group["DBParameterGroupName"], (values or [None])[0]


def require_tls_again(lab):
    """Back to phase 1's end state on the database (the rollback tests lift the requirement)."""
    group, _value = instance_require_secure_transport(lab)
    rds(lab).modify_db_parameter_group(DBParameterGroupName=group, Parameters=[{
        "ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    assert wait_requires_tls(True)


@pytest.mark.hosts
@pytest.mark.lab
def test_rollback_by_default_only_lifts_the_database_requirement(converged, aws_env_module):
    phase1_lab = converged
    before = host_checksums()
    try:
        completed = run_ansible(aws_env_module, "rollback_tls.yml")
        assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
        assert host_checksums() == before, "the default rollback must leave the hosts' files alone"
        assert hosts_on_tls()
        assert instance_require_secure_transport(phase1_lab)[1] == "0"
        assert wait_requires_tls(False)
        assert keystone_through_lb()
        assert cso_health()[0] == "200"
        assert [t for t in changed_tasks(completed) if not t.startswith(DB)] == []
    finally:
        require_tls_again(phase1_lab)


@pytest.mark.hosts
@pytest.mark.lab
def test_rollback_restore_puts_the_current_file_back_when_the_service_fails(converged, aws_env_module):
    """A backup that no longer works (here: a password changed since) must not leave CSO down."""
    from csolab.hosts import fixtures

    phase1_lab = converged
    backup = HOST_FILES["cso-1"] + ".cso_db.bak"
    original = fixtures.sh("cso-1", f"cat {backup}").stdout
    assert "db.password=" in original
    before = host_checksums()["cso-1"]
    fixtures.sh("cso-1", f"sed -i 's/^db.password=.*/db.password=changed-since-the-backup/' {backup}")
    try:
        completed = run_ansible(aws_env_module, "rollback_tls.yml", *RESTORE_HOSTS, "-e", "cso_db_health_timeout=10",
                                "--limit", f"{DB},cso-1")
        assert completed.returncode != 0, "CSO fails with the restored backup: the run must say so"
        messages = failure_messages(completed)
        assert any("cso-1" in m and "put back" in m and "serves again" in m for m in messages), messages
        assert host_checksums()["cso-1"] == before, "the file from before the rollback is back"
        assert cso_health()[0] == "200"
        saved = fixtures.sh("cso-1", f"stat -c '%U:%G %a' {HOST_FILES['cso-1']}.rollback_tls.bak").stdout.strip()
        assert saved == "root:root 600"
    finally:
        fixtures.put("cso-1", backup, original, "0600")
        require_tls_again(phase1_lab)


@pytest.mark.hosts
@pytest.mark.lab
def test_rollback_restores_authentication_within_60s(converged, aws_env_module):
    assert requires_tls(), "runs after phase 1"
    began = time.monotonic()
    completed = run_ansible_as_a_user_sees_it(aws_env_module, "rollback_tls.yml", *RESTORE_HOSTS)
    elapsed = time.monotonic() - began
    print(f"rollback_tls.yml -vvv --diff: {elapsed:.1f} s")
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert leaked_secrets(completed, "rollback_tls.yml -vvv --diff") == []
    assert elapsed < 60
    assert not requires_tls()
    assert keystone_through_lb()
    from csolab.hosts import fixtures

    for host in KEYSTONE_HOSTS:
        conf = fixtures.sh(host, "grep '^connection' /etc/keystone/keystone.conf").stdout
        assert "ssl_ca" not in conf, f"{host} still has the TLS settings"


@pytest.mark.hosts
@pytest.mark.lab
def test_interrupted_phase1_reaches_the_same_end_state(rolled_back, aws_env_module, converged_run, tmp_path):
    from csolab.probe import BackgroundProbe, format_summary

    phase1_lab = rolled_back
    assert not requires_tls(), "starts from the rolled-back state"
    interrupted = run_ansible(aws_env_module, "phase1.yml", "-e", "phase1_stop_after=security_group")
    assert interrupted.returncode == 0, failure_messages(interrupted)
    assert not requires_tls(), "stopped before tls_enforcement"
    # the resumed run moves both Keystone hosts (serial: 1, graceful reloads) and CSO to verified TLS without a
    # database restart (the rollback only lifted a dynamic parameter): no request of the probe may fail
    probe = BackgroundProbe(tmp_path / "probe.json", interval=0.3).start()
    try:
        resumed = run_ansible_as_a_user_sees_it(aws_env_module, "phase1.yml")
    finally:
        summary = probe.stop()
    print(format_summary(summary))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    for target in ("keystone:keystone-1", "keystone:keystone-2", "keystone:lb", "cso:cso-1"):
        stats = summary["targets"][target]
        assert stats["requests"] >= 5, f"{target}: the probe barely ran ({stats['requests']} requests)"
        assert stats["failures"] == 0, f"{target}: {stats['failures']} failures: " + json.dumps(
            [failure for failure in summary["failure_log"] if failure["target"] == target][:3])
    # this run changes keystone.conf and setup.properties, reloads, issues tokens: all at -vvv --diff
    assert leaked_secrets(resumed, "phase1.yml -vvv --diff") == []
    assert wait_requires_tls(True)
    # the same end state as converged_run, on the hosts and in AWS; converged_run's second run proved
    # that state changes nothing on a re-run (a third full run here would only repeat that)
    assert host_checksums() == converged_run["checksums"]
    assert aws_state(phase1_lab) == converged_run["aws_state"]
    assert converged_run["second"] is not None and total(converged_run["second"], "changed") == 0


# Step ca_rotation, on the converged lab (TLS enforced): from the seeded CA to another lab CA.
@pytest.mark.hosts
@pytest.mark.lab
def test_a_host_without_the_new_ca_stops_the_rotation_before_the_instance_is_touched(converged, aws_env_module,
                                                                                    tmp_path):
    """keystone-2's bundle holds the seeded CA only: it verifies the database today (step hosts_tls
    installs it), but would lose it after the rotation."""
    from csolab import dataplane

    phase1_lab = converged
    assert served_ca() == SEEDED_CA == instance_ca(phase1_lab)
    overlay = tmp_path / "keystone-2-old-ca-only.yml"
    overlay.write_text(json.dumps({"all": {"children": {"keystone": {"hosts": {"keystone-2": {
        "rds_ca_bundle_sources": [{"src": str(dataplane.ca_path(SEEDED_CA))}]}}}}}}))
    phase1_lab.clear_calls()

    completed = run_ansible(aws_env_module, "phase1.yml", *TO_THE_NEW_CA, inventories=("inventories/lab", str(overlay)))

    assert completed.returncode != 0, "the rotation must stop"
    refusal = [message for message in failure_messages(completed) if "NOT rotating the CA" in message]
    assert refusal, failure_messages(completed)
    assert f"keystone-2: the CA bundle /etc/ssl/rds/rds-ca-bundle.pem (1 certificates) lacks {NEW_CA}" in refusal[0], refusal
    assert "keystone-1:" not in refusal[0] and "cso-1:" not in refusal[0], refusal
    actions = [call["action"] for call in phase1_lab.calls()]
    assert "ModifyDBInstance" not in actions and "RebootDBInstance" not in actions, actions
    assert instance_ca(phase1_lab) == SEEDED_CA and served_ca() == SEEDED_CA


@pytest.mark.hosts
@pytest.mark.lab
def test_ca_rotation_end_to_end(converged, aws_env_module, tmp_path):
    from csolab import dataplane
    from csolab.probe import BackgroundProbe

    phase1_lab = converged
    assert served_ca() == SEEDED_CA
    summary_path = tmp_path / "phase1-summary.json"
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    started = time.time()
    phase1_lab.clear_calls()
    try:
        first = run_ansible(aws_env_module, "phase1.yml", *TO_THE_NEW_CA, "-e", f"phase1_summary_path={summary_path}")
    finally:
        summary = probe.stop()
    assert first.returncode == 0, failure_messages(first) or first.stderr[-2000:]
    restarts = dataplane.restarts_since(started)
    actions = [call["action"] for call in phase1_lab.mutating_calls()]
    assert served_ca() == NEW_CA == instance_ca(phase1_lab)
    assert [(r["instance"], r["up"] is not None) for r in restarts] == [(DB, True)], restarts
    assert actions.count("ModifyDBInstance") == 1 and "RebootDBInstance" not in actions, actions
    assert failures_outside_restarts(summary, restarts) == [], summary["failure_log"][:5]
    step = json.loads(summary_path.read_text())["steps"]["ca_rotation"]
    assert step["changed"] is True and step["detail"].startswith(f"{SEEDED_CA} -> {NEW_CA} (one restart)"), step
    for host in HOST_FILES:
        assert f"{host}: verified TLS session against {NEW_CA} alone" in step["detail"], step

    phase1_lab.clear_calls()
    again = run_ansible(aws_env_module, "phase1.yml", *TO_THE_NEW_CA)
    assert again.returncode == 0, failure_messages(again)
    assert total(again, "changed") == 0, changed_tasks(again)
    assert [call["action"] for call in phase1_lab.mutating_calls()] == []
    assert dataplane.restarts_since(started) == restarts
    # left on the new CA: fixture ``converged`` rotates back when a test after this one needs it


@pytest.mark.lab
def test_window_gate_skips_disruptive_steps_outside_the_window(lab, aws_env):
    """AWS side only (--limit to the database, no reset: it may share the host lab): outside the
    window and not forced, the security group step (instance modification) is skipped."""
    lab.clear_calls()
    completed = run_ansible(aws_env, "phase1.yml", "--limit", DB, "-e", json.dumps({
        "phase1_force_outside_window": False, "phase1_maintenance_window": "sun:04:00-sun:05:00",
        "phase1_now": "2026-11-23T12:00:00Z", "phase1_stop_after": "security_group", "phase1_snapshot": False}))
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
    actions = {call["action"] for call in lab.mutating_calls()}
    assert not actions & {"ModifyDBInstance", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress",
                          "CreateDBParameterGroup", "ModifyDBParameterGroup", "RebootDBInstance"}, actions
    results = run_results(completed, DB)
    gate = next(r for r in results if r["_task"] == "Report the maintenance-window gate")
    assert "OUTSIDE" in gate["msg"] and "SKIPPED" in gate["msg"]
    assert "Find the application servers' security groups in the database's VPC" not in [r["_task"] for r in results]

    inside = run_ansible(aws_env, "phase1.yml", "--limit", DB, "-e", json.dumps({
        "phase1_force_outside_window": False, "phase1_maintenance_window": "sun:04:00-sun:05:00",
        "phase1_now": "2026-11-22T04:30:00Z", "phase1_stop_after": "preflight", "phase1_snapshot": False}))
    assert inside.returncode == 0, failure_messages(inside)
    gate = next(r for r in run_results(inside, DB) if r["_task"] == "Report the maintenance-window gate")
    assert "inside it now" in gate["msg"]


# Phase 1's parameter-group path, AWS side only (--limit to the database, no hosts): an instance on
# its own custom parameter group keeps it (require_secure_transport is dynamic: set there in step
# tls_enforcement, no reboot, the group's other settings stay); only an instance on a default
# group (which cannot be modified) gets a new group, attached with a reboot inside the window.
CUSTOM_GROUP = "cso-lab-db-tuned"
CUSTOM_SETTINGS = {"max_connections": "500", "character_set_server": "utf8mb4"}
INSIDE_THE_WINDOW = {"phase1_force_outside_window": False, "phase1_maintenance_window": "sun:04:00-sun:05:00",
                     "phase1_now": "2026-11-22T04:30:00Z", "phase1_stop_after": "security_group",
                     "phase1_snapshot": False}
HEALTH_GATE = "The instance is available with its parameter group in sync"


def put_instance_on_a_custom_group(lab):
    client = rds(lab)
    client.create_db_parameter_group(DBParameterGroupName=CUSTOM_GROUP, DBParameterGroupFamily="mysql8.0",
                                     Description="tuned by the DBA")
    client.modify_db_parameter_group(DBParameterGroupName=CUSTOM_GROUP, Parameters=[
        {"ParameterName": name, "ParameterValue": value, "ApplyMethod": "pending-reboot"}
        for name, value in CUSTOM_SETTINGS.items()])
    client.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName=CUSTOM_GROUP, ApplyImmediately=True)
    client.reboot_db_instance(DBInstanceIdentifier=DB)
    client.get_waiter("db_instance_available").wait(DBInstanceIdentifier=DB, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert instance_groups(lab) == [(CUSTOM_GROUP, "in-sync")]


def instance_groups(lab):
    instance = rds(lab).describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    return [(group["DBParameterGroupName"], group["ParameterApplyStatus"]) for group in instance["DBParameterGroups"]]


def user_settings(lab, group):
    pages = rds(lab).get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group, Source="user")
    return {p["ParameterName"]: p.get("ParameterValue") for page in pages for p in page["Parameters"]}


def group_report(completed):
    results = run_results(completed, DB)
    return next(r for r in results if r["_task"] == "Report the parameter group path")["msg"]


@pytest.mark.lab
def test_an_instance_on_its_own_group_keeps_it_and_is_not_rebooted(aws_lab, aws_env):
    put_instance_on_a_custom_group(aws_lab)
    aws_lab.clear_calls()

    completed = run_ansible(aws_env, "phase1.yml", "--limit", DB, "-e", json.dumps(INSIDE_THE_WINDOW))

    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
    assert "own parameter group " + CUSTOM_GROUP in group_report(completed)
    actions = [call["action"] for call in aws_lab.mutating_calls()]
    assert "RebootDBInstance" not in actions, actions
    assert not {"CreateDBParameterGroup", "ModifyDBParameterGroup"} & set(actions), actions
    assert instance_groups(aws_lab) == [(CUSTOM_GROUP, "in-sync")]
    assert user_settings(aws_lab, CUSTOM_GROUP) == CUSTOM_SETTINGS
    assert HEALTH_GATE not in [r["_task"] for r in run_results(completed, DB)], "no restart, no gate"

    aws_lab.clear_calls()
    again = run_ansible(aws_env, "phase1.yml", "--limit", DB, "-e", json.dumps(INSIDE_THE_WINDOW))
    assert again.returncode == 0, failure_messages(again)
    assert [call["action"] for call in aws_lab.mutating_calls()] == [], "a second run changes nothing"


@pytest.mark.lab
def test_an_instance_on_a_default_group_gets_a_new_group_and_a_reboot_inside_the_window(aws_lab, aws_env):
    (default_group, _), = instance_groups(aws_lab)
    assert default_group.startswith("default.")
    aws_lab.clear_calls()

    completed = run_ansible(aws_env, "phase1.yml", "--limit", DB, "-e", json.dumps(INSIDE_THE_WINDOW))

    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
    assert "default group " + default_group in group_report(completed)
    actions = [call["action"] for call in aws_lab.mutating_calls()]
    assert "CreateDBParameterGroup" in actions and actions.count("RebootDBInstance") == 1, actions
    assert instance_groups(aws_lab) == [(f"{DB}-mysql80", "in-sync")]
    gate = next(r for r in run_results(completed, DB) if r["_task"] == HEALTH_GATE)
    assert gate["instances"][0]["db_instance_status"] == "available", gate
    # TLS is enforced later (step tls_enforcement), once every client proved it
    assert user_settings(aws_lab, f"{DB}-mysql80").get("require_secure_transport", "0") == "0"


@pytest.mark.lab
def test_a_dependent_host_outside_the_allowed_groups_stops_the_security_group_swap(aws_lab, aws_env, tmp_path):
    """outsider-1's network interface is in the VPC's default group only: listed as a Keystone
    host, it would lose the database when the instance leaves the shared group."""
    overlay = tmp_path / "outsider-as-keystone.yml"
    overlay.write_text("all:\n  children:\n    keystone:\n      hosts:\n        outsider-1: {}\n")
    aws_lab.clear_calls()

    completed = run_ansible(aws_env, "phase1.yml", "--limit", DB, "-e", json.dumps(INSIDE_THE_WINDOW),
                            inventories=("inventories/lab", str(overlay)))

    assert completed.returncode != 0
    messages = failure_messages(completed)
    assert any("outsider-1 (10.20.1.41: " in m and "keystone-1" not in m for m in messages), messages
    actions = {call["action"] for call in aws_lab.mutating_calls()}
    assert not actions & {"CreateSecurityGroup", "ModifyDBInstance", "CreateDBParameterGroup"}, actions
