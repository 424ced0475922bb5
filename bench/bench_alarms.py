#!/usr/bin/env python
"""Benchmark: cso.rds_hardening.rds_alarm_set against a loop of amazon.aws.cloudwatch_metric_alarm.

Runs on the AWS lab (the running one for $CSO_LAB_DIR, or one it starts and stops itself) and
times whole ``ansible-playbook`` runs, because that is what a user waits for:

1. 40 alarms (4 instances x 10) in one ``rds_alarm_set`` task: create, then a no-change re-run;
2. the same 40 alarm definitions through a ``loop`` of ``amazon.aws.cloudwatch_metric_alarm``:
   create, then a no-change re-run;
3. 600 alarms (50 instances x 12) in one ``rds_alarm_set`` task: create, then a re-run.

Both sides get the same pre-created SNS topic, and the module's RDS event subscriptions are
switched off, so both do alarms only. Usage::

    CSO_LAB_DIR=/work/main/.lab-bench .venv/bin/python bench/bench_alarms.py
"""

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lab"))

SMALL_SET, BIG_SET = "bench-40", "bench-600"
STOCK_PREFIX = "bench-stock"
TOPIC_NAME = "bench-alerts"


def _install_collection_loader():
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    _AnsibleCollectionFinder(paths=[str(REPO / ".collections"), sysconfig.get_paths()["purelib"]])._install()


def create_instances(lab, names, instance_class, storage_type, allocated, max_allocated=None):
    rds = lab.boto3("rds")
    subnet_group = lab.state["seed"]["network"]["db_subnet_group"]
    for name in names:
        extra = {"MaxAllocatedStorage": max_allocated} if max_allocated else {}
        rds.create_db_instance(DBInstanceIdentifier=name, Engine="mysql", EngineVersion="8.0.42",
                               DBInstanceClass=instance_class, AllocatedStorage=allocated, StorageType=storage_type,
                               MasterUsername="admin", MasterUserPassword="bench-password-1",
                               DBSubnetGroupName=subnet_group, **extra)


def stock_alarm_definitions(lab, instances, topic_arn):
    """The module's desired alarms for these instances, as cloudwatch_metric_alarm parameters."""
    _install_collection_loader()
    from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model

    db_instances = lab.boto3("rds").describe_db_instances(
        Filters=[{"Name": "db-instance-id", "Values": instances}])["DBInstances"]
    params = {"name": SMALL_SET, "alarms": {}, "include": [], "exclude": [], "notify_on": ["alarm", "ok"],
              "connection_budgets": [{"service": "keystone", "max_connections": 20},
                                     {"service": "cso", "max_connections": 50},
                                     {"service": "rabbitmq", "max_connections": 10}],
              "service_connections_metric": None}
    desired = alarm_model.desired_alarms(params, db_instances, topic_arn)
    definitions = []
    for request in desired.alarms.values():
        item = {
            "name": request["AlarmName"].replace(SMALL_SET, STOCK_PREFIX, 1),
            "metric_name": request["MetricName"], "namespace": request["Namespace"],
            "comparison": request["ComparisonOperator"], "threshold": request["Threshold"],
            "period": request["Period"], "evaluation_periods": request["EvaluationPeriods"],
            "datapoints_to_alarm": request["DatapointsToAlarm"], "treat_missing_data": request["TreatMissingData"],
            "description": request["AlarmDescription"],
            "dimensions": {d["Name"]: d["Value"] for d in request["Dimensions"]},
            "alarm_actions": request["AlarmActions"], "ok_actions": request["OKActions"],
        }
        if "ExtendedStatistic" in request:
            item["extended_statistic"] = request["ExtendedStatistic"]
        else:
            item["statistic"] = request["Statistic"]
        definitions.append(item)
    return definitions


MODULE_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: alarm set
      cso.rds_hardening.rds_alarm_set:
        name: "{{ set_name }}"
        db_instance_identifiers: "{{ instances }}"
        topic: {arn: "{{ topic_arn }}"}
        event_subscriptions: false
        connection_budgets:
          - {service: keystone, max_connections: 20}
          - {service: cso, max_connections: 50}
          - {service: rabbitmq, max_connections: 10}
      register: result
    - name: summary
      ansible.builtin.debug:
        msg: "{{ {'created': result.created | length, 'unchanged': result.unchanged | length,
                  'updated': result.updated | length, 'changed': result.changed} }}"
"""

NOOP_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: nothing
      ansible.builtin.debug:
        msg: baseline
"""

STOCK_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: one cloudwatch_metric_alarm task per alarm
      amazon.aws.cloudwatch_metric_alarm: "{{ item | combine({'state': 'present'}) }}"
      loop: "{{ definitions }}"
      loop_control:
        label: "{{ item.name }}"
