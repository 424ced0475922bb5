#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_replica_promotion
short_description: Promote an RDS read replica to a standalone DB instance, once
version_added: 1.2.0
description:
  - Promotes a MySQL or MariaDB read replica (same-Region or cross-Region, for example the disaster-recovery replica
    made by M(cso.rds_hardening.rds_hardened_replica)) to a standalone DB instance with C(PromoteReadReplica), and
    waits until AWS reports it C(available) and no longer names a source.
  - "Impact V(restart): RDS reboots the instance before it is available again (AWS RDS User Guide, Promoting a read
    replica to be a standalone DB instance). Replication from the source stops for good; the source is not touched.
    Repointing writers to the promoted instance is up to the caller."
  - "Idempotent: an instance that is already standalone is left alone (no call, C(changed=false)). AWS keeps no mark
    of a promotion, so the module tags the promoted instance with C(cso-rds-hardening:promoted-from) (its former
    source); RV(promotion) then tells an instance this module promoted (V(already-promoted)) from one that never was
    a replica, as far as the module knows (V(not-a-replica))."
  - Refused before any mutating call, with a message that says what to do; an instance that does not exist in
    O(region); a standalone instance that is the source of replicas (promote one of its replicas instead); options
    AWS would refuse (a backup retention outside 0 to 35 days, or 0 for a replica that has replicas of its own; a
    backup window that is malformed, shorter than 30 minutes or overlaps the maintenance window).
  - "Why not M(amazon.aws.rds_instance) with C(read_replica=false): it cannot report the restart in check mode, does
    not tell a promoted instance from one that never was a replica, and waits with a 60-second poll."
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description: Identifier of the read replica to promote, in O(region) (for a cross-Region replica, the replica's Region).
    type: str
    required: true
    aliases: [id]
  backup_retention_period:
    description:
      - Days of automated backups the promoted instance keeps, 0 to 35. When unset AWS applies its default, 1 day
        (the plan shows it).
      - Set it to what the primary kept (for example V(7)) so the promoted instance has the same restore window.
    type: int
  preferred_backup_window:
    description:
      - Daily backup window of the promoted instance, C(hh24:mi-hh24:mi) in UTC, at least 30 minutes, outside its
        maintenance window. When unset AWS chooses one.
    type: str
  wait:
    description:
      - Wait until the promoted instance is C(available) and no longer names its source.
      - Without waiting the task returns once AWS accepted the promotion; a later run waits for it (no second call).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait, at most, for the promotion (polling every 5 seconds).
    type: int
    default: 3600
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - A promotion cannot be undone. To replicate again, make a new replica (of the promoted instance, or of the old
    source once it is back) with M(cso.rds_hardening.rds_hardened_replica).
  - The tag C(cso-rds-hardening:promoted-from) is the module's record of the promotion; a task that purges the
    instance's tags removes it, and a later run then reports V(not-a-replica).
"""

EXAMPLES = r"""
- name: Show what promoting the disaster-recovery replica would do
  cso.rds_hardening.rds_replica_promotion:
    region: eu-west-1
    db_instance_identifier: cso-prod-db-dr
    backup_retention_period: 7
  check_mode: true
  register: promotion_plan

- name: Promote the disaster-recovery replica (fail over to eu-west-1)
  cso.rds_hardening.rds_replica_promotion:
    region: eu-west-1
    db_instance_identifier: cso-prod-db-dr
    backup_retention_period: 7
    preferred_backup_window: "02:00-02:30"
  register: promotion

- name: Say what was found
  ansible.builtin.debug:
    msg: "{{ promotion.promotion }} (former source: {{ promotion.promoted_from }})"
"""

RETURN = r"""
plan:
  description:
    - What the promotion changes, in the shape of rds_hardened_instance's plan; empty when the instance is already
      standalone.
    - First the promotion (C(attribute=read_replica_source_db_instance_identifier), C(impact=restart), C(before) the
      source, C(after=null)), then the backup retention and window it sets, then the tag that records it.
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The promotion in words, or the attribute's name.
      type: str
      sample: "promote read replica cso-prod-db-dr of arn:aws:rds:eu-west-2:123456789012:db:cso-prod-db to a standalone DB instance"
    impact:
      description: What clients notice, one of C(none), C(restart) (see rds_hardened_instance).
      type: str
      sample: restart
    before:
      description: The value now.
      type: raw
    after:
      description: The value after the promotion.
      type: raw
    apply:
      description: When AWS applies it; always C(immediately).
      type: str
    effect:
      description: The impact in words; null when nothing is noticed.
      type: str
    attribute:
      description: The attribute.
      type: str
    current:
      description: Same as RV(plan[].before).
      type: raw
    desired:
      description: Same as RV(plan[].after).
      type: raw
promotion:
  description:
    - V(promoted) when the instance was a read replica and this run promoted it (in check mode, would promote it);
      V(already-promoted) when it is standalone and carries this module's record of its promotion;
      V(not-a-replica) when it is standalone without that record (it never was a replica, or was promoted
      another way).
  returned: always
  type: str
  sample: promoted
promoted_from:
  description: The source the instance replicated (an ARN for a cross-Region replica); null for V(not-a-replica).
  returned: always
  type: str
  sample: arn:aws:rds:eu-west-2:123456789012:db:cso-prod-db
pending_modified_values:
  description: Changes AWS will apply at the maintenance window (snake_case).
  returned: always
  type: dict
instance:
  description: The instance as amazon.aws.rds_instance_info returns it (snake_case), tags as a dict.
  returned: always
  type: dict
  sample: {"db_instance_identifier": "cso-prod-db-dr", "db_instance_status": "available", "backup_retention_period": 7}
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_promotion as promotion
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import fail_on
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_available
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_promoted

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True, aliases=["id"]),
    backup_retention_period=dict(type="int"),
    preferred_backup_window=dict(type="str"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=3600),
)

# A replica answers with this for a moment after a change (or while it backs up); retry it too.
BUSY_ERRORS = ["InvalidDBInstanceState"]


def promote(module, rds, instance):
    """PromoteReadReplica, the tag that records it, the wait; returns the instance as it is then."""
    identifier = instance["DBInstanceIdentifier"]
    if instance["DBInstanceStatus"] != "available":
        wait_available(module, rds, identifier)  # AWS promotes only an available replica
    rds.promote_read_replica(aws_retry=True, **promotion.promote_parameters(module.params))
    rds.add_tags_to_resource(ResourceName=instance["DBInstanceArn"], Tags=promotion.promotion_tags(instance),
                             aws_retry=True)
    if module.params["wait"]:
        wait_promoted(module, rds, identifier)
    return get_db_instance(rds, identifier)


def run(module):
    params = module.params
    fail_on(module, promotion.input_errors(params))
    rds = aws_client(module, "rds", extra_error_codes=BUSY_ERRORS)
    instance = get_db_instance(rds, params["db_instance_identifier"])
    fail_on(module, promotion.instance_errors(instance, params, module.region))
    state = promotion.state_of(instance)
    plan = promotion.promotion_plan(instance, params)
    if module.check_mode or state in ("promoted", "standalone"):
        return promotion.result_for(instance, plan, bool(plan), state)
    if state == "promoting":  # promoted by an earlier run that did not wait
        if params["wait"]:
            wait_promoted(module, rds, instance["DBInstanceIdentifier"])
        return promotion.result_for(get_db_instance(rds, instance["DBInstanceIdentifier"]), plan, False, state)
    return promotion.result_for(promote(module, rds, instance), plan, True, state)


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run, "promoting the read replica")


if __name__ == "__main__":
    main()
