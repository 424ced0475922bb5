"""Performance Insights and enhanced monitoring fields of DB instances, kept from create/modify.

moto accepts the arguments but never returns them, so tools that compare wanted and current
settings (amazon.aws.rds_instance) saw a change on every run.
"""

from moto.rds.exceptions import InvalidParameterCombination, InvalidParameterValue
from moto.rds.models import DBInstance, RDSBackend

from csolab.moto_ext._common import around, get
from csolab.moto_ext.engines import default_kms_key_arn

VALID_RETENTION = {7, 731} | {31 * months for months in range(1, 24)}
VALID_MONITORING_INTERVALS = {0, 1, 5, 10, 15, 30, 60}
PI_ARGUMENTS = ("enable_performance_insights", "performance_insights_kms_key_id",
                "performance_insights_retention_period")


def _pop_pi_arguments(db_kwargs):
    return {name: db_kwargs.pop(name) for name in PI_ARGUMENTS if db_kwargs.get(name) is not None}


def _apply_performance_insights(backend, instance, arguments):
    enabled = arguments.get("enable_performance_insights", instance.__dict__.get("performance_insights_enabled", False))
    retention = arguments.get("performance_insights_retention_period")
    if retention is not None and retention not in VALID_RETENTION:
        raise InvalidParameterValue(
            f"Invalid value {retention} for PerformanceInsightsRetentionPeriod. "
            "Valid values are 7, month * 31 (where month is a number of months from 1-23), and 731.")
    current_key = instance.__dict__.get("_lab_pi_kms_key_id")
    key = arguments.get("performance_insights_kms_key_id")
    if enabled:
        key = backend._validate_kms_key(key) if key else current_key or default_kms_key_arn(backend)
        if current_key and key != current_key:
            raise InvalidParameterCombination(
                "You can't change the KMS key of Performance Insights after it has been set.")
        instance._lab_pi_kms_key_id = key
    instance.performance_insights_enabled = bool(enabled)
    instance._lab_pi_retention = (retention or instance.__dict__.get("_lab_pi_retention") or 7) if enabled else None


def _check_monitoring(db_kwargs, instance=None):
    interval = get(db_kwargs, "monitoring_interval", getattr(instance, "monitoring_interval", 0))
    role = get(db_kwargs, "monitoring_role_arn", getattr(instance, "monitoring_role_arn", None))
    if interval not in VALID_MONITORING_INTERVALS:
        raise InvalidParameterValue(
            f"Invalid value {interval} for MonitoringInterval. Valid values are 0, 1, 5, 10, 15, 30, 60.")
    if interval and not role:
        raise InvalidParameterCombination(
            "A MonitoringRoleARN value is required if you specify a MonitoringInterval value other than 0.")


@around(RDSBackend, "create_db_instance")
def _create_db_instance(original, backend, db_kwargs):
    _check_monitoring(db_kwargs)
    arguments = _pop_pi_arguments(db_kwargs)
    instance = original(backend, db_kwargs)
    _apply_performance_insights(backend, instance, arguments)
    return instance


@around(RDSBackend, "modify_db_instance")
def _modify_db_instance(original, backend, db_instance_identifier, db_kwargs):
    instance = backend.describe_db_instances(db_instance_identifier)[0]
    _check_monitoring(db_kwargs, instance)
    arguments = _pop_pi_arguments(db_kwargs)
    if arguments:
        _apply_performance_insights(backend, instance, arguments)  # always immediate on AWS
    return original(backend, db_instance_identifier, db_kwargs)


def _pi_kms_key_id(self):
    return self.__dict__.get("_lab_pi_kms_key_id") if self.__dict__.get("performance_insights_enabled") else None


def _pi_retention(self):
    return self.__dict__.get("_lab_pi_retention") if self.__dict__.get("performance_insights_enabled") else None


def _enhanced_monitoring_resource_arn(self):
    if not getattr(self, "monitoring_interval", 0):
        return None
    return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:RDSOSMetrics:log-stream:{self.dbi_resource_id}"


DBInstance.performance_insights_enabled = False  # class default; instances set their own
DBInstance.performance_insights_kms_key_id = property(_pi_kms_key_id)
DBInstance.performance_insights_retention_period = property(_pi_retention)
DBInstance.enhanced_monitoring_resource_arn = property(_enhanced_monitoring_resource_arn)
