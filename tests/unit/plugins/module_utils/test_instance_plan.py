"""From instance + desired state to plan entries and API parameters (no AWS)."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning

KEY = "arn:aws:kms:eu-west-2:123456789012:key/1111"
DEFAULT_KEY = "arn:aws:kms:eu-west-2:123456789012:key/aaaa"
ROLE = "arn:aws:iam::123456789012:role/mon"


def weak_instance(**overrides):
    """Today's production state: default key, shared SG, no IAM auth, nothing else hardened."""
    instance = {
        "DBInstanceIdentifier": "db", "Engine": "mysql", "EngineVersion": "8.0.42", "DBInstanceClass": "db.t3.large",
        "DBInstanceStatus": "available", "StorageEncrypted": True, "KmsKeyId": DEFAULT_KEY, "PubliclyAccessible": False,
        "MultiAZ": False, "DeletionProtection": False, "BackupRetentionPeriod": 7, "PreferredBackupWindow": "02:00-03:00",
        "PreferredMaintenanceWindow": "sun:04:00-sun:05:00", "CopyTagsToSnapshot": False, "AutoMinorVersionUpgrade": True,
        "IAMDatabaseAuthenticationEnabled": False, "EnabledCloudwatchLogsExports": [], "MonitoringInterval": 0,
        "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-shared", "Status": "active"}],
        "DBParameterGroups": [{"DBParameterGroupName": "default.mysql8.0", "ParameterApplyStatus": "in-sync"}],
        "StorageType": "gp3", "AllocatedStorage": 50, "MaxAllocatedStorage": 1000, "CACertificateIdentifier": "rds-ca-rsa2048-g1",
    }
    instance.update(overrides)
    return instance


def hardened(**overrides):
    desired = {
        "kms_key_id": KEY, "publicly_accessible": False, "multi_az": True, "deletion_protection": True,
        "backup_retention_period": 7, "preferred_backup_window": None, "preferred_maintenance_window": None,
        "copy_tags_to_snapshot": True, "auto_minor_version_upgrade": True, "enable_iam_database_authentication": True,
        "enable_cloudwatch_logs_exports": ["audit", "error", "general", "slowquery"], "enable_performance_insights": True,
        "performance_insights_kms_key_id": KEY, "performance_insights_retention_period": 7, "monitoring_interval": 60,
        "monitoring_role_arn": ROLE, "vpc_security_group_ids": ["sg-db"], "ca_certificate_identifier": None,
        "db_parameter_group_name": None, "db_instance_class": None, "engine_version": None, "storage_type": "gp3",
        "allocated_storage": None, "max_allocated_storage": None, "iops": None, "storage_throughput": None,
        "manage_master_user_password": False,
    }
    desired.update(overrides)
    return desired


def by_attribute(plan):
    return {entry["attribute"]: entry for entry in plan}


def test_weak_instance_plan():
    plan = by_attribute(planning.compute_plan(planning.current_state(weak_instance()), hardened(), "maintenance-window"))
    assert plan["kms_key_id"] == {"what": "kms_key_id", "before": DEFAULT_KEY, "after": KEY,
                                  "attribute": "kms_key_id", "current": DEFAULT_KEY, "desired": KEY,
                                  "apply": "replacement", "impact": "replacement",
                                  "effect": planning.IMPACTS["replacement"]}
    assert plan["multi_az"]["apply"] == "maintenance-window" and plan["multi_az"]["impact"] == "none"
    assert plan["enable_iam_database_authentication"]["apply"] == "maintenance-window"
    assert plan["vpc_security_group_ids"] == {"what": "vpc_security_group_ids", "before": ["sg-shared"],
                                              "after": ["sg-db"],
                                              "attribute": "vpc_security_group_ids", "current": ["sg-shared"],
                                              "desired": ["sg-db"], "apply": "immediately", "impact": "none",
                                              "effect": None}
    assert plan["deletion_protection"]["apply"] == "immediately"
    assert plan["enable_performance_insights"]["apply"] == "immediately"
    assert plan["performance_insights_kms_key_id"]["apply"] == "immediately"  # PI is off: enabling sets the key
    assert set(plan) == {"kms_key_id", "multi_az", "deletion_protection", "copy_tags_to_snapshot",
                         "enable_iam_database_authentication", "enable_cloudwatch_logs_exports",
                         "enable_performance_insights", "performance_insights_kms_key_id",
                         "performance_insights_retention_period", "monitoring_interval", "monitoring_role_arn",
                         "vpc_security_group_ids"}


