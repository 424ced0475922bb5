"""The settings a read replica gets from CreateDBInstanceReadReplica itself, not from its source.

moto makes a replica a shallow copy of its source and then applies the request, but the lab's
Performance Insights state (``monitoring``) is set only by CreateDBInstance and ModifyDBInstance:
the replica kept its source's, and a request with ``PerformanceInsightsRetentionPeriod`` failed
(moto tried to set the read-only property). The rules, with their sources (AWS: RDS API Reference,
CreateDBInstanceReadReplica):

* ``EnablePerformanceInsights``: "Specifies whether to enable Performance Insights for the read
  replica" (the replica's own setting; not given: off). ``PerformanceInsightsKMSKeyId``: "If you
  don't specify a value for PerformanceInsightsKMSKeyId, then Amazon RDS uses your default KMS
  key"; ``PerformanceInsightsRetentionPeriod``: 7, month * 31 (1-23 months) or 731 (the same
  checks as CreateDBInstance, ``monitoring._apply_performance_insights``).
* ``MonitoringInterval``: "If MonitoringRoleArn is specified, then you must set MonitoringInterval
  to a value other than 0 ... Valid Values: 0, 1, 5, 10, 15, 30, 60. Default: 0";
  ``MonitoringRoleArn``: "If MonitoringInterval is set to a value other than 0, then you must
  supply a MonitoringRoleArn value" (the replica's own; not given: 0 and none).
* ``EnableCloudwatchLogsExports``: "The list of logs that the new DB instance is to export to
  CloudWatch Logs" (the replica's own list; moto kept the source's).
* Automated backups (AWS: RDS User Guide, "Creating a read replica"): "To enable automatic backups
  on an RDS for MySQL read replica, first create the read replica, then modify the read replica to
  enable automatic backups": a new replica has none (retention 0), whatever its source keeps.
* ``DeletionProtection``: "Specifies whether to enable deletion protection for the DB instance ...
  By default, deletion protection isn't enabled" (not copied from the source).
"""

from moto.rds.exceptions import InvalidParameterValue
from moto.rds.models import RDSBackend

from csolab.moto_ext import monitoring
from csolab.moto_ext._common import around, get

# Performance Insights state the shallow copy took from the source (see ``monitoring``)
SOURCE_PI_STATE = ("_lab_pi_kms_key_id", "_lab_pi_retention", "performance_insights_enabled")


@around(RDSBackend, "create_db_instance_read_replica")
def _create_db_instance_read_replica(original, backend, db_kwargs, *args, **kwargs):
    monitoring._check_monitoring({"monitoring_interval": get(db_kwargs, "monitoring_interval", 0),
                                  "monitoring_role_arn": get(db_kwargs, "monitoring_role_arn")})
    arguments = monitoring._pop_pi_arguments(db_kwargs)
    retention = arguments.get("performance_insights_retention_period")
    if retention is not None and retention not in monitoring.VALID_RETENTION:  # refused before anything exists
        raise InvalidParameterValue(
            f"Invalid value {retention} for PerformanceInsightsRetentionPeriod. "
            "Valid values are 7, month * 31 (where month is a number of months from 1-23), and 731.")
    replica = original(backend, db_kwargs, *args, **kwargs)
    for name in SOURCE_PI_STATE:
        replica.__dict__.pop(name, None)
    monitoring._apply_performance_insights(backend, replica, arguments)
    replica.monitoring_interval = get(db_kwargs, "monitoring_interval", 0)
    replica.monitoring_role_arn = get(db_kwargs, "monitoring_role_arn")
    replica.deletion_protection = bool(get(db_kwargs, "deletion_protection", False))
    replica.enabled_cloudwatch_logs_exports = list(get(db_kwargs, "enable_cloudwatch_logs_exports", []))
    replica.backup_retention_period = 0
    return replica
