"""blue_green_spec: the green's settings and CreateBlueGreenDeployment parameters (storage by AWS's rules), what
counts as the task's green, and which instance is production before and after the switchover."""

from ansible_collections.cso.rds_hardening.plugins.module_utils import blue_green_spec as spec
from ansible_collections.cso.rds_hardening.plugins.modules.rds_blue_green import ARGUMENT_SPEC

ARN = "arn:aws:rds:eu-west-2:123456789012:db:"
BLUE = {"DBInstanceIdentifier": "db", "DBInstanceArn": ARN + "db", "Engine": "mysql", "EngineVersion": "8.0.40",
        "DBInstanceClass": "db.t3.large", "StorageType": "gp3", "AllocatedStorage": 50, "Iops": 3000,
        "StorageThroughput": 125, "DBParameterGroups": [{"DBParameterGroupName": "db-tls"}]}


def params(**given):
    values = {name: option.get("default") for name, option in ARGUMENT_SPEC.items()}
    values.update(db_instance_identifier="db", blue_green_deployment_name="db-next")
    values.update(given)
    return values


def test_only_what_differs_from_the_blue_is_sent_but_always_the_parameter_group():
    task = params(target_db_instance_class="db.t3.large", target_engine_version="8.0.40")
    settings = spec.green_settings(task, BLUE)
    assert spec.create_parameters(task, BLUE, settings) == {
        "BlueGreenDeploymentName": "db-next", "Source": ARN + "db", "TargetDBParameterGroupName": "db-tls"}


def test_gp3_from_400_gib_gets_its_baseline_iops_and_throughput_sent_with_the_size():
    task = params(target_allocated_storage=400)
    settings = spec.green_settings(task, BLUE)
    assert (settings["iops"], settings["storage_throughput"]) == (12000, 500)
    assert spec.create_parameters(task, BLUE, settings) == {
        "BlueGreenDeploymentName": "db-next", "Source": ARN + "db", "TargetDBParameterGroupName": "db-tls",
        "TargetAllocatedStorage": 400, "TargetIops": 12000, "TargetStorageThroughput": 500}


def test_storage_errors_use_the_instance_storage_rules():
    assert spec.storage_errors(BLUE, params(target_storage_type="io1")) == [
        "allocated_storage 50 GiB is out of range for io1 storage: use 100-65,536 GiB.",
        "iops is required for moving to io1: set 1,000-256,000 IOPS, 0.5 to 50 per GiB of allocated_storage."]
    assert spec.storage_errors(BLUE, params(target_allocated_storage=40)) == [
        "allocated_storage cannot shrink from 50 to 40 GiB; keep it at least the current size."]
    assert spec.storage_errors(BLUE, params(target_storage_type="io1", target_allocated_storage=100,
                                            target_iops=3000)) == []


def test_drift_compares_only_the_target_settings_the_task_gives():
    green = dict(BLUE, DBInstanceIdentifier="db-green-x", DBInstanceClass="db.m5.large")
    task = params(target_db_instance_class="db.m5.large")
    assert spec.drift(green, spec.green_settings(task, BLUE), task) == []
    task = params(target_db_instance_class="db.r5.large")
    assert spec.drift(green, spec.green_settings(task, BLUE), task) == [
        ("db_instance_class", "db.m5.large", "db.r5.large")]


def test_already_deployed_needs_at_least_one_target_and_all_of_them_in_production():
    assert spec.already_deployed(BLUE, params(), spec.green_settings(params(), BLUE)) is False
    same = params(target_db_instance_class="db.t3.large")
    assert spec.already_deployed(BLUE, same, spec.green_settings(same, BLUE)) is True
    other = params(target_db_instance_class="db.t3.large", target_engine_version="8.0.41")
    assert spec.already_deployed(BLUE, other, spec.green_settings(other, BLUE)) is False


def test_production_is_the_source_before_the_switchover_and_the_target_after_it():
    before = {"BlueGreenDeploymentName": "db-next", "Source": ARN + "db", "Target": ARN + "db-green-x",
              "Status": "AVAILABLE"}
    after = dict(before, Source=ARN + "db-old1", Target=ARN + "db", Status="SWITCHOVER_COMPLETED")
    assert spec.production_of(before) == spec.production_of(after) == "db"
    assert spec.ownership_errors(before, params()) == spec.ownership_errors(after, params()) == []
    assert spec.ownership_errors(before, params(db_instance_identifier="other")) == [
        "Blue/green deployment db-next exists but is of db, not other. Choose another blue_green_deployment_name "
        "(names are unique per account and region), or fix db_instance_identifier."]


def test_a_status_aws_does_not_document_is_refused_like_a_failed_one():
    message = spec.status_refusal({"BlueGreenDeploymentName": "db-next", "Status": "PROVISIONING_FAILED"}, "present")
    assert message.startswith("Blue/green deployment db-next is PROVISIONING_FAILED (no details)")
    assert spec.status_refusal({"BlueGreenDeploymentName": "db-next", "Status": "DELETING"}, "absent") is None
