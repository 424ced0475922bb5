"""rds_hardened_instance's whole flow against stubbed clients: the exact reads, no write in check mode,
refusals before any write, the modify call a converge makes, creation."""

import datetime

import pytest

from ansible_collections.cso.rds_hardening.plugins.modules import rds_hardened_instance as module_under_test
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

REGION = "eu-west-2"
ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111"
OLD_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/aaaa"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/rds-monitoring"
VPC = "vpc-1"
FAR_FUTURE = datetime.datetime(2060, 1, 1, tzinfo=datetime.timezone.utc)


def make_module(params, check_mode=False):
    return StubbedModule(module_under_test.ARGUMENT_SPEC, params, check_mode, region=REGION)


def weak_instance(**overrides):
    instance = {
        "DBInstanceIdentifier": "db", "DBInstanceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:db", "Engine": "mysql",
        "EngineVersion": "8.0.42", "DBInstanceClass": "db.t3.large", "DBInstanceStatus": "available",
        "StorageEncrypted": True, "KmsKeyId": OLD_KEY, "PubliclyAccessible": False, "MultiAZ": False,
        "DeletionProtection": False, "BackupRetentionPeriod": 7, "PreferredBackupWindow": "02:00-03:00",
        "PreferredMaintenanceWindow": "sun:04:00-sun:05:00", "CopyTagsToSnapshot": False, "AutoMinorVersionUpgrade": True,
        "IAMDatabaseAuthenticationEnabled": False, "EnabledCloudwatchLogsExports": [], "MonitoringInterval": 0,
        "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-shared", "Status": "active"}],
        "DBParameterGroups": [{"DBParameterGroupName": "default.mysql8.0", "ParameterApplyStatus": "in-sync"}],
        "DBSubnetGroup": {"DBSubnetGroupName": "private", "VpcId": VPC}, "Endpoint": {"Address": "db.x.rds", "Port": 3306},
        "StorageType": "gp3", "AllocatedStorage": 50, "MaxAllocatedStorage": 1000,
        "CACertificateIdentifier": "rds-ca-rsa2048-g1", "CertificateDetails": {"CAIdentifier": "rds-ca-rsa2048-g1", "ValidTill": FAR_FUTURE},
        "TagList": [{"Key": "Name", "Value": "db"}],
    }
    instance.update(overrides)
    return instance


def hardened_instance():
    return weak_instance(
        KmsKeyId=KEY_ARN, MultiAZ=True, DeletionProtection=True, CopyTagsToSnapshot=True,
        IAMDatabaseAuthenticationEnabled=True, EnabledCloudwatchLogsExports=["audit", "error", "general", "slowquery"],
        PerformanceInsightsEnabled=True, PerformanceInsightsKMSKeyId=KEY_ARN, PerformanceInsightsRetentionPeriod=7,
        MonitoringInterval=60, MonitoringRoleArn=ROLE, VpcSecurityGroups=[{"VpcSecurityGroupId": "sg-db", "Status": "active"}])


def base_params(**overrides):
    params = {"db_instance_identifier": "db", "kms_key_id": "alias/cso-rds", "vpc_security_group_ids": ["sg-db"],
              "monitoring_role_arn": ROLE, "manage_master_user_password": False}
    params.update(overrides)
    return params


def expect_describe(module, instance):
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [instance] if instance else []},
                                    {"DBInstanceIdentifier": "db"})


