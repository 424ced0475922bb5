# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The CloudWatch dashboard of an alarm set: the pure body builder, its limits and its comparison.

The dashboard is built from the same catalogue as ``rds_alarm_set``: ``alarm_model.desired_alarms``
computes the alarms the set wants per instance (thresholds after overrides and connection budgets,
statistics, periods), and each widget draws the metric those alarms watch, with the alarms' static
thresholds as horizontal annotations. Which optional widgets an instance gets (replica lag only on
replicas, burst balance only on bursting gp2, CPU credits only on db.t*) is the catalogue's
applicability rule of the widget's alarm (``AlarmSpec.applies``), never a copy of it; a widget left
out is returned with the catalogue's reason.

Nothing here calls AWS.
"""

from __future__ import annotations

import json
import re

from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import CATALOGUE_BY_KEY
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_catalogue import InstanceFacts
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import NAMESPACE
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import alarm_name
from ansible_collections.cso.rds_hardening.plugins.module_utils.alarm_model import service_alarm_key

# AWS: CloudWatch API Reference, "PutDashboard" (DashboardName: at most 255 characters, A-Z, a-z, 0-9, "-", "_").
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
# AWS: CloudWatch API Reference, "Dashboard Body Structure and Syntax" (0 to 500 widgets; width 1-24 grid
# units, height 1-1000) and CloudWatch User Guide, "CloudWatch service quotas" (dashboards: up to 500 widgets,
# up to 500 metrics per widget, up to 2,500 metrics per dashboard across all widgets).
MAX_WIDGETS = 500
MAX_METRICS_PER_WIDGET = 500
MAX_METRICS_PER_DASHBOARD = 2500
GRID_WIDTH = 24
WIDTH = 8
HEIGHT = 6
TEXT_HEIGHT = 2
# The first text widget carries this line; a dashboard without it is not ours (see ``owned``).
MARKER = "Managed by cso.rds_hardening.rds_dashboard"
START = "-PT12H"

_GREATER = ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")
_SYMBOL = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=", "LessThanThreshold": "<",
           "LessThanOrEqualToThreshold": "<="}


class Line:
    """One metric on a widget; ``alarm`` is the catalogue key whose statistic, period and threshold it shows."""

    def __init__(self, metric, label, alarm=None, statistic="Average", period=60):
        self.metric = metric
        self.label = label
        self.alarm = alarm
        spec = CATALOGUE_BY_KEY.get(alarm)
        self.statistic = (spec.extended_statistic or spec.statistic) if spec else statistic
        self.period = spec.period if spec else period


class Panel:
    """One metric widget per instance. ``gate``: the catalogue alarm whose applicability decides if it is drawn."""

    def __init__(self, key, title, lines, gate=None, extra_alarms=()):
        self.key = key
        self.title = title
        self.lines = lines
        self.gate = gate
        self.extra_alarms = extra_alarms

    @property
    def alarms(self):
        return tuple(line.alarm for line in self.lines if line.alarm) + tuple(self.extra_alarms)


PANELS = (
    Panel("cpu", "CPU utilization (%)", [Line("CPUUtilization", "CPU", "cpu_utilization")]),
    Panel("memory", "Freeable memory (bytes)", [Line("FreeableMemory", "freeable", "freeable_memory")]),
    Panel("connections", "Connections, all services", [Line("DatabaseConnections", "connections",
                                                            "database_connections")]),
    Panel("iops", "Read / write IOPS", [Line("ReadIOPS", "read"), Line("WriteIOPS", "write")]),
    Panel("latency", "Read / write latency (s)", [Line("ReadLatency", "read", "read_latency"),
                                                  Line("WriteLatency", "write", "write_latency")]),
    Panel("storage", "Free storage (bytes)", [Line("FreeStorageSpace", "free", "free_storage_space")],
          extra_alarms=("free_storage_space_percent",)),
    Panel("replica_lag", "Replica lag (s)", [Line("ReplicaLag", "lag", "replica_lag")], gate="replica_lag"),
    Panel("burst_balance", "gp2 burst balance (%)", [Line("BurstBalance", "balance", "burst_balance")],
          gate="burst_balance"),
    Panel("cpu_credits", "CPU credit balance", [Line("CPUCreditBalance", "credits", "cpu_credit_balance")],
          gate="cpu_credit_balance"),
)
PANEL_KEYS = tuple(panel.key for panel in PANELS) + ("connections_per_service",)


# --------------------------------------------------------------------------------------------
# Validation (pure)
# --------------------------------------------------------------------------------------------


def name_errors(name):
    if NAME_PATTERN.match(name or ""):
        return []
    return [f"dashboard name {name!r} must be 1 to 255 characters from A-Z, a-z, 0-9, - and _ (CloudWatch "
            "PutDashboard); for example replace dots and spaces with -."]


def limit_errors(body):
    """What in ``body`` breaks CloudWatch's dashboard limits, as messages that say what to do."""
    errors = []
    widgets = body["widgets"]
    if len(widgets) > MAX_WIDGETS:
        errors.append(f"the dashboard would have {len(widgets)} widgets; CloudWatch allows {MAX_WIDGETS}. Split the "
                      "instances over several dashboards (one task per group of instances, each with its own name), "
                      "or leave widgets out with exclude_widgets.")
    total = 0
    for widget in widgets:
        count = len(widget["properties"].get("metrics", []))
        total += count
        if count > MAX_METRICS_PER_WIDGET:
            errors.append(f"widget {widget['properties']['title']!r} would have {count} metrics; CloudWatch allows "
                          f"{MAX_METRICS_PER_WIDGET} per widget. List fewer connection_budgets services.")
    if total > MAX_METRICS_PER_DASHBOARD:
        errors.append(f"the dashboard would draw {total} metrics; CloudWatch allows {MAX_METRICS_PER_DASHBOARD} per "
                      "dashboard. Split the instances over several dashboards, or leave widgets out with "
                      "exclude_widgets.")
    return errors


