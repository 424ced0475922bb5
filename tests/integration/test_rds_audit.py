"""The rds_audit role (module rds_audit_logging) against the lab: check mode plans without writing, a converge
makes exactly the option group, its option and one instance modification, a re-run writes nothing, bad settings
are refused before any write, 30 % throttling still converges, and the removal restarts only when allowed."""

import pytest

pytestmark = pytest.mark.lab

DB = "cso-lab-db"  # seeded: MySQL 8.0.42, default option group, no log exports
GROUP = "cso-lab-db-audit"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: cso.rds_hardening.rds_audit
      vars:
        rds_audit_db_instance_identifier: cso-lab-db
"""


def writes(aws_lab):
    return [call["action"] for call in aws_lab.mutating_calls()]


def instance(aws_lab):
    return aws_lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]


def group_options(aws_lab):
    groups = aws_lab.boto3("rds").describe_option_groups(OptionGroupName=GROUP)["OptionGroupsList"]
    return {option["OptionName"]: {s["Name"]: s["Value"] for s in option["OptionSettings"]}
            for option in groups[0]["Options"]}


def plan_of(run):
    return run.result("cso.rds_hardening.rds_audit : Ensure audit logging with the MariaDB Audit Plugin (option group, instance, audit log export)")


@pytest.fixture
def converged(aws_lab, run_playbook):
    run = run_playbook(PLAYBOOK)
    assert run.returncode == 0, run
    aws_lab.clear_calls()
    return run


def test_check_mode_plans_everything_and_writes_nothing(aws_lab, run_playbook):
    before = instance(aws_lab)
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, check=True, diff=True)
    assert run.returncode == 0, run
    result = plan_of(run)
    assert [(item["what"], item["impact"]) for item in result["plan"]] == [
        ("option_group", "none"), ("MARIADB_AUDIT_PLUGIN settings", "none"), ("option_group_name", "none"),
        ("enable_cloudwatch_logs_exports", "none")]
    assert result["plan"][2]["before"] == before["OptionGroupMemberships"][0]["OptionGroupName"]
    assert result["diff"]["after"]["option_group_name"] == GROUP
    assert writes(aws_lab) == []
    assert instance(aws_lab)["OptionGroupMemberships"] == before["OptionGroupMemberships"]


def test_converge_then_a_rerun_writes_nothing(aws_lab, run_playbook):
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK)
    assert run.returncode == 0, run
    assert writes(aws_lab) == ["CreateOptionGroup", "ModifyOptionGroup", "ModifyDBInstance"]
    assert group_options(aws_lab) == {"MARIADB_AUDIT_PLUGIN": {
        "SERVER_AUDIT_EVENTS": "CONNECT,QUERY_DDL,QUERY_DCL", "SERVER_AUDIT_EXCL_USERS": "rdsadmin"}}
    db = instance(aws_lab)
    assert db["OptionGroupMemberships"][0]["OptionGroupName"] == GROUP
    assert "audit" in db["EnabledCloudwatchLogsExports"]
    assert db["DBInstanceStatus"] == "available"
    assert plan_of(run)["log_group"] == f"/aws/rds/instance/{DB}/audit"
    aws_lab.clear_calls()
    again = run_playbook(PLAYBOOK)
    assert again.returncode == 0, again
    assert plan_of(again)["changed"] is False and plan_of(again)["plan"] == []
    assert writes(aws_lab) == []


@pytest.mark.parametrize("extra, message", [
    ({"rds_audit_events": ["CONNECT", "TABLE"]}, "SERVER_AUDIT_EVENTS='CONNECT,TABLE' is not allowed"),
    ({"rds_audit_file_rotations": 101}, "SERVER_AUDIT_FILE_ROTATIONS='101' is not allowed: RDS accepts 0-100"),
])
def test_bad_settings_are_refused_before_any_write(aws_lab, run_playbook, extra, message):
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=extra)
    assert run.returncode != 0
    assert message in plan_of(run)["msg"]
    assert writes(aws_lab) == []


def test_converges_with_30_percent_of_calls_throttled(aws_lab, run_playbook):
    aws_lab.clear_calls()
    aws_lab.set_faults(rate=0.3, errors=["Throttling"], seed=7)
    run = run_playbook(PLAYBOOK)
    aws_lab.set_faults(rate=0)
    assert run.returncode == 0, run
    assert any(call["faulted"] for call in aws_lab.calls())
    assert "audit" in instance(aws_lab)["EnabledCloudwatchLogsExports"]
    assert "MARIADB_AUDIT_PLUGIN" in group_options(aws_lab)


def test_removal_restarts_so_it_is_refused_without_allow_reboot(aws_lab, run_playbook, converged):
    refused = run_playbook(PLAYBOOK, extra_vars={"rds_audit_state": "absent"})
    assert refused.returncode != 0
    assert "allow_reboot=true" in plan_of(refused)["msg"]
    assert writes(aws_lab) == []
    run = run_playbook(PLAYBOOK, extra_vars={"rds_audit_state": "absent", "rds_audit_allow_reboot": True})
    assert run.returncode == 0, run
    assert [(item["what"], item["impact"]) for item in plan_of(run)["plan"]] == [
        ("enable_cloudwatch_logs_exports", "none"), ("MARIADB_AUDIT_PLUGIN settings", "restart")]
    assert writes(aws_lab) == ["ModifyDBInstance", "ModifyOptionGroup"]
    assert group_options(aws_lab) == {}
    db = instance(aws_lab)
    assert "audit" not in db["EnabledCloudwatchLogsExports"] and db["DBInstanceStatus"] == "available"
    restart = next(item for item in aws_lab.api("dataplane-instances")["instances"] if item["id"] == DB)["restart"]
    assert restart["reason"] == "MariaDB Audit Plugin removed"


# Neither AWS_REGION nor AWS_DEFAULT_REGION nor a profile: the region comes from the play or the role only
REGIONLESS = {"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": "/nonexistent"}


@pytest.mark.parametrize("where", ["module_defaults", "role variable"])
def test_the_region_comes_from_module_defaults_or_the_role_variable(aws_lab, run_playbook, where):
    """A region the play sets in module_defaults reaches the role's module (the role passes no `region: omit`,
    which would replace it), and so does rds_audit_region alone."""
    region = aws_lab.region
    play = PLAYBOOK
    if where == "module_defaults":
        play = PLAYBOOK.replace("  gather_facts: false\n", "  gather_facts: false\n  module_defaults:\n"
                                f"    group/cso.rds_hardening.rds:\n      region: {region}\n")
    else:
        play = PLAYBOOK.replace("        rds_audit_db_instance_identifier: cso-lab-db\n",
                                f"        rds_audit_db_instance_identifier: cso-lab-db\n        rds_audit_region: {region}\n")
    run = run_playbook(play, check=True, env=REGIONLESS)
    assert run.returncode == 0, run
    assert plan_of(run)["plan"], plan_of(run)
    without = run_playbook(PLAYBOOK, check=True, env=REGIONLESS)
    # (with AWS_ENDPOINT_URL set, amazon.aws sends the request without a region, and the lab refuses it)
    assert without.returncode != 0, f"the test's environment has a region: {without}"
