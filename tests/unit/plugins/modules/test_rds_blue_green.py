"""rds_blue_green against stubbed clients: the exact calls of creating, waiting, switching over and deleting; check
mode; second runs that only read; and each refusal before any mutating call (the Stubber fails any call not queued,
so a refusal test that queues only reads proves no write was made)."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.modules import rds_blue_green
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

ARN = "arn:aws:rds:eu-west-2:123456789012:db:"
NAME = "db-m5"
BG_ID = "bgd-0123456789abcdef"
GROUP = "db-green"
BLUE = {"DBInstanceIdentifier": "db", "DBInstanceArn": ARN + "db", "Engine": "mysql", "EngineVersion": "8.0.40",
        "DBInstanceStatus": "available", "DBInstanceClass": "db.t3.large", "BackupRetentionPeriod": 7,
        "StorageType": "gp3", "AllocatedStorage": 50, "Iops": 3000, "StorageThroughput": 125,
        "DBParameterGroups": [{"DBParameterGroupName": "db-tls", "ParameterApplyStatus": "in-sync"}],
        "OptionGroupMemberships": [{"OptionGroupName": "default:mysql-8-0", "Status": "in-sync"}],
        "ReadReplicaDBInstanceIdentifiers": [], "DeletionProtection": True}
GREEN = dict(BLUE, DBInstanceIdentifier="db-green-abcdef", DBInstanceArn=ARN + "db-green-abcdef",
             DBInstanceClass="db.m5.large", DBParameterGroups=[{"DBParameterGroupName": GROUP}])
ENGINE = {"Engine": "mysql", "EngineVersion": "8.0.40", "DBParameterGroupFamily": "mysql8.0", "ValidUpgradeTarget": [
    {"Engine": "mysql", "EngineVersion": "8.0.41", "IsMajorVersionUpgrade": False},
    {"Engine": "mysql", "EngineVersion": "8.4.3", "IsMajorVersionUpgrade": True}]}
ENGINE_84 = {"Engine": "mysql", "EngineVersion": "8.4.3", "DBParameterGroupFamily": "mysql8.4"}
TARGETS = {"target_db_instance_class": "db.m5.large", "target_db_parameter_group_name": GROUP}


def deployment(status="AVAILABLE", source="db", target="db-green-abcdef", name=NAME, **extra):
    found = {"BlueGreenDeploymentIdentifier": BG_ID, "BlueGreenDeploymentName": name, "Source": ARN + source,
             "Target": ARN + target, "Status": status}
    found.update(extra)
    return found


SWITCHED = deployment("SWITCHOVER_COMPLETED", source="db-old1", target="db")


def make_module(check_mode=False, **params):
    base = {"db_instance_identifier": "db", "blue_green_deployment_name": NAME}
    base.update(params)
    return StubbedModule(rds_blue_green.ARGUMENT_SPEC, base, check_mode)


def run(module):
    with pytest.raises(Exited) as exited:
        run_module(module, rds_blue_green.run, "managing the blue/green deployment")
    module.assert_all_calls_made()
    return exited.value.result


def refused(module):
    with pytest.raises(Failed) as failed:
        run_module(module, rds_blue_green.run, "managing the blue/green deployment")
    module.assert_all_calls_made()  # only the queued reads were made
    return failed.value.result["msg"]


def expect_list(module, *deployments):
    module.stub("rds").add_response("describe_blue_green_deployments", {"BlueGreenDeployments": list(deployments)}, {})


def expect_instance(module, instance, identifier=None):
    identifier = identifier or instance["DBInstanceIdentifier"]
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [instance]},
                                    {"DBInstanceIdentifier": identifier})


def expect_missing_instance(module, identifier):
    module.stub("rds").add_client_error("describe_db_instances", "DBInstanceNotFound", "not found", 404,
                                        expected_params={"DBInstanceIdentifier": identifier})


def expect_deployment(module, found):
    module.stub("rds").add_response("describe_blue_green_deployments", {"BlueGreenDeployments": [found]},
                                    {"BlueGreenDeploymentIdentifier": BG_ID})


def expect_new_checks(module, blue=BLUE, group=GROUP, group_given=True, event_scheduler=None, engine=ENGINE):
    """The reads of a new deployment's checks, in order: deployments, blue, engine version, group, its parameters."""
    rds = module.stub("rds")
    expect_list(module)
    expect_instance(module, blue)
    rds.add_response("describe_db_engine_versions", {"DBEngineVersions": [engine]},
                     {"Engine": "mysql", "EngineVersion": blue["EngineVersion"]})
    if group_given:
        rds.add_response("describe_db_parameter_groups", {"DBParameterGroups": [
            {"DBParameterGroupName": group, "DBParameterGroupFamily": "mysql8.0"}]}, {"DBParameterGroupName": group})
    parameters = [{"ParameterName": "event_scheduler", "ParameterValue": event_scheduler}] if event_scheduler else []
    rds.add_response("describe_db_parameters", {"Parameters": parameters},
                     {"DBParameterGroupName": group, "Source": "user"})


