"""rds_dashboard against the lab: the dashboard of a primary and its read replica, writes counted through the
lab's call log (a re-run writes nothing), check mode, diff, absent, a foreign dashboard, 30 % throttling."""

import json

import pytest

pytestmark = pytest.mark.lab

PRIMARY = "cso-lab-db"  # seeded (lab/csolab/seed.py): db.t3.large, 50 GiB gp3, storage autoscaling to 1000 GiB
REPLICA = "cso-lab-db-replica"
NAME = "lab-cso-rds"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: dashboard
      cso.rds_hardening.rds_dashboard: "{{ dashboard_args }}"
"""


@pytest.fixture
def replica(aws_lab):
    rds = aws_lab.boto3("rds")
    rds.create_db_instance_read_replica(DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=PRIMARY,
                                        DBInstanceClass="db.r6g.large")
    primary = rds.describe_db_instances(DBInstanceIdentifier=PRIMARY)["DBInstances"][0]
    aws_lab.clear_calls()
    return primary


def args(**overrides):
    base = {"name": NAME, "alarm_set_name": "lab-cso", "db_instance_identifiers": [PRIMARY, REPLICA],
            "connection_budgets": [{"service": "keystone", "max_connections": 20},
                                   {"service": "cso", "max_connections": 50},
                                   {"service": "rabbitmq", "max_connections": 10}]}
    base.update(overrides)
    return {"dashboard_args": base}


def writes(aws_lab):
    return [call["action"] for call in aws_lab.mutating_calls()]


def stored(aws_lab, name=NAME):
    return json.loads(aws_lab.boto3("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])


def metric_widgets(body):
    return {w["properties"]["title"]: w["properties"] for w in body["widgets"] if w["type"] == "metric"}


def test_primary_and_replica_get_their_widgets_and_thresholds(aws_lab, replica, run_playbook):
    run = run_playbook(PLAYBOOK, extra_vars=args())
    assert run.returncode == 0, run
    result = run.result("dashboard")
    assert result["changed"] is True and result["operation"] == "create"
    assert writes(aws_lab) == ["PutDashboard"]
    widgets = metric_widgets(stored(aws_lab))
    assert f"{REPLICA}: Replica lag (s)" in widgets
    assert f"{PRIMARY}: Replica lag (s)" not in widgets
    skipped = {(s["db_instance_identifier"], s["widget"]) for s in result["not_applicable"]}
    assert (PRIMARY, "replica_lag") in skipped and (REPLICA, "cpu_credits") in skipped
    assert replica["DBInstanceClass"] == "db.t3.large" and replica["StorageType"] == "gp3"
    assert f"{PRIMARY}: CPU credit balance" in widgets and f"{REPLICA}: CPU credit balance" not in widgets
    assert f"{PRIMARY}: gp2 burst balance (%)" not in widgets and (PRIMARY, "burst_balance") in skipped
    connections = widgets[f"{PRIMARY}: Connections, all services"]
    assert connections["annotations"]["horizontal"] == [
        {"label": "database_connections > 80", "value": 80.0, "fill": "above"}]
    assert connections["metrics"][0][:4] == ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", PRIMARY]
    assert widgets[f"{REPLICA}: Replica lag (s)"]["annotations"]["horizontal"][0]["value"] == 60.0
    assert {w["region"] for w in widgets.values()} == {aws_lab.state["region"]}


def test_second_run_changes_nothing_and_writes_nothing(aws_lab, replica, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args()).returncode == 0
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=args())
    assert run.returncode == 0, run
    assert run.result("dashboard")["changed"] is False
    assert writes(aws_lab) == []
    assert [c["action"] for c in aws_lab.calls() if c["service"] in ("cloudwatch", "monitoring")] == ["GetDashboard"]


def test_a_threshold_change_is_one_put_and_check_mode_writes_nothing(aws_lab, replica, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args()).returncode == 0
    before = stored(aws_lab)
    aws_lab.clear_calls()
    changed = args(alarms={"cpu_utilization": {"threshold": 90}})
    check = run_playbook(PLAYBOOK, extra_vars=changed, check=True, diff=True)
    assert check.returncode == 0, check
    result = check.result("dashboard")
    assert result["changed"] is True and result["operation"] == "update"
    assert writes(aws_lab) == [] and stored(aws_lab) == before
    after_cpu = metric_widgets(result["diff"]["after"])[f"{PRIMARY}: CPU utilization (%)"]
    before_cpu = metric_widgets(result["diff"]["before"])[f"{PRIMARY}: CPU utilization (%)"]
    assert before_cpu["annotations"]["horizontal"][0]["value"] == 80.0
    assert after_cpu["annotations"]["horizontal"][0]["value"] == 90.0
    run = run_playbook(PLAYBOOK, extra_vars=changed)
    assert run.returncode == 0, run
    assert writes(aws_lab) == ["PutDashboard"]
    assert stored(aws_lab) == result["body"]  # check mode planned exactly what the real run wrote


def test_absent_deletes_it_and_a_second_absent_writes_nothing(aws_lab, replica, run_playbook):
    assert run_playbook(PLAYBOOK, extra_vars=args()).returncode == 0
    aws_lab.clear_calls()
    run = run_playbook(PLAYBOOK, extra_vars=args(state="absent"))
    assert run.returncode == 0, run
    assert writes(aws_lab) == ["DeleteDashboards"]
    names = [d["DashboardName"] for d in aws_lab.boto3("cloudwatch").list_dashboards()["DashboardEntries"]]
    assert NAME not in names
    aws_lab.clear_calls()
    assert run_playbook(PLAYBOOK, extra_vars=args(state="absent")).result("dashboard")["changed"] is False
    assert writes(aws_lab) == []


def test_a_dashboard_someone_else_made_is_left_alone(aws_lab, replica, run_playbook):
    theirs = json.dumps({"widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 2,
                                      "properties": {"markdown": "ops team's board"}}]})
    aws_lab.boto3("cloudwatch").put_dashboard(DashboardName=NAME, DashboardBody=theirs)
    aws_lab.clear_calls()
    for state in ("present", "absent"):
        run = run_playbook(PLAYBOOK, extra_vars=args(state=state))
        assert run.returncode != 0
        assert "adopt=true" in run.result("dashboard")["msg"]
    assert writes(aws_lab) == []
    assert aws_lab.boto3("cloudwatch").get_dashboard(DashboardName=NAME)["DashboardBody"] == theirs


def test_bad_name_and_unknown_instance_fail_before_any_write(aws_lab, replica, run_playbook):
    run = run_playbook(PLAYBOOK, extra_vars=args(name="lab.cso"))
    assert run.returncode != 0 and "1 to 255 characters" in run.result("dashboard")["msg"]
    run = run_playbook(PLAYBOOK, extra_vars=args(db_instance_identifiers=["no-such-db"]))
    assert run.returncode != 0 and "no-such-db" in run.result("dashboard")["msg"]
    actions = [c["action"] for c in aws_lab.calls()]
    assert writes(aws_lab) == [] and "GetDashboard" not in actions
    assert actions == ["DescribeDBInstances"]  # the bad name made no call at all


def test_thirty_percent_throttling_converges(aws_lab, replica, run_playbook):
    aws_lab.set_faults(0.3, seed=7)
    run = run_playbook(PLAYBOOK, extra_vars=args())
    aws_lab.set_faults(0)
    assert run.returncode == 0, run
    assert any(call["faulted"] for call in aws_lab.calls())
    assert metric_widgets(stored(aws_lab)) == metric_widgets(run.result("dashboard")["body"])
    aws_lab.clear_calls()
    again = run_playbook(PLAYBOOK, extra_vars=args())
    assert again.result("dashboard")["changed"] is False
    assert writes(aws_lab) == []