def expect_validation_reads(module, version="8.0.42", vpc=VPC, **engine_fields):
    expect_engine_reads(module, version, **engine_fields)
    module.stub("ec2").add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-db", "VpcId": vpc, "GroupName": "db", "Description": "db", "OwnerId": ACCOUNT}]},
        {"GroupIds": ["sg-db"]})
    module.stub("iam").add_response("get_role", {"Role": {
        "RoleName": "rds-monitoring", "Arn": ROLE, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1", "CreateDate": FAR_FUTURE}},
        {"RoleName": "rds-monitoring"})


def expect_engine_reads(module, version="8.0.42", **engine_fields):
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": "1111", "Arn": KEY_ARN, "KeyState": "Enabled", "KeyManager": "CUSTOMER"}}, {"KeyId": "alias/cso-rds"})
    module.stub("rds").add_response("describe_db_engine_versions", {"DBEngineVersions": [
        dict({"Engine": "mysql", "EngineVersion": version, "DBParameterGroupFamily": "mysql8.0"}, **engine_fields)]},
        {"Engine": "mysql", "EngineVersion": version})


def run(module):
    """run() returns the result (main exits with it); a refusal fails."""
    try:
        return Exited(module_under_test.run(module))
    except Failed as failed:
        return failed


def test_check_mode_returns_the_plan_with_reads_only():
    module = make_module(base_params(), check_mode=True)
    expect_describe(module, weak_instance())
    expect_validation_reads(module)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    plan = {entry["attribute"]: entry for entry in outcome.result["plan"]}
    assert outcome.result["changed"] is True
    assert plan["vpc_security_group_ids"]["current"] == ["sg-shared"]
    assert outcome.result["diff"]["after"]["multi_az"] is True
    assert plan["kms_key_id"]["apply"] == "replacement"
    assert any("allow_replacement=true" in warning for warning in module.warnings)
    module.assert_all_calls_made()  # and the Stubber refuses any call it was not told about


def test_replacement_refused_before_any_write():
    module = make_module(base_params(allow_replacement=False))
    expect_describe(module, weak_instance())
    expect_validation_reads(module)
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert "allow_replacement=true" in outcome.result["msg"] and "Stop writes" in outcome.result["msg"]


def test_reboot_refused_before_any_write():
    module = make_module(base_params(db_instance_class="db.r5.large"))
    expect_describe(module, hardened_instance())
    expect_validation_reads(module)
    outcome = run(module)
    assert isinstance(outcome, Failed) and "allow_reboot=true" in outcome.result["msg"]


def test_converge_modifies_once_and_reports_pending():
    instance = hardened_instance()
    instance.update(MultiAZ=False, DeletionProtection=False)
    pending = dict(instance, DeletionProtection=True, PendingModifiedValues={"MultiAZ": True})
    module = make_module(base_params())
    expect_describe(module, instance)
    expect_validation_reads(module)
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": pending}, {
        "DBInstanceIdentifier": "db", "MultiAZ": True, "DeletionProtection": True, "ApplyImmediately": False})
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [pending]}, {"DBInstanceIdentifier": "db"})  # waiter
    expect_describe(module, pending)  # refresh before the reboot check
    expect_describe(module, pending)  # the result
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True
    assert outcome.result["pending_modified_values"] == {"multi_az": True}
    assert {e["attribute"]: e["apply"] for e in outcome.result["plan"]} == {
        "multi_az": "maintenance-window", "deletion_protection": "immediately"}
    module.assert_all_calls_made()


def test_hardened_instance_makes_no_write():
    module = make_module(base_params())
    expect_describe(module, hardened_instance())
    expect_validation_reads(module)
    expect_describe(module, hardened_instance())  # refresh before the reboot check
    expect_describe(module, hardened_instance())
    outcome = run(module)
    assert outcome.result["changed"] is False and outcome.result["plan"] == []
    assert outcome.result["instance"]["tags"] == {"Name": "db"}
    module.assert_all_calls_made()


def test_security_group_in_another_vpc_is_refused():
    module = make_module(base_params())
    expect_describe(module, weak_instance())
    expect_validation_reads(module, vpc="vpc-other")
    outcome = run(module)
    assert isinstance(outcome, Failed) and "are not in the DB subnet group's VPC vpc-1" in outcome.result["msg"]


def test_an_aws_managed_key_the_instance_does_not_use_is_refused():
    module = make_module(base_params(kms_key_id="alias/aws/rds"))
    expect_describe(module, weak_instance())
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": "dddd", "Arn": OLD_KEY.replace("aaaa", "dddd"), "KeyState": "Enabled", "KeyManager": "AWS"}},
        {"KeyId": "alias/aws/rds"})
    outcome = run(module)
    assert isinstance(outcome, Failed) and "AWS-managed" in outcome.result["msg"]


