#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_hardened_instance
short_description: Converge an RDS instance to a hardened spec, with a plan of what each change costs
version_added: 1.0.0
description:
  - Creates an RDS DB instance (MySQL 8.0, MariaDB or PostgreSQL) with hardened defaults, or converges an
    existing one to them.
  - Every hardened default is overridable and names the AWS Security Hub Foundational Security Best
    Practices (FSBP) control it meets.
  - For an existing instance the module computes a I(plan) first. Each entry has the attribute, its current
    and desired values, how AWS applies it (C(apply)) and what clients notice (C(impact)).
    C(apply) is one of C(immediately), C(maintenance-window), C(reboot) (takes effect only when the instance
    restarts) or C(replacement) (cannot be modified in place). C(impact) is one of C(none),
    C(brief-interruption), C(interruption) (clients are cut off until someone acts, for example a new master
    password), C(restart), C(data-loss) (something is deleted at once, for example older automated backups) or
    C(replacement); C(effect) says who is affected and how.
  - In check mode the module returns the plan and makes no mutating call, even for changes a real run would
    refuse (it warns about those). With C(--diff) it shows the planned attributes before and after.
  - Changes that restart the database are refused unless O(allow_reboot=true); changes that need a replacement
    (a new storage KMS key) are refused unless O(allow_replacement=true) and O(writes_stopped=true); a lower O(backup_retention_period) is
    refused unless O(allow_backup_retention_decrease=true).
  - A new storage KMS key is applied by re-encryption, which amazon.aws.rds_instance cannot do. The module takes a
    snapshot, copies it under the new key, restores it with the same configuration, renames the old instance to
    C(<identifier>-rollback-<stamp>) (deletion protection on) and gives the restored instance the original
    identifier, so the endpoint name stays the same. B(Stop writes before running it); anything written between the
    snapshot and the rename is lost (it stays only in the old, renamed instance).
  - An interrupted re-encryption resumes on the next run, from the tagged (C(cso:reencryption=in-progress)) snapshot,
    the encrypted copy and the staging instance it finds by their names, instead of taking a new snapshot.
  - All input is validated before the first mutating call (engine version, KMS keys, security groups and their VPC,
    parameter group family, retention, windows, CA certificate, monitoring role, storage type, size, IOPS and
    throughput, and whether AWS takes a storage change now).
  - Waits for the instance to be available after every change.
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description: The DB instance identifier.
    type: str
    required: true
    aliases: [id]
  engine:
    description: The database engine. It must match the engine of an existing instance.
    type: str
    choices: [mysql, mariadb, postgres]
    default: mysql
  engine_version:
    description:
      - The engine version. Required to create an instance.
      - On an existing instance it is a B(minimum). An instance on an older version is upgraded (a C(restart) change,
        needs O(allow_reboot)); an instance on this version or a newer one (for example after AWS applied an automatic
        minor version upgrade) is left as it is. The module never plans a downgrade.
      - Versions compare part by part as numbers (V(8.0.100) is newer than V(8.0.40)).
      - Validated against the versions RDS offers in the region (the version the instance will run).
    type: str
  db_instance_class:
    description:
      - The instance class, for example V(db.t3.2xlarge). Required to create an instance.
      - Changing it restarts the database (needs O(allow_reboot)).
    type: str
  db_subnet_group_name:
    description: DB subnet group of a new instance. Its VPC must hold O(vpc_security_group_ids).
    type: str
  port:
    description: Port of a new instance. Defaults to the engine's port.
    type: int
  master_username:
    description: Master user name of a new instance.
    type: str
  master_user_password:
    description:
      - The master password, only when O(manage_master_user_password=false). Used at creation, and when the
        task stops Secrets Manager from managing the password. Never logged.
    type: str
  manage_master_user_password:
    description:
      - Keep the master password in AWS Secrets Manager, encrypted with O(master_user_secret_kms_key_id).
      - When not set, a new instance gets V(true) and an existing instance keeps what it has.
      - B(Switching an existing instance) (either way) B(replaces the master password at once); every application,
        script or tool that logs in as the master user with the old password is refused until it uses the new one
        (impact C(interruption)). Set it on an existing instance only after moving those clients to the secret.
    type: bool
  master_user_secret_kms_key_id:
    description: KMS key of the master user secret. Defaults to O(kms_key_id).
    type: str
  kms_key_id:
    description:
      - Customer-managed KMS key (id, ARN or alias) that encrypts the storage (FSBP RDS.3).
      - It must exist, be enabled, be customer-managed and be in the instance's region.
      - The AWS-managed key an existing instance already uses (C(aws/rds)) is accepted with a warning, so hardening
        can proceed before the separate re-encryption change; any other AWS-managed key is refused.
      - On an existing instance under another key this is a C(replacement) (needs O(allow_replacement)).
    type: str
    required: true
  publicly_accessible:
    description: Whether the instance has a public address (FSBP RDS.2).
    type: bool
    default: false
  vpc_security_group_ids:
    description:
      - The (dedicated) VPC security groups of the instance. Required to create an instance.
      - They must exist and be in the DB subnet group's VPC.
    type: list
    elements: str
  multi_az:
    description: Run a standby in another Availability Zone (FSBP RDS.5).
    type: bool
    default: true
  deletion_protection:
    description: Refuse deletion of the instance (FSBP RDS.8).
    type: bool
    default: true
  backup_retention_period:
    description:
      - Days automated backups are kept, 7 to 35 (FSBP RDS.11 requires at least 7).
      - Lowering it on an existing instance deletes the automated backups older than the new period at once
        (impact C(data-loss)); it is refused unless O(allow_backup_retention_decrease=true).
    type: int
    default: 7
  preferred_backup_window:
    description: Daily backup window, V(hh24:mi-hh24:mi) in UTC, at least 30 minutes.
    type: str
  preferred_maintenance_window:
    description:
      - Weekly maintenance window, V(ddd:hh24:mi-ddd:hh24:mi) in UTC, at least 30 minutes.
      - It must not overlap O(preferred_backup_window).
    type: str
  copy_tags_to_snapshot:
    description: Copy the instance's tags to its snapshots (FSBP RDS.17).
    type: bool
    default: true
  auto_minor_version_upgrade:
    description: Apply minor engine upgrades in the maintenance window (FSBP RDS.13).
    type: bool
    default: true
  enable_iam_database_authentication:
    description: Allow IAM database authentication (FSBP RDS.10).
    type: bool
    default: true
  enable_cloudwatch_logs_exports:
    description:
      - Log types published to CloudWatch Logs (FSBP RDS.9).
      - Defaults to V(audit), V(error), V(general), V(slowquery) for MySQL and MariaDB and V(postgresql),
        V(upgrade) for PostgreSQL.
    type: list
    elements: str
  enable_performance_insights:
    description: Enable Performance Insights, encrypted with O(performance_insights_kms_key_id).
    type: bool
    default: true
  performance_insights_kms_key_id:
    description:
      - KMS key of Performance Insights. Defaults to O(kms_key_id).
      - AWS cannot change the key once Performance Insights is on; a different key is a C(replacement).
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
    description:
      - IAM role that lets RDS publish enhanced monitoring metrics. Required when O(monitoring_interval) is not 0.
    type: str
  ca_certificate_identifier:
    description:
      - CA certificate of the server certificate, for example V(rds-ca-rsa2048-g1). Must be one RDS offers.
      - The module warns when the instance's CA expires within 90 days.
      - Changing it restarts the database (impact C(restart), needs O(allow_reboot)), unless
        O(ca_certificate_rotation_restart=false).
    type: str
  ca_certificate_rotation_restart:
    description:
      - Sent as C(CertificateRotationRestart) with a change of O(ca_certificate_identifier).
      - V(true) (AWS's default) restarts the database once; it serves a certificate from the new CA after the restart.
      - V(false) replaces the server certificate without a restart (plan impact C(none)); open sessions go on and every
        new connection gets the new certificate at once. Only where the engine version supports it
        (C(SupportsCertificateRotationWithoutRestart) in C(DescribeDBEngineVersions)); elsewhere the module refuses
        before any change (AWS would keep serving the old certificate until the next restart).
      - Either way, clients that verify the server certificate need the new CA in their CA bundle first.
    type: bool
    default: true
  db_parameter_group_name:
    description:
      - DB parameter group. Its family must match the engine version.
      - A new group takes effect at the next reboot (C(apply=reboot)); with O(allow_reboot=true) and
        O(apply=immediately) the module reboots the instance.
    type: str
  option_group_name:
    description:
      - Option group of the instance. It must exist and be made for the engine and major version the instance runs.
      - Moving onto an option group causes no outage (impact C(none), applied as O(apply) says), except when it
        leaves the MariaDB Audit Plugin behind (the current group has C(MARIADB_AUDIT_PLUGIN), the new one does not).
        AWS then restarts the instance to stop auditing, so the change has impact C(restart) and needs
        O(allow_reboot).
      - Not set, the instance keeps its option group. cso.rds_hardening.rds_audit_logging manages the audit group
        itself.
    type: str
  storage_type:
    description:
      - Storage type. V(standard) is magnetic storage, which AWS keeps for backward compatibility only.
      - Changing it causes no outage (impact C(none)), except a move to or from V(standard), which begins with a brief
        outage (impact C(restart), needs O(allow_reboot)).
      - Like every storage change (O(allocated_storage), O(iops), O(storage_throughput)) it follows O(apply) and, once
        applied, puts the instance into C(storage-optimization) for minutes to more than a day. The instance stays
        available, but AWS takes no further storage change until the optimization has finished and six hours have
        passed. The module refuses a storage change while that holds (from the instance's status and its storage
        events of the last six hours), before any change, and says when to run again. The plan entry says so
        (RV(plan[].storage_optimization)).
      - Rules checked before any change (RDS User Guide, "Amazon RDS DB instance storage"; RDS API Reference,
        CreateDBInstance and ModifyDBInstance), for MySQL, MariaDB and PostgreSQL. V(gp2) and V(gp3) take 20 to
        65,536 GiB, V(io1) and V(io2) 100 to 65,536 GiB, V(standard) 5 to 3,072 GiB.
      - V(gp3) below 400 GiB has a fixed baseline of 3,000 IOPS and 125 MiB/s (no O(iops) or O(storage_throughput));
        from 400 GiB its baseline is 12,000 IOPS and 500 MiB/s, and O(iops) (12,000 to 64,000) and
        O(storage_throughput) (500 to 4,000, at most 0.25 MiB/s per IOPS) can be set.
      - V(io1) and V(io2) need O(iops), 1,000 to 256,000; V(io1) 0.5 to 50 IOPS per GiB, V(io2) 0.5 to 1,000.
    type: str
    choices: [gp2, gp3, io1, io2, standard]
    default: gp3
  allocated_storage:
    description:
      - Storage in GiB. Required to create an instance.
      - Storage can only grow, by at least 10 % at a time (AWS rounds a smaller increase up). When storage autoscaling
        is on, the ceiling (O(max_allocated_storage), or the instance's) must stay at least 10 % above it.
      - Growing V(gp3) storage to 400 GiB or more raises its IOPS and throughput to the 12,000 IOPS / 500 MiB/s
        baseline unless O(iops) / O(storage_throughput) say otherwise; the plan shows those entries too.
      - Not set, an existing instance keeps its size.
    type: int
  max_allocated_storage:
    description: Storage autoscaling ceiling in GiB.
    type: int
  iops:
    description:
      - Provisioned IOPS, for V(io1), V(io2), or V(gp3) of 400 GiB or more (see O(storage_type) for the ranges).
      - Required when moving to V(io1) or V(io2). Not set, the instance keeps its IOPS (a move between V(io1) and V(io2)
        too), or gets V(gp3)'s baseline.
      - Sent with the storage size, as ModifyDBInstance requires; refused for V(gp2), V(standard) and V(gp3) below
        400 GiB (whose IOPS AWS fixes; their reported baseline is accepted as a value that changes nothing).
    type: int
  storage_throughput:
    description:
      - Storage throughput in MiB/s, for V(gp3) of 400 GiB or more only (500 to 4,000, at most 0.25 MiB/s per IOPS).
      - Not set, the instance keeps its throughput, or gets the 500 MiB/s baseline when it becomes V(gp3) of 400 GiB or
        more.
    type: int
  wait_for_storage_optimization:
    description:
      - After a storage change applied now (O(apply=immediately)), wait until the instance has left
        C(storage-optimization) (polled every 15 s, for at most O(wait_timeout)), so that the task ends with the new
        storage fully in effect.
      - V(false) ends the task once the change is applied; the instance serves meanwhile.
      - The optimization can take more than 24 hours; raise O(wait_timeout) accordingly.
      - With O(apply=maintenance-window) there is nothing to wait for (the module warns).
    type: bool
    default: false
  apply:
    description:
      - When AWS applies the changes it can defer. V(maintenance-window) defers them to the next maintenance window
        (they show in RV(pending_modified_values)); V(immediately) applies them now.
      - Some changes always apply at once whatever this says (see the plan's C(apply)).
    type: str
    choices: [immediately, maintenance-window]
    default: maintenance-window
  allow_reboot:
    description: Allow changes that restart the database (instance class, engine version, CA, parameter group).
    type: bool
    default: false
  allow_replacement:
    description:
      - Allow the re-encryption under a new KMS key (snapshot, copy, restore, identifier swap), with downtime.
      - Stop writes to the database first.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds the module waits, at most, for the instance after each change (a creation, a modification applied
        immediately, a reboot; it polls every 5 s), and for each long step of a re-encryption (the snapshot, the copy
        under the new key, the restore; polled every 30 s). Large databases copy for hours.
      - When a step does not finish in time the module fails, AWS goes on, and running the task again resumes from
        what exists.
    type: int
    default: 14400
  writes_stopped:
    description:
      - The operator's confirmation that every service writing to the database is stopped and no client session is
        left. Required (with O(allow_replacement)) for a re-encryption, which snapshots the instance; anything
        written between the snapshot and the identifier swap is lost to the new instance.
    type: bool
    default: false
  allow_backup_retention_decrease:
    description:
      - Allow a O(backup_retention_period) lower than the instance's. AWS deletes the automated backups older than
        the new period at once, so point-in-time restore to before then is no longer possible.
      - Take a manual snapshot first if you may need an older restore point.
    type: bool
    default: false
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Plan values describe the instance once its pending modifications apply; a change already pending is not
    planned again.
  - Check mode reads AWS only; the plan it returns is what a real run would do.
"""

EXAMPLES = r"""
- name: Show what hardening the database would change, and what it would cost
  cso.rds_hardening.rds_hardened_instance:
    db_instance_identifier: cso-prod-db
    kms_key_id: alias/cso-prod-rds
    vpc_security_group_ids: [sg-0123456789abcdef0]
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
  check_mode: true
  register: hardening

- name: Apply the safe changes now, the rest at the maintenance window
  cso.rds_hardening.rds_hardened_instance:
    db_instance_identifier: cso-prod-db
    kms_key_id: alias/cso-prod-rds
    vpc_security_group_ids: [sg-0123456789abcdef0]
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
    backup_retention_period: 30
    preferred_backup_window: "02:00-03:00"
    preferred_maintenance_window: "sun:04:00-sun:05:00"
    apply: maintenance-window

- name: Create a hardened MySQL 8.0 instance
  cso.rds_hardening.rds_hardened_instance:
    db_instance_identifier: cso-dev-db
    engine: mysql
    engine_version: "8.0.42"
    db_instance_class: db.t3.2xlarge
    allocated_storage: 50
    max_allocated_storage: 1000
    db_subnet_group_name: cso-db-private
    vpc_security_group_ids: [sg-0123456789abcdef0]
    master_username: admin
    kms_key_id: alias/cso-dev-rds
    db_parameter_group_name: cso-mysql80
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
    tags:
      Environment: dev

- name: Move to provisioned IOPS (io1) now, and wait until AWS has optimized the storage
  cso.rds_hardening.rds_hardened_instance:
    db_instance_identifier: cso-prod-db
    kms_key_id: alias/cso-prod-rds
    vpc_security_group_ids: [sg-0123456789abcdef0]
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
    storage_type: io1
    allocated_storage: 400
    iops: 12000          # 30 IOPS per GiB: io1 takes 0.5 to 50
    apply: immediately
    wait_for_storage_optimization: true
    wait_timeout: 86400  # the optimization can take a day

- name: Re-encrypt under the new CMK (writes stopped first), keeping the endpoint name
  cso.rds_hardening.rds_hardened_instance:
    db_instance_identifier: cso-prod-db
    kms_key_id: alias/cso-prod-rds
    vpc_security_group_ids: [sg-0123456789abcdef0]
    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-enhanced-monitoring
    apply: immediately
    allow_replacement: true
    writes_stopped: true   # CSO and Keystone stopped, no client session left
"""

RETURN = r"""
plan:
  description:
    - Every difference between the instance and the desired state, in the order the module applies them.
    - For a new instance, every managed attribute with C(current=null).
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The option name of the attribute (the plan shape all modules of the collection share).
      type: str
      sample: kms_key_id
    before:
      description: Its value now (after pending modifications), or null.
      type: raw
    after:
      description: The value the task wants.
      type: raw
    attribute:
      description: Same as RV(plan[].what) (kept for existing readers).
      type: str
    current:
      description: Same as RV(plan[].before) (kept for existing readers).
      type: raw
    desired:
      description: Same as RV(plan[].after) (kept for existing readers).
      type: raw
    apply:
      description: When AWS applies it.
      type: str
      sample: replacement
    impact:
      description:
        - What clients notice, one of C(none), C(brief-interruption), C(interruption), C(restart), C(data-loss),
          C(replacement).
      type: str
      sample: none
    effect:
      description:
        - The impact in words (who is affected and how); null when nobody notices the change.
        - For a storage change, what the storage-optimization that follows blocks, and the IOPS and throughput
          the instance gets.
      type: str
      sample: Automated backups older than 7 days (the instance keeps 30 now) are deleted at once.
    storage_optimization:
      description:
        - V(true) when applying the entry puts the instance into C(storage-optimization) (a change of
          O(storage_type), O(allocated_storage), O(iops) or O(storage_throughput)). No further storage change is
          possible until the optimization has finished and six hours have passed.
      type: bool
      returned: on storage changes
      sample: true
  sample:
    - what: enable_iam_database_authentication
      before: false
      after: true
      apply: maintenance-window
      impact: none
      attribute: enable_iam_database_authentication
      current: false
      desired: true
      effect: null
reencryption:
  description:
    - Names used by the re-encryption (snapshot, encrypted copy, staging and rollback instances), and whether it
      resumed an interrupted one.
  returned: when the instance was re-encrypted
  type: dict
  sample:
    snapshot: cso-prod-db-pre-reencrypt-202611220400
    encrypted_snapshot: cso-prod-db-reencrypted-202611220400
    staging_instance: cso-prod-db-reencrypted
    rollback_instance: cso-prod-db-rollback-202611220400
    resumed: false
pending_modified_values:
  description: Changes AWS will apply at the maintenance window (snake_case), plus a pending-reboot parameter group.
  returned: always
  type: dict
  sample: {"multi_az": true}
instance:
  description: The DB instance as amazon.aws.rds_instance_info returns it (snake_case), tags as a dict.
  returned: when the instance exists (after creation in a real run)
  type: dict
  contains:
    db_instance_identifier:
      description: The identifier.
      type: str
    endpoint:
      description: Address and port.
      type: dict
    kms_key_id:
      description: The storage KMS key.
      type: str
    tags:
      description: The tags.
      type: dict
"""

try:
    from botocore.config import Config
except ImportError:
    pass  # handled by AnsibleAWSModule


from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.rds import ensure_tags
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_checks as checks
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_storage as storage
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import fail_on
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_reencrypt import reencrypt
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_result import result_for
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_result import tag_changes
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_result import tags_entry
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_reencrypt import staging_identifier
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import creation_errors
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import desired_state
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import input_errors
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_spec import window_errors
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_applied
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_available
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import USABLE_STATES
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_rebooted
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_storage_optimized
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_usable

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True, aliases=["id"]),
    engine=dict(type="str", choices=["mysql", "mariadb", "postgres"], default="mysql"),
    engine_version=dict(type="str"),
    db_instance_class=dict(type="str"),
    db_subnet_group_name=dict(type="str"),
    port=dict(type="int"),
    master_username=dict(type="str"),
    master_user_password=dict(type="str", no_log=True),
    manage_master_user_password=dict(type="bool", no_log=False),
    master_user_secret_kms_key_id=dict(type="str", no_log=False),
    kms_key_id=dict(type="str", required=True, no_log=False),
    publicly_accessible=dict(type="bool", default=False),
    vpc_security_group_ids=dict(type="list", elements="str"),
    multi_az=dict(type="bool", default=True),
    deletion_protection=dict(type="bool", default=True),
    backup_retention_period=dict(type="int", default=7),
    preferred_backup_window=dict(type="str"),
    preferred_maintenance_window=dict(type="str"),
    copy_tags_to_snapshot=dict(type="bool", default=True),
    auto_minor_version_upgrade=dict(type="bool", default=True),
    enable_iam_database_authentication=dict(type="bool", default=True),
    enable_cloudwatch_logs_exports=dict(type="list", elements="str"),
    enable_performance_insights=dict(type="bool", default=True),
    performance_insights_kms_key_id=dict(type="str", no_log=False),
    performance_insights_retention_period=dict(type="int", default=7),
    monitoring_interval=dict(type="int", default=60, choices=[0, 1, 5, 10, 15, 30, 60]),
    monitoring_role_arn=dict(type="str"),
    ca_certificate_identifier=dict(type="str"),
    ca_certificate_rotation_restart=dict(type="bool", default=True),
    db_parameter_group_name=dict(type="str"),
    option_group_name=dict(type="str"),
    storage_type=dict(type="str", choices=["gp2", "gp3", "io1", "io2", "standard"], default="gp3"),
    allocated_storage=dict(type="int"),
    max_allocated_storage=dict(type="int"),
    iops=dict(type="int"),
    storage_throughput=dict(type="int"),
    apply=dict(type="str", choices=["immediately", "maintenance-window"], default="maintenance-window"),
    allow_reboot=dict(type="bool", default=False),
    allow_replacement=dict(type="bool", default=False),
    allow_backup_retention_decrease=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=14400),
    wait_for_storage_optimization=dict(type="bool", default=False),
    writes_stopped=dict(type="bool", default=False),
    tags=dict(type="dict", aliases=["resource_tags"]),
    purge_tags=dict(type="bool", default=True),
)

# Busy instances and snapshots answer with these for a moment after a change; retry them too.
BUSY_ERRORS = ["InvalidDBInstanceState", "InvalidDBSnapshotState", "InvalidDBSecurityGroupState"]
# The boto3 waiters are not wrapped by AWSRetry: let botocore itself retry throttled polls a few more
# times than its default 3 attempts. A task's aws_config still overrides this.
WAITER_FRIENDLY_RETRIES = {"retries": {"mode": "standard", "max_attempts": 10}}


def validate_against_aws(module, clients, instance, desired):
    """Every check that reads AWS; fails before anything is changed."""
    params = module.params
    rds = clients["rds"]
    if instance and instance["Engine"] != params["engine"]:
        module.fail_json(
            msg=f"Instance {params['db_instance_identifier']} runs {instance['Engine']}, not {params['engine']}; set engine accordingly."
        )
    # the version the instance will run: the configured one is a minimum, a newer running one stays
    running = planning.current_state(instance)["engine_version"] if instance else None
    version = desired["engine_version"] if planning.engine_upgrade_needed(running, desired["engine_version"]) else running
    engine_version = checks.describe_engine_version(module, rds, params["engine"], version)
    family = engine_version["DBParameterGroupFamily"]
    if instance:
        current_ca = planning.current_state(instance)["ca_certificate_identifier"]
        checks.validate_rotation_without_restart(module, engine_version, current_ca, desired["ca_certificate_identifier"])
    if desired["db_parameter_group_name"]:
        checks.validate_parameter_group(module, rds, desired["db_parameter_group_name"], family)
    if desired["option_group_name"]:
        checks.validate_option_group(module, rds, desired["option_group_name"], params["engine"], engine_version["EngineVersion"])
    if desired["vpc_security_group_ids"]:
        vpc_id = (
            instance["DBSubnetGroup"]["VpcId"]
            if instance
            else checks.subnet_group_vpc(module, rds, params["db_subnet_group_name"])
        )
        checks.validate_security_groups(module, clients["ec2"], desired["vpc_security_group_ids"], vpc_id)
    if desired["ca_certificate_identifier"]:
        checks.validate_ca(module, rds, desired["ca_certificate_identifier"])
    if instance:
        checks.warn_if_ca_expires(module, rds, instance, desired["ca_certificate_identifier"])
    if desired["monitoring_role_arn"]:
        checks.validate_monitoring_role(module, clients["iam"], desired["monitoring_role_arn"])


def validate_existing(module, instance, current, desired):
    """Checks that need the current state: AWS's storage rules (storage only grows, IOPS and throughput for the
    storage type and size), windows do not overlap once combined."""
    errors = storage.errors(current, desired)
    backup = desired["preferred_backup_window"] or current["preferred_backup_window"]
    maintenance = desired["preferred_maintenance_window"] or current["preferred_maintenance_window"]
    if desired["preferred_backup_window"] or desired["preferred_maintenance_window"]:
        errors += window_errors(backup, maintenance)
    if (
        desired["manage_master_user_password"] is False
        and current["manage_master_user_password"]
        and not module.params["master_user_password"]
    ):
        errors.append(
            "manage_master_user_password=false on an instance whose password Secrets Manager manages needs master_user_password."
        )
    fail_on(module, errors)


def describe(module, rds, identifier):
    return get_db_instance(rds, identifier)


def modify(module, rds, identifier, parameters):
    rds.modify_db_instance(DBInstanceIdentifier=identifier, aws_retry=True, **parameters)
    wait_applied(module, rds, identifier, parameters)
    storage_change = any(name in parameters for name in ("StorageType", "AllocatedStorage", "Iops", "StorageThroughput"))
    if storage_change and parameters.get("ApplyImmediately") and module.params.get("wait_for_storage_optimization"):
        wait_storage_optimized(module, rds, identifier, parameters)


def reboot_if_pending(module, rds, instance):
    """Reboot to apply a pending-reboot parameter group, when the task allows it and wants changes now."""
    params = module.params
    pending_groups = [
        g for g in instance.get("DBParameterGroups") or [] if g.get("ParameterApplyStatus") == "pending-reboot"
    ]
    if not pending_groups:
        return False
    if not (params["allow_reboot"] and params["apply"] == planning.IMMEDIATELY):
        module.warn(
            f"Parameter group {pending_groups[0]['DBParameterGroupName']} is pending-reboot on {instance['DBInstanceIdentifier']}: "
            "it takes effect at the next reboot (run with allow_reboot=true and apply=immediately to reboot now)."
        )
        return False
    rds.reboot_db_instance(DBInstanceIdentifier=instance["DBInstanceIdentifier"], aws_retry=True)
    wait_rebooted(module, rds, instance["DBInstanceIdentifier"])
    return True


def converge_existing(module, rds, instance, current, desired, plan):
    """Apply the in-place part of ``plan`` (computed from ``current``); returns whether anything changed."""
    params = module.params
    parameters = planning.modify_parameters(plan, current, desired)
    if "ManageMasterUserPassword" in parameters and not parameters["ManageMasterUserPassword"]:
        parameters["MasterUserPassword"] = params["master_user_password"]
    changed = False
    if parameters:
        if instance["DBInstanceStatus"] not in USABLE_STATES:
            wait_usable(module, rds, instance["DBInstanceIdentifier"])
        parameters["ApplyImmediately"] = params["apply"] == planning.IMMEDIATELY
        modify(module, rds, instance["DBInstanceIdentifier"], parameters)
        changed = True
    existing_tags = boto3_tag_list_to_ansible_dict(instance.get("TagList", []))
    changed |= ensure_tags(rds, module, instance["DBInstanceArn"], existing_tags, params["tags"], params["purge_tags"])
    refreshed = describe(module, rds, instance["DBInstanceIdentifier"])
    changed |= reboot_if_pending(module, rds, refreshed)
    return changed


def create(module, rds, desired):
    params = module.params
    parameters = planning.create_parameters(params, desired)
    if params["tags"]:
        parameters["Tags"] = [{"Key": key, "Value": value} for key, value in params["tags"].items()]
    rds.create_db_instance(aws_retry=True, **parameters)
    wait_available(module, rds, params["db_instance_identifier"])


def fail_if_reencryption_interrupted(module, rds):
    staging = staging_identifier(module.params["db_instance_identifier"])
    if describe(module, rds, staging):
        module.fail_json(
            msg=f"Instance {module.params['db_instance_identifier']} is missing but the re-encryption staging instance {staging} "
            f"exists: an earlier re-encryption was interrupted. Rename {staging} to {module.params['db_instance_identifier']} "
            "(or the rollback instance back) before running this task again."
        )


def create_new(module, rds, desired):
    """Create the instance; returns the result (the creation plan)."""
    desired = storage.with_target(None, desired)
    plan = planning.creation_plan(desired)
    if module.check_mode:
        return result_for(None, plan, True)
    identifier = module.params["db_instance_identifier"]
    create(module, rds, desired)
    # Whatever creation could not set: the created instance's own plan, computed once.
    created = describe(module, rds, identifier)
    current = planning.current_state(created)
    converge_existing(module, rds, created, current, desired,
                      planning.compute_plan(current, desired, module.params["apply"]))
    return result_for(describe(module, rds, identifier), plan, True)


def storage_refusals(module, rds, instance, current, plan):
    """A storage change AWS would refuse now (storage-optimization, or within six hours of the last one)."""
    if not storage.optimizing_entries(plan):
        return []
    if module.params["wait_for_storage_optimization"] and module.params["apply"] != planning.IMMEDIATELY:
        module.warn("wait_for_storage_optimization has nothing to wait for with apply=maintenance-window: the storage "
                    "change and its storage-optimization happen in the next maintenance window.")
    refusal = checks.storage_change_refusal(rds, instance, current)
    return [refusal] if refusal else []


def converge(module, rds, instance, desired):
    """Converge an existing instance; returns the result. The plan is computed once, here."""
    params = module.params
    current = planning.current_state(instance)
    if planning.differs("option_group_name", current["option_group_name"], desired["option_group_name"]):
        current["option_group_drops_audit_plugin"] = checks.drops_audit_plugin(
            rds, current["option_group_name"], desired["option_group_name"])
    validate_existing(module, instance, current, desired)
    desired = storage.with_target(current, desired)
    plan = planning.compute_plan(current, desired, params["apply"])
    if tag_changes(instance, params["tags"], params["purge_tags"]):
        plan.append(tags_entry(instance, params["tags"]))
    refusals = planning.refusals(
        plan,
        params["allow_reboot"],
        params["allow_replacement"],
        params["allow_backup_retention_decrease"],
        writes_stopped=params["writes_stopped"],
    )
    refusals += storage_refusals(module, rds, instance, current, plan)
    if module.check_mode:
        # The plan is what the operator wants to see, even the parts a real run would refuse.
        for message in refusals:
            module.warn(f"A real run would fail: {message}")
        return result_for(instance, plan, bool(plan))
    fail_on(module, refusals)

    extra = {}
    changed = False
    if planning.needs_replacement(plan):
        extra["reencryption"] = reencrypt(module, rds, instance, desired)
        instance = describe(module, rds, params["db_instance_identifier"])
        changed = True
        # A new instance took the identifier: what is left to change is that instance's own plan.
        current = planning.current_state(instance)
        in_place = planning.compute_plan(current, desired, params["apply"])
    else:
        in_place = plan
    changed |= converge_existing(module, rds, instance, current, desired, in_place)
    return result_for(describe(module, rds, params["db_instance_identifier"]), plan, changed, extra)


def run(module):
    params = module.params
    fail_on(module, input_errors(params))
    clients = {
        name: aws_client(module, name, extra_error_codes=BUSY_ERRORS, config=Config(**WAITER_FRIENDLY_RETRIES))
        for name in ("rds", "kms", "ec2", "iam")
    }
    instance = describe(module, clients["rds"], params["db_instance_identifier"])
    if instance is None and params["manage_master_user_password"] is None:
        params["manage_master_user_password"] = True  # the hardened default of a new instance
    if instance is None:
        fail_on(module, creation_errors(params))
        fail_if_reencryption_interrupted(module, clients["rds"])
    desired = desired_state(params, checks.validate_keys(module, clients["kms"], params, module.region, instance))
    if instance is None:
        fail_on(module, storage.errors(None, desired))
    validate_against_aws(module, clients, instance, desired)
    if instance is None:
        return create_new(module, clients["rds"], desired)
    return converge(module, clients["rds"], instance, desired)


def main():
    module = AnsibleAWSModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[("monitoring_interval", v, ["monitoring_role_arn"]) for v in (1, 5, 10, 15, 30, 60)],
    )
    run_module(module, run, "converging the DB instance")


if __name__ == "__main__":
    main()
