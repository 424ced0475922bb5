"""Contract: RDS blue/green deployments as AWS runs them, through boto3 (no data plane): ``PROVISIONING`` with the
green instance ``creating``, then ``AVAILABLE`` with the target settings on the green; the switchover's renames (the
green takes the blue's name and endpoint, the blue becomes ``-old1``, then ``-old2`` for the next one; resource ids
stay); AWS's refusals at creation, at the switchover (guardrails) and at deletion, each before anything is made,
switched or deleted. What the data plane does: tests/lab/test_dataplane_blue_green.py.

The lab's periods are set short here; times are measured around the calls (monotonic clock)."""

import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"  # seeded: MySQL 8.0.42, db.t3.large, gp3 50 GiB, default.mysql8.0, backups 7 days
PROVISIONING, SWITCHOVER = 0.6, 0.4


@pytest.fixture
def rds(lab):
    lab.reset()
    lab.set_blue_green(provisioning_seconds=PROVISIONING, switchover_seconds=SWITCHOVER)
    yield lab.boto3("rds")
    lab.api("blue-green", {"reset": True})


def _instance(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _deployments(rds):
    return rds.describe_blue_green_deployments()["BlueGreenDeployments"]


def _deployment(rds, identifier):
    return rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=identifier)["BlueGreenDeployments"][0]


def _until(rds, identifier, status, started, timeout=10):
    """[(seconds since ``started``, deployment status)] polled every 0.05 s until ``status``."""
    seen = []
    while True:
        deployment = _deployment(rds, identifier)
        seen.append((time.monotonic() - started, deployment["Status"]))
        if deployment["Status"] == status:
            return seen
        assert time.monotonic() - started < timeout, seen[-1]
        time.sleep(0.05)


def _refusal(call, **kwargs):
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return refused.value.response["Error"]


def _create(rds, name="cso-upgrade", **targets):
    source = _instance(rds, DB)["DBInstanceArn"]
    return rds.create_blue_green_deployment(BlueGreenDeploymentName=name, Source=source, **targets)["BlueGreenDeployment"]


def _available(rds, **targets):
    started = time.monotonic()
    created = _create(rds, **targets)
    _until(rds, created["BlueGreenDeploymentIdentifier"], "AVAILABLE", started)
    return _deployment(rds, created["BlueGreenDeploymentIdentifier"])


def test_a_new_deployment_is_provisioning_with_the_green_creating_then_available_with_the_target_settings(rds):
    rds.create_db_parameter_group(DBParameterGroupName="cso-green", DBParameterGroupFamily="mysql8.0",
                                  Description="green")
    started = time.monotonic()
    created = _create(rds, TargetDBInstanceClass="db.m5.large", TargetDBParameterGroupName="cso-green",
                      TargetStorageType="io1", TargetAllocatedStorage=100, TargetIops=3000)
    green_name = created["Target"].split(":")[-1]
    first = _instance(rds, green_name)["DBInstanceStatus"]
    seen = _until(rds, created["BlueGreenDeploymentIdentifier"], "AVAILABLE", started)

    assert created["Status"] == "PROVISIONING" and first == "creating"
    assert {status for _, status in seen[:-1]} == {"PROVISIONING"}, seen
    print(f"AVAILABLE at {seen[-1][0]:.2f} s (set: {PROVISIONING} s)")
    assert PROVISIONING <= seen[-1][0] <= PROVISIONING + 0.5
    assert green_name.startswith(f"{DB}-green-")
    green, blue = _instance(rds, green_name), _instance(rds, DB)
    assert green["DBInstanceStatus"] == "available"
    assert (green["DBInstanceClass"], green["DBParameterGroups"][0]["DBParameterGroupName"], green["StorageType"],
            green["AllocatedStorage"], green["Iops"], green["EngineVersion"]) == (
        "db.m5.large", "cso-green", "io1", 100, 3000, "8.0.42")
    assert (blue["DBInstanceClass"], blue["DBParameterGroups"][0]["DBParameterGroupName"], blue["StorageType"]) == (
        "db.t3.large", "default.mysql8.0", "gp3")
    deployment = _deployment(rds, created["BlueGreenDeploymentIdentifier"])
    assert deployment["SwitchoverDetails"][0]["Status"] == "AVAILABLE"


