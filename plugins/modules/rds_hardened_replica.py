#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_hardened_replica
short_description: Create and converge a read replica (same-Region or cross-Region) as hardened as its source
version_added: 1.1.0
description:
  - Creates a read replica of a MySQL or MariaDB RDS instance (C(CreateDBInstanceReadReplica)), hardened like its
    source, and converges an existing replica to that spec with C(ModifyDBInstance).
  - The replica is created in the task's O(region). Its source is in the same Region, or in another one (a
    cross-Region replica, for example for disaster recovery), named by its ARN or by its name with O(source_region).
  - "Why a sibling of M(cso.rds_hardening.rds_hardened_instance) and not an option of it: a replica is created by
    another call from other inputs (a source instead of engine, version, storage, subnet group and master user),
    AWS fixes some of its settings from the source (its storage KMS key, engine and version, backups), and the
    checks that make it safe are about the source (encrypted, automated backups on, the engine). Both modules
    share the plan, its rules and the AWS checks (C(instance_plan), C(instance_checks), C(instance_result) in
    module_utils), so drift of a replica is planned, refused and applied exactly like drift of an instance."
  - "Encryption: a read replica in the same region is always encrypted with the KMS key of its source, and AWS
    refuses another key (AWS RDS API Reference, CreateDBInstanceReadReplica, C(KmsKeyId)). The replica therefore
    uses the source's key, which must be customer-managed (unless O(allow_aws_managed_source_key=true));
    O(kms_key_id), when given, must name that key."
  - "A cross-Region replica is encrypted with a KMS key of its own Region: O(kms_key_id) is required and must be a
    customer-managed key of O(region) (AWS RDS API Reference, CreateDBInstanceReadReplica, C(KmsKeyId)); the
    source's key may be any, even C(aws/rds). The module sends the source's ARN and C(SourceRegion) (botocore
    generates the presigned URL from it). Its DB subnet group (O(db_subnet_group_name), required), security groups
    and parameter group are of O(region) and are checked there; the engine version must be offered there. RDS
    cannot guarantee more than five cross-Region replicas of one source (RDS User Guide, Creating a read replica in
    a different AWS Region), so a sixth is refused."
  - "Creating a replica takes a DB snapshot of the source. A single-AZ source's I/O is suspended very briefly
    (typically about one second) when the snapshot starts; a Multi-AZ source's snapshot comes from its standby,
    without suspension (AWS RDS User Guide, Creating a read replica). The plan's create item says which applies;
    its impact is V(none): the source's clients keep their connections."
  - Refused before any mutating call, with a message that says what to do; a source that does not exist, is not
    encrypted, runs another engine than O(engine), has no automated backups (AWS requires them), or is itself a
    replica; a KMS key of another region or other than the source's; an existing instance named
    O(db_instance_identifier) that is not a replica of this source; for a cross-Region replica a missing
    O(kms_key_id) or O(db_subnet_group_name), an O(source_region) that contradicts the source's ARN, a source with
    five cross-Region replicas already; a parameter group that does not require TLS,
    is of another family or does not exist; security groups outside the VPC; an unknown CA; a missing monitoring
    role.
  - Changes that restart the replica (instance class, CA, parameter group) are refused unless O(allow_reboot=true).
    Drift that AWS cannot modify (the storage key after the source was re-encrypted, the key of enabled Performance
    Insights) is refused with what to do (make the replica again).
  - Waits for the replica to be C(available) after every change, polling every 5 seconds for at most
    O(wait_timeout) seconds.
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description: Identifier of the read replica.
    type: str
    required: true
    aliases: [id]
  source_db_instance_identifier:
    description:
      - Identifier of the source instance, or its ARN.
      - An ARN of another Region than O(region) makes a cross-Region replica; so does a name with O(source_region).
    type: str
    required: true
  source_region:
    description:
      - Region of the source instance, when O(source_db_instance_identifier) is a name and the source is not in
        O(region). Defaults to the Region of the source's ARN, else O(region) (a same-Region replica).
      - Must agree with the Region of an ARN given as O(source_db_instance_identifier).
    type: str
  engine:
    description: Engine the source must run; a source with another engine is refused.
    type: str
    choices: [mysql, mariadb]
    default: mysql
  kms_key_id:
    description:
      - Storage KMS key. A same-region replica always uses its source's key, so this only asserts which key that is
        (id, ARN or alias); a different key or a key of another region is refused.
      - The source's key must be enabled, and customer-managed unless O(allow_aws_managed_source_key=true).
      - Required for a cross-Region replica; there it is the replica's own key, a customer-managed key of O(region)
        (id, ARN or alias), and the source's key is not checked.
    type: str
  allow_aws_managed_source_key:
    description:
      - Accept a source encrypted with the AWS-managed key C(aws/rds); the replica inherits that key, with a warning.
      - Only for a same-Region replica; a cross-Region replica never inherits its source's key.
      - By default such a source is refused, so that the replica is not made under a key the account cannot
        govern (no key policy of its own, no grants to revoke).
    type: bool
    default: false
  db_instance_class:
    description:
      - Instance class of the replica. Defaults to the source's class.
      - Changing it on an existing replica restarts it (needs O(allow_reboot)).
    type: str
  db_subnet_group_name:
    description:
      - DB subnet group of the replica. Defaults to the source's (same VPC) for a same-Region replica.
      - Required for a cross-Region replica (a group of O(region)).
    type: str
  vpc_security_group_ids:
    description: The dedicated VPC security groups of the replica. They must be in the replica's VPC.
    type: list
    elements: str
    required: true
  db_parameter_group_name:
    description:
      - The replica's own DB parameter group. It must be of the source engine version's family and set
        C(require_secure_transport=1) (TLS required).
      - A new group on an existing replica takes effect at its next reboot; with O(allow_reboot=true) and
        O(apply=immediately) the module reboots it.
    type: str
    required: true
  publicly_accessible:
    description: Whether the replica has a public address (FSBP RDS.2).
    type: bool
    default: false
  multi_az:
    description: Run the replica with a standby in another Availability Zone.
    type: bool
    default: false
  deletion_protection:
    description: Refuse deletion of the replica (FSBP RDS.8).
    type: bool
    default: true
  copy_tags_to_snapshot:
    description: Copy the replica's tags to its snapshots (FSBP RDS.17).
    type: bool
    default: true
  auto_minor_version_upgrade:
    description: Apply minor engine upgrades in the maintenance window (FSBP RDS.13).
    type: bool
    default: true
  enable_iam_database_authentication:
    description: Allow IAM database authentication (FSBP RDS.10). Defaults to the source's setting.
    type: bool
  enable_cloudwatch_logs_exports:
    description:
      - Log types published to CloudWatch Logs (FSBP RDS.9). Defaults to V(audit), V(error), V(general), V(slowquery).
    type: list
    elements: str
  enable_performance_insights:
    description: Enable Performance Insights, encrypted with O(performance_insights_kms_key_id).
    type: bool
    default: true
  performance_insights_kms_key_id:
    description:
      - KMS key of Performance Insights. Defaults to the storage key (the source's).
      - AWS cannot change the key once Performance Insights is on.
    type: str
  performance_insights_retention_period:
    description: Days Performance Insights data is kept; V(7), a multiple of 31 up to V(713), or V(731).
    type: int
    default: 7
  monitoring_interval:
    description: Enhanced monitoring interval in seconds (FSBP RDS.6); V(0) turns it off.
    type: int
    default: 60
    choices: [0, 1, 5, 10, 15, 30, 60]
  monitoring_role_arn:
    description: IAM role that lets RDS publish enhanced monitoring metrics. Required when O(monitoring_interval) is not 0.
    type: str
  ca_certificate_identifier:
    description:
      - CA certificate of the replica's server certificate, for example V(rds-ca-rsa2048-g1). Defaults to the
        source's CA, so clients that trust the source trust the replica.
      - Changing it on an existing replica restarts it (needs O(allow_reboot)).
    type: str
  max_allocated_storage:
    description: Storage autoscaling ceiling in GiB.
    type: int
  apply:
    description:
      - When AWS applies the changes it can defer on an existing replica. V(maintenance-window) defers them to the
        next maintenance window; V(immediately) applies them now. Some changes always apply at once (see the plan's
        C(apply)).
    type: str
    choices: [immediately, maintenance-window]
    default: maintenance-window
  allow_reboot:
    description: Allow changes that restart the replica (instance class, CA, parameter group).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait, at most, for the replica to be available after a change (creation copies the data).
    type: int
    default: 7200
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Plan values describe the replica once its pending modifications apply; a change already pending is not planned again.
  - A cross-Region replica's data reaches it over the network between the Regions (billed data transfer); its
    replication lag is usually higher than a same-Region replica's.
  - Promote a replica (for example the disaster-recovery one) with M(cso.rds_hardening.rds_replica_promotion).
"""

EXAMPLES = r"""
- name: Show what creating the replica would do
  cso.rds_hardening.rds_hardened_replica:
    db_instance_identifier: cso-prod-db-replica
    source_db_instance_identifier: cso-prod-db
    vpc_security_group_ids: [sg-0123456789abcdef0]
    db_parameter_group_name: cso-mysql80-tls
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
  check_mode: true
  register: replica_plan

- name: Create (or converge) the hardened replica
  cso.rds_hardening.rds_hardened_replica:
    db_instance_identifier: cso-prod-db-replica
    source_db_instance_identifier: cso-prod-db
    kms_key_id: alias/cso-prod-rds   # asserts the source's key
    vpc_security_group_ids: [sg-0123456789abcdef0]
    db_parameter_group_name: cso-mysql80-tls
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
    apply: immediately
    tags:
      Environment: prod
      Role: read-replica

- name: Create (or converge) the disaster-recovery replica in eu-west-1 of the eu-west-2 primary
  cso.rds_hardening.rds_hardened_replica:
    region: eu-west-1
    db_instance_identifier: cso-prod-db-dr
    source_db_instance_identifier: arn:aws:rds:eu-west-2:123456789012:db:cso-prod-db
    kms_key_id: arn:aws:kms:eu-west-1:123456789012:alias/cso-prod-rds-dr   # a key of eu-west-1
    db_subnet_group_name: cso-db-private                                  # groups of eu-west-1
    vpc_security_group_ids: [sg-0fedcba9876543210]
    db_parameter_group_name: cso-mysql80-tls
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
    apply: immediately
    tags:
      Environment: prod
      Role: disaster-recovery
"""

RETURN = r"""
plan:
  description:
    - Every difference between the replica and the desired state, in the order the module applies them.
    - For a new replica, first the create item (C(what) says what the snapshot of the source does to it,
      C(impact=none); for a cross-Region replica also where the copy goes and under which key, and C(after) is the
      source's ARN), then every attribute the creation sets, with C(before=null).
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The attribute's option name, or the creation in words.
      type: str
      sample: "create read replica cso-prod-db-replica of cso-prod-db (RDS takes a DB snapshot of cso-prod-db ...)"
    impact:
      description: What clients notice, one of C(none), C(restart), C(replacement) (see rds_hardened_instance).
      type: str
      sample: none
    before:
      description: Its value now (after pending modifications), or null.
      type: raw
    after:
      description: The value the task wants.
      type: raw
    apply:
      description: When AWS applies it (C(immediately), C(maintenance-window), C(reboot), C(replacement)).
      type: str
    effect:
      description: The impact in words; null when nothing is noticed.
      type: str
    attribute:
      description: The attribute (C(read_replica_source_db_instance_identifier) for the creation).
      type: str
    current:
      description: Same as RV(plan[].before).
      type: raw
    desired:
      description: Same as RV(plan[].after).
      type: raw
pending_modified_values:
  description: Changes AWS will apply at the maintenance window (snake_case), plus a pending-reboot parameter group.
  returned: always
  type: dict
  sample: {"db_instance_class": "db.t3.large"}
instance:
  description: The replica as amazon.aws.rds_instance_info returns it (snake_case), tags as a dict.
  returned: when the replica exists (after creation in a real run)
  type: dict
  sample: {"db_instance_identifier": "cso-prod-db-replica", "read_replica_source_db_instance_identifier": "cso-prod-db"}
"""

try:
    from botocore.config import Config
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning
from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_region as regions
from ansible_collections.cso.rds_hardening.plugins.module_utils import replica_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import Clients
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import fail_on
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import validate_region
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_result import result_for
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_result import tag_changes
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_result import tags_entry

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True, aliases=["id"]),
    source_db_instance_identifier=dict(type="str", required=True),
    source_region=dict(type="str"),
    engine=dict(type="str", choices=list(spec.ENGINES), default="mysql"),
    kms_key_id=dict(type="str", no_log=False),
    allow_aws_managed_source_key=dict(type="bool", default=False),
    db_instance_class=dict(type="str"),
    db_subnet_group_name=dict(type="str"),
    vpc_security_group_ids=dict(type="list", elements="str", required=True),
    db_parameter_group_name=dict(type="str", required=True),
    publicly_accessible=dict(type="bool", default=False),
    multi_az=dict(type="bool", default=False),
    deletion_protection=dict(type="bool", default=True),
    copy_tags_to_snapshot=dict(type="bool", default=True),
    auto_minor_version_upgrade=dict(type="bool", default=True),
    enable_iam_database_authentication=dict(type="bool"),
    enable_cloudwatch_logs_exports=dict(type="list", elements="str"),
    enable_performance_insights=dict(type="bool", default=True),
    performance_insights_kms_key_id=dict(type="str", no_log=False),
    performance_insights_retention_period=dict(type="int", default=7),
    monitoring_interval=dict(type="int", default=60, choices=[0, 1, 5, 10, 15, 30, 60]),
    monitoring_role_arn=dict(type="str"),
    ca_certificate_identifier=dict(type="str"),
    max_allocated_storage=dict(type="int"),
    apply=dict(type="str", choices=["immediately", "maintenance-window"], default="maintenance-window"),
    allow_reboot=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=7200),
    tags=dict(type="dict", aliases=["resource_tags"]),
    purge_tags=dict(type="bool", default=True),
)

# Busy instances answer with these for a moment after a change; retry them too.
BUSY_ERRORS = ["InvalidDBInstanceState"]
# The waiter is not wrapped by AWSRetry: let botocore retry throttled polls more than its default 3 attempts.
WAITER_FRIENDLY_RETRIES = {"retries": {"mode": "standard", "max_attempts": 10}}


def create_new(module, rds, source, desired, cross_region):
    """Create the replica, then converge what creation could not set; returns the result."""
    params = module.params
    plan = spec.creation_plan(params, source, desired, module.region, cross_region)
    if module.check_mode:
        return result_for(None, plan, True)
    created = replica_aws.create(module, rds, spec.create_parameters(params, desired, source, cross_region))
    current = planning.current_state(created)
    rest = [entry for entry in planning.compute_plan(current, desired, planning.IMMEDIATELY)
            if entry["apply"] != planning.REPLACEMENT]
    replica_aws.converge(module, rds, created, current, desired, rest)
    return result_for(get_db_instance(rds, params["db_instance_identifier"]), plan, True)


def converge(module, rds, source, instance, desired, cross_region):
    """Converge an existing replica; the plan is computed once, here."""
    params = module.params
    current = planning.current_state(instance)
    plan = planning.compute_plan(current, desired, params["apply"])
    if tag_changes(instance, params["tags"], params["purge_tags"]):
        plan.append(tags_entry(instance, params["tags"]))
    in_place = [entry for entry in plan if entry["apply"] != planning.REPLACEMENT]
    refusals = spec.replacement_refusals(plan, source["DBInstanceIdentifier"], cross_region)
    refusals += planning.refusals(in_place, params["allow_reboot"], allow_replacement=True)
    if module.check_mode:
        for message in refusals:
            module.warn(f"A real run would fail: {message}")
        return result_for(instance, plan, bool(plan))
    fail_on(module, refusals)
    changed = replica_aws.converge(module, rds, instance, current, desired, in_place)
    return result_for(get_db_instance(rds, params["db_instance_identifier"]), plan, changed)


def source_client(module, clients, where):
    """The RDS client of the source's region (the task's own for a same-region replica)."""
    if where == module.region:
        return clients.rds
    return aws_client(module, "rds", region=where, extra_error_codes=BUSY_ERRORS, config=Config(**WAITER_FRIENDLY_RETRIES))


def run(module):
    params = module.params
    where = regions.source_region(params, module.region)
    cross_region = where != module.region
    if params["source_region"]:
        validate_region(module, params["source_region"], "source_region")
    fail_on(module, spec.input_errors(params, module.region))
    clients = Clients(module, extra_error_codes=BUSY_ERRORS, config=Config(**WAITER_FRIENDLY_RETRIES))
    source = get_db_instance(source_client(module, clients, where), regions.source_name(params))
    errors = spec.source_errors(source, params, where)
    if cross_region and source is not None:
        errors += regions.source_errors(source, params, module.region)
    fail_on(module, errors)
    instance = get_db_instance(clients.rds, params["db_instance_identifier"])
    fail_on(module, spec.existing_errors(instance, params, source, cross_region))
    if cross_region:
        keys = replica_aws.validate_cross_region_keys(module, clients.kms, params, instance)
    else:
        keys = replica_aws.validate_keys(module, clients.kms, params, source, instance)
    desired = spec.desired_state(params, source, keys)
    replica_aws.validate_against_aws(module, clients, source, instance, desired)
    if instance is None:
        return create_new(module, clients.rds, source, desired, cross_region)
    return converge(module, clients.rds, source, instance, desired, cross_region)


def main():
    module = AnsibleAWSModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[("monitoring_interval", v, ["monitoring_role_arn"]) for v in (1, 5, 10, 15, 30, 60)],
    )
    run_module(module, run, "converging the read replica")


if __name__ == "__main__":
    main()
