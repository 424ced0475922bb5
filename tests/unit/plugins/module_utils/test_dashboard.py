"""The pure dashboard builder: which widgets each instance gets (the catalogue's applicability), the alarms'
thresholds as annotations, the layout, CloudWatch's limits, and the canonical comparison."""

import json

import pytest

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model
from ansible_collections.cso.rds_hardening.plugins.module_utils import dashboard

GIB = 1024 ** 3
# A burstable class on small gp2 (burst balance, CPU credits) and a memory-optimised replica on gp3.
PRIMARY = {"DBInstanceIdentifier": "db", "Engine": "mysql", "EngineVersion": "8.0.42", "DBInstanceClass": "db.t3.large",
           "StorageType": "gp2", "AllocatedStorage": 50}
REPLICA = {"DBInstanceIdentifier": "db-r", "Engine": "mysql", "EngineVersion": "8.0.42",
           "DBInstanceClass": "db.r6g.4xlarge", "StorageType": "gp3", "AllocatedStorage": 400,
           "ReadReplicaSourceDBInstanceIdentifier": "db"}
BUDGETS = [{"service": "keystone", "max_connections": 20}, {"service": "cso", "max_connections": 50}]
METRIC = {"namespace": "CSO/Database", "metric_name": "ServiceConnections", "service_dimension": "Service"}


def params(**overrides):
    base = {"name": "set", "alarm_set_name": "set", "connection_budgets": BUDGETS, "alarms": {}, "include": [],
            "exclude": [], "exclude_widgets": []}
    base.update(overrides)
    return base


def build(instances=(PRIMARY, REPLICA), **overrides):
    p = params(**overrides)
    alarms = alarm_model.desired_alarms(p, list(instances), None).alarms
    return dashboard.build_body("dash", p, list(instances), alarms, "eu-west-2")


def widgets_by_title(body):
    return {w["properties"]["title"]: w for w in body["widgets"] if w["type"] == "metric"}


def annotations(widget):
    return {(a["label"], a["value"], a["fill"]) for a in widget["properties"].get("annotations", {}).get("horizontal", [])}


def test_each_instance_gets_the_widgets_the_catalogue_says_apply():
    titles = set(widgets_by_title(build().body))
    always = {"CPU utilization (%)", "Freeable memory (bytes)", "Connections, all services", "Read / write IOPS",
              "Read / write latency (s)", "Free storage (bytes)"}
    assert {t for t in titles if t.startswith("db: ")} == {f"db: {t}" for t in always | {
        "gp2 burst balance (%)", "CPU credit balance"}}
    assert {t for t in titles if t.startswith("db-r: ")} == {f"db-r: {t}" for t in always | {"Replica lag (s)"}}


def test_widgets_left_out_carry_the_catalogues_reason():
    skipped = {(s["db_instance_identifier"], s["widget"]): s["reason"] for s in build().skipped}
    assert set(skipped) == {("db", "replica_lag"), ("db-r", "burst_balance"), ("db-r", "cpu_credits")}
    assert "not a read replica" in skipped[("db", "replica_lag")]
    assert "gp2 only" in skipped[("db-r", "burst_balance")]
    assert "not a burstable" in skipped[("db-r", "cpu_credits")]


def test_a_large_gp2_volume_gets_no_burst_balance_widget():
    big = dict(PRIMARY, AllocatedStorage=1000)
    assert "db: gp2 burst balance (%)" not in widgets_by_title(build([big]).body)


def test_thresholds_are_horizontal_annotations_with_the_side_that_alarms():
    widgets = widgets_by_title(build().body)
    assert annotations(widgets["db: CPU utilization (%)"]) == {("cpu_utilization > 80", 80.0, "above")}
    # db.t3.large: 8 GiB, the alarm fires below 10 % of it; db.r6g.4xlarge: 128 GiB.
    assert annotations(widgets["db: Freeable memory (bytes)"]) == {
        (f"freeable_memory < {int(8 * GIB * 0.1)}", float(int(8 * GIB * 0.1)), "below")}
    assert annotations(widgets["db-r: Freeable memory (bytes)"]) == {
        (f"freeable_memory < {int(128 * GIB * 0.1)}", float(int(128 * GIB * 0.1)), "below")}
    assert annotations(widgets["db: Connections, all services"]) == {("database_connections > 70", 70.0, "above")}
    assert annotations(widgets["db: Read / write latency (s)"]) == {("read_latency > 0.02", 0.02, "above"),
                                                                    ("write_latency > 0.02", 0.02, "above")}
    # Two storage alarms on one graph: 2 GB, and 10 % of 50 GiB (no autoscaling).
    assert annotations(widgets["db: Free storage (bytes)"]) == {
        ("free_storage_space < 2000000000", 2e9, "below"),
        (f"free_storage_space_percent < {int(50 * GIB * 0.1)}", float(int(50 * GIB * 0.1)), "below")}
    assert annotations(widgets["db-r: Replica lag (s)"]) == {("replica_lag > 60", 60.0, "above")}
    assert "annotations" not in widgets["db: Read / write IOPS"]["properties"]  # no alarm watches IOPS


def test_overrides_move_the_annotation_and_the_graphed_statistic():
    widgets = widgets_by_title(build(alarms={"cpu_utilization": {"threshold": 90},
                                             "write_latency": {"statistic": "p99", "period": 300}}).body)
    assert annotations(widgets["db: CPU utilization (%)"]) == {("cpu_utilization > 90", 90.0, "above")}
    write = widgets["db: Read / write latency (s)"]["properties"]["metrics"][1]
    assert write[:4] == ["AWS/RDS", "WriteLatency", "DBInstanceIdentifier", "db"]
    assert write[4] == {"label": "write", "stat": "p99", "period": 300}