def test_the_green_keeps_the_blues_iam_authentication_monitoring_and_performance_insights(rds, lab):
    """"Overview of Amazon RDS Blue/Green Deployments": the green, a copy of the production instance, includes the
    features it uses (Performance Insights and Enhanced Monitoring named); IAM database authentication is one: without
    it the green that becomes production would refuse every IAM login the blue took."""
    role = lab.boto3("iam").create_role(RoleName="cso-lab-db-rds-monitoring", AssumeRolePolicyDocument="{}")["Role"]
    rds.modify_db_instance(DBInstanceIdentifier=DB, EnableIAMDatabaseAuthentication=True, MonitoringInterval=30,
                           MonitoringRoleArn=role["Arn"], EnablePerformanceInsights=True,
                           PerformanceInsightsRetentionPeriod=31, ApplyImmediately=True)
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=DB, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    blue = _instance(rds, DB)
    copied = ("IAMDatabaseAuthenticationEnabled", "MonitoringInterval", "MonitoringRoleArn",
              "PerformanceInsightsEnabled", "PerformanceInsightsKMSKeyId", "PerformanceInsightsRetentionPeriod")
    assert [blue.get(key) for key in copied][:4] == [True, 30, role["Arn"], True], blue

    green = _instance(rds, _available(rds, TargetDBInstanceClass="db.m5.large")["Target"].split(":")[-1])

    assert {key: green.get(key) for key in copied} == {key: blue.get(key) for key in copied}
    assert green["OptionGroupMemberships"] == blue["OptionGroupMemberships"]
    assert green["DbiResourceId"] != blue["DbiResourceId"]


def test_the_switchover_gives_the_green_the_blues_name_and_endpoint_and_renames_the_blue_old1(rds):
    deployment = _available(rds, TargetDBInstanceClass="db.m5.large")
    green_name = deployment["Target"].split(":")[-1]
    blue_before, green_before = _instance(rds, DB), _instance(rds, green_name)

    started = time.monotonic()
    answered = rds.switchover_blue_green_deployment(
        BlueGreenDeploymentIdentifier=deployment["BlueGreenDeploymentIdentifier"], SwitchoverTimeout=60)
    during = _instance(rds, DB)["DbiResourceId"]
    seen = _until(rds, deployment["BlueGreenDeploymentIdentifier"], "SWITCHOVER_COMPLETED", started)

    assert answered["BlueGreenDeployment"]["Status"] == "SWITCHOVER_IN_PROGRESS"
    assert during == blue_before["DbiResourceId"]  # nothing renamed while it is in progress
    assert {status for _, status in seen[:-1]} == {"SWITCHOVER_IN_PROGRESS"}, seen
    assert SWITCHOVER <= seen[-1][0] <= SWITCHOVER + 0.5
    production, old = _instance(rds, DB), _instance(rds, f"{DB}-old1")
    assert production["DbiResourceId"] == green_before["DbiResourceId"] and production["DBInstanceClass"] == "db.m5.large"
    assert production["Endpoint"] == blue_before["Endpoint"]
    assert old["DbiResourceId"] == blue_before["DbiResourceId"] and old["DBInstanceClass"] == "db.t3.large"
    assert old["Endpoint"]["Address"].startswith(f"{DB}-old1.")
    assert _refusal(rds.describe_db_instances, DBInstanceIdentifier=green_name)["Code"] == "DBInstanceNotFound"
    done = _deployment(rds, deployment["BlueGreenDeploymentIdentifier"])
    assert (done["Source"], done["Target"]) == (old["DBInstanceArn"], production["DBInstanceArn"])
    assert done["SwitchoverDetails"][0]["Status"] == "SWITCHOVER_COMPLETED"

    again = _refusal(rds.switchover_blue_green_deployment,
                     BlueGreenDeploymentIdentifier=deployment["BlueGreenDeploymentIdentifier"])
    assert again["Code"] == "InvalidBlueGreenDeploymentStateFault"

    rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=deployment["BlueGreenDeploymentIdentifier"])
    second = _available(rds, name="cso-upgrade-2")
    rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=second["BlueGreenDeploymentIdentifier"])
    _until(rds, second["BlueGreenDeploymentIdentifier"], "SWITCHOVER_COMPLETED", time.monotonic())
    assert _instance(rds, f"{DB}-old2")["DbiResourceId"] == green_before["DbiResourceId"]  # -old1 was taken
    assert _instance(rds, f"{DB}-old1")["DbiResourceId"] == blue_before["DbiResourceId"]


