"""playbooks/phase3.yml and rollback_phase3.yml against the AWS side of the lab (``--limit`` to the database: no
host, no data plane; the health gate on the dependent hosts after a switchover is a play of their own that
``--limit`` leaves out, as in test_phase1's window-gate test).

1. ``--syntax-check`` against inventories/prod (no lab);
2. check mode: zero mutating calls, and the plan of every step (the storage change, the green and its
   switchover, the DR replica a first run makes);
3. a full run (blue/green and phase 2's IAM authentication on): io1 with its IOPS, the switchover (production keeps
   its name and endpoint with the green's class and another DbiResourceId), the deployment deleted and the old blue
   kept, the identities' rds-db:connect policies naming the new DbiResourceId, the switchover before the DR
   replica, the DR replica in the DR region under the DR key with a ReplicaLag alarm there; a second run makes no
   mutating call;
4. outside the window: the storage change and the green are made, the switchover is not, the DR replica waits;
5. a DR replica there and blue/green requested: refused before any mutating call, saying what to do; the rollback
   it names deletes the DR replica, and the preflight then passes;
6. rollback before the switchover deletes the deployment with its green and leaves production alone;
7. a switchover rolled back past its timeout (phase 2's IAM on): production unchanged, and rollback_phase3.yml deletes
   the green and takes its DbiResourceId out of the identities' policies again; a second rollback makes no call.
"""

import json
import os

import pytest

from iam_lab import LAB_SERVICE_IDENTITIES as IDENTITIES, connect_policy_name, dbuser_arn, phase2_iam_state, \
    role_policy_resources, trust
from phase_support import REPO_ROOT, DB, run_ansible, failure_messages, run_results, instance

pytestmark = pytest.mark.lab

LIMIT = ("--limit", DB)
DEPLOYMENT = f"{DB}-phase3"
DR_REPLICA = f"{DB}-dr"
DR_KEY_ALIAS = f"alias/{DB}-rds-dr"
DR_ALARM_SET = "cso-lab-dr"  # phase1_alarm_set_name of the lab + "-dr"
GREEN_CLASS = "db.m5.large"  # inventories/lab/phase3.yml
POLICY = connect_policy_name(DB)
BLUE_GREEN = {"phase3_blue_green": True}
WITH_IAM = {"phase2_iam": True}
OUTSIDE_THE_WINDOW = {"phase3_force_outside_window": False, "phase3_maintenance_window": "sun:04:00-sun:05:00",
                      "phase1_now": "2026-11-23T12:00:00Z"}


@pytest.mark.parametrize("playbook", ["phase3.yml", "rollback_phase3.yml"])
def test_syntax_check_against_prod(playbook):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
    completed = run_ansible(env, playbook, "--syntax-check", inventories=("inventories/prod",))
    assert completed.returncode == 0, completed.stderr


@pytest.fixture
def lab3(aws_lab):
    """The seeded lab (cso-lab-db: gp3 50 GiB, db.t3.large) with what phase 1 leaves that phase 3 uses: the
    enhanced-monitoring role. Short blue/green periods (the module polls every 5 s)."""
    aws_lab.set_blue_green(provisioning_seconds=2, switchover_seconds=1)
    aws_lab.boto3("iam").create_role(RoleName=f"{DB}-rds-monitoring",
                                     AssumeRolePolicyDocument=trust("monitoring.rds.amazonaws.com"))
    aws_lab.clear_calls()
    return aws_lab


def phase3(env, playbook="phase3.yml", *, check=False, **extra_vars):
    args = [*LIMIT, "-e", json.dumps(extra_vars)] + (["--check", "--diff"] if check else [])
    return run_ansible(env, playbook, *args)


def ok(completed):
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-3000:]
    return completed


def result(completed, task):
    found = [r for r in run_results(completed) if r["_task"] == task]
    assert found, f"no result of {task!r}: {[r['_task'] for r in run_results(completed)]}"
    return found[-1]


def summary(completed):
    return result(completed, "Show what changed, per step")["msg"]


def made(lab):
    return [(call["region"], call["action"]) for call in lab.mutating_calls()]


def actions(lab):
    return [action for _, action in made(lab)]


def deployments(lab):
    return lab.boto3("rds").describe_blue_green_deployments()["BlueGreenDeployments"]


def policy_resources(lab, role):
    return role_policy_resources(lab, role, POLICY)


