"""What the phase playbooks' host tests share (tests/integration/test_phase1.py, test_phase2.py):
running a playbook against the lab's inventory, reading its json output, the database's TLS state,
the hosts' files, and the module fixtures that start from and leave the lab in a known TLS state."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DB = "cso-lab-db"
KEYSTONE_HOSTS = ("keystone-1", "keystone-2")
HOST_FILES = {"keystone-1": "/etc/keystone/keystone.conf", "keystone-2": "/etc/keystone/keystone.conf",
              "cso-1": "/opt/cso/setup.properties"}
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
# rollback_tls.yml leaves the hosts' files alone unless asked to restore them
RESTORE_HOSTS = ("-e", "rollback_tls_restore_hosts=true")


@pytest.fixture(scope="module")
def phase1_lab(host_lab, aws_env_module, request):
    """Start from the database accepting plaintext and the hosts on their previous settings:
    rolled back unless the lab is already there (no TLS requirement, no role backup on a host)."""
    if requires_tls() or any(role_backups().values()):
        completed = run_ansible(aws_env_module, "rollback_tls.yml", *RESTORE_HOSTS)
        assert completed.returncode == 0, completed.stdout[-3000:]
    yield host_lab
    leave_host_lab(host_lab, aws_env_module, request)


def leave_host_lab(host_lab, env, request, reset_instead_of_rollback=False):
    """Teardown of the phase modules: leave the lab as the next module using it wants it, phase 1's
    end state (STARTS_FROM_PHASE1_END_STATE = True in that module) or rolled back (by rollback_tls,
    or by a host lab reset when ``reset_instead_of_rollback``)."""
    from csolab import hosts

    following = next_host_lab_module(request)
    if following is None:
        print("no later test uses the host lab; the session's release resets it")
        return
    if getattr(following, "STARTS_FROM_PHASE1_END_STATE", False) and requires_tls():
        if instance_ca(host_lab) != SEEDED_CA:
            back_to_the_seeded_ca(host_lab)
        print(f"{following.__name__} starts from phase 1's end state: left converged")
        return
    if reset_instead_of_rollback:
        print(f"host lab reset for {following.__name__}: {hosts.reset()}")
        return
    if instance_ca(host_lab) != SEEDED_CA:
        back_to_the_seeded_ca(host_lab)
    completed = run_ansible(env, "rollback_tls.yml", *RESTORE_HOSTS)
    assert completed.returncode == 0, completed.stdout[-3000:]


def reset_for_the_next_module(request):
    """Teardown of a host module that changes what no rollback playbook restores (IAM users and
    policies, a driver directory, a service's auth mode): the next module using the host lab starts
    from a reset lab (about 20 s), the last one leaves it to the session's release."""
    from csolab import hosts

    following = next_host_lab_module(request)
    if following is None:
        print("no later test uses the host lab; the session's release resets it")
        return
    print(f"host lab reset for {following.__name__}: {hosts.reset()}")


def keystone_round_trips(rounds=3):
    """Tokens issued and validated through each Keystone host and the load balancer (two workers each)."""
    from csolab.hosts import topology
    from csolab.probe import in_namespace, keystone_round_trip

    targets = [(topology.HOSTS[host]["ip"], 5000) for host in KEYSTONE_HOSTS] + [topology.KEYSTONE_LB]
    for _ in range(rounds):
        for address, port in targets:
            in_namespace(lambda a=address, p=port: keystone_round_trip(a, p))


def next_host_lab_module(request):
    """The module of the first test after this module's last one that uses the host lab, or None."""
    items = request.session.items
    last = max(index for index, item in enumerate(items) if item.module is request.module)
    return next((item.module for item in items[last + 1:] if "host_lab" in getattr(item, "fixturenames", ())), None)


def host_lab_used_after(request):
    """Whether a test after this module's last one in the session uses the host lab."""
    return next_host_lab_module(request) is not None


@pytest.fixture(scope="module")
def aws_env_module(host_lab):
    state = host_lab.state
    return dict(os.environ, AWS_ENDPOINT_URL=state["endpoint_url"], AWS_REGION=state["region"],
                AWS_DEFAULT_REGION=state["region"], AWS_ACCESS_KEY_ID=state["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=state["aws_secret_access_key"],
                ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))


def run_ansible(env, playbook, *args, inventories=("inventories/lab",), timeout=1500):
    command = [ANSIBLE_PLAYBOOK, playbook]
    for inventory in inventories:
        command += ["-i", inventory]
    command += list(args)
    run_env = dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
                   ANSIBLE_SSH_CONTROL_PATH_DIR=control_path_dir())
    return timed(command, run_env, timeout)