CREATE = {"BlueGreenDeploymentName": NAME, "Source": ARN + "db", "TargetDBParameterGroupName": GROUP,
          "TargetDBInstanceClass": "db.m5.large"}


# --- present ----------------------------------------------------------------------------------------------------


def test_create_sends_the_targets_and_waits_until_the_green_is_available():
    module = make_module(**TARGETS)
    expect_new_checks(module)
    rds = module.stub("rds")
    rds.add_response("create_blue_green_deployment", {"BlueGreenDeployment": deployment("PROVISIONING")}, CREATE)
    expect_deployment(module, deployment("AVAILABLE"))  # the waiter's first poll
    expect_deployment(module, deployment("AVAILABLE"))  # the result
    result = run(module)
    assert result["changed"] is True
    assert [(e["what"], e["impact"], e["before"]) for e in result["plan"]] == [
        (f"create blue/green deployment {NAME} of db", "none", None)]
    assert result["plan"][0]["after"] == {"engine_version": "8.0.40", "db_instance_class": "db.m5.large",
                                          "db_parameter_group_name": GROUP, "storage_type": "gp3",
                                          "allocated_storage": 50, "iops": None, "storage_throughput": None}
    assert "single-AZ, so its I/O is suspended very briefly" in result["plan"][0]["effect"]
    assert result["green_instance_identifier"] == "db-green-abcdef"
    assert result["blue_green_deployment"]["status"] == "AVAILABLE"
    assert result["diff"]["after"][f"create blue/green deployment {NAME} of db"]["db_instance_class"] == "db.m5.large"


def test_without_a_target_group_the_blues_group_is_sent_and_the_storage_follows_awss_rules():
    module = make_module(target_storage_type="io1", target_allocated_storage=100, target_iops=3000, wait=False)
    expect_new_checks(module, group="db-tls", group_given=False)
    module.stub("rds").add_response("create_blue_green_deployment", {"BlueGreenDeployment": deployment("PROVISIONING")}, {
        "BlueGreenDeploymentName": NAME, "Source": ARN + "db", "TargetDBParameterGroupName": "db-tls",
        "TargetStorageType": "io1", "TargetAllocatedStorage": 100, "TargetIops": 3000})
    expect_deployment(module, deployment("PROVISIONING"))  # no wait: the result only
    result = run(module)
    assert result["plan"][0]["after"]["iops"] == 3000 and result["blue_green_deployment"]["status"] == "PROVISIONING"


def test_check_mode_plans_the_creation_without_writing():
    module = make_module(check_mode=True, **TARGETS)
    expect_new_checks(module)
    result = run(module)
    assert result["changed"] is True and len(result["plan"]) == 1 and result["blue_green_deployment"] is None


