"""rds_audit_logging against stubbed clients: the exact calls of a first run, a converged re-run that only reads,
check mode, and refusals before any write (a setting the option lacks, an event RDS does not accept, a group of
another engine version)."""

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.modules import rds_audit_logging
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

INSTANCE = {"DBInstanceIdentifier": "db", "Engine": "mysql", "EngineVersion": "8.0.42", "DBInstanceStatus": "available",
            "OptionGroupMemberships": [{"OptionGroupName": "default:mysql-8-0", "Status": "in-sync"}],
            "EnabledCloudwatchLogsExports": ["error"]}
ATTACHED = dict(INSTANCE, OptionGroupMemberships=[{"OptionGroupName": "db-audit", "Status": "in-sync"}],
                EnabledCloudwatchLogsExports=["audit", "error"])
OPTION = {"Name": "MARIADB_AUDIT_PLUGIN", "EngineName": "mysql", "MajorEngineVersion": "8.0",
          "MinimumRequiredMinorEngineVersion": "25", "OptionGroupOptionSettings": [
              {"SettingName": "SERVER_AUDIT_EVENTS", "IsModifiable": True,
               "AllowedValues": "CONNECT,QUERY,QUERY_DDL,QUERY_DML,QUERY_DCL,QUERY_DML_NO_SELECT"},
              {"SettingName": "SERVER_AUDIT_EXCL_USERS", "IsModifiable": True}]}
SETTINGS = [{"Name": "SERVER_AUDIT_EVENTS", "Value": "CONNECT,QUERY_DDL,QUERY_DCL"},
            {"Name": "SERVER_AUDIT_EXCL_USERS", "Value": "rdsadmin"}]
GROUP = {"OptionGroupName": "db-audit", "EngineName": "mysql", "MajorEngineVersion": "8.0",
         "Options": [{"OptionName": "MARIADB_AUDIT_PLUGIN", "OptionSettings": SETTINGS}]}


def make_module(check_mode=False, **params):
    base = {"db_instance_identifier": "db", "option_group_name": "db-audit"}
    base.update(params)
    return StubbedModule(rds_audit_logging.ARGUMENT_SPEC, base, check_mode)


def run(module):
    with pytest.raises(Exited) as exited:
        run_module(module, rds_audit_logging.run, "converging audit logging")
    module.assert_all_calls_made()
    return exited.value


def expect_reads(module, instance=INSTANCE, group=None, option=OPTION):
    rds = module.stub("rds")
    rds.add_response("describe_db_instances", {"DBInstances": [instance]}, {"DBInstanceIdentifier": "db"})
    if group is None:
        rds.add_client_error("describe_option_groups", "OptionGroupNotFoundFault", "not found", 404,
                             expected_params={"OptionGroupName": "db-audit"})
    else:
        rds.add_response("describe_option_groups", {"OptionGroupsList": [group]}, {"OptionGroupName": "db-audit"})
    rds.add_response("describe_option_group_options", {"OptionGroupOptions": [option]},
                     {"EngineName": "mysql", "MajorEngineVersion": "8.0"})


def test_first_run_creates_the_group_adds_the_option_and_attaches_it_in_one_modify():
    module = make_module()
    expect_reads(module)
    rds = module.stub("rds")
    rds.add_response("create_option_group", {"OptionGroup": {}}, {
        "OptionGroupName": "db-audit", "EngineName": "mysql", "MajorEngineVersion": "8.0",
        "OptionGroupDescription": "Audit logging of db"})
    rds.add_response("modify_option_group", {"OptionGroup": {}}, {
        "OptionGroupName": "db-audit", "ApplyImmediately": True,
        "OptionsToInclude": [{"OptionName": "MARIADB_AUDIT_PLUGIN", "OptionSettings": SETTINGS}]})
    rds.add_response("modify_db_instance", {"DBInstance": {}}, {
        "DBInstanceIdentifier": "db", "OptionGroupName": "db-audit", "ApplyImmediately": True,
        "CloudwatchLogsExportConfiguration": {"EnableLogTypes": ["audit"]}})
    rds.add_response("describe_db_instances", {"DBInstances": [ATTACHED]}, {"DBInstanceIdentifier": "db"})  # waiter
    result = run(module).result
    assert result["changed"] is True
    assert [item["what"] for item in result["plan"]] == [
        "option_group", "MARIADB_AUDIT_PLUGIN settings", "option_group_name", "enable_cloudwatch_logs_exports"]
    assert result["log_group"] == "/aws/rds/instance/db/audit"
    assert result["diff"]["after"]["option_group_name"] == "db-audit"
    assert module.warnings == []