def test_apply_immediately_moves_deferrable_changes_to_now():
    plan = by_attribute(planning.compute_plan(planning.current_state(weak_instance()), hardened(), "immediately"))
    assert plan["multi_az"]["apply"] == "immediately"


def test_hardened_instance_has_an_empty_plan():
    instance = weak_instance(
        KmsKeyId=KEY, MultiAZ=True, DeletionProtection=True, CopyTagsToSnapshot=True, IAMDatabaseAuthenticationEnabled=True,
        EnabledCloudwatchLogsExports=["slowquery", "audit", "error", "general"], PerformanceInsightsEnabled=True,
        PerformanceInsightsKMSKeyId=KEY, PerformanceInsightsRetentionPeriod=7, MonitoringInterval=60, MonitoringRoleArn=ROLE,
        VpcSecurityGroups=[{"VpcSecurityGroupId": "sg-db", "Status": "active"}])
    assert planning.compute_plan(planning.current_state(instance), hardened(), "immediately") == []


def test_pending_changes_are_not_planned_again():
    instance = weak_instance(PendingModifiedValues={"MultiAZ": True, "IAMDatabaseAuthenticationEnabled": True})
    plan = by_attribute(planning.compute_plan(planning.current_state(instance), hardened(), "maintenance-window"))
    assert "multi_az" not in plan and "enable_iam_database_authentication" not in plan


def test_key_compared_by_key_id():
    instance = weak_instance(KmsKeyId="1111")
    assert "kms_key_id" not in by_attribute(planning.compute_plan(planning.current_state(instance), hardened(), "immediately"))


def test_restart_and_reboot_classes():
    desired = hardened(db_instance_class="db.r5.large", db_parameter_group_name="cso-mysql80",
                       ca_certificate_identifier="rds-ca-ecc384-g1", engine_version="8.0.43")
    plan = by_attribute(planning.compute_plan(planning.current_state(weak_instance()), desired, "immediately"))
    assert plan["db_instance_class"]["impact"] == "restart"
    assert plan["db_parameter_group_name"]["apply"] == "reboot" and plan["db_parameter_group_name"]["impact"] == "restart"
    assert plan["ca_certificate_identifier"]["impact"] == "restart"
    assert plan["engine_version"]["impact"] == "restart"


def test_turning_backups_on_interrupts_briefly():
    plan = by_attribute(planning.compute_plan(planning.current_state(weak_instance(BackupRetentionPeriod=0)), hardened(), "immediately"))
    assert plan["backup_retention_period"]["impact"] == "brief-interruption"


def test_lowering_backup_retention_is_data_loss_and_refused_unless_allowed():
    plan = by_attribute(planning.compute_plan(
        planning.current_state(weak_instance(BackupRetentionPeriod=30)), hardened(backup_retention_period=7), "immediately"))
    entry = plan["backup_retention_period"]
    assert (entry["current"], entry["desired"], entry["apply"], entry["impact"]) == (30, 7, "immediately", "data-loss")
    assert "older than 7 days" in entry["effect"] and "deleted at once" in entry["effect"]
    messages = planning.refusals(list(plan.values()), allow_reboot=True, allow_replacement=True)
    assert len(messages) == 1
    assert "from 30 to 7 days" in messages[0] and "allow_backup_retention_decrease=true" in messages[0]
    assert planning.refusals(list(plan.values()), True, True, allow_backup_retention_decrease=True) == []


def test_raising_backup_retention_is_no_data_loss():
    plan = by_attribute(planning.compute_plan(
        planning.current_state(weak_instance(BackupRetentionPeriod=7)), hardened(backup_retention_period=30), "immediately"))
    assert plan["backup_retention_period"]["impact"] == "none" and plan["backup_retention_period"]["effect"] is None
    assert planning.refusals(list(plan.values()), allow_reboot=True, allow_replacement=True) == []