def test_check_mode_makes_no_mutating_call_and_reports_the_plan(lab3, aws_env):
    completed = ok(phase3(aws_env, check=True, **BLUE_GREEN))

    assert made(lab3) == []
    storage = result(completed, "Plan the storage change (the instance with the target storage and nothing else)")
    assert {(e["attribute"], e["before"], e["after"]) for e in storage["plan"]} == {
        ("storage_type", "gp3", "io1"), ("allocated_storage", 50, 100), ("iops", 3000, 1000)}
    green = result(completed, "Make the green and wait until it is available; inside the window, switch over "
                              "(clients cut off for typically under a minute)")
    assert [(e["what"], e["impact"]) for e in green["plan"]] == [
        (f"create blue/green deployment {DEPLOYMENT} of {DB}", "none"),
        (f"switch over blue/green deployment {DEPLOYMENT}: the green becomes {DB}", "brief-interruption")]
    assert green["plan"][0]["after"]["db_instance_class"] == GREEN_CLASS
    assert green["plan"][0]["after"]["storage_type"] == "io1"
    deletion = result(completed, "Check mode: report the deletion that follows the switchover")["msg"]
    assert f"deletes the deployment {DEPLOYMENT}" in deletion and "the old blue stays" in deletion
    dr = result(completed, "Check mode: report the replica a first run makes")["msg"]
    assert f"the key {DR_KEY_ALIAS}" in dr and f"cross-Region read replica {DR_REPLICA}" in dr and DR_ALARM_SET in dr
    steps = summary(completed)["steps"]
    assert steps["storage"]["changed"] and steps["blue_green"]["changed"]
    assert summary(completed)["check_mode"] is True
    assert instance(lab3)["StorageType"] == "gp3" and deployments(lab3) == []


@pytest.fixture
def phase2_iam(lab3):
    """Phase 2's IAM state on the blue: the flag on, and each identity's rds-db:connect policy naming the blue's
    DbiResourceId (the policy rds_iam_db_auth writes, by its name)."""
    phase2_iam_state(lab3, DB)
    lab3.clear_calls()
    return instance(lab3)


