"""RDS event notification subscriptions: ``modify_event_subscription``,
``add_source_identifier_to_subscription`` and ``remove_source_identifier_from_subscription``
(moto implements create / describe / delete only).

They change moto's own ``EventSubscription`` objects, so the answers have the shape moto's describe
gives. Validation follows the API reference: the topic must exist in SNS of the same account and
region (``SNSTopicArnNotFound``), categories must belong to the source type
(``SubscriptionCategoryNotFound``, catalogue below from the "event categories and event messages"
pages of the RDS and Aurora user guides), an added source must exist (``SourceNotFound``) and a
removed one must be in the subscription (``SourceNotFound``).
"""

from moto.core.responses import ActionResult
from moto.rds.exceptions import InvalidParameterValue, RDSClientError, SubscriptionNotFoundError

from csolab.moto_ext import engines
from csolab.moto_ext._common import rds_action

EVENT_CATEGORIES = {
    "db-instance": ("availability", "backtrack", "backup", "configuration change", "creation", "deletion", "failover",
                    "failure", "low storage", "maintenance", "notification", "read replica", "recovery",
                    "restoration", "security", "security patching"),
    "db-cluster": ("configuration change", "creation", "deletion", "failover", "failure", "global-failover",
                   "maintenance", "migration", "notification", "serverless"),
    "db-parameter-group": ("configuration change",),
    "db-security-group": ("configuration change", "failure"),
    "db-snapshot": ("creation", "deletion", "notification", "restoration"),
    "db-cluster-snapshot": ("backup", "notification"),
    "db-proxy": ("configuration change", "creation", "deletion"),
    "zero-etl": ("creation", "deletion", "failure", "notification"),
    "custom-engine-version": ("creation", "deletion", "failure", "restoration"),
    "blue-green-deployment": ("creation", "deletion", "failure", "notification"),
}


class SNSTopicArnNotFoundFault(RDSClientError):
    def __init__(self, arn):
        super().__init__("SNSTopicArnNotFound", f"Could not find SNS topic ARN {arn}.")


class SubscriptionCategoryNotFoundFault(RDSClientError):
    def __init__(self, categories, source_type):
        names = ", ".join(categories)
        where = f" for source type {source_type}" if source_type else ""
        super().__init__("SubscriptionCategoryNotFound", f"Event categories not found{where}: {names}.")


class SourceNotFoundFault(RDSClientError):
    def __init__(self, message):
        super().__init__("SourceNotFound", message)


def _subscription(backend, name):
    subscription = backend.event_subscriptions.get(name)
    if subscription is None:
        raise SubscriptionNotFoundError(name)
    return subscription


def validate_source_type(source_type):
    if source_type not in EVENT_CATEGORIES:
        raise InvalidParameterValue(f"Invalid source type: {source_type}. Valid source types are: "
                                    f"{', '.join(EVENT_CATEGORIES)}.")


def validate_categories(categories, source_type):
    """Categories of ``source_type`` (of any source type when the subscription has none)."""
    valid = set(EVENT_CATEGORIES[source_type]) if source_type else {
        category for known in EVENT_CATEGORIES.values() for category in known}
    unknown = [category for category in categories if category.lower() not in valid]
    if unknown:
        raise SubscriptionCategoryNotFoundFault(unknown, source_type)


def validate_topic(backend, arn):
    sns = backend.get_backend("sns", backend.region_name, backend.account_id)
    if arn not in sns.topics:
        raise SNSTopicArnNotFoundFault(arn)


def _source_exists(backend, source_type, identifier):
    if source_type == "db-parameter-group":
        engines.ensure_default_parameter_group(backend, identifier)  # AWS has every default.<family> group
    sources = {
        "db-instance": backend.databases,
        "db-cluster": backend.clusters,
        "db-parameter-group": backend.db_parameter_groups,
        "db-security-group": backend.security_groups,
        "db-snapshot": backend.database_snapshots,
        "db-cluster-snapshot": backend.cluster_snapshots,
        "db-proxy": backend.db_proxies,
        "blue-green-deployment": backend.blue_green_deployments,
    }.get(source_type)
    return True if sources is None else identifier in sources  # zero-etl, custom-engine-version: not modelled


@rds_action
def modify_event_subscription(self):
    subscription = _subscription(self.backend, self.params.get("SubscriptionName"))
    topic_arn = self.params.get("SnsTopicArn")
    source_type = self.params.get("SourceType")
    categories = self.params.get("EventCategories")
    enabled = self.params.get("Enabled")
    if source_type is not None:
        validate_source_type(source_type)
    effective_type = source_type if source_type is not None else subscription.source_type
    effective_categories = list(categories) if categories is not None else list(subscription.event_categories or [])
    validate_categories(effective_categories, effective_type)
    if topic_arn is not None:
        validate_topic(self.backend, topic_arn)
        subscription.sns_topic_arn = topic_arn
    subscription.source_type = effective_type
    subscription.event_categories = effective_categories
    if enabled is not None:
        subscription.enabled = enabled
    return ActionResult({"EventSubscription": subscription})


@rds_action
def add_source_identifier_to_subscription(self):
    subscription = _subscription(self.backend, self.params.get("SubscriptionName"))
    identifier = self.params.get("SourceIdentifier")
    if not subscription.source_type:
        raise SourceNotFoundFault(f"Subscription {subscription.subscription_name} has no source type: "
                                  f"source {identifier} cannot be added.")
    if not _source_exists(self.backend, subscription.source_type, identifier):
        raise SourceNotFoundFault(f"Source {identifier} of type {subscription.source_type} not found.")
    if identifier not in subscription.source_ids:
        subscription.source_ids = list(subscription.source_ids or []) + [identifier]
    return ActionResult({"EventSubscription": subscription})


@rds_action
def remove_source_identifier_from_subscription(self):
    subscription = _subscription(self.backend, self.params.get("SubscriptionName"))
    identifier = self.params.get("SourceIdentifier")
    if identifier not in (subscription.source_ids or []):
        raise SourceNotFoundFault(f"Source {identifier} not found in subscription {subscription.subscription_name}.")
    subscription.source_ids = [source for source in subscription.source_ids if source != identifier]
    return ActionResult({"EventSubscription": subscription})