def test_missing_instance_needs_creation_options():
    module = make_module(base_params())
    expect_describe(module, None)
    outcome = run(module)
    assert isinstance(outcome, Failed) and "to create it also set engine_version" in outcome.result["msg"]


def test_create_in_check_mode_plans_every_attribute():
    module = make_module(base_params(engine_version="8.0.42", db_instance_class="db.t3.2xlarge", allocated_storage=50,
                                    db_subnet_group_name="private", master_username="admin",
                                    master_user_password="s3cret-password"), check_mode=True)
    expect_describe(module, None)
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": []}, {"DBInstanceIdentifier": "db-reencrypted"})
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": "1111", "Arn": KEY_ARN, "KeyState": "Enabled", "KeyManager": "CUSTOMER"}}, {"KeyId": "alias/cso-rds"})
    module.stub("rds").add_response("describe_db_engine_versions", {"DBEngineVersions": [
        {"Engine": "mysql", "EngineVersion": "8.0.42", "DBParameterGroupFamily": "mysql8.0"}]},
        {"Engine": "mysql", "EngineVersion": "8.0.42"})
    module.stub("rds").add_response("describe_db_subnet_groups", {"DBSubnetGroups": [
        {"DBSubnetGroupName": "private", "VpcId": VPC}]}, {"DBSubnetGroupName": "private"})
    module.stub("ec2").add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-db", "VpcId": VPC, "GroupName": "db", "Description": "db", "OwnerId": ACCOUNT}]},
        {"GroupIds": ["sg-db"]})
    module.stub("iam").add_response("get_role", {"Role": {
        "RoleName": "rds-monitoring", "Arn": ROLE, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1", "CreateDate": FAR_FUTURE}},
        {"RoleName": "rds-monitoring"})
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    plan = {entry["attribute"]: entry for entry in outcome.result["plan"]}
    assert plan["kms_key_id"]["desired"] == KEY_ARN and plan["kms_key_id"]["current"] is None
    assert plan["manage_master_user_password"]["desired"] is False  # the task said so
    assert "s3cret-password" not in repr(outcome.result)
    module.assert_all_calls_made()


def test_a_new_instance_keeps_its_master_password_in_secrets_manager_by_default():
    params = base_params(engine_version="8.0.42", db_instance_class="db.t3.2xlarge", allocated_storage=50,
                         db_subnet_group_name="private", master_username="admin")
    del params["manage_master_user_password"]
    module = make_module(params, check_mode=True)
    expect_describe(module, None)
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": []}, {"DBInstanceIdentifier": "db-reencrypted"})
    module.stub("kms").add_response("describe_key", {"KeyMetadata": {
        "KeyId": "1111", "Arn": KEY_ARN, "KeyState": "Enabled", "KeyManager": "CUSTOMER"}}, {"KeyId": "alias/cso-rds"})
    module.stub("rds").add_response("describe_db_engine_versions", {"DBEngineVersions": [
        {"Engine": "mysql", "EngineVersion": "8.0.42", "DBParameterGroupFamily": "mysql8.0"}]},
        {"Engine": "mysql", "EngineVersion": "8.0.42"})
    module.stub("rds").add_response("describe_db_subnet_groups", {"DBSubnetGroups": [
        {"DBSubnetGroupName": "private", "VpcId": VPC}]}, {"DBSubnetGroupName": "private"})
    module.stub("ec2").add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-db", "VpcId": VPC, "GroupName": "db", "Description": "db", "OwnerId": ACCOUNT}]},
        {"GroupIds": ["sg-db"]})
    module.stub("iam").add_response("get_role", {"Role": {
        "RoleName": "rds-monitoring", "Arn": ROLE, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1", "CreateDate": FAR_FUTURE}},
        {"RoleName": "rds-monitoring"})
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    plan = {entry["attribute"]: entry for entry in outcome.result["plan"]}
    assert plan["manage_master_user_password"]["desired"] is True
    assert plan["master_user_secret_kms_key_id"]["desired"] == KEY_ARN


def test_ca_expiring_soon_warns():
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    instance = hardened_instance()
    instance["CertificateDetails"] = {"CAIdentifier": "rds-ca-rsa2048-g1", "ValidTill": soon}
    module = make_module(base_params(), check_mode=True)
    expect_describe(module, instance)
    expect_validation_reads(module)
    run(module)
    assert any("expires" in warning and "90 days" in warning for warning in module.warnings)


def test_master_password_is_no_log():
    assert module_under_test.ARGUMENT_SPEC["master_user_password"]["no_log"] is True


def test_lower_backup_retention_is_refused_before_any_write():
    instance = dict(hardened_instance(), BackupRetentionPeriod=30)
    module = make_module(base_params(backup_retention_period=7))
    expect_describe(module, instance)
    expect_validation_reads(module)
    outcome = run(module)  # the Stubber has no write queued: a modify would fail the test differently
    assert isinstance(outcome, Failed)
    assert "from 30 to 7 days" in outcome.result["msg"] and "allow_backup_retention_decrease=true" in outcome.result["msg"]
    module.assert_all_calls_made()


def test_lower_backup_retention_in_check_mode_is_planned_as_data_loss():
    instance = dict(hardened_instance(), BackupRetentionPeriod=30)
    module = make_module(base_params(backup_retention_period=7), check_mode=True)
    expect_describe(module, instance)
    expect_validation_reads(module)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert [(e["attribute"], e["impact"]) for e in outcome.result["plan"]] == [("backup_retention_period", "data-loss")]
    assert any("allow_backup_retention_decrease=true" in warning for warning in module.warnings)


def test_lower_backup_retention_when_allowed():
    instance = dict(hardened_instance(), BackupRetentionPeriod=30)
    lowered = hardened_instance()
    module = make_module(base_params(backup_retention_period=7, allow_backup_retention_decrease=True))
    expect_describe(module, instance)
    expect_validation_reads(module)
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": lowered}, {
        "DBInstanceIdentifier": "db", "BackupRetentionPeriod": 7, "ApplyImmediately": False})
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [lowered]}, {"DBInstanceIdentifier": "db"})
    expect_describe(module, lowered)
    expect_describe(module, lowered)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True
    module.assert_all_calls_made()