def test_a_second_run_only_reads():
    module = make_module(**TARGETS)
    expect_list(module, deployment("AVAILABLE"))
    expect_instance(module, BLUE)
    expect_instance(module, GREEN)
    result = run(module)
    assert result["changed"] is False and result["plan"] == []


def test_a_provisioning_deployment_is_waited_for_without_a_write():
    module = make_module()
    expect_list(module, deployment("PROVISIONING"))
    expect_instance(module, BLUE)
    expect_instance(module, GREEN)
    expect_deployment(module, deployment("AVAILABLE"))  # the waiter
    expect_deployment(module, deployment("AVAILABLE"))  # the result
    result = run(module)
    assert result["changed"] is False and result["blue_green_deployment"]["status"] == "AVAILABLE"


def test_an_existing_green_that_differs_from_the_task_is_refused_and_check_mode_warns():
    params = dict(TARGETS, target_db_instance_class="db.r5.large")
    module = make_module(**params)
    expect_list(module, deployment("AVAILABLE"))
    expect_instance(module, BLUE)
    expect_instance(module, GREEN)
    message = refused(module)
    assert "its green instance db-green-abcdef differs from the task: db_instance_class is db.m5.large, not db.r5.large" in message
    assert "state=absent, delete_target=true" in message

    module = make_module(check_mode=True, **params)
    expect_list(module, deployment("AVAILABLE"))
    expect_instance(module, BLUE)
    expect_instance(module, GREEN)
    assert run(module)["plan"] == []
    assert module.warnings and module.warnings[0].startswith("A real run would fail: Blue/green deployment")


def test_nothing_is_created_when_production_already_has_every_target_setting():
    module = make_module(target_db_instance_class="db.t3.large")  # the blue's own class: deployed already
    expect_new_checks(module, group="db-tls", group_given=False)
    result = run(module)
    assert result["changed"] is False and result["plan"] == [] and result["blue_green_deployment"] is None


# --- switched_over ----------------------------------------------------------------------------------------------


def test_switch_over_an_available_deployment_and_wait_for_it():
    module = make_module(state="switched_over", switchover_timeout=60, **TARGETS)
    expect_list(module, deployment("AVAILABLE"))
    expect_instance(module, BLUE)
    expect_instance(module, GREEN)
    rds = module.stub("rds")
    rds.add_response("switchover_blue_green_deployment", {"BlueGreenDeployment": deployment("SWITCHOVER_IN_PROGRESS")},
                     {"BlueGreenDeploymentIdentifier": BG_ID, "SwitchoverTimeout": 60})
    expect_deployment(module, SWITCHED)  # the waiter
    expect_deployment(module, SWITCHED)  # the result
    result = run(module)
    entry = result["plan"][0]
    assert (entry["impact"], entry["before"]["db_instance_class"], entry["after"]["db_instance_class"]) == (
        "brief-interruption", "db.t3.large", "db.m5.large")
    assert entry["before"]["db_instance_identifier"] == entry["after"]["db_instance_identifier"] == "db"
    assert "at most switchover_timeout (60 s)" in entry["effect"] and "typically under a minute" in entry["effect"]
    assert result["green_instance_identifier"] == "db" and result["blue_green_deployment"]["source"] == ARN + "db-old1"


def test_create_and_switch_over_in_one_task():
    module = make_module(state="switched_over", **TARGETS)
    expect_new_checks(module)
    rds = module.stub("rds")
    rds.add_response("create_blue_green_deployment", {"BlueGreenDeployment": deployment("PROVISIONING")}, CREATE)
    expect_deployment(module, deployment("AVAILABLE"))
    rds.add_response("switchover_blue_green_deployment", {"BlueGreenDeployment": deployment("SWITCHOVER_IN_PROGRESS")},
                     {"BlueGreenDeploymentIdentifier": BG_ID, "SwitchoverTimeout": 300})
    expect_deployment(module, SWITCHED)
    expect_deployment(module, SWITCHED)
    result = run(module)
    assert [e["impact"] for e in result["plan"]] == ["none", "brief-interruption"]


