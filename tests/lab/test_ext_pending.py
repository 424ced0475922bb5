"""Contract: pending modifications, parameter apply status and pending maintenance actions."""

import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
APPLYING_SECONDS = 1.0  # the lab's (csolab.moto_ext.pending); importing it here would patch moto in-process


def _instance(rds, identifier=DB):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _group_status(rds, identifier=DB):
    return [(g["DBParameterGroupName"], g["ParameterApplyStatus"]) for g in _instance(rds, identifier)["DBParameterGroups"]]


def _wait_available(rds, identifier=DB, timeout=30):
    """A reboot leaves the instance ``rebooting`` for the lab's outage; AWS refuses another reboot meanwhile."""
    deadline = time.monotonic() + timeout
    while _instance(rds, identifier)["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline, _instance(rds, identifier)["DBInstanceStatus"]
        time.sleep(0.2)


def _custom_group(rds, name="cso-mysql80"):
    rds.create_db_parameter_group(DBParameterGroupName=name, DBParameterGroupFamily="mysql8.0", Description="cso")
    return name


def test_deferred_changes_wait_in_pending_modified_values(lab):
    lab.reset()
    rds = lab.boto3("rds")

    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t3.xlarge",
                                      CACertificateIdentifier="rds-ca-rsa4096-g1",
                                      EnableIAMDatabaseAuthentication=True)["DBInstance"]

    expected = {"DBInstanceClass": "db.t3.xlarge", "CACertificateIdentifier": "rds-ca-rsa4096-g1",
                "IAMDatabaseAuthenticationEnabled": True}
    assert modified["PendingModifiedValues"] == expected
    described = _instance(rds)
    assert described["PendingModifiedValues"] == expected
    assert described["DBInstanceClass"] == "db.t3.large"
    assert described["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    assert described["IAMDatabaseAuthenticationEnabled"] is False


def test_immediate_settings_apply_at_once_even_without_apply_immediately(lab):
    lab.reset()
    rds = lab.boto3("rds")

    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=True, CopyTagsToSnapshot=True,
                                      BackupRetentionPeriod=14,
                                      CloudwatchLogsExportConfiguration={"EnableLogTypes": ["error"]})["DBInstance"]

    assert modified["PendingModifiedValues"] == {}
    described = _instance(rds)
    assert described["DeletionProtection"] is True
    assert described["CopyTagsToSnapshot"] is True
    assert described["BackupRetentionPeriod"] == 14
    assert described["EnabledCloudwatchLogsExports"] == ["error"]
    rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=False)


def test_disabling_backups_waits_for_the_window(lab):
    lab.reset()
    rds = lab.boto3("rds")

    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, BackupRetentionPeriod=0)["DBInstance"]

    assert modified["PendingModifiedValues"] == {"BackupRetentionPeriod": 0}
    assert _instance(rds)["BackupRetentionPeriod"] == 7


def test_apply_immediately_applies_the_request_and_what_was_pending(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t3.xlarge")

    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, EnableIAMDatabaseAuthentication=True,
                                      ApplyImmediately=True)["DBInstance"]

    assert modified["PendingModifiedValues"] == {}
    assert modified["DBInstanceClass"] == "db.t3.xlarge"
    assert modified["IAMDatabaseAuthenticationEnabled"] is True


def test_modify_to_the_current_value_is_no_pending_change(lab):
    lab.reset()
    rds = lab.boto3("rds")

    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t3.large",
                                      EngineVersion="8.0.42", CACertificateIdentifier="rds-ca-rsa2048-g1")["DBInstance"]

    assert modified["PendingModifiedValues"] == {}


def test_maintenance_window_applies_pending_changes_of_one_instance(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t3.xlarge")

    applied = lab.reach_maintenance_window(DB)

    assert applied["applied"][f"{lab.region}/{DB}"]["pending_modified_values"] == {"DBInstanceClass": "db.t3.xlarge"}
    described = _instance(rds)
    assert described["PendingModifiedValues"] == {}
    assert described["DBInstanceClass"] == "db.t3.xlarge"
    assert lab.reach_maintenance_window() == {"applied": {}}


def test_new_parameter_group_is_pending_reboot_until_reboot(lab):
    lab.reset()
    rds = lab.boto3("rds")
    group = _custom_group(rds)

    rds.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName=group)

    assert _group_status(rds) == [(group, "pending-reboot")]
    rds.reboot_db_instance(DBInstanceIdentifier=DB)
    assert _group_status(rds) == [(group, "in-sync")]


def test_returning_to_the_default_group_works(lab):
    lab.reset()
    rds = lab.boto3("rds")
    group = _custom_group(rds)
    rds.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName=group, ApplyImmediately=True)
    rds.reboot_db_instance(DBInstanceIdentifier=DB)

    rds.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName="default.mysql8.0", ApplyImmediately=True)

    assert _group_status(rds) == [("default.mysql8.0", "pending-reboot")]