def test_switching_to_secrets_manager_interrupts_the_master_user_clients():
    instance = weak_instance(MasterUsername="admin")
    plan = by_attribute(planning.compute_plan(
        planning.current_state(instance), hardened(manage_master_user_password=True, master_user_secret_kms_key_id=KEY),
        "maintenance-window"))
    entry = plan["manage_master_user_password"]
    assert (entry["current"], entry["desired"], entry["apply"], entry["impact"]) == (False, True, "immediately", "interruption")
    assert "master user admin" in entry["effect"] and "old password is refused" in entry["effect"]
    assert "master_username" not in plan  # named in ``what``, never planned


def test_leaving_secrets_manager_interrupts_the_secret_readers():
    instance = weak_instance(MasterUserSecret={"SecretArn": "arn:secret", "KmsKeyId": KEY})
    plan = by_attribute(planning.compute_plan(
        planning.current_state(instance), hardened(manage_master_user_password=False), "immediately"))
    assert plan["manage_master_user_password"]["impact"] == "interruption"
    assert "reads that secret" in plan["manage_master_user_password"]["effect"]


def test_unmanaged_master_password_is_not_planned():
    instance = weak_instance(MasterUserSecret={"SecretArn": "arn:secret", "KmsKeyId": KEY})
    plan = by_attribute(planning.compute_plan(
        planning.current_state(instance), hardened(manage_master_user_password=None), "immediately"))
    assert "manage_master_user_password" not in plan and "master_user_secret_kms_key_id" not in plan


def test_every_impact_is_documented():
    impacts = {impact for _when, impact in planning.RULES.values()} | {"brief-interruption", "data-loss"}
    assert impacts <= set(planning.IMPACTS)
    assert set(planning.IMPACTS) == {"none", "brief-interruption", "interruption", "restart", "data-loss", "replacement"}


def test_performance_insights_key_cannot_change_once_enabled():
    instance = weak_instance(PerformanceInsightsEnabled=True, PerformanceInsightsKMSKeyId=DEFAULT_KEY, PerformanceInsightsRetentionPeriod=7)
    plan = by_attribute(planning.compute_plan(planning.current_state(instance), hardened(), "immediately"))
    assert plan["performance_insights_kms_key_id"]["apply"] == "replacement"


def test_storage_only_grows():
    current = planning.current_state(weak_instance())
    assert "allocated_storage" not in by_attribute(planning.compute_plan(current, hardened(allocated_storage=20), "immediately"))
    assert "allocated_storage" in by_attribute(planning.compute_plan(current, hardened(allocated_storage=100), "immediately"))


def test_refusals():
    plan = planning.compute_plan(planning.current_state(weak_instance()), hardened(db_instance_class="db.r5.large"), "immediately")
    messages = planning.refusals(plan, allow_reboot=False, allow_replacement=False)
    assert "allow_replacement=true" in messages[0] and "kms_key_id" in messages[0]
    assert "allow_reboot=true" in messages[1] and "db_instance_class" in messages[1]
    assert planning.refusals(plan, allow_reboot=True, allow_replacement=True) == []


def test_modify_parameters_for_weak_instance():
    current = planning.current_state(weak_instance())
    desired = hardened()
    plan = planning.compute_plan(current, desired, "immediately")
    parameters = planning.modify_parameters(plan, current, desired)
    assert "KmsKeyId" not in parameters  # a replacement, never a modification
    assert parameters == {
        "MultiAZ": True, "DeletionProtection": True, "CopyTagsToSnapshot": True, "EnableIAMDatabaseAuthentication": True,
        "CloudwatchLogsExportConfiguration": {"EnableLogTypes": ["audit", "error", "general", "slowquery"]},
        "EnablePerformanceInsights": True, "PerformanceInsightsKMSKeyId": KEY, "PerformanceInsightsRetentionPeriod": 7,
        "MonitoringInterval": 60, "MonitoringRoleArn": ROLE, "VpcSecurityGroupIds": ["sg-db"],
    }


def test_companions_are_sent_together():
    instance = weak_instance(MonitoringInterval=60, MonitoringRoleArn="arn:old")
    current = planning.current_state(instance)
    desired = hardened()
    plan = [entry for entry in planning.compute_plan(current, desired, "immediately") if entry["attribute"] == "monitoring_role_arn"]
    assert planning.modify_parameters(plan, current, desired) == {"MonitoringInterval": 60, "MonitoringRoleArn": ROLE}