def test_a_switched_over_deployment_asked_switched_over_again_only_reads():
    module = make_module(state="switched_over", **TARGETS)
    expect_list(module, SWITCHED)
    expect_instance(module, dict(GREEN, DBInstanceIdentifier="db"))  # production now
    expect_instance(module, dict(GREEN, DBInstanceIdentifier="db"))  # the deployment's target
    result = run(module)
    assert result["changed"] is False and result["plan"] == []


def test_a_failed_switchover_ends_the_wait_with_awss_details():
    module = make_module(state="switched_over")
    expect_list(module, deployment("AVAILABLE"))
    expect_instance(module, BLUE)
    expect_instance(module, GREEN)
    module.stub("rds").add_response("switchover_blue_green_deployment",
                                    {"BlueGreenDeployment": deployment("SWITCHOVER_IN_PROGRESS")},
                                    {"BlueGreenDeploymentIdentifier": BG_ID, "SwitchoverTimeout": 300})
    expect_deployment(module, deployment("SWITCHOVER_FAILED", StatusDetails="replica lag too high"))
    message = refused(module)
    assert f"Blue/green deployment {NAME} is SWITCHOVER_FAILED (replica lag too high)" in message
    assert "AWS rolled it back, so production is unchanged" in message
    assert "delete it (state=absent" in message


@pytest.mark.parametrize("status", ["INVALID_CONFIGURATION", "SWITCHOVER_FAILED"])
def test_a_deployment_aws_cannot_switch_over_is_refused(status):
    module = make_module(state="switched_over")
    expect_list(module, deployment(status, StatusDetails="the green was promoted by hand"))
    expect_instance(module, BLUE)
    message = refused(module)
    assert message.startswith(f"Nothing was changed: Blue/green deployment {NAME} is {status} (the green was promoted")


# --- absent -----------------------------------------------------------------------------------------------------


def test_delete_the_deployment_and_the_old_blue_with_a_final_snapshot():
    module = make_module(state="absent", delete_old_blue=True, old_blue_final_snapshot_identifier="db-before-m5")
    expect_list(module, SWITCHED)
    old = dict(BLUE, DBInstanceIdentifier="db-old1", DBInstanceArn=ARN + "db-old1")
    expect_instance(module, old)
    rds = module.stub("rds")
    rds.add_response("modify_db_instance", {"DBInstance": {}},
                     {"DBInstanceIdentifier": "db-old1", "DeletionProtection": False, "ApplyImmediately": True})
    rds.add_response("delete_db_instance", {"DBInstance": {}},
                     {"DBInstanceIdentifier": "db-old1", "FinalDBSnapshotIdentifier": "db-before-m5"})
    expect_missing_instance(module, "db-old1")  # the instance waiter
    rds.add_response("delete_blue_green_deployment", {"BlueGreenDeployment": dict(SWITCHED, Status="DELETING")},
                     {"BlueGreenDeploymentIdentifier": BG_ID})
    rds.add_client_error("describe_blue_green_deployments", "BlueGreenDeploymentNotFoundFault", "gone", 404,
                         expected_params={"BlueGreenDeploymentIdentifier": BG_ID})
    result = run(module)
    assert [(e["what"], e["impact"]) for e in result["plan"]] == [
        ("deletion_protection of old blue db-old1", "none"), ("delete old blue instance db-old1", "data-loss"),
        (f"delete blue/green deployment {NAME}", "none")]
    assert "a final snapshot db-before-m5 is kept" in result["plan"][1]["effect"]
    assert result["blue_green_deployment"] is None