def test_a_switchover_whose_green_cannot_catch_up_within_the_timeout_is_rolled_back(rds, lab):
    """SwitchoverTimeout (API Reference): a switchover that takes longer is rolled back, no changes made. Without a
    data plane the lab's ``green_catch_up_seconds`` stands for the green's lag."""
    lab.set_blue_green(green_catch_up_seconds=45)
    deployment = _available(rds)
    identifier = deployment["BlueGreenDeploymentIdentifier"]
    blue_before = _instance(rds, DB)

    started = time.monotonic()
    rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=identifier, SwitchoverTimeout=30)
    seen = _until(rds, identifier, "SWITCHOVER_FAILED", started, timeout=40)

    assert {status for _, status in seen[:-1]} == {"SWITCHOVER_IN_PROGRESS"}, seen
    assert 30 <= seen[-1][0] <= 31, seen[-1]
    assert "did not catch up within the switchover timeout (30 s)" in _deployment(rds, identifier)["StatusDetails"]
    assert _instance(rds, DB)["DbiResourceId"] == blue_before["DbiResourceId"]
    assert _instance(rds, deployment["Target"].split(":")[-1])["DBInstanceStatus"] == "available"
    assert _refusal(rds.describe_db_instances, DBInstanceIdentifier=f"{DB}-old1")["Code"] == "DBInstanceNotFound"
    again = _refusal(rds.switchover_blue_green_deployment, BlueGreenDeploymentIdentifier=identifier)
    assert again["Code"] == "InvalidBlueGreenDeploymentStateFault" and "SWITCHOVER_FAILED" in again["Message"]


def _refused_and_nothing_made(rds, error_code, **targets):
    before = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}
    error = _refusal(_create, rds=rds, **targets)
    assert error["Code"] == error_code, error
    assert _deployments(rds) == []
    assert {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]} == before
    return error["Message"]


def test_a_source_without_automated_backups_is_refused(rds):
    rds.modify_db_instance(DBInstanceIdentifier=DB, BackupRetentionPeriod=0, ApplyImmediately=True)
    assert "is not in available state" in _refused_and_nothing_made(rds, "InvalidDBInstanceState")  # its restart
    started = time.monotonic()
    while _instance(rds, DB)["DBInstanceStatus"] != "available":
        assert time.monotonic() - started < 20
        time.sleep(0.1)
    message = _refused_and_nothing_made(rds, "SourceDatabaseNotSupportedFault")
    assert message.startswith(f"Automated backups are not enabled for DB instance {DB}")


def test_an_older_engine_version_or_one_that_is_no_upgrade_target_is_refused(rds):
    older = _refused_and_nothing_made(rds, "InvalidParameterCombination", TargetEngineVersion="8.0.40")
    assert "Cannot upgrade mysql from 8.0.42 to 8.0.40" in older
    unknown = _refused_and_nothing_made(rds, "InvalidParameterCombination", TargetEngineVersion="8.0.99")
    assert "Cannot upgrade mysql from 8.0.42 to 8.0.99" in unknown
    assert _available(rds, TargetEngineVersion="8.0.42")["Status"] == "AVAILABLE"  # the blue's own version


def test_a_missing_parameter_group_or_one_of_another_family_is_refused(rds):
    _refused_and_nothing_made(rds, "DBParameterGroupNotFound", TargetDBParameterGroupName="no-such-group")
    rds.create_db_parameter_group(DBParameterGroupName="pg16", DBParameterGroupFamily="postgres16", Description="x")
    message = _refused_and_nothing_made(rds, "InvalidParameterCombination", TargetDBParameterGroupName="pg16")
    assert "DBParameterGroupFamily mysql8.0" in message