@pytest.mark.parametrize("secret", [None, {"SecretArn": "arn:aws:secretsmanager:x", "KmsKeyId": KEY_ARN}])
def test_master_password_management_left_as_it_is_unless_set(secret):
    instance = hardened_instance()
    if secret:
        instance["MasterUserSecret"] = secret
    params = base_params()
    del params["manage_master_user_password"]
    module = make_module(params, check_mode=True)
    expect_describe(module, instance)
    expect_validation_reads(module)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["plan"] == [] and outcome.result["changed"] is False


def test_switch_to_secrets_manager_is_an_interruption_in_the_plan():
    module = make_module(base_params(manage_master_user_password=True), check_mode=True)
    expect_describe(module, dict(hardened_instance(), MasterUsername="admin"))
    expect_validation_reads(module)
    outcome = run(module)
    plan = {entry["attribute"]: entry for entry in outcome.result["plan"]}
    assert plan["manage_master_user_password"]["impact"] == "interruption"
    assert "master user admin" in plan["manage_master_user_password"]["effect"]


def test_configured_version_below_the_running_one_plans_nothing_in_check_mode():
    # AWS applied an automatic minor upgrade: the instance runs 8.0.42, the configuration still says 8.0.40
    module = make_module(base_params(engine_version="8.0.40"), check_mode=True)
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, version="8.0.42")  # the version the instance keeps is the one validated
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["plan"] == [] and outcome.result["changed"] is False
    assert not any("allow_reboot" in warning for warning in module.warnings)
    module.assert_all_calls_made()


