"""audit_spec: settings from the options, input checks, checks against AWS's description of the option, the plan."""

from ansible_collections.cso.rds_hardening.plugins.module_utils import audit_spec as spec

# DescribeOptionGroupOptions, mysql 8.0, as AWS answers it (settings abbreviated to what the tests use)
OPTION = {
    "Name": "MARIADB_AUDIT_PLUGIN", "EngineName": "mysql", "MajorEngineVersion": "8.0",
    "MinimumRequiredMinorEngineVersion": "25",
    "OptionGroupOptionSettings": [
        {"SettingName": "SERVER_AUDIT_EVENTS", "IsModifiable": True,
         "AllowedValues": "CONNECT,QUERY,QUERY_DDL,QUERY_DML,QUERY_DCL,QUERY_DML_NO_SELECT"},
        {"SettingName": "SERVER_AUDIT_EXCL_USERS", "IsModifiable": True},
        {"SettingName": "SERVER_AUDIT_INCL_USERS", "IsModifiable": True},
        {"SettingName": "SERVER_AUDIT_FILE_ROTATIONS", "IsModifiable": True, "AllowedValues": "0-100"},
        {"SettingName": "SERVER_AUDIT_QUERY_LOG_LIMIT", "IsModifiable": True, "AllowedValues": "0-2147483647"},
        {"SettingName": "SERVER_AUDIT_LOGGING", "IsModifiable": False, "DefaultValue": "ON", "AllowedValues": "ON"},
    ],
}
INSTANCE = {"DBInstanceIdentifier": "db", "Engine": "mysql", "EngineVersion": "8.0.42",
            "OptionGroupMemberships": [{"OptionGroupName": "default:mysql-8-0", "Status": "in-sync"}],
            "EnabledCloudwatchLogsExports": ["error", "slowquery"]}


def params(**overrides):
    base = {"option_group_name": "db-audit", "state": "present", "events": ["CONNECT", "QUERY_DDL", "QUERY_DCL"],
            "excluded_users": ["rdsadmin"], "included_users": None, "file_rotate_size": None, "file_rotations": None,
            "query_log_limit": None, "option_settings": {}, "export_audit_log": True}
    base.update(overrides)
    return base


def group_with(settings):
    return {"OptionGroupName": "db-audit", "EngineName": "mysql", "MajorEngineVersion": "8.0",
            "Options": [] if settings is None else [{"OptionName": "MARIADB_AUDIT_PLUGIN", "OptionSettings": [
                {"Name": name, "Value": value} for name, value in settings.items()]}]}


def test_default_settings_log_connections_ddl_and_dcl_without_rdsadmin():
    assert spec.desired_settings(params()) == {"SERVER_AUDIT_EVENTS": "CONNECT,QUERY_DDL,QUERY_DCL",
                                               "SERVER_AUDIT_EXCL_USERS": "rdsadmin"}
    assert spec.sensitive_events(params()["events"]) == []


def test_dml_and_query_are_reported_as_sensitive():
    assert spec.sensitive_events(["CONNECT", "query_dml", "QUERY"]) == ["QUERY_DML", "QUERY"]


def test_unset_options_are_not_managed_and_numbers_become_strings():
    settings = spec.desired_settings(params(excluded_users=[], query_log_limit=2048))
    assert settings == {"SERVER_AUDIT_EVENTS": "CONNECT,QUERY_DDL,QUERY_DCL", "SERVER_AUDIT_QUERY_LOG_LIMIT": "2048"}


def test_input_errors_name_each_problem():
    errors = spec.input_errors(params(events=["CONNECT", "CONNECT"], excluded_users=["a,b"], file_rotations=-1,
                                      option_settings={"SERVER_AUDIT_EVENTS": "QUERY", "lower": "1"}))
    assert any("more than once" in error for error in errors)
    assert any("excluded_users ['a,b']" in error for error in errors)
    assert any("file_rotations must not be negative" in error for error in errors)
    assert any("set it with the option events" in error for error in errors)
    assert any("option_settings.lower is not a setting name" in error for error in errors)
    assert spec.input_errors(params()) == []
    assert spec.input_errors(params(events=[])) == [
        "events is empty: name at least one event type, for example [CONNECT, QUERY_DDL, QUERY_DCL]."]