def test_a_source_with_a_cross_region_read_replica_is_refused(rds, lab):
    dr_key = lab.boto3("kms", region="eu-west-1").create_key(Description="dr")["KeyMetadata"]["Arn"]
    source = _instance(rds, DB)
    lab.boto3("rds", region="eu-west-1").create_db_instance_read_replica(
        DBInstanceIdentifier="cso-lab-db-dr", SourceDBInstanceIdentifier=source["DBInstanceArn"], KmsKeyId=dr_key)
    message = _refused_and_nothing_made(rds, "SourceDatabaseNotSupportedFault")
    assert "cross-Region read replicas" in message and "cso-lab-db-dr" in message


def test_a_source_whose_master_password_secrets_manager_manages_is_refused(rds):
    rds.create_db_instance(DBInstanceIdentifier="cso-managed", Engine="mysql", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="admin", ManageMasterUserPassword=True,
                           BackupRetentionPeriod=7)
    source = _instance(rds, "cso-managed")
    assert source.get("MasterUserSecret")
    error = _refusal(rds.create_blue_green_deployment, BlueGreenDeploymentName="managed",
                     Source=source["DBInstanceArn"])
    assert error["Code"] == "SourceDatabaseNotSupportedFault"
    assert _deployments(rds) == []


def test_delete_target_after_the_switchover_is_refused_and_before_it_deletes_only_the_green(rds):
    protected = _available(rds, name="protected")
    green = protected["Target"].split(":")[-1]
    rds.modify_db_instance(DBInstanceIdentifier=green, DeletionProtection=True, ApplyImmediately=True)
    error = _refusal(rds.delete_blue_green_deployment,
                     BlueGreenDeploymentIdentifier=protected["BlueGreenDeploymentIdentifier"], DeleteTarget=True)
    assert error["Code"] == "InvalidParameterCombination" and "deletion protection" in error["Message"]
    assert [d["BlueGreenDeploymentName"] for d in _deployments(rds)] == ["protected"]
    rds.modify_db_instance(DBInstanceIdentifier=green, DeletionProtection=False, ApplyImmediately=True)

    rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=protected["BlueGreenDeploymentIdentifier"],
                                     DeleteTarget=True)
    assert _deployments(rds) == []
    assert _refusal(rds.describe_db_instances, DBInstanceIdentifier=green)["Code"] == "DBInstanceNotFound"
    assert _instance(rds, DB)["DBInstanceStatus"] == "available"

    switched = _available(rds, name="switched")
    rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=switched["BlueGreenDeploymentIdentifier"])
    _until(rds, switched["BlueGreenDeploymentIdentifier"], "SWITCHOVER_COMPLETED", time.monotonic())
    error = _refusal(rds.delete_blue_green_deployment,
                     BlueGreenDeploymentIdentifier=switched["BlueGreenDeploymentIdentifier"], DeleteTarget=True)
    assert error["Code"] == "InvalidParameterCombination" and "SWITCHOVER_COMPLETED" in error["Message"]
    assert {_instance(rds, name)["DBInstanceStatus"] for name in (DB, f"{DB}-old1")} == {"available"}


def test_a_switchover_is_refused_while_the_blue_or_the_green_is_not_available(rds):
    """"Switching a blue/green deployment in Amazon RDS", "Switchover guardrails": refused before anything changes."""
    deployment = _available(rds)
    green_name = deployment["Target"].split(":")[-1]
    rds.reboot_db_instance(DBInstanceIdentifier=DB)
    error = _refusal(rds.switchover_blue_green_deployment,
                     BlueGreenDeploymentIdentifier=deployment["BlueGreenDeploymentIdentifier"])
    assert error["Code"] == "InvalidBlueGreenDeploymentStateFault"
    assert error["Message"].startswith(f"DB instance {DB} is not in available state")
    assert _deployment(rds, deployment["BlueGreenDeploymentIdentifier"])["Status"] == "AVAILABLE"
    assert _instance(rds, green_name)["DBInstanceStatus"] == "available"  # nothing renamed