def test_configured_version_below_the_running_one_makes_no_write():
    module = make_module(base_params(engine_version="8.0.40"))
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, version="8.0.42")
    expect_describe(module, hardened_instance())  # refresh before the reboot check
    expect_describe(module, hardened_instance())
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is False
    module.assert_all_calls_made()


def test_configured_version_above_the_running_one_plans_an_upgrade_in_check_mode():
    module = make_module(base_params(engine_version="8.0.100"), check_mode=True)
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, version="8.0.100")
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert [(e["attribute"], e["current"], e["desired"], e["impact"]) for e in outcome.result["plan"]] == [
        ("engine_version", "8.0.42", "8.0.100", "restart")]
    assert any("allow_reboot=true" in warning for warning in module.warnings)
    module.assert_all_calls_made()


def test_engine_upgrade_with_reboot_allowed_modifies_the_version():
    upgraded = dict(hardened_instance(), EngineVersion="8.0.43")
    module = make_module(base_params(engine_version="8.0.43", allow_reboot=True, apply="immediately"))
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, version="8.0.43")
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": upgraded}, {
        "DBInstanceIdentifier": "db", "EngineVersion": "8.0.43", "ApplyImmediately": True})
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": [upgraded]}, {"DBInstanceIdentifier": "db"})
    expect_describe(module, upgraded)
    expect_describe(module, upgraded)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True
    module.assert_all_calls_made()


def test_replacement_needs_the_writes_stopped_confirmation_before_any_write():
    module = make_module(base_params(allow_replacement=True))
    expect_describe(module, weak_instance())
    expect_validation_reads(module)
    outcome = run(module)  # no snapshot call queued: the Stubber would refuse one
    assert isinstance(outcome, Failed)
    assert "writes_stopped=true" in outcome.result["msg"] and "lost to the new instance" in outcome.result["msg"]
    module.assert_all_calls_made()


def test_wait_timeout_must_be_positive():
    module = make_module(base_params(wait_timeout=0))
    outcome = run(module)
    assert isinstance(outcome, Failed) and "wait_timeout must be a positive" in outcome.result["msg"]


@pytest.fixture
def pauses(monkeypatch):
    """The waiters' sleeps, recorded instead of slept (tests count polls and pauses, never wall time)."""
    import botocore.waiter
    asked = []
    monkeypatch.setattr(botocore.waiter.time, "sleep", asked.append)
    return asked


def test_a_restart_is_waited_for_in_5_second_polls_and_not_ended_by_the_answer_from_before_it(pauses):
    """Before: amazon.aws's wait_for_instance_status (60 s between polls) ended on the first 'available',
    even when it still showed the old version."""
    upgraded = dict(hardened_instance(), EngineVersion="8.0.43")
    module = make_module(base_params(engine_version="8.0.43", allow_reboot=True, apply="immediately"))
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, version="8.0.43")
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": hardened_instance()}, {
        "DBInstanceIdentifier": "db", "EngineVersion": "8.0.43", "ApplyImmediately": True})
    for answer in (dict(hardened_instance(), PendingModifiedValues={"EngineVersion": "8.0.43"}),  # not begun yet
                   dict(upgraded, DBInstanceStatus="upgrading"), upgraded):
        expect_describe(module, answer)  # the wait
    expect_describe(module, upgraded)  # refresh before the reboot check
    expect_describe(module, upgraded)  # the result
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    module.assert_all_calls_made()
    assert pauses == [5, 5]


def test_a_reboot_for_a_pending_parameter_group_is_waited_for_until_the_group_is_in_sync(pauses):
    pending = dict(hardened_instance(), DBParameterGroups=[
        {"DBParameterGroupName": "db-mysql80", "ParameterApplyStatus": "pending-reboot"}])
    in_sync = dict(hardened_instance(), DBParameterGroups=[
        {"DBParameterGroupName": "db-mysql80", "ParameterApplyStatus": "in-sync"}])
    module = make_module(base_params(allow_reboot=True, apply="immediately"))
    expect_describe(module, pending)
    expect_validation_reads(module)
    expect_describe(module, pending)  # refresh before the reboot check
    module.stub("rds").add_response("reboot_db_instance", {"DBInstance": dict(pending, DBInstanceStatus="rebooting")},
                                    {"DBInstanceIdentifier": "db"})
    for answer in (pending, dict(pending, DBInstanceStatus="rebooting"), in_sync):
        expect_describe(module, answer)  # the wait: the first answer is from before the reboot began
    expect_describe(module, in_sync)  # the result
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    assert outcome.result["changed"] is True
    module.assert_all_calls_made()
    assert pauses == [5, 5]