"""


def run_playbook(env, text, extra_vars, workdir):
    playbook = Path(workdir) / f"play-{time.monotonic_ns()}.yml"
    playbook.write_text(text)
    vars_file = Path(workdir) / f"vars-{time.monotonic_ns()}.json"
    vars_file.write_text(json.dumps(extra_vars))
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               str(playbook), "-e", f"@{vars_file}"]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode:
        sys.exit(f"playbook failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return elapsed


def count_alarms(lab, prefix):
    pages = lab.boto3("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix)
    return sum(len(page["MetricAlarms"]) for page in pages)


def measure(lab, env, label, text, extra_vars, workdir, prefix):
    lab.clear_calls()
    seconds = run_playbook(env, text, extra_vars, workdir)
    calls = lab.calls()
    from csolab.labapi import is_mutating

    writes = sum(1 for call in calls if is_mutating(call["action"]))
    return {"label": label, "seconds": seconds, "calls": len(calls), "writes": writes, "alarms": count_alarms(lab, prefix)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances-big", type=int, default=50)
    args = parser.parse_args()

    from csolab import aws
    from csolab.client import LabClient

    started_here = not aws.is_up()
    if started_here:
        aws.up()
    lab = LabClient()
    try:
        rows = run_benchmark(lab, args)
    finally:
        if started_here:
            aws.down()
    print_table(rows)


def run_benchmark(lab, args):
    lab.reset(seed_database=True)
    small = [f"bench-small-{index:02d}" for index in range(1, 5)]
    big = [f"bench-big-{index:02d}" for index in range(1, args.instances_big + 1)]
    create_instances(lab, small, "db.t3.large", "gp3", 50, 1000)  # 10 alarms each
    create_instances(lab, big, "db.t3.medium", "gp2", 20)  # 12 alarms each
    topic_arn = lab.boto3("sns").create_topic(Name=TOPIC_NAME)["TopicArn"]
    definitions = stock_alarm_definitions(lab, small, topic_arn)
    assert len(definitions) == 40, len(definitions)

    state = lab.state
    env = dict(os.environ, AWS_ENDPOINT_URL=state["endpoint_url"], AWS_REGION=state["region"],
               AWS_DEFAULT_REGION=state["region"], AWS_ACCESS_KEY_ID=state["aws_access_key_id"],
               AWS_SECRET_ACCESS_KEY=state["aws_secret_access_key"], ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        rows.append(measure(lab, env, "ansible-playbook with one debug task", NOOP_PLAYBOOK, {}, workdir, SMALL_SET))
        small_vars = {"set_name": SMALL_SET, "instances": small, "topic_arn": topic_arn}
        big_vars = {"set_name": BIG_SET, "instances": big, "topic_arn": topic_arn}
        rows.append(measure(lab, env, "rds_alarm_set, 40 alarms, create", MODULE_PLAYBOOK, small_vars, workdir, SMALL_SET))
        rows.append(measure(lab, env, "rds_alarm_set, 40 alarms, re-run", MODULE_PLAYBOOK, small_vars, workdir, SMALL_SET))
        stock_vars = {"definitions": definitions}
        rows.append(measure(lab, env, "cloudwatch_metric_alarm loop, 40, create", STOCK_PLAYBOOK, stock_vars, workdir,
                            STOCK_PREFIX))
        rows.append(measure(lab, env, "cloudwatch_metric_alarm loop, 40, re-run", STOCK_PLAYBOOK, stock_vars, workdir,
                            STOCK_PREFIX))
        rows.append(measure(lab, env, f"rds_alarm_set, {len(big) * 12} alarms, create", MODULE_PLAYBOOK, big_vars,
                            workdir, BIG_SET))
        rows.append(measure(lab, env, f"rds_alarm_set, {len(big) * 12} alarms, re-run", MODULE_PLAYBOOK, big_vars,
                            workdir, BIG_SET))
    return rows


def print_table(rows):
    print(f"{'run':<44} {'wall s':>8} {'API calls':>10} {'writes':>7} {'alarms':>7}")
    for row in rows:
        print(f"{row['label']:<44} {row['seconds']:>8.2f} {row['calls']:>10} {row['writes']:>7} {row['alarms']:>7}")
    noop, create, rerun, stock_create, stock_rerun, big_create, big_rerun = (row["seconds"] for row in rows)
    print()
    print(f"create: stock loop / rds_alarm_set = {stock_create / create:.1f}x (target >= 20x); "
          f"without the playbook's fixed start-up cost: {(stock_create - noop) / (create - noop):.1f}x")
    print(f"re-run: stock loop / rds_alarm_set = {stock_rerun / rerun:.1f}x (target >= 20x); "
          f"without the playbook's fixed start-up cost: {(stock_rerun - noop) / (rerun - noop):.1f}x")
    print(f"600 alarms in one task: {big_create:.2f} s wall (target < 10 s), re-run {big_rerun:.2f} s")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
