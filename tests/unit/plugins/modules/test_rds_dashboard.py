"""rds_dashboard's whole flow against stubbed clients: the exact calls for create, an unchanged re-run
(GetDashboard only), a changed body, absent, check mode, and refusals before any write."""

import json

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import dashboard
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.modules import rds_dashboard
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

REGION = "eu-west-2"
DB = {"DBInstanceIdentifier": "db", "Engine": "mysql", "EngineVersion": "8.0.42", "DBInstanceClass": "db.m5.large",
      "StorageType": "gp3", "AllocatedStorage": 100}
ARN = "arn:aws:cloudwatch::123456789012:dashboard/dash"


def make_module(check_mode=False, **params):
    base = {"name": "dash", "alarm_set_name": "prod", "db_instance_identifiers": ["db"],
            "connection_budgets": [{"service": "keystone", "max_connections": 20}]}
    base.update(params)
    return StubbedModule(rds_dashboard.argument_spec(), base, check_mode, region=REGION)


def expect_instances(module, instances=(DB,)):
    module.stub("rds").add_response("describe_db_instances", {"DBInstances": list(instances)},
                                    {"Filters": [{"Name": "db-instance-id", "Values": ["db"]}]})


def expect_get(module, body=None):
    if body is None:
        module.stub("cloudwatch").add_client_error("get_dashboard", "ResourceNotFound", "Dashboard does not exist", 404,
                                                   expected_params={"DashboardName": "dash"})
    else:
        module.stub("cloudwatch").add_response("get_dashboard", {"DashboardArn": ARN, "DashboardName": "dash",
                                                                 "DashboardBody": body}, {"DashboardName": "dash"})


def run(module):
    with pytest.raises(Exited) as exited:
        _run(module)
    module.assert_all_calls_made()
    return exited.value


def _run(module):
    run_module(module, rds_dashboard.run, "converging the dashboard")


def wanted_body():
    """The body for DB, built the way the module must build it (reads the result of a check-mode run)."""
    module = make_module(check_mode=True)
    expect_instances(module)
    expect_get(module)
    return run(module).result["body"]


def test_create_is_one_put_of_the_canonical_body():
    body = wanted_body()
    module = make_module()
    expect_instances(module)
    expect_get(module)
    module.stub("cloudwatch").add_response("put_dashboard", {"DashboardValidationMessages": []},
                                           {"DashboardName": "dash", "DashboardBody": dashboard.canonical(body)})
    result = run(module).result
    assert result["changed"] is True and result["operation"] == "create"
    assert result["plan"] == [{"what": "dashboard dash", "impact": "none", "action": "create", "before": None,
                               "after": {"widgets": result["widgets"]}}]
    assert result["widgets"] == ["db: CPU utilization (%)", "db: Freeable memory (bytes)", "db: Connections, all services",
                                 "db: Read / write IOPS", "db: Read / write latency (s)", "db: Free storage (bytes)"]
    assert {s["widget"] for s in result["not_applicable"]} == {"replica_lag", "burst_balance", "cpu_credits"}
    cpu = body["widgets"][2]["properties"]
    assert cpu["title"] == "db: CPU utilization (%)"
    assert cpu["annotations"]["horizontal"] == [{"label": "cpu_utilization > 80", "value": 80.0, "fill": "above"}]
    assert body["widgets"][4]["properties"]["annotations"]["horizontal"][0]["value"] == 20.0  # the budgets' sum


def test_unchanged_rerun_reads_the_dashboard_only():
    body = wanted_body()
    module = make_module()
    expect_instances(module)
    expect_get(module, json.dumps(body, indent=2))  # stored with other whitespace: still the same body
    result = run(module).result  # a PutDashboard would hit the Stubber with no queued response and fail
    assert result["changed"] is False and result["operation"] == "none" and result["plan"] == []


def test_changed_threshold_is_one_put_with_the_new_annotation_and_a_diff():
    old = wanted_body()
    module = make_module(alarms={"cpu_utilization": {"threshold": 90}})
    expect_instances(module)
    expect_get(module, dashboard.canonical(old))
    new = json.loads(dashboard.canonical(old))
    new["widgets"][2]["properties"]["annotations"]["horizontal"] = [
        {"label": "cpu_utilization > 90", "value": 90.0, "fill": "above"}]
    module.stub("cloudwatch").add_response("put_dashboard", {"DashboardValidationMessages": []},
                                           {"DashboardName": "dash", "DashboardBody": dashboard.canonical(new)})
    result = run(module).result
    assert result["operation"] == "update"
    assert result["diff"]["before"] == old and result["diff"]["after"] == new