# --------------------------------------------------------------------------------------------
# The body
# --------------------------------------------------------------------------------------------


class DesiredDashboard:
    def __init__(self, body, skipped):
        self.body = body
        self.skipped = skipped  # {"db_instance_identifier", "widget", "reason"}


def _annotation(key, request):
    if "Threshold" not in request:  # anomaly-band alarms have no static threshold to draw
        return None
    comparison = request["ComparisonOperator"]
    value = request["Threshold"]
    shown = int(value) if float(value).is_integer() else value
    return {"label": f"{key} {_SYMBOL.get(comparison, comparison)} {shown}", "value": value,
            "fill": "above" if comparison in _GREATER else "below"}


def _stat(request, line):
    if request is None:
        return line.statistic, line.period
    statistic = request.get("ExtendedStatistic") or request.get("Statistic") or line.statistic
    return statistic, request.get("Period", line.period)


def _metric_widget(title, region, metrics, annotations):
    properties = {"title": title, "region": region, "view": "timeSeries", "stacked": False, "metrics": metrics}
    if annotations:
        properties["annotations"] = {"horizontal": annotations}
    return {"type": "metric", "width": WIDTH, "height": HEIGHT, "properties": properties}


def _panel_widget(panel, facts, alarms, set_name, region):
    def request_of(key):
        return alarms.get(alarm_name(set_name, facts.identifier, key)) if key else None

    metrics = []
    for line in panel.lines:
        statistic, period = _stat(request_of(line.alarm), line)
        metrics.append([NAMESPACE, line.metric, "DBInstanceIdentifier", facts.identifier,
                        {"label": line.label, "stat": statistic, "period": period}])
    annotations = [a for a in (_annotation(key, request_of(key)) for key in panel.alarms if request_of(key)) if a]
    return _metric_widget(f"{facts.identifier}: {panel.title}", region, metrics, annotations)


def _service_widget(facts, params, alarms, set_name, region):
    metric = params.get("service_connections_metric")
    budgets = params.get("connection_budgets") or []
    if not metric or not budgets:
        return None
    metrics, annotations = [], []
    for budget in budgets:
        key = service_alarm_key(budget["service"])
        request = alarms.get(alarm_name(set_name, facts.identifier, key))
        statistic = (request or {}).get("ExtendedStatistic") or (request or {}).get("Statistic") or "Maximum"
        metrics.append([metric["namespace"], metric["metric_name"], "DBInstanceIdentifier", facts.identifier,
                        metric.get("service_dimension") or "Service", budget["service"],
                        {"label": budget["service"], "stat": statistic, "period": (request or {}).get("Period", 300)}])
        annotation = _annotation(key, request) if request else None
        if annotation:
            annotations.append(annotation)
    return _metric_widget(f"{facts.identifier}: Connections per service", region, metrics, annotations)


