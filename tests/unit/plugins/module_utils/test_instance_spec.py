"""Desired state and the pure input checks of rds_hardened_instance."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_spec as spec
from ansible_collections.cso.rds_hardening.plugins.modules.rds_hardened_instance import ARGUMENT_SPEC

KEY = "arn:aws:kms:eu-west-2:123456789012:key/1111"
PI_KEY = "arn:aws:kms:eu-west-2:123456789012:key/2222"


def params(**overrides):
    values = {name: option.get("default") for name, option in ARGUMENT_SPEC.items()}
    values.update(db_instance_identifier="db", kms_key_id="alias/rds")
    values.update(overrides)
    return values


def keys(pi=KEY):
    return {"storage": KEY, "performance_insights": pi, "master_user_secret": KEY}


def test_hardened_defaults_for_mysql():
    desired = spec.desired_state(params(monitoring_role_arn="arn:role"), keys())
    assert desired["kms_key_id"] == KEY
    assert desired["publicly_accessible"] is False
    assert desired["multi_az"] is True and desired["deletion_protection"] is True
    assert desired["backup_retention_period"] == 7
    assert desired["enable_iam_database_authentication"] is True
    assert desired["enable_cloudwatch_logs_exports"] == ["audit", "error", "general", "slowquery"]
    assert desired["performance_insights_kms_key_id"] == KEY
    # switching an existing instance's master password is opt-in: unset leaves it as it is
    assert desired["manage_master_user_password"] is None and "master_user_secret_kms_key_id" not in desired
    assert desired["monitoring_interval"] == 60 and desired["monitoring_role_arn"] == "arn:role"
    assert desired["vpc_security_group_ids"] is None  # unmanaged unless given


def test_managed_master_password_uses_the_cmk():
    desired = spec.desired_state(params(monitoring_role_arn="arn:role", manage_master_user_password=True), keys())
    assert desired["manage_master_user_password"] is True and desired["master_user_secret_kms_key_id"] == KEY


def test_postgres_log_exports_and_separate_pi_key():
    desired = spec.desired_state(params(engine="postgres", monitoring_role_arn="r"), keys(pi=PI_KEY))
    assert desired["enable_cloudwatch_logs_exports"] == ["postgresql", "upgrade"]
    assert desired["performance_insights_kms_key_id"] == PI_KEY


def test_disabled_features_are_not_wanted():
    desired = spec.desired_state(params(enable_performance_insights=False, manage_master_user_password=False,
                                        monitoring_interval=0, monitoring_role_arn="r"), keys())
    assert "performance_insights_kms_key_id" not in desired
    assert "master_user_secret_kms_key_id" not in desired
    assert desired["monitoring_role_arn"] is None


@pytest.mark.parametrize("backup, maintenance, overlap", [
    ("02:00-03:00", "sun:04:00-sun:05:00", False),
    ("04:00-05:00", "sun:04:30-sun:05:30", True),
    ("23:30-00:30", "mon:00:00-mon:00:30", True),   # backup wraps midnight
    ("23:30-00:30", "sun:23:45-mon:00:15", True),   # maintenance wraps the week
    ("01:00-01:30", "sat:23:00-sun:01:00", False),  # touching is not overlapping
    ("01:00-01:30", "wed:01:29-wed:02:00", True),
])
def test_windows_overlap(backup, maintenance, overlap):
    assert spec.windows_overlap(backup, maintenance) is overlap


@pytest.mark.parametrize("backup, maintenance, message", [
    ("2am-3am", None, "must be hh24:mi-hh24:mi"),
    ("24:00-01:00", None, "must be hh24:mi-hh24:mi"),
    ("02:00-02:10", None, "at least 30 minutes"),
    (None, "sunday 04:00", "must be ddd:hh24:mi-ddd:hh24:mi"),
    (None, "sun:04:00-sun:04:15", "at least 30 minutes"),
    ("04:00-05:00", "sun:04:30-sun:05:30", "overlaps"),
])
def test_window_errors(backup, maintenance, message):
    errors = spec.window_errors(backup, maintenance)
    assert len(errors) == 1 and message in errors[0]


def test_good_windows_pass():
    assert spec.window_errors("02:00-03:00", "SUN:04:00-SUN:05:00") == []


@pytest.mark.parametrize("overrides, message", [
    ({"backup_retention_period": 6}, "out of range"),
    ({"backup_retention_period": 36}, "out of range"),
    ({"monitoring_interval": 2}, "monitoring_interval must be one of"),
    ({"performance_insights_retention_period": 30}, "performance_insights_retention_period"),
    ({"allocated_storage": 100, "max_allocated_storage": 50}, "max_allocated_storage (50)"),
    ({"enable_cloudwatch_logs_exports": ["postgresql"]}, "are not log types of mysql"),
])
def test_input_errors(overrides, message):
    errors = spec.input_errors(params(**overrides))
    assert len(errors) == 1 and message in errors[0]


def test_valid_input_has_no_errors():
    assert spec.input_errors(params(performance_insights_retention_period=93, backup_retention_period=35)) == []


def test_creation_needs_the_basics_and_a_password_source():
    errors = spec.creation_errors(params(manage_master_user_password=False))
    assert "engine_version, db_instance_class, allocated_storage" in errors[0]
    assert "master_user_password" in errors[1]