def test_check_mode_plans_the_update_and_writes_nothing():
    old = wanted_body()
    module = make_module(check_mode=True, exclude_widgets=["iops"])
    expect_instances(module)
    expect_get(module, dashboard.canonical(old))
    result = run(module).result  # no put queued: a write would fail the test
    assert result["changed"] is True
    assert "db: Read / write IOPS" in result["plan"][0]["before"]["widgets"]
    assert "db: Read / write IOPS" not in result["plan"][0]["after"]["widgets"]


def test_validation_messages_are_warned():
    body = wanted_body()
    module = make_module()
    expect_instances(module)
    expect_get(module)
    message = {"DataPath": "/widgets/2", "Message": "Should NOT have additional properties"}
    module.stub("cloudwatch").add_response("put_dashboard", {"DashboardValidationMessages": [message]},
                                           {"DashboardName": "dash", "DashboardBody": dashboard.canonical(body)})
    result = run(module).result
    assert result["validation_messages"] == [message]
    assert module.warnings == ["CloudWatch on dashboard dash: /widgets/2 Should NOT have additional properties"]


def test_absent_deletes_an_owned_dashboard():
    module = make_module(state="absent")
    expect_get(module, dashboard.canonical(wanted_body()))
    module.stub("cloudwatch").add_response("delete_dashboards", {}, {"DashboardNames": ["dash"]})
    result = run(module).result
    assert result["changed"] is True and result["plan"][0]["action"] == "delete" and result["plan"][0]["after"] is None


def test_absent_in_check_mode_and_absent_when_gone_write_nothing():
    module = make_module(state="absent", check_mode=True)
    expect_get(module, dashboard.canonical(wanted_body()))
    assert run(module).result["changed"] is True
    module = make_module(state="absent")
    expect_get(module)
    assert run(module).result["changed"] is False


FOREIGN = json.dumps({"widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 2,
                                   "properties": {"markdown": "ops team"}}]})


@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_dashboard_someone_else_made_is_refused_before_any_write(state):
    module = make_module(state=state)
    if state == "present":
        expect_instances(module)
    expect_get(module, FOREIGN)
    with pytest.raises(Failed) as failed:
        _run(module)
    assert "did not make" in failed.value.result["msg"] and "adopt=true" in failed.value.result["msg"]
    module.assert_all_calls_made()


def test_adopt_overwrites_a_foreign_dashboard():
    body = wanted_body()
    module = make_module(adopt=True)
    expect_instances(module)
    expect_get(module, FOREIGN)
    module.stub("cloudwatch").add_response("put_dashboard", {}, {"DashboardName": "dash",
                                                                 "DashboardBody": dashboard.canonical(body)})
    assert run(module).result["operation"] == "update"


@pytest.mark.parametrize("params, message", [
    ({"name": "cso.prod"}, "dashboard name 'cso.prod'"),
    ({"name": "x" * 256}, "1 to 255 characters"),
    ({"name": "cso_prod", "alarm_set_name": None}, "alarm_set_name 'cso_prod'"),
    ({"alarms": {"cpu_utilization": {"threshold": -1}}}, "negative"),
    ({"exclude": ["no_such_alarm"]}, "unknown alarm 'no_such_alarm'"),
])
def test_bad_input_fails_before_any_call(params, message):
    module = make_module(**params)
    with pytest.raises(Failed) as failed:
        _run(module)
    assert message in failed.value.result["msg"]
    assert module.clients == {}  # not even a client was made


def test_a_body_over_cloudwatchs_limits_is_refused_before_the_dashboard_is_read():
    budgets = [{"service": f"s{i}", "max_connections": 1} for i in range(501)]
    module = make_module(connection_budgets=budgets,
                         service_connections_metric={"namespace": "CSO", "metric_name": "Conn", "service_dimension": "Service"})
    expect_instances(module)
    with pytest.raises(Failed) as failed:
        _run(module)
    assert "CloudWatch's limits" in failed.value.result["msg"]
    assert "501 metrics" in failed.value.result["msg"] and "List fewer connection_budgets" in failed.value.result["msg"]
    module.assert_all_calls_made()  # DescribeDBInstances only: no GetDashboard, no PutDashboard