def test_delete_target_before_the_switchover_unprotects_and_deletes_the_green():
    module = make_module(state="absent", delete_target=True, wait=False)
    expect_list(module, deployment("AVAILABLE"))
    expect_instance(module, GREEN)
    rds = module.stub("rds")
    rds.add_response("modify_db_instance", {"DBInstance": {}}, {
        "DBInstanceIdentifier": "db-green-abcdef", "DeletionProtection": False, "ApplyImmediately": True})
    rds.add_response("delete_blue_green_deployment", {"BlueGreenDeployment": deployment("DELETING")},
                     {"BlueGreenDeploymentIdentifier": BG_ID, "DeleteTarget": True})
    expect_deployment(module, deployment("DELETING"))
    result = run(module)
    assert [e["what"] for e in result["plan"]] == ["deletion_protection of green db-green-abcdef",
                                                   f"delete blue/green deployment {NAME} and its green instance"]


def test_check_mode_plans_the_deletion_without_writing():
    module = make_module(check_mode=True, state="absent")
    expect_list(module, deployment("AVAILABLE"))
    result = run(module)
    assert result["changed"] is True and "stays as a standalone instance" in result["plan"][0]["effect"]


def test_absent_when_there_is_no_deployment_only_reads():
    module = make_module(state="absent", delete_old_blue=True)
    expect_list(module, deployment("AVAILABLE", name="another", source="other"))
    result = run(module)
    assert result["changed"] is False and result["plan"] == []


def test_delete_target_after_the_switchover_is_refused():
    module = make_module(state="absent", delete_target=True)
    expect_list(module, SWITCHED)
    message = refused(module)
    assert "its former green is production now and AWS refuses DeleteTarget" in message
    assert "To delete the old instance db-old1, use delete_old_blue=true" in message


def test_delete_old_blue_before_the_switchover_is_refused():
    module = make_module(state="absent", delete_old_blue=True)
    expect_list(module, deployment("AVAILABLE"))
    assert "its blue db is still production and is never deleted" in refused(module)


# --- refusals before any write ----------------------------------------------------------------------------------


@pytest.mark.parametrize("blue, message", [
    (dict(BLUE, DBInstanceStatus="modifying"), "db is modifying; AWS creates a blue/green deployment only of an available"),
    (dict(BLUE, BackupRetentionPeriod=0), "db has no automated backups (backup retention 0)"),
    (dict(BLUE, MasterUserSecret={"SecretArn": "arn:aws:secretsmanager:eu-west-2:1:secret:x"}),
     "master user password is managed by Secrets Manager, which blue/green deployments don't support"),
    (dict(BLUE, ReadReplicaDBInstanceIdentifiers=["arn:aws:rds:eu-west-1:123456789012:db:db-dr"]),
     "db has cross-Region read replicas (arn:aws:rds:eu-west-1:123456789012:db:db-dr)"),
    (dict(BLUE, Engine="postgres"), "db runs postgres; this module makes blue/green deployments of mysql and mariadb"),
])
def test_a_blue_aws_does_not_accept_is_refused(blue, message):
    module = make_module(**TARGETS)
    expect_list(module)
    expect_instance(module, blue)
    assert message in refused(module)


def test_a_missing_blue_is_refused():
    module = make_module()
    expect_list(module)
    expect_missing_instance(module, "db")
    assert "DB instance db does not exist in eu-west-2" in refused(module)


def test_a_blue_already_in_another_deployment_is_refused():
    module = make_module(**TARGETS)
    expect_list(module, deployment("AVAILABLE", name="older"))
    expect_instance(module, BLUE)
    assert "db is already in blue/green deployment older (status AVAILABLE)" in refused(module)


def test_a_deployment_of_that_name_for_another_instance_is_never_taken_over():
    module = make_module(**TARGETS)
    expect_list(module, deployment("AVAILABLE", source="other", target="other-green-x"))
    assert f"Blue/green deployment {NAME} exists but is of other, not db" in refused(module)