# --- CA rotation with or without a restart (CertificateRotationRestart) -------------------------------------------

NEW_CA = "rds-ca-rsa4096-g1"


def expect_certificate(module, identifier=NEW_CA):
    module.stub("rds").add_response("describe_certificates", {"Certificates": [
        {"CertificateIdentifier": identifier, "CertificateType": "CA", "ValidTill": FAR_FUTURE}]},
        {"CertificateIdentifier": identifier})


def test_rotation_without_restart_is_refused_where_the_engine_version_cannot_before_any_write():
    module = make_module(base_params(ca_certificate_identifier=NEW_CA, ca_certificate_rotation_restart=False,
                                     apply="immediately"))
    expect_describe(module, hardened_instance())
    expect_engine_reads(module, SupportsCertificateRotationWithoutRestart=False)
    outcome = run(module)  # no modify queued: the Stubber would refuse one
    assert isinstance(outcome, Failed)
    message = outcome.result["msg"]
    assert "does not support rotating the server certificate without a restart" in message
    assert "SupportsCertificateRotationWithoutRestart is False" in message
    assert "ca_certificate_rotation_restart=true and allow_reboot=true" in message and "Nothing was changed" in message
    module.assert_all_calls_made()


def test_rotation_without_restart_where_supported_needs_no_reboot_and_says_so(pauses):
    rotated = dict(hardened_instance(), CACertificateIdentifier=NEW_CA)
    module = make_module(base_params(ca_certificate_identifier=NEW_CA, ca_certificate_rotation_restart=False,
                                     apply="immediately"))  # allow_reboot stays false
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, SupportsCertificateRotationWithoutRestart=True)
    expect_certificate(module)
    module.stub("rds").add_response("modify_db_instance", {"DBInstance": rotated}, {
        "DBInstanceIdentifier": "db", "CACertificateIdentifier": NEW_CA, "CertificateRotationRestart": False,
        "ApplyImmediately": True})
    expect_describe(module, rotated)  # the wait: already applied
    expect_describe(module, rotated)  # refresh before the reboot check
    expect_describe(module, rotated)  # the result
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    [entry] = outcome.result["plan"]
    assert (entry["what"], entry["impact"], entry["apply"]) == ("ca_certificate_identifier", "none", "immediately")
    assert "No restart" in entry["effect"] and "every new connection gets a certificate from rds-ca-rsa4096-g1" in entry["effect"]
    module.assert_all_calls_made()
    assert pauses == []


def test_rotation_with_restart_sends_the_flag_and_needs_allow_reboot():
    module = make_module(base_params(ca_certificate_identifier=NEW_CA, apply="immediately"))
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, SupportsCertificateRotationWithoutRestart=True)
    expect_certificate(module)
    outcome = run(module)
    assert isinstance(outcome, Failed) and "allow_reboot=true" in outcome.result["msg"]
    module.assert_all_calls_made()


def test_check_mode_plans_a_rotation_with_restart_as_a_restart():
    module = make_module(base_params(ca_certificate_identifier=NEW_CA, allow_reboot=True), check_mode=True)
    expect_describe(module, hardened_instance())
    expect_validation_reads(module, SupportsCertificateRotationWithoutRestart=False)  # restart: the flag is irrelevant
    expect_certificate(module)
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    [entry] = outcome.result["plan"]
    assert entry["impact"] == "restart" and "restarts once" in entry["effect"]
    module.assert_all_calls_made()