def test_an_excluded_alarm_keeps_its_graph_but_loses_its_line():
    widgets = widgets_by_title(build(exclude=["cpu_utilization"]).body)
    assert "annotations" not in widgets["db: CPU utilization (%)"]["properties"]


def test_a_forced_alarm_draws_its_widget_even_where_the_catalogue_would_skip_it():
    widgets = widgets_by_title(build([PRIMARY], alarms={"replica_lag": {"threshold": 30}}).body)
    assert annotations(widgets["db: Replica lag (s)"]) == {("replica_lag > 30", 30.0, "above")}


def test_per_service_connections_only_with_a_per_service_metric():
    assert not any("per service" in t for t in widgets_by_title(build().body))
    widget = widgets_by_title(build([PRIMARY], service_connections_metric=METRIC).body)["db: Connections per service"]
    metrics = widget["properties"]["metrics"]
    assert [m[:6] for m in metrics] == [
        ["CSO/Database", "ServiceConnections", "DBInstanceIdentifier", "db", "Service", "keystone"],
        ["CSO/Database", "ServiceConnections", "DBInstanceIdentifier", "db", "Service", "cso"]]
    assert annotations(widget) == {("database_connections_service_keystone > 20", 20.0, "above"),
                                   ("database_connections_service_cso > 50", 50.0, "above")}


def test_exclude_widgets_leaves_them_out_and_says_so():
    result = build([PRIMARY], exclude_widgets=["iops", "cpu_credits"])
    titles = set(widgets_by_title(result.body))
    assert "db: Read / write IOPS" not in titles and "db: CPU credit balance" not in titles
    assert {s["widget"] for s in result.skipped if s["reason"].startswith("excluded")} == {"iops", "cpu_credits"}


def test_layout_fills_rows_of_24_and_never_overlaps():
    widgets = build().body["widgets"]
    cells = set()
    for w in widgets:
        assert 0 <= w["x"] and w["x"] + w["width"] <= dashboard.GRID_WIDTH
        own = {(x, y) for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])}
        assert not own & cells
        cells |= own
    assert widgets[0]["type"] == "text" and dashboard.MARKER in widgets[0]["properties"]["markdown"]
    headers = [w for w in widgets if w["type"] == "text"][1:]
    assert [h["properties"]["markdown"].splitlines()[0] for h in headers] == ["### db", "### db-r"]
    assert "read replica of db" in headers[1]["properties"]["markdown"]
    assert "replica_lag (not a read replica" in headers[0]["properties"]["markdown"]


def test_every_metric_widget_reads_the_modules_region():
    assert {w["properties"]["region"] for w in build().body["widgets"] if w["type"] == "metric"} == {"eu-west-2"}


@pytest.mark.parametrize("name, ok", [("cso-prod_rds", True), ("a" * 255, True), ("a" * 256, False),
                                      ("cso.prod", False), ("cso prod", False), ("", False)])
def test_dashboard_names(name, ok):
    assert (dashboard.name_errors(name) == []) is ok


def test_limits_refuse_too_many_widgets_and_say_what_to_do():
    many = [dict(PRIMARY, DBInstanceIdentifier=f"db-{i}") for i in range(50)]  # 50 x (header + 8) + intro = 451
    assert dashboard.limit_errors(build(many).body) == []
    more = [dict(PRIMARY, DBInstanceIdentifier=f"db-{i}") for i in range(56)]  # 56 x 9 + 1 = 505
    errors = dashboard.limit_errors(build(more).body)
    assert len(errors) == 1 and "505 widgets" in errors[0] and "Split the instances" in errors[0]


def test_limits_refuse_too_many_metrics_per_widget_and_per_dashboard():
    budgets = [{"service": f"s{i}", "max_connections": 1} for i in range(501)]
    body = build([PRIMARY], connection_budgets=budgets, service_connections_metric=METRIC).body
    errors = dashboard.limit_errors(body)
    assert any("501 metrics" in e and "per widget" in e for e in errors)
    budgets = [{"service": f"s{i}", "max_connections": 1} for i in range(300)]
    body = build([dict(PRIMARY, DBInstanceIdentifier=f"db-{i}") for i in range(9)], connection_budgets=budgets,
                 service_connections_metric=METRIC).body
    errors = dashboard.limit_errors(body)
    assert len(errors) == 1 and "per dashboard" in errors[0]


def test_canonical_comparison_ignores_key_order_and_whitespace_only():
    body = build().body
    reordered = {key: body[key] for key in reversed(list(body))}
    reordered["widgets"] = [{key: w[key] for key in reversed(list(w))} for w in body["widgets"]]
    assert json.dumps(reordered) != json.dumps(body)
    assert dashboard.same(json.dumps(reordered, indent=2), body)
    assert dashboard.same(dashboard.canonical(body), body)
    changed = json.loads(dashboard.canonical(body))
    changed["widgets"][2]["properties"]["title"] += "!"
    assert not dashboard.same(json.dumps(changed), body)
    assert not dashboard.same("not json", body)


def test_ownership_is_the_marker_line():
    assert dashboard.owned(dashboard.canonical(build().body))
    assert not dashboard.owned(json.dumps({"widgets": [{"type": "text", "properties": {"markdown": "# ops"}}]}))
    assert not dashboard.owned("{broken")
