#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_dashboard
short_description: Converge the CloudWatch dashboard of an RDS alarm set, with the alarms' thresholds drawn on it
version_added: 0.2.0
description:
  - Creates, updates or deletes one CloudWatch dashboard for the DB instances of an alarm set (see
    M(cso.rds_hardening.rds_alarm_set)), built from the same alarm catalogue and the same options, so each graph
    shows the metric an alarm watches, with the alarm's statistic and period, and the alarm's threshold as a
    horizontal annotation.
  - Per instance, a text header and the widgets CPU, freeable memory, connections (all services, and per service
    when O(service_connections_metric) and O(connection_budgets) are given), read/write IOPS, read/write latency,
    free storage, and, where the catalogue says they apply, replica lag (read replicas only), gp2 burst balance
    and CPU credit balance (db.t* classes). The result lists the widgets left out and why.
  - Reads the instances (C(DescribeDBInstances)) and the dashboard (C(GetDashboard)); calls C(PutDashboard) only
    when the body differs (compared as canonical JSON), so a re-run with nothing to do makes no write.
  - The name, the alarm options and CloudWatch's dashboard limits (500 widgets, 500 metrics per widget, 2,500
    metrics per dashboard) are checked before any write.
author:
  - CSO platform engineering (@cso-platform)
options:
  name:
    description:
      - Name of the dashboard, 1 to 255 characters from C(A-Z), C(a-z), C(0-9), C(-) and C(_).
      - CloudWatch dashboards are global to the account, not regional; the widgets read metrics of the module's
        region.
    type: str
    required: true
  state:
    description:
      - V(present) converges the dashboard. V(absent) deletes it (only if this module made it, see O(adopt)).
    type: str
    choices: [present, absent]
    default: present
  alarm_set_name:
    description:
      - Name of the alarm set whose thresholds are drawn (the O(cso.rds_hardening.rds_alarm_set#module:name) of
        M(cso.rds_hardening.rds_alarm_set)). Defaults to O(name).
    type: str
  db_instance_identifiers:
    description: DB instances the dashboard shows, in this order.
    type: list
    elements: str
    default: []
  db_cluster_identifier:
    description: A DB cluster whose member instances are added to O(db_instance_identifiers).
    type: str
  include:
    description: Opt-in catalogue alarms of the set, as in M(cso.rds_hardening.rds_alarm_set).
    type: list
    elements: str
    default: []
  exclude:
    description: Catalogue alarms the set leaves out (their thresholds are not drawn), as in the alarm set.
    type: list
    elements: str
    default: []
  alarms:
    description:
      - Per-alarm overrides, as in M(cso.rds_hardening.rds_alarm_set) (V(threshold), V(statistic), V(period), ...).
        Pass the alarm set's value so the annotations show the thresholds the alarms use.
    type: dict
    default: {}
  connection_budgets:
    description:
      - Normal maximum connections per service, as in the alarm set. The connections widget draws their sum (the
        instance-wide alarm's threshold); with O(service_connections_metric), one more widget draws each service
        against its own budget.
    type: list
    elements: dict
    default: []
    suboptions:
      service:
        description: Service name (lower case).
        type: str
        required: true
      max_connections:
        description: Upper end of the service's normal connection count.
        type: int
        required: true
  service_connections_metric:
    description: The per-service connection metric of the alarm set, if it has one.
    type: dict
    suboptions:
      namespace:
        description: Metric namespace.
        type: str
        required: true
      metric_name:
        description: Metric name.
        type: str
        required: true
      service_dimension:
        description: Dimension whose value is the service name.
        type: str
        default: Service
  exclude_widgets:
    description: Widgets to leave out of every instance's row.
    type: list
    elements: str
    choices: [cpu, memory, connections, iops, latency, storage, replica_lag, burst_balance, cpu_credits,
              connections_per_service]
    default: []
  adopt:
    description:
      - An existing dashboard of this name that this module did not make (its first text widget lacks the line
        C(Managed by cso.rds_hardening.rds_dashboard)) stops the run before any write. V(true) overwrites (or, with
        O(state=absent), deletes) it anyway.
    type: bool
    default: false
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode (returns the exact plan and the body it would write, writes nothing) and diff mode (the
    dashboard body before and after).
  - Changes made to the dashboard in the console are overwritten by the next run.
"""

EXAMPLES = r"""
- name: Dashboard of the production alarm set
  cso.rds_hardening.rds_dashboard:
    name: cso-prod-rds
    alarm_set_name: cso-prod
    db_instance_identifiers: [cso-prod-db, cso-prod-db-replica]
    connection_budgets:
      - {service: keystone, max_connections: 20}
      - {service: cso, max_connections: 50}
      - {service: rabbitmq, max_connections: 10}
    alarms:
      cpu_utilization:
        threshold: 85

- name: Remove it
  cso.rds_hardening.rds_dashboard:
    name: cso-prod-rds
    state: absent
"""

RETURN = r"""
dashboard_name:
  description: The dashboard's name.
  returned: always
  type: str
  sample: cso-prod-rds
operation:
  description: What the run did to the dashboard (or would do in check mode).
  returned: always
  type: str
  sample: create
  choices: [create, update, delete, none]
body:
  description: The dashboard body the module wants (what PutDashboard is sent), as a dictionary.
  returned: state=present
  type: dict
widgets:
  description: Titles of the metric widgets of the wanted body.
  returned: state=present
  type: list
  elements: str
  sample: ["cso-prod-db: CPU utilization (%)"]
not_applicable:
  description: Widgets not drawn for an instance, and why (the alarm catalogue's reason, or excluded).
  returned: state=present
  type: list
  elements: dict
  sample: [{"db_instance_identifier": "cso-prod-db", "widget": "replica_lag",
            "reason": "not a read replica (ReplicaLag is only published for replicas)"}]
validation_messages:
  description: C(DashboardValidationMessages) that PutDashboard returned (the dashboard is saved regardless).
  returned: when the dashboard was written
  type: list
  elements: dict
plan:
  description:
    - The change (made, or that check mode would make), in the plan shape of the collection; C(impact) is always
      V(none) (a dashboard does not touch the database); C(before)/C(after) list the metric widgets' titles
      (V(null) when the dashboard is created or deleted).
  returned: always
  type: list
  elements: dict
  sample:
    - {what: "dashboard cso-prod-rds", impact: none, action: create, before: null,
       after: {widgets: ["cso-prod-db: CPU utilization (%)"]}}
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import alarm_model
from ansible_collections.cso.rds_hardening.plugins.module_utils import dashboard
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        alarm_set_name=dict(type="str"),
        db_instance_identifiers=dict(type="list", elements="str", default=[]),
        db_cluster_identifier=dict(type="str"),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        alarms=dict(type="dict", default={}),
        connection_budgets=dict(
            type="list", elements="dict", default=[],
            options=dict(service=dict(type="str", required=True), max_connections=dict(type="int", required=True)),
        ),
        service_connections_metric=dict(
            type="dict",
            options=dict(namespace=dict(type="str", required=True), metric_name=dict(type="str", required=True),
                         service_dimension=dict(type="str", default="Service")),
        ),
        exclude_widgets=dict(type="list", elements="str", choices=list(dashboard.PANEL_KEYS), default=[]),
        adopt=dict(type="bool", default=False),
    )


def alarm_params(params):
    """The module's options as the alarm set's options, so ``alarm_model`` computes the same alarms."""
    return dict(params, name=params["alarm_set_name"] or params["name"],
                alarm_set_name=params["alarm_set_name"] or params["name"])


def get_body(cloudwatch, name):
    """The stored body text, or None when the dashboard does not exist."""
    try:
        return cloudwatch.get_dashboard(DashboardName=name, aws_retry=True)["DashboardBody"]
    except is_boto3_error_code("ResourceNotFound"):
        return None


def refuse_foreign(module, existing, name):
    if existing is not None and not module.params["adopt"] and not dashboard.owned(existing):
        module.fail_json(msg=f"A dashboard named {name} exists that rds_dashboard did not make (no '{dashboard.MARKER}' "
                             "line); nothing was changed. Choose another name, delete it, or set adopt=true to take "
                             "it over.")


def result_for(name, action, before, after, diff, extra):
    plan = [] if action == "none" else [plan_item(
        f"dashboard {name}", "none",
        None if before is None else {"widgets": dashboard.widget_titles(before)},
        None if after is None else {"widgets": dashboard.widget_titles(after)}, action=action)]
    result = dict(changed=action != "none", dashboard_name=name, operation=action, plan=plan, **extra)
    if diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    return result


def ensure_present(module, clients):
    params = alarm_params(module.params)
    name = module.params["name"]
    instances = alarm_aws.read_instances(module, clients.rds)
    desired_alarms = alarm_model.desired_alarms(params, instances, None)
    if desired_alarms.errors:
        module.fail_json(msg="Invalid alarm settings, nothing was changed: " + " ".join(desired_alarms.errors))
    wanted = dashboard.build_body(name, params, instances, desired_alarms.alarms, module.region)
    limits = dashboard.limit_errors(wanted.body)
    if limits:
        module.fail_json(msg="The dashboard does not fit CloudWatch's limits, nothing was changed: " + " ".join(limits),
                         errors=limits)
    existing = get_body(clients.cloudwatch, name)
    refuse_foreign(module, existing, name)
    if existing is None:
        action = "create"
    else:
        action = "none" if dashboard.same(existing, wanted.body) else "update"
    extra = dict(body=wanted.body, widgets=dashboard.widget_titles(wanted.body), not_applicable=wanted.skipped)
    if action != "none" and not module.check_mode:
        response = clients.cloudwatch.put_dashboard(DashboardName=name, DashboardBody=dashboard.canonical(wanted.body),
                                                    aws_retry=True)
        extra["validation_messages"] = response.get("DashboardValidationMessages", [])
        for message in extra["validation_messages"]:
            module.warn(f"CloudWatch on dashboard {name}: {message.get('DataPath', '')} {message.get('Message', '')}")
    before = None if existing is None else (dashboard.parse(existing) or {"unparsable": existing})
    return result_for(name, action, before, wanted.body, module._diff, extra)


def ensure_absent(module, clients):
    name = module.params["name"]
    existing = get_body(clients.cloudwatch, name)
    refuse_foreign(module, existing, name)
    if existing is None:
        return result_for(name, "none", None, None, module._diff, {})
    if not module.check_mode:
        try:
            clients.cloudwatch.delete_dashboards(DashboardNames=[name], aws_retry=True)
        except is_boto3_error_code("ResourceNotFound"):
            pass  # deleted meanwhile (or by a retried call that had succeeded): the goal is reached
    return result_for(name, "delete", dashboard.parse(existing) or {"unparsable": existing}, None, module._diff, {})


def run(module):
    params = module.params
    errors = dashboard.name_errors(params["name"])
    if params["state"] == "present":
        set_params = alarm_params(params)
        if not alarm_model.SET_NAME_PATTERN.match(set_params["name"]):
            errors.append(f"alarm_set_name {set_params['name']!r} is not an alarm set name (a letter, then letters, "
                          "digits and hyphens, at most 100); set alarm_set_name to the name of the alarm set.")
        errors += [error for error in alarm_model.validate_request(set_params) if not error.startswith("name ")]
    if errors:
        module.fail_json(msg="Invalid parameters, nothing was changed: " + " ".join(errors), errors=errors)
    clients = alarm_aws.clients(module)
    if params["state"] == "present":
        return ensure_present(module, clients)
    return ensure_absent(module, clients)


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run, "converging the dashboard")


if __name__ == "__main__":
    main()
