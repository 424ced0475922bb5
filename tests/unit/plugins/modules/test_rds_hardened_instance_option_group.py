"""rds_hardened_instance's option_group_name: validated against AWS before any write, planned with impact none,
except when the move leaves the MariaDB Audit Plugin behind (AWS restarts the instance: impact restart)."""

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.test_rds_hardened_instance import (
    Failed, base_params, expect_describe, expect_validation_reads, hardened_instance, make_module, run)

AUDIT_GROUP = {"OptionGroupName": "db-audit", "EngineName": "mysql", "MajorEngineVersion": "8.0",
               "Options": [{"OptionName": "MARIADB_AUDIT_PLUGIN", "OptionSettings": []}]}
PLAIN_GROUP = {"OptionGroupName": "plain", "EngineName": "mysql", "MajorEngineVersion": "8.0", "Options": []}


def expect_group(module, group):
    module.stub("rds").add_response("describe_option_groups", {"OptionGroupsList": [group]},
                                    {"OptionGroupName": group["OptionGroupName"]})


def on_group(name):
    return dict(hardened_instance(), OptionGroupMemberships=[{"OptionGroupName": name, "Status": "in-sync"}])


def test_moving_onto_an_option_group_is_planned_with_no_impact():
    module = make_module(base_params(option_group_name="db-audit"), check_mode=True)
    expect_describe(module, on_group("default:mysql-8-0"))
    expect_validation_reads(module)
    expect_group(module, AUDIT_GROUP)  # validation; the default group is never described
    outcome = run(module)
    assert not isinstance(outcome, Failed), outcome.result
    entry = next(item for item in outcome.result["plan"] if item["what"] == "option_group_name")
    assert (entry["before"], entry["after"], entry["impact"], entry["apply"]) == (
        "default:mysql-8-0", "db-audit", "none", "maintenance-window")
    module.assert_all_calls_made()


def test_leaving_the_audit_plugin_behind_is_a_restart_and_refused_without_allow_reboot():
    module = make_module(base_params(option_group_name="plain"))
    expect_describe(module, on_group("db-audit"))
    expect_validation_reads(module)
    expect_group(module, PLAIN_GROUP)  # validation
    expect_group(module, AUDIT_GROUP)  # the current group has the plugin
    expect_group(module, PLAIN_GROUP)  # the new one does not
    outcome = run(module)
    assert isinstance(outcome, Failed)
    assert "option_group_name restarts the database" in outcome.result["msg"]
    module.assert_all_calls_made()


def test_an_option_group_of_another_major_version_is_refused_before_any_write():
    module = make_module(base_params(option_group_name="plain"))
    expect_describe(module, on_group("default:mysql-8-0"))
    expect_validation_reads(module)
    expect_group(module, dict(PLAIN_GROUP, MajorEngineVersion="5.7"))
    outcome = run(module)
    assert isinstance(outcome, Failed) and "is for mysql 5.7" in outcome.result["msg"]


def test_plan_and_parameters_of_an_option_group_change():
    current = planning.current_state(on_group("Db-Audit"))
    assert planning.compute_plan(current, {"option_group_name": "db-audit"}, "immediately") == []  # RDS lower-cases
    plan = planning.compute_plan(current, {"option_group_name": "plain"}, "immediately")
    assert [(entry["what"], entry["impact"], entry["apply"]) for entry in plan] == [
        ("option_group_name", "none", "immediately")]
    assert planning.modify_parameters(plan, current, {"option_group_name": "plain"}) == {"OptionGroupName": "plain"}
    dropping = dict(current, option_group_drops_audit_plugin=True)
    assert planning.compute_plan(dropping, {"option_group_name": "plain"}, "immediately")[0]["impact"] == "restart"
