#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_backup_replication
short_description: Replicate an RDS instance's automated backups to another region
version_added: 0.1.0
description:
  - Starts, keeps, or stops the cross-region replication of an RDS DB instance's automated backups
    (C(StartDBInstanceAutomatedBackupsReplication)/C(StopDBInstanceAutomatedBackupsReplication)).
  - The AWS calls are made in the destination region with the source instance's ARN; the module
    builds the ARN and the cross-region pre-signed request itself.
  - AWS cannot modify a running replication. Changing O(retention_period) or O(kms_key_id) means
    stopping and starting it again, which leaves a gap in the replicated point-in-time history.
    The module refuses that unless O(allow_replication_restart=true).
  - Before any mutating call the destination key must prove usable (C(DescribeKey) in the destination
    region, C(Enabled), customer-managed, symmetric C(ENCRYPT_DECRYPT)).
  - When a restart's start with the new settings fails after the stop, the module starts the replication
    again with the previous settings (retention and key), so the destination region keeps receiving backups,
    and then fails with a message that says what happened.
  - Everything is validated before the first mutating call; check mode reports the exact plan.
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description:
      - The source DB instance, in the region given by O(region).
    type: str
    required: true
    aliases: [source_db_instance_identifier]
  destination_region:
    description:
      - The region to replicate the automated backups into. Must differ from the source's region.
    type: str
    required: true
  kms_key_id:
    description:
      - ID, ARN or alias of an enabled, customer-managed, symmetric encryption (C(ENCRYPT_DECRYPT),
        C(SYMMETRIC_DEFAULT)) KMS key B(in the destination region) that encrypts the replicated backups.
      - Required when the source instance is encrypted. Ignored (with a warning) when it is not.
    type: str
  retention_period:
    description:
      - Days the replicated backups are kept in the destination region (1 to 35).
      - When omitted, AWS's default (7) applies on start and an existing replication's retention
        is left as it is.
    type: int
  allow_replication_restart:
    description:
      - Allow a change of O(retention_period) or O(kms_key_id) on a running replication, done as
        stop + start. The replicated history in the destination region restarts from the next
        backup.
    type: bool
    default: false
  state:
    description:
      - V(present) ensures the replication runs with these settings; V(absent) stops it (the
        backups already replicated are retained by AWS until their retention period ends).
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - Wait until the replication is active (or stopped, for V(absent)).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait, at most, for each transition when O(wait=true).
    type: int
    default: 1800
notes:
  - Supports C(check_mode) (the result's RV(plan) lists the calls a real run would make) and C(diff_mode).
  - Set O(region) to the B(source) instance's region.
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Replicate the primary database's backups to the DR region, encrypted with a DR-region CMK
  cso.rds_hardening.rds_backup_replication:
    region: eu-west-2
    db_instance_identifier: cso-prod-db
    destination_region: eu-west-1
    kms_key_id: alias/cso-rds-backups-dr
    retention_period: 14

- name: Change the replicated retention (stop + start, accepting a gap in the DR history)
  cso.rds_hardening.rds_backup_replication:
    region: eu-west-2
    db_instance_identifier: cso-prod-db
    destination_region: eu-west-1
    kms_key_id: alias/cso-rds-backups-dr
    retention_period: 30
    allow_replication_restart: true

- name: Stop replicating
  cso.rds_hardening.rds_backup_replication:
    region: eu-west-2
    db_instance_identifier: cso-prod-db
    destination_region: eu-west-1
    state: absent
"""

RETURN = r"""
plan:
  description:
    - One item per call this run makes (or, in check mode, would make), in order; empty when nothing changes.
    - The shape every module of the collection returns (C(what), C(impact), C(before), C(after)), plus C(call).
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The change in words; a restart says which settings change and that the replicated history has a gap.
      type: str
      sample: start the automated backups of arn:aws:rds:eu-west-2:123456789012:db:cso-prod-db replicated into eu-west-1
        (retention 14 days, key arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab)
    impact:
      description: What the source instance's clients notice; replication never touches the instance, so always C(none).
      type: str
      sample: none
    before:
      description: The replication's settings before the call (C(backup_retention_period), C(kms_key_id)); null when none runs.
      type: dict
    after:
      description: The settings after the call; null when it stops the replication.
      type: dict
    call:
      description: C(start_replication) or C(stop_replication).
      type: str
      sample: start_replication
replicated_backup:
  description: The replicated automated backups in the destination region; null when none replicate.
  returned: always
  type: dict
  contains:
    db_instance_automated_backups_arn:
      description: ARN of the replicated backups (what a restore in the destination region uses).
      type: str
      sample: arn:aws:rds:eu-west-1:123456789012:auto-backup:ab-abcdefghijklmnopqrstuvwxyz
    region:
      description: The destination region.
      type: str
    source_db_instance_arn:
      description: ARN of the source instance.
      type: str
    source_region:
      description: The region AWS reports for the backups (the source's).
      type: str
    status:
      description: AWS's status, for example C(pending) or C(replicating).
      type: str
    backup_retention_period:
      description: Days kept in the destination region.
      type: int
    restore_window:
      description: Earliest and latest restorable time in the destination region (ISO 8601, UTC).
      type: dict
      contains:
        earliest_time:
          description: Earliest restorable time.
          type: str
        latest_time:
          description: Latest restorable time.
          type: str
    encrypted:
      description: Whether the replicated backups are encrypted.
      type: bool
    kms_key_id:
      description: ARN of the destination-region KMS key.
      type: str
previous_settings_restored:
  description:
    - Only on a failed restart whose start with the new settings failed after the stop. V(true) when the
      replication was started again with the previous retention and key, V(false) when that failed too
      (the destination region then receives no new backups; act at once).
  returned: when a restart failed after the stop
  type: bool
replication_lag_seconds:
  description: Seconds between the destination's latest restorable time and now (the DR RPO); null when unknown.
  returned: always
  type: int
  sample: 300
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import backup_replication as replication
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_kms_key
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_region

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True, aliases=["source_db_instance_identifier"]),
    destination_region=dict(type="str", required=True),
    kms_key_id=dict(type="str"),
    retention_period=dict(type="int"),
    allow_replication_restart=dict(type="bool", default=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=1800),
)