@pytest.mark.parametrize("version, message", [
    ("8.0.36", "target_engine_version 8.0.36 is older than db's 8.0.40: a blue/green deployment never downgrades"),
    ("8.0.99", "mysql 8.0.40 cannot be upgraded to 8.0.99 (DescribeDBEngineVersions ValidUpgradeTarget: 8.0.41, 8.4.3)"),
    ("8.4.3", "target_engine_version 8.4.3 is a major upgrade"),
])
def test_engine_versions_aws_refuses_are_refused(version, message):
    module = make_module(target_engine_version=version)
    expect_list(module)
    expect_instance(module, BLUE)
    module.stub("rds").add_response("describe_db_engine_versions", {"DBEngineVersions": [ENGINE]},
                                    {"Engine": "mysql", "EngineVersion": "8.0.40"})
    assert message in refused(module)


def test_a_major_upgrade_of_a_mysql_blue_with_a_custom_option_group_is_refused():
    blue = dict(BLUE, OptionGroupMemberships=[{"OptionGroupName": "db-audit", "Status": "in-sync"}])
    module = make_module(target_engine_version="8.4.3", target_db_parameter_group_name="db-tls-84")
    expect_list(module)
    expect_instance(module, blue)
    module.stub("rds").add_response("describe_db_engine_versions", {"DBEngineVersions": [ENGINE]},
                                    {"Engine": "mysql", "EngineVersion": "8.0.40"})
    message = refused(module)
    assert "uses the custom option group db-audit, and RDS for MySQL makes no blue/green deployment with a major" in message


def test_a_major_upgrade_checks_the_group_against_the_new_family():
    module = make_module(target_engine_version="8.4.3", target_db_parameter_group_name="db-tls")
    expect_list(module)
    expect_instance(module, BLUE)
    rds = module.stub("rds")
    rds.add_response("describe_db_engine_versions", {"DBEngineVersions": [ENGINE]},
                     {"Engine": "mysql", "EngineVersion": "8.0.40"})
    rds.add_response("describe_db_engine_versions", {"DBEngineVersions": [ENGINE_84]},
                     {"Engine": "mysql", "EngineVersion": "8.4.3"})
    rds.add_response("describe_db_parameter_groups", {"DBParameterGroups": [
        {"DBParameterGroupName": "db-tls", "DBParameterGroupFamily": "mysql8.0"}]}, {"DBParameterGroupName": "db-tls"})
    assert "DB parameter group db-tls is of family mysql8.0, but the engine version needs family mysql8.4" in refused(module)


def test_a_green_group_with_the_event_scheduler_on_is_refused():
    module = make_module(**TARGETS)
    expect_new_checks(module, event_scheduler="ON")
    assert f"DB parameter group {GROUP} sets event_scheduler=ON" in refused(module)


def test_storage_aws_refuses_is_refused():
    module = make_module(target_storage_type="io1", target_allocated_storage=100, target_iops=6000)
    expect_list(module)
    expect_instance(module, BLUE)
    module.stub("rds").add_response("describe_db_engine_versions", {"DBEngineVersions": [ENGINE]},
                                    {"Engine": "mysql", "EngineVersion": "8.0.40"})
    assert "iops 6,000 for 100 GiB of io1 is 60 IOPS per GiB; AWS allows 0.5 to 50." in refused(module)


@pytest.mark.parametrize("params, message", [
    ({"blue_green_deployment_name": "db--m5"}, "blue_green_deployment_name 'db--m5' is not a name AWS accepts"),
    ({"switchover_timeout": 29}, "switchover_timeout must be 30-3,600 seconds (AWS's range; got 29)"),
    ({"switchover_timeout": 3601}, "switchover_timeout must be 30-3,600 seconds"),
    ({"delete_target": True}, "delete_target deletes instances when the deployment is deleted: it needs state=absent"),
    ({"state": "absent", "old_blue_final_snapshot_identifier": "snap"},
     "old_blue_final_snapshot_identifier is only used with delete_old_blue=true"),
    ({"state": "switched_over", "wait": False}, "state=switched_over waits for the green"),
])
def test_input_errors_fail_before_any_call(params, message):
    module = make_module(**params)
    assert message in refused(module)
