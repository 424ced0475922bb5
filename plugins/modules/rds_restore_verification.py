#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_restore_verification
short_description: Restore an RDS backup into a temporary instance for verification, and remove it
version_added: 0.1.0
description:
  - The AWS half of a restore test. V(present) restores the latest restorable time (or
    O(restore_time)) of a source instance, or of its (replicated) automated backups, into a
    temporary instance that is never public and never deletion-protected, waits until it is
    available, and reports the RPO and RTO that this restore measured.
  - V(absent) deletes the temporary instance (no final snapshot, no retained backups) and waits
    until it is gone. It only ever deletes an instance that this module created (tagged
    C(cso:restore-verification=true)), so a typo cannot delete a real database.
  - The queries that prove the data came back are run by the caller (see the
    C(cso.rds_hardening.rds_backup_replication) role, which always deletes the instance, also when
    a step fails).
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description:
      - Identifier of the temporary instance.
    type: str
    required: true
  state:
    description:
      - V(present) restores and waits; V(absent) deletes and waits.
    type: str
    choices: [present, absent]
    default: present
  source_db_instance_identifier:
    description:
      - Restore from this instance's automated backups, in O(region).
      - Mutually exclusive with O(source_automated_backups_arn); one of them is required for V(present).
    type: str
  source_automated_backups_arn:
    description:
      - Restore from these automated backups, for example the replicated backups in the DR region
        (RV(cso.rds_hardening.rds_backup_replication#module:replicated_backup.db_instance_automated_backups_arn)).
      - O(region) must be the ARN's region.
    type: str
  restore_time:
    description:
      - Point in time to restore (ISO 8601, UTC). The latest restorable time when omitted.
    type: str
  db_instance_class:
    description:
      - Instance class of the temporary instance. The source's class when omitted.
    type: str
  db_subnet_group_name:
    description:
      - DB subnet group of the temporary instance (required by AWS in most VPC setups).
    type: str
  vpc_security_group_ids:
    description:
      - Security groups of the temporary instance; give it one that lets the verification host in.
    type: list
    elements: str
  tags:
    description:
      - Extra tags for the temporary instance (C(cso:restore-verification) is always added).
    type: dict
    default: {}
  existing_instance:
    description:
      - What V(present) does when a temporary instance of this module (tag C(cso:restore-verification=true)) already
        has the name O(db_instance_identifier), a leftover of an earlier run that did not clean up. It proves
        nothing about the backups of today and has no RPO or RTO of this run.
      - V(fail) (default) refuses and leaves it for inspection; the message says how to remove it.
      - V(replace) deletes it first (no final snapshot), then restores.
      - An instance without the tag is always refused.
    type: str
    choices: [fail, replace]
    default: fail
  wait_timeout:
    description:
      - Seconds to wait, at most, for the instance to become available or to be deleted.
    type: int
    default: 3600
notes:
  - Supports C(check_mode).
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Restore the latest restorable time of the replicated backups in the DR region
  cso.rds_hardening.rds_restore_verification:
    region: eu-west-1
    db_instance_identifier: cso-prod-db-restore-test
    source_automated_backups_arn: "{{ replication.replicated_backup.db_instance_automated_backups_arn }}"
    db_subnet_group_name: cso-db-private
    vpc_security_group_ids: [sg-0123456789abcdef0]
    db_instance_class: db.t3.medium
  register: restored

- name: Restore again although a leftover of an earlier run is there (deleted first)
  cso.rds_hardening.rds_restore_verification:
    region: eu-west-2
    db_instance_identifier: cso-prod-db-restore-test
    source_db_instance_identifier: cso-prod-db
    existing_instance: replace

- name: Remove the temporary instance
  cso.rds_hardening.rds_restore_verification:
    region: eu-west-1
    db_instance_identifier: cso-prod-db-restore-test
    state: absent
"""

RETURN = r"""
instance:
  description: The temporary instance (null after V(absent)).
  returned: always
  type: dict
  contains:
    db_instance_identifier:
      description: Its identifier.
      type: str
    db_instance_arn:
      description: Its ARN.
      type: str
    endpoint_address:
      description: Host name to connect to.
      type: str
    endpoint_port:
      description: Port to connect to.
      type: int
    master_username:
      description: The master user (the source's; so is the password).
      type: str
    publicly_accessible:
      description: Always false.
      type: bool
    deletion_protection:
      description: Always false.
      type: bool
    status:
      description: AWS status.
      type: str
restored_from:
  description: What was restored (source identifier or backups ARN, region, point in time).
  returned: when a restore ran or would run
  type: dict
  contains:
    source:
      description: Source instance identifier or automated backups ARN.
      type: str
    region:
      description: Region of the restore.
      type: str
    latest_restorable_time:
      description: The source's latest restorable time when the restore was requested (ISO 8601).
      type: str
    restore_time:
      description: The requested point in time, or C(latest).
      type: str
replaced:
  description: The leftover temporary instance that was deleted first (O(existing_instance=replace)), or null.
  returned: state=present
  type: str
leftover:
  description: Set (to the leftover's identifier) when the run failed because a leftover temporary instance exists.
  returned: on that failure
  type: str
rpo_seconds:
  description: Recovery point objective measured by this restore, the age of the latest restorable time when the restore was requested.
  returned: when a restore ran
  type: int
rto_seconds:
  description: Recovery time measured by this restore, from the restore call until the instance was available.
  returned: when a restore ran
  type: int
"""

import datetime
import time

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.cso.rds_hardening.plugins.module_utils import backup_replication as replication
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module

MARKER_TAG = "cso:restore-verification"

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    source_db_instance_identifier=dict(type="str"),
    source_automated_backups_arn=dict(type="str"),
    restore_time=dict(type="str"),
    db_instance_class=dict(type="str"),
    db_subnet_group_name=dict(type="str"),
    vpc_security_group_ids=dict(type="list", elements="str"),
    tags=dict(type="dict", default={}),
    existing_instance=dict(type="str", choices=["fail", "replace"], default="fail"),
    wait_timeout=dict(type="int", default=3600),
)


def is_ours(instance):
    tags = boto3_tag_list_to_ansible_dict(instance.get("TagList") or [])
    return tags.get(MARKER_TAG) == "true"


def refuse_foreign(module, instance):
    if not is_ours(instance):
        module.fail_json(
            msg=f"DB instance {instance['DBInstanceIdentifier']} exists and was not created by rds_restore_verification "
            f"(no {MARKER_TAG}=true tag). Refusing to touch it; choose another db_instance_identifier."
        )


def read_instance(module, client, identifier):
    return get_db_instance(client, identifier)


def latest_restorable_time(module, client):
    """The newest point the source can be restored to, or fail when it has no backups."""
    params = module.params
    if params["source_db_instance_identifier"]:
        source = read_instance(module, client, params["source_db_instance_identifier"])
        if source is None:
            module.fail_json(msg=f"The source DB instance {params['source_db_instance_identifier']} does not exist in {module.region}.")
        if not source.get("BackupRetentionPeriod"):
            module.fail_json(msg=f"The source DB instance {params['source_db_instance_identifier']} has automated backups "
                             "disabled; there is nothing to restore from.")
        return source.get("LatestRestorableTime")
    arn = params["source_automated_backups_arn"]
    backup = replication.describe_replicated_backup(client, arn)
    if backup is None:
        module.fail_json(msg=f"The automated backups {arn} do not exist in {module.region}.")
    return (backup.get("RestoreWindow") or {}).get("LatestTime")


def restore_request(module):
    params = module.params
    request = {
        "TargetDBInstanceIdentifier": params["db_instance_identifier"],
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "MultiAZ": False,
        "CopyTagsToSnapshot": False,
        "Tags": ansible_dict_to_boto3_tag_list(dict(params["tags"], **{MARKER_TAG: "true"})),
    }
    if params["source_db_instance_identifier"]:
        request["SourceDBInstanceIdentifier"] = params["source_db_instance_identifier"]
    else:
        request["SourceDBInstanceAutomatedBackupsArn"] = params["source_automated_backups_arn"]
    if params["restore_time"]:
        request["RestoreTime"] = parse_time(module, params["restore_time"])
    else:
        request["UseLatestRestorableTime"] = True
    optional = {
        "DBInstanceClass": params["db_instance_class"],
        "DBSubnetGroupName": params["db_subnet_group_name"],
        "VpcSecurityGroupIds": params["vpc_security_group_ids"],
    }
    request.update({key: value for key, value in optional.items() if value})
    return request


def parse_time(module, value):
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        module.fail_json(msg=f"restore_time {value!r} is not an ISO 8601 time such as 2026-01-31T04:05:00Z.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def wait_for(module, client, waiter_name, identifier):
    try:
        replication.WAITERS.get_waiter(client, waiter_name).wait(
            DBInstanceIdentifier=identifier,
            WaiterConfig=replication.waiter_config(module.params["wait_timeout"]),
        )
    except botocore.exceptions.WaiterError as e:
        module.fail_json_aws(e, msg=f"DB instance {identifier} did not reach the expected state within wait_timeout "
                             f"({module.params['wait_timeout']} s).")


def make_temporary(module, client, instance):
    """Some restores copy the source's settings: force non-public and no deletion protection."""
    changes = {}
    if instance.get("PubliclyAccessible"):
        changes["PubliclyAccessible"] = False
    if instance.get("DeletionProtection"):
        changes["DeletionProtection"] = False
    if not changes:
        return instance
    client.modify_db_instance(
        DBInstanceIdentifier=instance["DBInstanceIdentifier"], ApplyImmediately=True, aws_retry=True, **changes
    )
    wait_for(module, client, "restored_instance_available", instance["DBInstanceIdentifier"])
    return read_instance(module, client, instance["DBInstanceIdentifier"])


def summarise(instance):
    if instance is None:
        return None
    endpoint = instance.get("Endpoint") or {}
    return {
        "db_instance_identifier": instance["DBInstanceIdentifier"],
        "db_instance_arn": instance.get("DBInstanceArn"),
        "endpoint_address": endpoint.get("Address"),
        "endpoint_port": endpoint.get("Port"),
        "master_username": instance.get("MasterUsername"),
        "publicly_accessible": bool(instance.get("PubliclyAccessible")),
        "deletion_protection": bool(instance.get("DeletionProtection")),
        "status": instance.get("DBInstanceStatus"),
    }


def ensure_present(module, client):
    params = module.params
    identifier = params["db_instance_identifier"]
    if not (params["source_db_instance_identifier"] or params["source_automated_backups_arn"]):
        module.fail_json(msg="state=present needs source_db_instance_identifier or source_automated_backups_arn.")
    arn = params["source_automated_backups_arn"]
    if arn and replication.arn_region(arn) != module.region:
        module.fail_json(msg=f"source_automated_backups_arn is in {replication.arn_region(arn)}; set region to that region.")
    existing = read_instance(module, client, identifier)
    if existing is not None:
        refuse_leftover(module, existing)
    latest = latest_restorable_time(module, client)
    request = restore_request(module)
    restored_from = {
        "source": params["source_db_instance_identifier"] or params["source_automated_backups_arn"],
        "region": module.region,
        "latest_restorable_time": replication.isoformat(latest),
        "restore_time": params["restore_time"] or "latest",
    }
    replaced = existing["DBInstanceIdentifier"] if existing is not None else None
    if module.check_mode:
        return dict(changed=True, instance=None, restored_from=restored_from, replaced=replaced)
    if existing is not None:
        delete_instance(module, client, existing)
    requested_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
    client.restore_db_instance_to_point_in_time(aws_retry=True, **request)
    wait_for(module, client, "restored_instance_available", identifier)
    rto = int(round(time.monotonic() - started))
    instance = make_temporary(module, client, read_instance(module, client, identifier))
    return dict(
        changed=True,
        instance=summarise(instance),
        restored_from=restored_from,
        replaced=replaced,
        rpo_seconds=replication.lag_seconds(latest, requested_at),
        rto_seconds=rto,
    )


def refuse_leftover(module, existing):
    """A temporary instance that is already there proves nothing about today's backups."""
    refuse_foreign(module, existing)
    if module.params["existing_instance"] == "replace":
        return
    identifier = existing["DBInstanceIdentifier"]
    module.fail_json(
        msg=f"The temporary instance {identifier} already exists ({existing.get('DBInstanceStatus')}): a leftover of an "
        "earlier restore test that did not clean up. It proves nothing about today's backups and has no RPO or RTO of "
        f"this run. Delete it (rds_restore_verification with state=absent and db_instance_identifier={identifier}, "
        "or the rds_backup_replication role with rds_backup_replication_verify_replace_leftover=true) or set "
        "existing_instance=replace, then run again.",
        leftover=identifier,
        instance=summarise(existing),
    )


def delete_instance(module, client, existing):
    identifier = existing["DBInstanceIdentifier"]
    if existing.get("DeletionProtection"):
        client.modify_db_instance(DBInstanceIdentifier=identifier, DeletionProtection=False,
                                  ApplyImmediately=True, aws_retry=True)
    if existing.get("DBInstanceStatus") != "deleting":
        client.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True,
                                  DeleteAutomatedBackups=True, aws_retry=True)
    wait_for(module, client, "restored_instance_deleted", identifier)


def ensure_absent(module, client):
    identifier = module.params["db_instance_identifier"]
    existing = read_instance(module, client, identifier)
    if existing is None:
        return dict(changed=False, instance=None)
    refuse_foreign(module, existing)
    if module.check_mode:
        return dict(changed=True, instance=None)
    delete_instance(module, client, existing)
    return dict(changed=True, instance=None)


def main():
    module = AnsibleAWSModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("source_db_instance_identifier", "source_automated_backups_arn")],
        supports_check_mode=True,
    )
    run_module(module, run, "verifying a restore")


def run(module):
    if module.params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout must be a positive number of seconds.")
    client = aws_client(module, "rds")
    if module.params["state"] == "present":
        return ensure_present(module, client)
    return ensure_absent(module, client)


if __name__ == "__main__":
    main()