def timed(command, env, timeout):
    """Run and print the run's wall time (shown with the test's output: where the module's time goes)."""
    began = time.monotonic()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{time.monotonic() - began:6.1f} s  rc={completed.returncode}  {' '.join(command[1:])[:200]}")
    return completed


def run_ansible_as_a_user_sees_it(env, playbook, *args):
    """-vvv --diff with the default output, as an operator debugging a run would see it."""
    command = [ANSIBLE_PLAYBOOK, playbook, "-i", "inventories/lab", "-vvv", "--diff", *args]
    run_env = dict(env, ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_SSH_CONTROL_PATH_DIR=control_path_dir())
    return timed(command, run_env, 1500)


def leaked_secrets(completed, what):
    """Where the run's output shows a secret the lab knows (csolab.leaks: names, never the values)."""
    from csolab import leaks

    return leaks.report({what: completed.stdout + completed.stderr})


def control_path_dir():
    """SSH masters per lab: every lab's hosts have the same addresses, so a shared
    ~/.ansible/cp would let this run reuse another lab's live connection."""
    from csolab import paths

    return str(Path(paths.LAB_DIR) / "ssh" / "cp")


def run_results(completed, host=DB):
    """Every task result of ``host`` in a run with the ansible.posix.json callback, with the task's name as ``_task``."""
    out = []
    for play in json.loads(completed.stdout)["plays"]:
        for task in play["tasks"]:
            if host in task["hosts"]:
                out.append(dict(task["hosts"][host], _task=task["task"]["name"]))
    return out


def stats(completed):
    return json.loads(completed.stdout)["stats"]


def total(completed, key):
    return sum(host.get(key, 0) for host in stats(completed).values())