def test_full_run_switches_over_before_the_dr_replica_and_a_second_run_changes_nothing(lab3, phase2_iam, aws_env,
                                                                                        tmp_path):
    blue = phase2_iam
    path = tmp_path / "summary.json"
    completed = ok(phase3(aws_env, **BLUE_GREEN, **WITH_IAM, phase3_summary_path=str(path)))

    # storage: io1 with its IOPS (on the blue first, so the green copies it)
    production = instance(lab3)
    assert (production["StorageType"], production["AllocatedStorage"], production["Iops"]) == ("io1", 100, 1000)
    # blue/green: the green took production's name and endpoint, with its class and its own resource id
    assert production["DBInstanceClass"] == GREEN_CLASS
    assert production["Endpoint"] == blue["Endpoint"]
    assert production["DbiResourceId"] != blue["DbiResourceId"]
    old = instance(lab3, f"{DB}-old1")
    assert old is not None and old["DbiResourceId"] == blue["DbiResourceId"], "the old blue is kept unless asked"
    assert deployments(lab3) == []
    # before the switchover the policies named the green's resource id as well as the blue's (new IAM logins keep
    # working when the green takes production's name); after it, step iam_policies names production's alone
    extended = result(completed, "Let the services' identities log in to the green too, before it becomes production")
    for user in IDENTITIES.values():
        green_arn = dbuser_arn(lab3, DB, user)
        assert {green_arn, green_arn.replace(production["DbiResourceId"], blue["DbiResourceId"])} <= set(
            extended["policy_resources"]), extended["policy_resources"]
    puts = [index for index, (_, action) in enumerate(made(lab3)) if action == "PutRolePolicy"]
    switched = made(lab3).index(("eu-west-2", "SwitchoverBlueGreenDeployment"))
    assert len([i for i in puts if i < switched]) == len(IDENTITIES) == len([i for i in puts if i > switched]), made(lab3)
    # the policies name the new resource id, not the old one
    for role, user in IDENTITIES.items():
        assert policy_resources(lab3, role) == [dbuser_arn(lab3, DB, user)], role
        assert blue["DbiResourceId"] not in json.dumps(policy_resources(lab3, role))
    # the DR replica: after the switchover, in the DR region, under the DR region's key
    calls = made(lab3)
    switchover = calls.index(("eu-west-2", "SwitchoverBlueGreenDeployment"))
    create_replica = calls.index(("eu-west-1", "CreateDBInstanceReadReplica"))
    assert calls.index(("eu-west-2", "ModifyDBInstance")) < calls.index(("eu-west-2", "CreateBlueGreenDeployment")) < switchover
    assert switchover < calls.index(("eu-west-2", "DeleteBlueGreenDeployment")) < create_replica
    assert "DeleteDBInstance" not in [action for _, action in calls]
    dr_region = lab3.state["dr_region"]
    replica = instance(lab3, DR_REPLICA, dr_region)
    dr_key = lab3.boto3("kms", dr_region).describe_key(KeyId=DR_KEY_ALIAS)["KeyMetadata"]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == production["DBInstanceArn"]
    assert (replica["StorageEncrypted"], replica["KmsKeyId"], dr_key["KeyManager"]) == (True, dr_key["Arn"], "CUSTOMER")
    assert replica["DBParameterGroups"][0]["DBParameterGroupName"] == f"{DB}-dr-mysql80"
    groups = lab3.boto3("ec2", dr_region).describe_security_groups(
        GroupIds=[g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]])["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == [f"{DB}-db-dr"] and groups[0]["IpPermissions"] == []
    alarms = lab3.boto3("cloudwatch", dr_region).describe_alarms(AlarmNamePrefix=f"{DR_ALARM_SET}/")["MetricAlarms"]
    lag = [a for a in alarms if a["MetricName"] == "ReplicaLag"]
    assert [(a["AlarmName"], a["Dimensions"]) for a in lag] == [
        (f"{DR_ALARM_SET}/{DR_REPLICA}/replica_lag", [{"Name": "DBInstanceIdentifier", "Value": DR_REPLICA}])]
    assert lab3.boto3("cloudwatch").describe_alarms(AlarmNamePrefix=f"{DR_ALARM_SET}/")["MetricAlarms"] == []
    written = json.loads(path.read_text())
    assert written == summary(completed) and written["check_mode"] is False
    assert all(written["steps"][step]["changed"] for step in ("storage", "blue_green", "iam_policies", "dr_replica"))
    assert "-> " + production["DbiResourceId"] in written["steps"]["blue_green"]["detail"]

    lab3.clear_calls()
    again = ok(phase3(aws_env, **BLUE_GREEN, **WITH_IAM))
    assert made(lab3) == [], "a second run makes no mutating call"
    assert not any(step["changed"] for step in summary(again)["steps"].values()), summary(again)


def test_outside_the_window_the_switchover_is_skipped_and_the_dr_replica_waits(lab3, aws_env):
    completed = ok(phase3(aws_env, **BLUE_GREEN, **OUTSIDE_THE_WINDOW))

    gate = result(completed, "Report the maintenance-window gate")["msg"]
    assert "OUTSIDE" in gate and "SKIPPED" in gate
    done = actions(lab3)
    assert "SwitchoverBlueGreenDeployment" not in done and "CreateDBInstanceReadReplica" not in done, done
    assert "CreateBlueGreenDeployment" in done  # the green: impact none, made at any time
    assert instance(lab3)["DBInstanceClass"] == "db.t3.large"
    assert [d["Status"] for d in deployments(lab3)] == ["AVAILABLE"]
    assert instance(lab3, DR_REPLICA, lab3.state["dr_region"]) is None
    steps = summary(completed)["steps"]
    assert "SKIPPED outside the maintenance window" in steps["blue_green"]["detail"]
    assert steps["dr_replica"]["detail"].startswith("postponed until the blue/green switchover")


def make_dr_replica(lab):
    """A cross-Region replica of cso-lab-db, made directly (what an earlier phase 3 run would have left)."""
    dr_region = lab.state["dr_region"]
    key = lab.boto3("kms", dr_region).create_key()["KeyMetadata"]["Arn"]
    lab.boto3("rds", dr_region).create_db_instance_read_replica(
        DBInstanceIdentifier=DR_REPLICA, SourceDBInstanceIdentifier=instance(lab)["DBInstanceArn"],
        SourceRegion=lab.region, DBSubnetGroupName="cso-db-private", KmsKeyId=key)
    lab.boto3("rds", dr_region).get_waiter("db_instance_available").wait(
        DBInstanceIdentifier=DR_REPLICA, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_blue_green_with_a_dr_replica_is_refused_before_any_mutating_call(lab3, aws_env):
    make_dr_replica(lab3)
    lab3.clear_calls()

    refused = phase3(aws_env, **BLUE_GREEN)

    assert refused.returncode != 0
    assert made(lab3) == []
    message = result(refused, "Refuse blue/green while a cross-Region read replica exists")["msg"]
    assert "AWS refuses a blue/green deployment whose blue has one" in message and DR_REPLICA in message
    assert "rollback_phase3.yml" in message and "phase3_blue_green=false" in message
    assert deployments(lab3) == []

    # what the message says to do: the rollback deletes the DR replica, then the preflight passes
    ok(phase3(aws_env, "rollback_phase3.yml"))
    assert instance(lab3, DR_REPLICA, lab3.state["dr_region"]) is None
    assert instance(lab3)["ReadReplicaDBInstanceIdentifiers"] == []
    ok(phase3(aws_env, **BLUE_GREEN, phase3_stop_after="preflight"))


def test_rollback_before_the_switchover_deletes_the_deployment_and_its_green(lab3, aws_env):
    ok(phase3(aws_env, **BLUE_GREEN, phase3_blue_green_switchover=False, phase3_stop_after="blue_green"))
    (deployment,) = deployments(lab3)
    green = deployment["Target"].split(":db:")[-1]
    assert deployment["Status"] == "AVAILABLE" and instance(lab3, green) is not None
    blue = instance(lab3)
    lab3.clear_calls()

    rolled_back = ok(phase3(aws_env, "rollback_phase3.yml", rollback_phase3_delete_dr_replica=False))

    assert deployments(lab3) == [] and instance(lab3, green) is None
    assert "DeleteBlueGreenDeployment" in actions(lab3) and "SwitchoverBlueGreenDeployment" not in actions(lab3)
    production = instance(lab3)
    assert (production["DbiResourceId"], production["DBInstanceClass"]) == (blue["DbiResourceId"], "db.t3.large")
    said = result(rolled_back, "Say what cannot be rolled back")["msg"]
    assert "deleted with its green before any switchover" in said and "storage: NOT rolled back" in said


def test_a_switchover_rolled_back_past_its_timeout_leaves_production_and_the_rollback_deletes_the_green(
        lab3, phase2_iam, aws_env):
    """SwitchoverTimeout (API Reference): a switchover that takes longer is rolled back and neither environment
    changes. The lab's green needs 60 s to catch up (no data plane here), longer than the 30 s timeout asked for.
    With phase 2's IAM authentication the policies named the green before the switchover; the rollback takes it out
    again."""
    lab3.set_blue_green(green_catch_up_seconds=60)
    blue = phase2_iam

    failed = phase3(aws_env, **BLUE_GREEN, **WITH_IAM, phase3_blue_green_switchover_timeout=30)

    assert failed.returncode != 0
    message = " ".join(failure_messages(failed))
    assert "SWITCHOVER_FAILED" in message and "production is unchanged" in message, message
    (deployment,) = deployments(lab3)
    assert deployment["Status"] == "SWITCHOVER_FAILED" and "rolled back" in deployment["StatusDetails"]
    production = instance(lab3)
    assert (production["DbiResourceId"], production["DBInstanceClass"]) == (blue["DbiResourceId"], "db.t3.large")
    assert instance(lab3, f"{DB}-old1") is None
    done = actions(lab3)
    assert "DeleteBlueGreenDeployment" not in done and "CreateDBInstanceReadReplica" not in done, done
    green = deployment["Target"].split(":db:")[-1]
    green_id = instance(lab3, green)["DbiResourceId"]
    for role in IDENTITIES:
        assert green_id in json.dumps(policy_resources(lab3, role)), "phase 3 let the identities log in to the green"
    lab3.clear_calls()

    # what the message says: delete the deployment with its green (rollback_phase3 does), production untouched
    rolled_back = ok(phase3(aws_env, "rollback_phase3.yml", **WITH_IAM, rollback_phase3_delete_dr_replica=False))

    assert deployments(lab3) == [] and instance(lab3, green) is None
    assert "SwitchoverBlueGreenDeployment" not in actions(lab3)
    assert instance(lab3)["DbiResourceId"] == blue["DbiResourceId"]
    for role, user in IDENTITIES.items():  # production's resource id only, as before phase 3
        assert policy_resources(lab3, role) == [dbuser_arn(lab3, DB, user)], role
    assert "iam: the rds-db:connect policies" in result(rolled_back, "Say what cannot be rolled back")["msg"]
    lab3.clear_calls()
    ok(phase3(aws_env, "rollback_phase3.yml", **WITH_IAM, rollback_phase3_delete_dr_replica=False))
    assert made(lab3) == [], "a second rollback makes no mutating call"