def test_static_parameter_change_is_pending_reboot_dynamic_is_applying_then_in_sync(lab):
    lab.reset()
    rds = lab.boto3("rds")
    group = _custom_group(rds)
    rds.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName=group)
    rds.reboot_db_instance(DBInstanceIdentifier=DB)
    _wait_available(rds)

    started = time.monotonic()
    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    status = _group_status(rds)
    if time.monotonic() - started < APPLYING_SECONDS:  # a loaded machine may answer later
        assert status == [(group, "applying")]
    else:
        assert status in ([(group, "applying")], [(group, "in-sync")])
    time.sleep(APPLYING_SECONDS + 0.2)
    assert _group_status(rds) == [(group, "in-sync")]

    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
        {"ParameterName": "innodb_buffer_pool_size", "ParameterValue": "{DBInstanceClassMemory*1/2}",
         "ApplyMethod": "pending-reboot"}])
    assert _group_status(rds) == [(group, "pending-reboot")]
    rds.reboot_db_instance(DBInstanceIdentifier=DB)
    assert _group_status(rds) == [(group, "in-sync")]


def test_dynamic_parameter_with_pending_reboot_method_waits_for_reboot(lab):
    lab.reset()
    rds = lab.boto3("rds")
    group = _custom_group(rds)
    rds.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName=group)
    rds.reboot_db_instance(DBInstanceIdentifier=DB)

    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])

    assert _group_status(rds) == [(group, "pending-reboot")]


def test_no_pending_maintenance_actions_is_an_empty_list(lab):
    lab.reset()
    rds = lab.boto3("rds")

    assert rds.describe_pending_maintenance_actions()["PendingMaintenanceActions"] == []


def test_expired_ca_gets_a_certificate_rotation_action(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.modify_db_instance(DBInstanceIdentifier=DB, CACertificateIdentifier="rds-ca-2019", ApplyImmediately=True)
    arn = _instance(rds)["DBInstanceArn"]

    actions = rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)["PendingMaintenanceActions"]

    assert actions == [{"ResourceIdentifier": arn, "PendingMaintenanceActionDetails": [
        {"Action": "ca-certificate-rotation", "Description": "Certificate rotation"}]}]
    lab.reach_maintenance_window(DB)
    assert _instance(rds)["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    assert rds.describe_pending_maintenance_actions()["PendingMaintenanceActions"] == []


def test_scheduled_system_update_and_apply_pending_maintenance_action(lab):
    lab.reset()
    rds = lab.boto3("rds")
    lab.api("pending-maintenance", {"db_instance_identifier": DB, "action": "system-update"})
    arn = _instance(rds)["DBInstanceArn"]

    filtered = rds.describe_pending_maintenance_actions(Filters=[{"Name": "db-instance-id", "Values": [DB]}])
    assert filtered["PendingMaintenanceActions"][0]["PendingMaintenanceActionDetails"][0]["Action"] == "system-update"

    opted = rds.apply_pending_maintenance_action(ResourceIdentifier=arn, ApplyAction="system-update",
                                                 OptInType="next-maintenance")
    assert opted["ResourcePendingMaintenanceActions"]["PendingMaintenanceActionDetails"][0]["OptInStatus"] == \
        "next-maintenance"
    rds.apply_pending_maintenance_action(ResourceIdentifier=arn, ApplyAction="system-update", OptInType="immediate")
    assert rds.describe_pending_maintenance_actions()["PendingMaintenanceActions"] == []


def test_pending_maintenance_for_unknown_resource_is_not_found(lab):
    lab.reset()
    rds = lab.boto3("rds")

    with pytest.raises(ClientError) as error:
        rds.describe_pending_maintenance_actions(ResourceIdentifier="arn:aws:rds:eu-west-2:123456789012:db:nope")

    assert error.value.response["Error"]["Code"] == "ResourceNotFoundFault"


def test_the_lab_rules_come_from_aws_documentation_not_from_the_module():
    """The lab checks the module against AWS's behaviour: its rules name their AWS source and the
    lab never reads the module's own rules (``instance_plan.RULES``)."""
    import re
    from pathlib import Path

    from csolab.moto_ext import pending

    assert all("RDS User Guide" in rule.source for rule in pending.RULES.values())
    imports = re.compile(r"^\s*(from|import)\s+\S*(module_utils|instance_plan)", re.MULTILINE)
    lab = Path(pending.__file__).parents[1]
    assert [str(path) for path in lab.rglob("*.py") if imports.search(path.read_text())] == []