def changed_tasks(completed):
    out = []
    for play in json.loads(completed.stdout)["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("changed"):
                    out.append(f"{host}: {task['task']['name']}")
    return out


def failure_messages(completed):
    out = []
    for play in json.loads(completed.stdout)["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") and not result.get("ignore_errors"):
                    out.append(f"{host}: {result.get('msg', '')}")
    return out


def requires_tls():
    from csolab import dataplane

    return bool(dataplane.status()["instances"][DB]["require_secure_transport"])


def wait_requires_tls(expected, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if requires_tls() == expected:
            return True
        time.sleep(0.5)
    return requires_tls() == expected


def role_backups():
    """{host: [backup files keystone_db / cso_db left]} (a previous phase 1 ran on this lab)."""
    from csolab.hosts import fixtures

    return {host: fixtures.sh(host, f"ls {path}.*.bak 2>/dev/null; true").stdout.split()
            for host, path in HOST_FILES.items()}


def host_checksums():
    from csolab.hosts import fixtures

    return {host: fixtures.sh(host, f"sha256sum {path}").stdout.split()[0] for host, path in HOST_FILES.items()}


def cso_health(host="cso-1"):
    """CSO's /health from the host itself: (HTTP status, where its write and read paths landed as a dict, or the
    body when it is not 200). The paths come from the statements CSO ran, not from who is connected afterwards:
    the lab's pools close connections older than 5 s."""
    from csolab.hosts import fixtures

    out = fixtures.sh(host, "curl -s -m 10 -w '\\n%{http_code}' http://127.0.0.1:8080/health", check=False).stdout
    body, _, status = out.rstrip("\n").rpartition("\n")
    return status, (json.loads(body[3:]) if status == "200" and body.startswith("OK {") else body)


def keystone_through_lb():
    from csolab.hosts import topology
    from csolab.probe import in_namespace, keystone_round_trip

    return in_namespace(lambda: keystone_round_trip(*topology.KEYSTONE_LB))


def probe_failures(summary):
    return {name: target["failures"] for name, target in summary["targets"].items() if target["failures"]}


# the targets that reach keystone-2 when its hosts_tls step was refused (no token cache there)
WITHOUT_TOKEN_CACHE = ("keystone-validate:keystone-2", "keystone-validate:lb")


def failures_outside_restarts(summary, restarts):
    """Probe failures a database restart does not explain (csolab.probe.explain_failures)."""
    from csolab.probe import explain_failures

    return explain_failures(summary, restarts)[1]


SEEDED_CA, NEW_CA = "rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1"
TO_THE_NEW_CA = ("-e", f"phase1_ca_certificate_identifier={NEW_CA}", "-e", "phase1_stop_after=ca_rotation")


def served_ca():
    from csolab import dataplane

    return dataplane.status()["instances"][DB]["ca_certificate_identifier"]


def instance_ca(lab):
    return rds(lab).describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["CACertificateIdentifier"]


def back_to_the_seeded_ca(lab):
    """One more restart, outside any measurement."""
    from csolab import dataplane

    rds(lab).modify_db_instance(DBInstanceIdentifier=DB, CACertificateIdentifier=SEEDED_CA, ApplyImmediately=True)
    dataplane.wait_ready(DB, timeout=60, predicate=lambda entry: entry["ca_certificate_identifier"] == SEEDED_CA and entry["ready"])
    dataplane.wait_restarts_over()


def rds(lab):
    return lab.boto3("rds")


def instance(lab, identifier=DB, region=None):
    """The instance's description, or None when it does not exist (a filter answers [] where a lookup by name
    raises DBInstanceNotFound)."""
    found = lab.boto3("rds", region).describe_db_instances(
        Filters=[{"Name": "db-instance-id", "Values": [identifier]}])["DBInstances"]
    return found[0] if found else None


def aws_state(lab):
    """What phase 1 converges on the AWS side, read back: two runs that reached the same state give
    equal values (no timestamps, no request ids)."""
    client = rds(lab)
    instance = client.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    group = instance["DBParameterGroups"][0]["DBParameterGroupName"]
    pages = client.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group, Source="user")
    security_groups = lab.boto3("ec2").describe_security_groups(
        GroupIds=[sg["VpcSecurityGroupId"] for sg in instance["VpcSecurityGroups"]])["SecurityGroups"]
    alarms = lab.boto3("cloudwatch").describe_alarms()["MetricAlarms"]
    subscriptions = client.describe_event_subscriptions()["EventSubscriptionsList"]
    return {
        "instance": {key: instance.get(key) for key in (
            "DBParameterGroups", "VpcSecurityGroups", "StorageEncrypted", "KmsKeyId", "BackupRetentionPeriod",
            "CACertificateIdentifier", "DeletionProtection", "MonitoringInterval", "MonitoringRoleArn",
            "PerformanceInsightsEnabled", "EnabledCloudwatchLogsExports", "DBInstanceAutomatedBackupsReplications",
            "StorageType", "CopyTagsToSnapshot", "TagList")},
        "parameters": sorted((p["ParameterName"], p.get("ParameterValue")) for page in pages for p in page["Parameters"]),
        "security_groups": sorted(json.dumps([sg["GroupName"], sg["IpPermissions"]], sort_keys=True)
                                  for sg in security_groups),
        "alarms": sorted(json.dumps([a["AlarmName"], a.get("MetricName"), a.get("Threshold"),
                                     a.get("ComparisonOperator"), a.get("AlarmActions")], sort_keys=True) for a in alarms),
        "event_subscriptions": sorted(json.dumps([s["CustSubscriptionId"], s.get("SourceIdsList"),
                                                  s.get("EventCategoriesList"), s["Enabled"]], sort_keys=True)
                                      for s in subscriptions),
        "kms_aliases": sorted(a["AliasName"] for a in lab.boto3("kms").list_aliases()["Aliases"]),
    }