def validate_parameters(module):
    params = module.params
    if not module.region:
        module.fail_json(msg="Set region (or AWS_REGION) to the source instance's region.")
    validate_region(module, module.region, "The source region")
    validate_region(module, params["destination_region"], "destination_region")
    if params["destination_region"] == module.region:
        module.fail_json(
            msg=f"destination_region {params['destination_region']} is the source's own region; "
            "replicate backups to a different region (for example the DR region)."
        )
    retention = params["retention_period"]
    low, high = replication.RETENTION_RANGE
    if retention is not None and not low <= retention <= high:
        module.fail_json(msg=f"retention_period must be between {low} and {high} days, got {retention}.")
    if params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout must be a positive number of seconds.")


def read_source(module, client):
    identifier = module.params["db_instance_identifier"]
    source = get_db_instance(client, identifier)
    if source is None:
        module.fail_json(msg=f"The source DB instance {identifier} does not exist in {module.region}. "
                         "Check db_instance_identifier and region (the source's region).")
    return source


def validate_source_for_start(module, source):
    if not source.get("BackupRetentionPeriod"):
        module.fail_json(
            msg=f"The source DB instance {source['DBInstanceIdentifier']} has automated backups disabled "
            "(backup retention 0), so there is nothing to replicate. Enable backups on it first "
            "(BackupRetentionPeriod >= 1)."
        )


def resolve_destination_key(module, source):
    """The destination KMS key ARN to use, or None for an unencrypted source."""
    key_id = module.params["kms_key_id"]
    destination = module.params["destination_region"]
    if not source.get("StorageEncrypted"):
        if key_id:
            module.warn(f"The source instance is not encrypted; kms_key_id {key_id} is ignored.")
        return None
    if not key_id:
        module.fail_json(
            msg=f"The source DB instance {source['DBInstanceIdentifier']} is encrypted, so replicating its backups "
            f"needs kms_key_id: a customer-managed KMS key in {destination} (keys are regional). Create one there "
            "(for example with amazon.aws.kms_key) and pass its ARN or alias."
        )
    kms = aws_client(module, "kms", region=destination)
    key = validate_kms_key(module, kms, key_id, destination, "the replicated backups")
    reasons = replication.key_unusable_reasons(key, destination)
    if reasons:
        module.fail_json(
            msg=f"The KMS key {key_id} cannot encrypt the replicated backups in {destination}: {'; '.join(reasons)}. "
            f"Use an enabled symmetric encryption key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT) created "
            f"in {destination}. Nothing was changed."
        )
    return key["Arn"]


def read_replication(module, source, destination_client):
    return replication.current_replication(source, destination_client, module.params["destination_region"])


def refuse_unallowed_restart(module, plan, items, current, desired):
    if plan["restart_required"] and not module.params["allow_replication_restart"]:
        changes = "; ".join(f"{name} {current[name]} -> {desired[name]}" for name in plan["changes"])
        module.fail_json(
            msg=(
                f"The running replication differs from the task ({changes}). "
                + replication.GAP_WARNING
                + " Set allow_replication_restart: true to accept that, or keep the current values."
            ),
            plan=items,
        )


