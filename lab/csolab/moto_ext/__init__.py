"""Extensions for the RDS and CloudWatch calls moto lacks, following botocore's service model.

Importing this package defines the extensions; ``install()`` applies them. Several extensions
wrap the same moto method (``modify_db_instance``: engines' validation, pending's deferral,
restarts' outages, certificates' CA checks, monitoring); ``EXTENSIONS`` is the order in which
they wrap, innermost first: each one wraps what the ones before it left.
"""

from csolab.moto_ext import (
    audit_logs,
    backup_replication,
    blue_green,
    certificates,
    cloudwatch_anomaly,
    dataplane_state,
    engines,
    event_subscriptions,
    iam_auth,  # lab routes only (the IAM token verifier's context, the lab clock): wraps nothing
    iam_managed_policies,
    monitoring,
    pending,
    read_replicas,
    replica_settings,
    restarts,
    storage_optimization,
)
from csolab.moto_ext._common import install_wrappers

EXTENSIONS = (
    engines,  # catalogue validation: innermost, sees the request as moto will apply it
    pending,  # when AWS applies a change: defers to the window or applies now
    restarts,  # what AWS does with a restart: outage, failover, the certificate served
    storage_optimization,  # after a storage change AWS applied (outside pending): storage-optimization, refusals
    certificates,  # CA validation before anything is deferred
    monitoring,
    backup_replication,
    cloudwatch_anomaly,
    event_subscriptions,
    iam_managed_policies,  # AWS managed policies moto lacks
    replica_settings,  # a replica's own Performance Insights, monitoring, deletion protection
    read_replicas,  # replicas as AWS makes them (source checks, promotion); inside dataplane_state's dump
    audit_logs,  # the audit plugin follows option groups (restart on removal)
    blue_green,  # deployments as AWS runs them: provisioning, refusals, the switchover's renames (applied at once)
    dataplane_state,  # outermost: dumps data around snapshot/restore calls the others shaped
)


def install():
    install_wrappers([module.__name__ for module in EXTENSIONS])