def test_converged_rerun_only_reads():
    module = make_module()
    expect_reads(module, instance=ATTACHED, group=GROUP)
    result = run(module).result  # any write would find no queued response and fail
    assert result["changed"] is False and result["plan"] == []


def test_check_mode_plans_without_writing():
    module = make_module(check_mode=True, events=["CONNECT", "QUERY_DML"])
    expect_reads(module)
    result = run(module).result
    assert result["changed"] is True and len(result["plan"]) == 4
    assert result["settings"]["SERVER_AUDIT_EVENTS"] == "CONNECT,QUERY_DML"
    assert any("QUERY_DML" in warning for warning in module.warnings)


@pytest.mark.parametrize("params, message", [
    ({"events": ["CONNECT", "TABLE"]}, "SERVER_AUDIT_EVENTS='CONNECT,TABLE' is not allowed"),
    ({"option_settings": {"SERVER_AUDIT_NOPE": "1"}}, "has no setting SERVER_AUDIT_NOPE"),
])
def test_bad_settings_are_refused_before_any_write(params, message):
    module = make_module(**params)
    expect_reads(module)
    with pytest.raises(Failed) as failed:
        run_module(module, rds_audit_logging.run, "converging audit logging")
    assert message in failed.value.result["msg"] and failed.value.result["msg"].startswith("Nothing was changed")


def test_a_group_of_another_major_version_is_refused():
    module = make_module()
    expect_reads(module, group=dict(GROUP, MajorEngineVersion="5.7"))
    with pytest.raises(Failed) as failed:
        run_module(module, rds_audit_logging.run, "converging audit logging")
    assert "Option group db-audit is for mysql 5.7" in failed.value.result["msg"]


def test_input_errors_fail_before_any_call():
    module = make_module(events=[])
    with pytest.raises(Failed) as failed:
        run_module(module, rds_audit_logging.run, "converging audit logging")
    assert "events is empty" in failed.value.result["msg"]
    module.assert_all_calls_made()


def test_removal_restarts_so_it_needs_allow_reboot():
    module = make_module(state="absent")
    rds = module.stub("rds")
    rds.add_response("describe_db_instances", {"DBInstances": [ATTACHED]}, {"DBInstanceIdentifier": "db"})
    rds.add_response("describe_option_groups", {"OptionGroupsList": [GROUP]}, {"OptionGroupName": "db-audit"})
    with pytest.raises(Failed) as failed:
        run_module(module, rds_audit_logging.run, "converging audit logging")
    assert "allow_reboot=true" in failed.value.result["msg"]
    module.assert_all_calls_made()


def test_removal_with_allow_reboot_removes_the_option_and_the_export():
    module = make_module(state="absent", allow_reboot=True)
    rds = module.stub("rds")
    rds.add_response("describe_db_instances", {"DBInstances": [ATTACHED]}, {"DBInstanceIdentifier": "db"})
    rds.add_response("describe_option_groups", {"OptionGroupsList": [GROUP]}, {"OptionGroupName": "db-audit"})
    rds.add_response("modify_db_instance", {"DBInstance": {}}, {
        "DBInstanceIdentifier": "db", "ApplyImmediately": True,
        "CloudwatchLogsExportConfiguration": {"DisableLogTypes": ["audit"]}})
    done = dict(ATTACHED, EnabledCloudwatchLogsExports=["error"])
    rds.add_response("describe_db_instances", {"DBInstances": [done]}, {"DBInstanceIdentifier": "db"})  # applied
    rds.add_response("modify_option_group", {"OptionGroup": {}}, {
        "OptionGroupName": "db-audit", "ApplyImmediately": True, "OptionsToRemove": ["MARIADB_AUDIT_PLUGIN"]})
    rds.add_response("describe_db_instances", {"DBInstances": [done]}, {"DBInstanceIdentifier": "db"})  # restarted
    result = run(module).result
    assert [(item["what"], item["impact"]) for item in result["plan"]] == [
        ("enable_cloudwatch_logs_exports", "none"), ("MARIADB_AUDIT_PLUGIN settings", "restart")]