def restart_with_previous_settings(module, items, source_arn, destination_client, desired, previous, error):
    """The start with new settings failed after the stop: start again as before, then fail saying so."""
    params = module.params
    new_error = getattr(error, "response", {}).get("Error", {}).get("Message") or str(error)
    try:
        started = replication.start_replication(
            destination_client, source_arn, previous["backup_retention_period"], previous["kms_key_id"]
        )
        backups_arn = started.get("DBInstanceAutomatedBackupsArn")
        if backups_arn and params["wait"]:
            replication.wait_for(destination_client, "replicated_backup_active", backups_arn, params["wait_timeout"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        old_error = getattr(e, "response", {}).get("Error", {}).get("Message") or str(e)
        module.fail_json(
            msg=replication.restore_failed_message(
                source_arn, params["destination_region"], desired, previous, new_error, old_error
            ),
            plan=items,
            previous_settings_restored=False,
        )
    module.fail_json(
        msg=replication.restore_failed_message(source_arn, params["destination_region"], desired, previous, new_error),
        plan=items,
        previous_settings_restored=True,
    )


def apply_plan(module, plan, items, source_arn, destination_client, desired, previous=None):
    """Run the plan's calls; returns the ARN of the replicated backups that remain relevant.

    ``previous`` (the running replication's settings) is what a failed restart starts again with.
    """
    params = module.params
    backups_arn = None
    for action in plan["actions"]:
        try:
            if action == "stop_replication":
                stopped = replication.stop_replication(destination_client, source_arn)
                backups_arn = stopped.get("DBInstanceAutomatedBackupsArn")
                # A start right after a stop is refused while the stop is in progress, so a
                # restart always waits here, whatever `wait` says.
                if backups_arn and (params["wait"] or plan["restart_required"]):
                    replication.wait_for(destination_client, "replicated_backup_stopped", backups_arn, params["wait_timeout"])
            else:
                try:
                    started = replication.start_replication(
                        destination_client, source_arn, desired["backup_retention_period"], desired["kms_key_id"]
                    )
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                    if not (plan["restart_required"] and previous):
                        raise
                    restart_with_previous_settings(module, items, source_arn, destination_client, desired, previous, e)
                backups_arn = started.get("DBInstanceAutomatedBackupsArn")
                if backups_arn and params["wait"]:
                    replication.wait_for(destination_client, "replicated_backup_active", backups_arn, params["wait_timeout"])
        except botocore.exceptions.WaiterError as e:
            module.fail_json_aws(
                e,
                msg=f"{action} was requested but the replication did not settle within wait_timeout "
                f"({params['wait_timeout']} s); check it in {params['destination_region']} and run again.",
                plan=items,
            )
    return backups_arn


def read_backup(module, destination_client, backups_arn):
    if not backups_arn:
        return None
    return replication.describe_replicated_backup(destination_client, backups_arn)


def diff_of(state_before, before, state_after, after):
    return {"before": dict(before or {}, state=state_before), "after": dict(after or {}, state=state_after)}


def run(module):
    params = module.params
    validate_parameters(module)
    source_client = aws_client(module, "rds")
    destination_client = aws_client(module, "rds", region=params["destination_region"])

    source = read_source(module, source_client)
    backup = read_replication(module, source, destination_client)
    current = replication.current_settings(backup)
    desired = None
    if params["state"] == "present":
        validate_source_for_start(module, source)
        desired = replication.desired_settings(params["retention_period"], resolve_destination_key(module, source))
    plan = replication.compute_plan(params["state"], current, desired)
    items = replication.plan_items(plan, current, desired, source["DBInstanceArn"], params["destination_region"])
    refuse_unallowed_restart(module, plan, items, current, desired)

    result = {"changed": bool(plan["actions"]), "plan": items}
    after_settings = current if not plan["actions"] else (desired if params["state"] == "present" else None)
    if module._diff:
        result["diff"] = diff_of(
            "present" if current else "absent", current, "present" if after_settings else "absent", after_settings
        )
    if plan["actions"] and not module.check_mode:
        backups_arn = apply_plan(module, plan, items, source["DBInstanceArn"], destination_client, desired, current)
        backup = read_backup(module, destination_client, backups_arn) if params["state"] == "present" else None
    summary, lag = replication.summarise_backup(backup, params["destination_region"])
    return dict(result, replicated_backup=summary, replication_lag_seconds=lag)


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run, "converging the backup replication")


if __name__ == "__main__":
    main()