def test_option_errors_follow_aws_description():
    assert spec.option_errors(OPTION, "mysql", "8.0.42", spec.desired_settings(params())) == []
    errors = spec.option_errors(OPTION, "mysql", "8.0.42", {
        "SERVER_AUDIT_EVENTS": "CONNECT,TABLE", "SERVER_AUDIT_FILE_ROTATIONS": "101", "SERVER_AUDIT_NOPE": "1",
        "SERVER_AUDIT_LOGGING": "OFF"})
    assert "SERVER_AUDIT_EVENTS='CONNECT,TABLE' is not allowed" in errors[0]
    assert "SERVER_AUDIT_FILE_ROTATIONS='101' is not allowed: RDS accepts 0-100." in errors
    assert any("cannot be changed on RDS" in error and "SERVER_AUDIT_LOGGING" in error for error in errors)
    assert any("has no setting SERVER_AUDIT_NOPE" in error for error in errors)
    assert spec.option_errors(OPTION, "mysql", "8.0.100", {"SERVER_AUDIT_FILE_ROTATIONS": "100"}) == []


def test_option_errors_for_engine_version_and_missing_option():
    assert "needs mysql 8.0.25 or later" in spec.option_errors(OPTION, "mysql", "8.0.20", {})[0]
    assert "no MARIADB_AUDIT_PLUGIN option for mysql 5.5" in spec.option_errors(None, "mysql", "5.5.1", {})[0]
    assert "mysql and mariadb only" in spec.option_errors(None, "postgres", "16.1", {})[0]


def test_plan_of_a_fresh_instance_creates_attaches_and_exports():
    items = spec.plan(params(), INSTANCE, None, "immediately")
    assert [item["what"] for item in items] == [
        "option_group", "MARIADB_AUDIT_PLUGIN settings", "option_group_name", "enable_cloudwatch_logs_exports"]
    assert {item["impact"] for item in items} == {"none"}
    assert items[2]["before"] == "default:mysql-8-0" and items[2]["after"] == "db-audit"
    assert items[3]["after"] == ["audit", "error", "slowquery"]
    assert spec.instance_parameters(items, "immediately") == {
        "OptionGroupName": "db-audit", "CloudwatchLogsExportConfiguration": {"EnableLogTypes": ["audit"]},
        "ApplyImmediately": True}


def test_plan_is_empty_when_converged_even_with_events_in_another_order():
    instance = dict(INSTANCE, OptionGroupMemberships=[{"OptionGroupName": "db-audit", "Status": "in-sync"}],
                    EnabledCloudwatchLogsExports=["audit", "error"])
    group = group_with({"SERVER_AUDIT_EVENTS": "QUERY_DCL,CONNECT,QUERY_DDL", "SERVER_AUDIT_EXCL_USERS": "rdsadmin",
                        "SERVER_AUDIT_FILE_ROTATIONS": "9"})
    assert spec.plan(params(), instance, group, "immediately") == []
    changed = spec.plan(params(excluded_users=["rdsadmin", "monitor"]), instance, group, "maintenance-window")
    assert [(item["what"], item["before"]["SERVER_AUDIT_EXCL_USERS"], item["apply"]) for item in changed] == [
        ("MARIADB_AUDIT_PLUGIN settings", "rdsadmin", "maintenance-window")]


def test_absent_removes_the_option_and_the_export_but_keeps_the_group():
    instance = dict(INSTANCE, OptionGroupMemberships=[{"OptionGroupName": "db-audit", "Status": "in-sync"}],
                    EnabledCloudwatchLogsExports=["audit", "error"])
    items = spec.plan(params(state="absent"), instance, group_with({"SERVER_AUDIT_EVENTS": "CONNECT"}), "immediately")
    assert items[1]["impact"] == "restart" and "restarts every instance" in items[1]["effect"]
    assert spec.refusals(items, allow_reboot=False) and spec.refusals(items, allow_reboot=True) == []
    assert [(item["what"], item["after"]) for item in items] == [
        ("enable_cloudwatch_logs_exports", ["error"]), ("MARIADB_AUDIT_PLUGIN settings", None)]
    assert spec.instance_parameters(items, "immediately") == {
        "CloudwatchLogsExportConfiguration": {"DisableLogTypes": ["audit"]}, "ApplyImmediately": True}
    assert spec.plan(params(state="absent"), dict(instance, EnabledCloudwatchLogsExports=["error"]),
                     group_with(None), "immediately") == []


def test_pending_log_exports_count_as_done():
    instance = dict(INSTANCE, PendingModifiedValues={"PendingCloudwatchLogsExports": {"LogTypesToEnable": ["audit"]}})
    assert "audit" in spec.instance_log_exports(instance)
