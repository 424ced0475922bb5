# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every cso.rds_hardening module shares: the client idiom, the error policy, the plan item
shape, and the lookups and validation several modules use.

The pattern (one for all modules):

* Clients: ``aws_client(module, service)``, i.e. ``module.client(service,
  retry_decorator=AWSRetry.jittered_backoff(...))``, and every call with ``aws_retry=True``.
  A paginator is read inside a function decorated with ``AWSRetry.jittered_backoff`` (as
  amazon.aws does): ``build_full_result`` is not retried by the wrapper.
* Errors: module_utils turn the error codes that mean something (a missing resource, with
  ``is_boto3_error_code``) into a result or a ``fail_json`` that says what to do; every other AWS
  error goes up to the module's ``main``, where ``run_module`` reports it with ``fail_json_aws``.
* Plan items: ``plan_item(what, impact, before, after)``.

Validation helpers call ``module.fail_json`` with a message that says what to do; they never
mutate anything. ``tests/unit/repository/test_module_idiom.py`` checks the client idiom.
"""

from __future__ import annotations

import math

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.rds import describe_db_instances
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

READ_ONLY_PREFIXES = ("describe_", "list_", "get_")

# Impacts of a plan item, from none to the most disruptive.
IMPACTS = ("none", "brief-interruption", "restart", "interruption", "data-loss", "replacement")


def waiter_config(timeout, pause=5):
    """A botocore ``WaiterConfig`` that polls every ``pause`` seconds (less for a shorter timeout) until
    ``timeout`` seconds have passed: the waits of every module use it instead of the waiters' own delays."""
    delay = max(1, min(pause, timeout))
    return {"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))}


def retry_decorator(retries=10, delay=3, max_delay=60, extra_error_codes=()):
    """amazon.aws's jittered backoff; throttling and 5xx are always retried, ``extra_error_codes`` too."""
    return AWSRetry.jittered_backoff(retries=retries, delay=delay, max_delay=max_delay,
                                     catch_extra_error_codes=list(extra_error_codes))


def aws_client(module, service, region=None, retries=10, delay=3, max_delay=60, extra_error_codes=(), **params):
    """The one client idiom: a retrying client; call its methods with ``aws_retry=True``."""
    if region:
        params["region"] = region
    return module.client(service, retry_decorator=retry_decorator(retries, delay, max_delay, extra_error_codes),
                         **params)


class Clients:
    """``aws_client`` per service, each made on first use: a run creates only the clients it needs."""

    def __init__(self, module, **retry):
        self.module = module
        self._retry = retry
        self._clients = {}

    def __getattr__(self, service):
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = aws_client(self.module, service, **self._retry)
        return self._clients[service]


def run_module(module, run, activity):
    """The one error policy: ``run(module)`` returns the result; AWS errors nobody handled fail here."""
    try:
        result = run(module)
    except AnsibleAWSError as e:  # amazon.aws helpers (rds.describe_db_instances, ...) wrap boto errors
        module.fail_json_aws_error(e)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"AWS call failed while {activity}. The error says which call; fix its cause "
                                    "and run the task again (it resumes from what AWS has).")
    module.exit_json(**result)


# opens the refusals of the modules whose messages do not say it themselves
NOTHING_CHANGED = "Nothing was changed: "


def fail_on(module, errors, prefix=""):
    """Fail the task with every input error at once (``errors``: messages that say what to do), before any call
    that changes something; ``prefix`` opens the message."""
    if errors:
        module.fail_json(msg=prefix + " ".join(errors), errors=errors)


def plan_item(what, impact, before, after, **extra):
    """One planned change, in the shape every module returns: what, impact, before, after (+ extra keys)."""
    item = {"what": what, "impact": impact, "before": before, "after": after}
    item.update(extra)
    return item


def get_db_instance(client, db_instance_identifier):
    """The raw DBInstance dict, or None when it does not exist."""
    instances = describe_db_instances(client, DBInstanceIdentifier=db_instance_identifier)
    return instances[0] if instances else None


def describe_kms_key(kms_client, key_id):
    """KeyMetadata for an id, ARN or alias, or None when the key does not exist."""
    try:
        return kms_client.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
    except is_boto3_error_code("NotFoundException"):
        return None


def validate_kms_key(module, kms_client, key_id, region, purpose, require_customer_managed=True, key_in_use=None):
    """Fail with a clear message unless the key exists, is enabled, and lives in ``region``.

    An AWS-managed key is refused when a customer-managed one is required, except the key already
    in use (``key_in_use``, an ARN): keeping it changes nothing, so it is only warned about.
    Returns the key's metadata (so callers can use its full ARN).
    """
    if key_id.startswith("arn:") and key_id.split(":")[3] != region:
        module.fail_json(
            msg=f"The KMS key {key_id} for {purpose} is in region {key_id.split(':')[3]}, "
            f"but it must be in {region}. Create or replicate a key in {region} and pass its ARN."
        )
    key = describe_kms_key(kms_client, key_id)
    if key is None:
        module.fail_json(
            msg=f"The KMS key {key_id} for {purpose} does not exist in {region}. "
            f"Create it first (for example with amazon.aws.kms_key) or fix the key id."
        )
    if key.get("KeyState") != "Enabled":
        module.fail_json(
            msg=f"The KMS key {key_id} for {purpose} is {key.get('KeyState')}; it must be Enabled. "
            "Enable it (or cancel its pending deletion) before running this task."
        )
    if require_customer_managed and key.get("KeyManager") != "CUSTOMER" and key.get("Arn") == key_in_use:
        module.warn(
            f"{purpose} stays under the AWS-managed KMS key {key_id}, which does not meet the AWS Security Hub "
            "RDS controls; moving it to a customer-managed key is a separate, explicit change."
        )
    elif require_customer_managed and key.get("KeyManager") != "CUSTOMER":
        module.fail_json(
            msg=f"The KMS key {key_id} for {purpose} is AWS-managed; a customer-managed key is required "
            "(AWS Security Hub RDS controls). Pass the ARN or alias of a key you manage."
        )
    return key


def available_regions(module, service="rds"):
    """Regions the service exists in, according to botocore's endpoint data (no API call, no session)."""
    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    regions = set()
    for partition in resolver.get_available_partitions():
        regions.update(resolver.get_available_endpoints(service, partition))
    return regions


def validate_region(module, region, what):
    if region not in available_regions(module):
        module.fail_json(msg=f"{what} {region!r} is not an AWS region that offers RDS. Use a region name such as eu-west-1.")
