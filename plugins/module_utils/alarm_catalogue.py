# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The built-in catalogue of CloudWatch alarms for one RDS DB instance.

Each entry says which metric it watches, how (statistic, period, datapoints), its default
threshold, where that default comes from, and when it applies to an instance. An entry that
does not apply to an instance is skipped with a reason that is returned to the user, so
"why is there no BurstBalance alarm on the prod database?" has an answer in the task result.

Sources named in ``source``:

* ``aws-recommended``: AWS's "CloudWatch recommended alarms" for Amazon RDS.
* ``seed-000``: the hardening plan's Terraform (CPU 80 %, connections 80, 2 GB free storage,
  Keystone 10-20 and CSO 20-50 connections).
* ``seed-004``: the Aurora module's alarms (1 GiB freeable memory).
* ``community``: widely used open-source defaults (cloudposse ``rds-cloudwatch-sns-alarms``).

Nothing here calls AWS: the instance facts come in as the ``DBInstance`` dict that
``describe_db_instances`` returned.
"""

from __future__ import annotations

GIB = 1024 ** 3

COMPARISON_OPERATORS = (
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)
BAND_OPERATORS = ("LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold")
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
TREAT_MISSING_DATA = ("breaching", "notBreaching", "ignore", "missing")

# vCPUs by size suffix, and GiB of memory per vCPU by family letter (EC2 sizing, which RDS
# classes follow). db.t3.micro/small/medium do not follow the ratio and are listed whole.
_VCPUS_BY_SIZE = {
    "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48,
    "16xlarge": 64, "24xlarge": 96, "32xlarge": 128, "48xlarge": 192,
}
_GIB_PER_VCPU_BY_FAMILY = {"t": 4, "m": 4, "c": 2, "r": 8, "x": 16, "z": 8}
_SMALL_BURSTABLE = {"micro": (2, 1), "small": (2, 2), "medium": (2, 4)}
# Nitro sizes up to 2xlarge get their EBS bandwidth "up to" a burst figure, so they publish
# EBSByteBalance% / EBSIOBalance%; larger sizes have dedicated bandwidth and no bucket.
_EBS_BURST_SIZES = {"micro", "small", "medium", "large", "xlarge", "2xlarge"}
# gp2 earns 3 IOPS per GiB; from 1,000 GiB the baseline is >= 3,000 IOPS and it never bursts.
_GP2_NO_BURST_GIB = 1000


class InstanceFacts:
    """What the catalogue needs to know about one DB instance, read from its DBInstance dict."""

    def __init__(self, db_instance):
        self.identifier = db_instance["DBInstanceIdentifier"]
        self.engine = db_instance.get("Engine", "")
        self.instance_class = db_instance.get("DBInstanceClass", "")
        self.storage_type = db_instance.get("StorageType", "")
        self.allocated_storage_gib = int(db_instance.get("AllocatedStorage") or 0)
        self.max_allocated_storage_gib = int(db_instance.get("MaxAllocatedStorage") or 0)
        self.replica_source = db_instance.get("ReadReplicaSourceDBInstanceIdentifier")
        self.performance_insights = bool(db_instance.get("PerformanceInsightsEnabled"))
        family_and_size = self.instance_class.partition(".")[2]
        self.family = family_and_size.partition(".")[0]
        self.size = family_and_size.partition(".")[2]

    @property
    def burstable_class(self):
        return self.family.startswith("t")

    @property
    def storage_autoscaling(self):
        return self.max_allocated_storage_gib > self.allocated_storage_gib

    @property
    def vcpus(self):
        if self.size in _SMALL_BURSTABLE and self.burstable_class:
            return _SMALL_BURSTABLE[self.size][0]
        return _VCPUS_BY_SIZE.get(self.size)

    @property
    def memory_gib(self):
        if self.size in _SMALL_BURSTABLE and self.burstable_class:
            return _SMALL_BURSTABLE[self.size][1]
        per_vcpu = _GIB_PER_VCPU_BY_FAMILY.get(self.family[:1])
        return self.vcpus * per_vcpu if self.vcpus and per_vcpu else None

    @property
    def postgres(self):
        return "postgres" in self.engine


class Applies:
    """The verdict of an applicability predicate: ``bool(verdict)`` plus a reason when it is False."""

    def __init__(self, ok, reason=""):
        self.ok = ok
        self.reason = reason

    def __bool__(self):
        return self.ok


YES = Applies(True)


def _always(_facts):
    return YES


def _burstable_class(facts):
    if facts.burstable_class:
        return YES
    return Applies(False, f"{facts.instance_class} is not a burstable (db.t*) class, so it earns no CPU credits")


def _gp2_burstable_storage(facts):
    if facts.storage_type != "gp2":
        return Applies(False, f"storage type is {facts.storage_type or 'unknown'}; BurstBalance is published for gp2 only")
    if facts.allocated_storage_gib >= _GP2_NO_BURST_GIB:
        return Applies(False, f"gp2 volume of {facts.allocated_storage_gib} GiB has a baseline >= 3,000 IOPS and never bursts")
    return YES


def _ebs_burst_bandwidth(facts):
    if facts.size in _EBS_BURST_SIZES:
        return YES
    return Applies(False, f"{facts.instance_class} has dedicated EBS bandwidth (no EBS burst bucket to drain)")


def _replica(facts):
    if facts.replica_source:
        return YES
    return Applies(False, "not a read replica (ReplicaLag is only published for replicas)")


def _postgres(facts):
    if facts.postgres:
        return YES
    return Applies(False, f"engine is {facts.engine}; transaction ID wraparound only exists in PostgreSQL")


def _no_storage_autoscaling(facts):
    if not facts.storage_autoscaling:
        return YES
    return Applies(
        False,
        f"storage autoscaling is on ({facts.allocated_storage_gib} -> {facts.max_allocated_storage_gib} GiB): RDS grows the "
        "volume when free space falls below 10 %, so a % of allocated alarm would only announce autoscaling",
    )


def _performance_insights(facts):
    if not facts.performance_insights:
        return Applies(False, "Performance Insights is not enabled, so DBLoad is not published")
    if facts.vcpus is None:
        return Applies(False, f"vCPU count of {facts.instance_class} is unknown; set a threshold in alarms.db_load")
    return YES


def _fraction_of_memory(fraction, fallback_bytes):
    def threshold(facts):
        if facts.memory_gib is None:
            return float(fallback_bytes)
        return float(int(facts.memory_gib * GIB * fraction))

    return threshold


def _fraction_of_allocated_storage(fraction):
    def threshold(facts):
        return float(int(facts.allocated_storage_gib * GIB * fraction))

    return threshold


def _vcpus(facts):
    return float(facts.vcpus)


def _constant(value):
    return lambda _facts: float(value)


class AlarmSpec:
    """One catalogue entry."""

    def __init__(self, key, metric, statistic, period, evaluation_periods, datapoints, comparison, threshold,
                 treat_missing_data, applies, source, description, unit_hint="", extended_statistic=None,
                 default_enabled=True, anomaly_band_width=None):
        self.key = key
        self.metric = metric
        self.statistic = statistic
        self.extended_statistic = extended_statistic
        self.period = period
        self.evaluation_periods = evaluation_periods
        self.datapoints = datapoints
        self.comparison = comparison
        self.threshold = threshold
        self.treat_missing_data = treat_missing_data
        self.applies = applies
        self.source = source
        self.description = description
        self.unit_hint = unit_hint
        self.default_enabled = default_enabled
        self.anomaly_band_width = anomaly_band_width

    def default_threshold(self, facts):
        return None if self.threshold is None else self.threshold(facts)

    def document(self):
        """A plain dict describing the entry (for docs and the module's result)."""
        return {
            "key": self.key,
            "metric": self.metric,
            "statistic": self.extended_statistic or self.statistic,
            "period": self.period,
            "evaluation_periods": self.evaluation_periods,
            "datapoints_to_alarm": self.datapoints,
            "comparison": self.comparison,
            "treat_missing_data": self.treat_missing_data,
            "source": self.source,
            "default_enabled": self.default_enabled,
            "description": self.description,
        }


CATALOGUE = (
    AlarmSpec("cpu_utilization", "CPUUtilization", "Average", 300, 2, 2, "GreaterThanThreshold", _constant(80),
              "missing", _always, "seed-000 (80 %, 2 x 300 s); aws-recommended uses 90 % over 5 x 60 s",
              "CPU utilization above the threshold (%)", "percent"),
    AlarmSpec("freeable_memory", "FreeableMemory", "Average", 300, 3, 3, "LessThanThreshold",
              _fraction_of_memory(0.10, GIB), "missing", _always,
              "aws-recommended (a share of the class's memory: 10 %); seed-004 1 GiB when the class is unknown",
              "Freeable memory below the threshold (bytes)", "bytes"),
    AlarmSpec("free_storage_space", "FreeStorageSpace", "Minimum", 300, 1, 1, "LessThanThreshold",
              _constant(2_000_000_000), "missing", _always, "seed-000 (2 GB, 1 x 300 s)",
              "Free storage space below the threshold (bytes)", "bytes"),
    AlarmSpec("free_storage_space_percent", "FreeStorageSpace", "Minimum", 60, 5, 5, "LessThanThreshold",
              _fraction_of_allocated_storage(0.10), "missing", _no_storage_autoscaling,
              "aws-recommended (10 % of allocated storage, 5 x 60 s)",
              "Free storage space below 10 % of the allocated storage (bytes)", "bytes"),
    AlarmSpec("database_connections", "DatabaseConnections", "Average", 300, 2, 2, "GreaterThanThreshold",
              None, "missing", _always,
              "seed-000: the sum of the services' normal maximum connections (Keystone 20 + CSO 50 + RabbitMQ 10 = 80, "
              "the seed's instance-wide threshold)",
              "Connections to the instance above the services' combined budget", "count"),
    AlarmSpec("database_connections_anomaly", "DatabaseConnections", "Average", 300, 3, 3, "GreaterThanUpperThreshold",
              None, "missing", _always,
              "aws-recommended (anomaly detection for connections); opt-in: an anomaly alarm costs 3 standard "
              "metrics and needs about two weeks of history to train",
              "Connections above the anomaly-detection band", "count", default_enabled=False, anomaly_band_width=2),
    AlarmSpec("read_latency", "ReadLatency", None, 60, 5, 5, "GreaterThanThreshold", _constant(0.02),
              "missing", _always, "aws-recommended (p90, 5 x 60 s); 20 ms for SSD storage",
              "p90 read latency above the threshold (seconds)", "seconds", extended_statistic="p90"),
    AlarmSpec("write_latency", "WriteLatency", None, 60, 5, 5, "GreaterThanThreshold", _constant(0.02),
              "missing", _always, "aws-recommended (p90, 5 x 60 s); 20 ms for SSD storage",
              "p90 write latency above the threshold (seconds)", "seconds", extended_statistic="p90"),
    AlarmSpec("disk_queue_depth", "DiskQueueDepth", "Average", 300, 3, 3, "GreaterThanThreshold", _constant(64),
              "missing", _always, "community (64 outstanding I/Os)", "Disk queue depth above the threshold", "count"),
    AlarmSpec("replica_lag", "ReplicaLag", "Maximum", 60, 5, 5, "GreaterThanThreshold", _constant(60),
              "missing", _replica, "aws-recommended (Maximum, 60 s periods); 60 s of lag",
              "Replica lag above the threshold (seconds)", "seconds"),
    AlarmSpec("burst_balance", "BurstBalance", "Minimum", 300, 3, 3, "LessThanThreshold", _constant(20),
              "missing", _gp2_burstable_storage, "community (20 % of the gp2 I/O credit bucket)",
              "gp2 I/O burst credits below the threshold (%)", "percent"),
    AlarmSpec("cpu_credit_balance", "CPUCreditBalance", "Minimum", 300, 3, 3, "LessThanThreshold", _constant(20),
              "missing", _burstable_class, "community (20 credits); in unlimited mode an empty balance means surplus charges",
              "CPU credit balance below the threshold (credits)", "count"),
    AlarmSpec("ebs_byte_balance", "EBSByteBalance%", "Minimum", 60, 3, 3, "LessThanThreshold", _constant(10),
              "missing", _ebs_burst_bandwidth, "aws-recommended (10 %, 3 x 60 s)",
              "EBS throughput burst bucket below the threshold (%)", "percent"),
    AlarmSpec("ebs_io_balance", "EBSIOBalance%", "Minimum", 60, 3, 3, "LessThanThreshold", _constant(10),
              "missing", _ebs_burst_bandwidth, "aws-recommended (10 %, 3 x 60 s)",
              "EBS IOPS burst bucket below the threshold (%)", "percent"),
    AlarmSpec("maximum_used_transaction_ids", "MaximumUsedTransactionIDs", "Average", 60, 1, 1, "GreaterThanThreshold",
              _constant(1_000_000_000), "missing", _postgres, "aws-recommended (1,000,000,000)",
              "PostgreSQL transaction IDs used above the threshold (wraparound at about 2.1 billion)", "count"),
    AlarmSpec("db_load", "DBLoad", "Average", 60, 15, 15, "GreaterThanThreshold", _vcpus,
              "missing", _performance_insights, "aws-recommended (DBLoad above the number of vCPUs, 15 x 60 s)",
              "Average active sessions above the number of vCPUs", "count"),
)

CATALOGUE_BY_KEY = {spec.key: spec for spec in CATALOGUE}
SERVICE_CONNECTIONS_PREFIX = "database_connections_service_"