def test_logs_export_change_enables_and_disables():
    assert planning.logs_export_change(["general", "upgrade"], ["audit", "general"]) == {
        "EnableLogTypes": ["audit"], "DisableLogTypes": ["upgrade"]}


def test_diff_shows_before_and_after():
    plan = [{"attribute": "multi_az", "current": False, "desired": True, "apply": "immediately", "impact": "none"}]
    assert planning.diff(plan) == {"before": {"multi_az": False}, "after": {"multi_az": True}}


def test_engine_version_is_a_minimum_never_a_downgrade():
    upgraded_by_aws = planning.current_state(weak_instance(EngineVersion="8.0.42"))
    assert "engine_version" not in by_attribute(planning.compute_plan(upgraded_by_aws, hardened(engine_version="8.0.40"), "immediately"))
    assert "engine_version" not in by_attribute(planning.compute_plan(upgraded_by_aws, hardened(engine_version="8.0.42"), "immediately"))
    plan = by_attribute(planning.compute_plan(upgraded_by_aws, hardened(engine_version="8.0.43"), "immediately"))
    assert (plan["engine_version"]["current"], plan["engine_version"]["desired"]) == ("8.0.42", "8.0.43")
    assert plan["engine_version"]["impact"] == "restart"


def test_engine_versions_compare_as_numbers():
    current = planning.current_state(weak_instance(EngineVersion="8.0.100"))
    assert "engine_version" not in by_attribute(planning.compute_plan(current, hardened(engine_version="8.0.40"), "immediately"))
    lower = planning.current_state(weak_instance(EngineVersion="8.0.40"))
    assert by_attribute(planning.compute_plan(lower, hardened(engine_version="8.0.100"), "immediately"))["engine_version"]["desired"] == "8.0.100"
    assert planning.version_key("16.10") > planning.version_key("16.9")
    assert planning.version_key("10.11.8") > planning.version_key("10.6.18")


def test_a_pending_upgrade_is_not_planned_again():
    instance = weak_instance(EngineVersion="8.0.40", PendingModifiedValues={"EngineVersion": "8.0.42"})
    plan = planning.compute_plan(planning.current_state(instance), hardened(engine_version="8.0.42"), "maintenance-window")
    assert "engine_version" not in by_attribute(plan)


def test_replacement_refused_until_writes_are_stopped():
    plan = planning.compute_plan(planning.current_state(weak_instance()), hardened(), "immediately")
    messages = planning.refusals(plan, allow_reboot=True, allow_replacement=True, writes_stopped=False)
    assert len(messages) == 1 and "writes_stopped=true" in messages[0]
    assert planning.refusals(plan, allow_reboot=True, allow_replacement=True, writes_stopped=True) == []


@pytest.mark.parametrize("restart, impact, needs_reboot", [(True, "restart", True), (False, "none", False)])
def test_ca_rotation_impact_follows_certificate_rotation_restart(restart, impact, needs_reboot):
    current = planning.current_state(weak_instance())
    desired = hardened(ca_certificate_identifier="rds-ca-rsa4096-g1", ca_certificate_rotation_restart=restart)
    plan = planning.compute_plan(current, desired, "immediately")
    entry = by_attribute(plan)["ca_certificate_identifier"]
    assert entry["impact"] == impact and entry["apply"] == "immediately"
    assert ("No restart" in entry["effect"]) is (not restart)
    assert bool(planning.needs_reboot([entry])) is needs_reboot
    parameters = planning.modify_parameters([entry], current, desired)
    assert parameters == {"CACertificateIdentifier": "rds-ca-rsa4096-g1", "CertificateRotationRestart": restart}


def test_no_rotation_flag_without_a_ca_change():
    current = planning.current_state(weak_instance())
    desired = hardened(ca_certificate_rotation_restart=False)
    plan = [e for e in planning.compute_plan(current, desired, "immediately") if e["apply"] != "replacement"]
    assert "CertificateRotationRestart" not in planning.modify_parameters(plan, current, desired)
