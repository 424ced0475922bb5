# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared lookups and validation for the cso.rds_hardening modules.

Every function that reads AWS goes through ``AWSRetry.jittered_backoff`` so that throttling and
5xx answers are retried the amazon.aws way. Validation helpers call ``module.fail_json`` with a
message that says what to do; they never mutate anything.
"""

from __future__ import annotations

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.rds import describe_db_instances
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

READ_ONLY_PREFIXES = ("describe_", "list_", "get_")


def get_db_instance(client, db_instance_identifier):
    """The raw DBInstance dict, or None when it does not exist."""
    instances = describe_db_instances(client, DBInstanceIdentifier=db_instance_identifier)
    return instances[0] if instances else None


@AWSRetry.jittered_backoff()
def _describe_key(kms_client, key_id):
    return kms_client.describe_key(KeyId=key_id)["KeyMetadata"]


def describe_kms_key(kms_client, key_id):
    """KeyMetadata for an id, ARN or alias, or None when the key does not exist."""
    try:
        return _describe_key(kms_client, key_id)
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
    """Regions the service exists in, according to botocore's endpoint data (no API call)."""
    session = botocore.session.get_session()
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions(service, partition_name=partition))
    return regions


def validate_region(module, region, what):
    if region not in available_regions(module):
        module.fail_json(msg=f"{what} {region!r} is not an AWS region that offers RDS. Use a region name such as eu-west-1.")