def _header(facts, db_instance, skipped):
    storage = f"{facts.storage_type or 'unknown'} {facts.allocated_storage_gib} GiB"
    lines = [f"### {facts.identifier}",
             f"{facts.instance_class}, {facts.engine} {db_instance.get('EngineVersion', '')}".rstrip() + f", {storage}"
             + (f", read replica of {facts.replica_source}" if facts.replica_source else "")]
    if skipped:
        lines.append("Not drawn: " + "; ".join(f"{s['widget']} ({s['reason']})" for s in skipped))
    return {"type": "text", "width": GRID_WIDTH, "height": TEXT_HEIGHT, "properties": {"markdown": "\n\n".join(lines)}}


def _wanted(panel, facts, alarms, set_name, excluded):
    """None when the panel is drawn, else the reason it is not."""
    if panel.key in excluded:
        return "excluded (exclude_widgets)"
    if panel.gate is None:
        return None
    if alarm_name(set_name, facts.identifier, panel.gate) in alarms:
        return None  # the set has the alarm (an explicit threshold forces it): draw what it watches
    verdict = CATALOGUE_BY_KEY[panel.gate].applies(facts)
    return None if verdict else verdict.reason


def _layout(widgets):
    """Place widgets left to right in rows of the 24-unit grid; a full-width widget starts a new row."""
    x = y = row_height = 0
    for widget in widgets:
        if x + widget["width"] > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        widget["x"], widget["y"] = x, y
        x += widget["width"]
        row_height = max(row_height, widget["height"])
    return widgets


def build_body(name, params, db_instances, alarms, region):
    """The dashboard for these DBInstance dicts, given the alarm requests ``alarm_model.desired_alarms`` wants.

    ``alarms`` maps alarm names to PutMetricAlarm requests; ``params`` carries the alarm-set options
    (``connection_budgets``, ``service_connections_metric``) and ``exclude_widgets``.
    """
    set_name = params["alarm_set_name"]
    excluded = set(params.get("exclude_widgets") or [])
    intro = (f"## {name}\n\n{MARKER} from the alarm catalogue of alarm set {set_name}: horizontal lines are the "
             "alarms' thresholds. Changes made in the console are overwritten by the next run.")
    widgets = [{"type": "text", "width": GRID_WIDTH, "height": TEXT_HEIGHT, "properties": {"markdown": intro}}]
    skipped = []
    for db_instance in db_instances:
        facts = InstanceFacts(db_instance)
        drawn, own_skips = [], []
        for panel in PANELS:
            reason = _wanted(panel, facts, alarms, set_name, excluded)
            if reason:
                own_skips.append({"db_instance_identifier": facts.identifier, "widget": panel.key, "reason": reason})
                continue
            drawn.append(_panel_widget(panel, facts, alarms, set_name, region))
            if panel.key == "connections" and "connections_per_service" not in excluded:
                service = _service_widget(facts, params, alarms, set_name, region)
                if service:
                    drawn.append(service)
        widgets.append(_header(facts, db_instance, own_skips))
        widgets.extend(drawn)
        skipped.extend(own_skips)
    body = {"start": START, "periodOverride": "inherit", "widgets": _layout(widgets)}
    return DesiredDashboard(body, skipped)


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def canonical(body):
    """The one text of a body: sorted keys, no whitespace (what PutDashboard is sent)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def parse(body_text):
    """The stored body as a dict, or None when it is not JSON."""
    try:
        body = json.loads(body_text)
    except (TypeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def same(existing_text, body):
    existing = parse(existing_text)
    return existing is not None and canonical(existing) == canonical(body)


def owned(existing_text):
    """A dashboard is ours when its text widgets carry MARKER (a person's dashboard of the same name is not)."""
    body = parse(existing_text) or {}
    return any(MARKER in str((widget.get("properties") or {}).get("markdown", ""))
               for widget in body.get("widgets") or [] if isinstance(widget, dict))


def widget_titles(body):
    """Titles of the metric widgets (the plan's before/after)."""
    return [widget["properties"]["title"] for widget in (body or {}).get("widgets") or []
            if isinstance(widget, dict) and widget.get("type") == "metric"
            and isinstance(widget.get("properties"), dict) and "title" in widget["properties"]]
