#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_blue_green
short_description: Create, switch over and delete an RDS blue/green deployment of a MySQL or MariaDB instance
version_added: 1.2.0
description:
  - Manages one RDS blue/green deployment (C(CreateBlueGreenDeployment), C(SwitchoverBlueGreenDeployment),
    C(DeleteBlueGreenDeployment)) of the DB instance O(db_instance_identifier), the I(blue) (production) instance.
    amazon.aws has no module for it.
  - O(state=present) makes the deployment and waits until its I(green) instance is available. The green is a read
    replica of the blue with the O(target_engine_version), O(target_db_parameter_group_name), O(target_db_instance_class)
    and storage settings of the task. Creating it does not affect the blue's clients (plan impact V(none)); AWS takes
    a DB snapshot of the blue to seed it, which suspends a single-AZ blue's I/O for about a second.
  - O(state=switched_over) also switches over (first creating the deployment when there is none). RDS stops writes
    on both instances, drops every connection and refuses new ones until the green has caught up, then gives the
    green the blue's name and endpoint and renames the blue C(<db_instance_identifier>-old<n>). AWS says this
    typically takes under a minute; it never takes longer than O(switchover_timeout) (AWS rolls back then). Plan impact
    V(brief-interruption). Clients reconnect to the same endpoint; the old instance stays, read-only.
  - O(state=absent) deletes the deployment. Its green instance is deleted only with O(delete_target=true) (before the
    switchover), the old blue only with O(delete_old_blue=true) (after it); deleting the deployment alone affects no
    instance.
  - Every input is checked before the first mutating call, with a message that says what to do. The checks follow
    AWS's prerequisites and limitations for blue/green deployments. The blue must be C(available), have automated
    backups, and not have its master password managed by Secrets Manager or cross-Region read replicas. It must not
    already be in another deployment. The target engine version must be the blue's or one of its upgrade targets
    (never older). A major upgrade needs a parameter group of the new family, and is refused for a MySQL blue with a
    custom option group. The green's parameter group must exist, be of the right family and not turn the Event
    Scheduler on. The storage must follow AWS's rules for type, size, IOPS and throughput.
  - The module always sends the green's parameter group (the blue's when O(target_db_parameter_group_name) is unset),
    because AWS would otherwise give the green the engine's default group, without the blue's settings.
  - Idempotent per state. An existing deployment is never made again. A switched-over deployment asked for
    V(switched_over) again changes nothing. When no deployment of that name exists and the instance already has every
    target setting the task gives, nothing is created (the change is in production already).
  - In check mode the module reads AWS only and returns the exact plan; with C(--diff) the plan's before and after.
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description:
      - The production instance. Before the switchover that is the blue instance; after it, the former green, which
        RDS gave this name.
    type: str
    required: true
    aliases: [id]
  blue_green_deployment_name:
    description:
      - Name of the deployment (1-60 letters, digits and single hyphens, starting with a letter), unique in the
        account and region. The task finds the deployment by this name.
    type: str
    required: true
    aliases: [name]
  state:
    description:
      - V(present), the deployment exists and its green is available; V(switched_over), the green has become
        production; V(absent), the deployment is deleted.
    type: str
    choices: [present, switched_over, absent]
    default: present
  target_engine_version:
    description:
      - Engine version of the green. The blue's version or one of its upgrade targets (DescribeDBEngineVersions
        C(ValidUpgradeTarget)); never older. Unset, the blue's version.
    type: str
  target_db_parameter_group_name:
    description:
      - DB parameter group of the green, of the target engine version's family. Required for a major version upgrade.
        Unset, the blue's group. Its C(event_scheduler) must be off.
    type: str
  target_db_instance_class:
    description: Instance class of the green. Unset, the blue's class.
    type: str
  target_storage_type:
    description: Storage type of the green. Unset, the blue's. V(io1) and V(io2) need O(target_iops).
    type: str
    choices: [gp2, gp3, io1, io2]
  target_allocated_storage:
    description: Allocated storage of the green in GiB; at least the blue's (and 10 % more when it grows).
    type: int
  target_iops:
    description: Provisioned IOPS of the green (io1, io2, or gp3 from 400 GiB), within AWS's ranges and IOPS per GiB.
    type: int
  target_storage_throughput:
    description: Storage throughput of the green in MiB/s (gp3 from 400 GiB only).
    type: int
  switchover_timeout:
    description:
      - Seconds AWS may take for the switchover (C(SwitchoverTimeout), 30-3600). A switchover that takes longer is
        rolled back, with no change to either environment. It bounds how long clients can be cut off.
    type: int
    default: 300
  delete_target:
    description:
      - With O(state=absent) before the switchover, also delete the green instance (C(DeleteTarget)); its deletion
        protection is turned off first. AWS refuses it after the switchover (the green is production then).
      - Unset, the green instance stays as a standalone instance.
    type: bool
    default: false
  delete_old_blue:
    description:
      - With O(state=absent) after the switchover, also delete the old blue instance (C(<db_instance_identifier>-old<n>),
        the deployment's source), turning its deletion protection off first. Irreversible (plan impact V(data-loss)), since
        going back to it is no longer possible. Refused before the switchover (the blue is production then).
      - The old blue is deleted first, then the deployment, so an interrupted run resumes. Once the deployment is
        gone the module no longer knows the old instance; ask for it in the task that deletes the deployment.
    type: bool
    default: false
  old_blue_final_snapshot_identifier:
    description: Identifier of a final snapshot of the old blue, taken when O(delete_old_blue=true) deletes it. Unset, none.
    type: str
  wait:
    description:
      - Wait for the green to be available, the switchover to complete and deletions to finish. O(state=switched_over)
        needs it.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait at most for each step (creating a green copies the whole database).
    type: int
    default: 7200
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - The switchover renames instances, so each resource keeps its C(DbiResourceId) and the new production instance has
    another one than before. IAM policies and filters that name C(DbiResourceId) (C(rds-db:connect) resources, for
    example those of rds_iam_db_auth) need updating after the switchover.
  - Only MySQL and MariaDB instances; not Multi-AZ DB clusters, not Aurora.
"""

EXAMPLES = r"""
- name: Show what the deployment would do
  cso.rds_hardening.rds_blue_green:
    db_instance_identifier: cso-prod-db
    blue_green_deployment_name: cso-prod-db-m6g
    target_db_instance_class: db.m6g.large
    target_db_parameter_group_name: cso-mysql80-tls
  check_mode: true
  register: green_plan

- name: Make the green (no effect on production) and wait until it is available
  cso.rds_hardening.rds_blue_green:
    db_instance_identifier: cso-prod-db
    blue_green_deployment_name: cso-prod-db-m6g
    target_db_instance_class: db.m6g.large
    target_db_parameter_group_name: cso-mysql80-tls
    target_storage_type: io1
    target_allocated_storage: 400
    target_iops: 12000

- name: Switch over in the maintenance window (clients are cut off for typically under a minute)
  cso.rds_hardening.rds_blue_green:
    db_instance_identifier: cso-prod-db
    blue_green_deployment_name: cso-prod-db-m6g
    state: switched_over
    switchover_timeout: 120

- name: Delete the deployment and, once production has been checked, the old instance
  cso.rds_hardening.rds_blue_green:
    db_instance_identifier: cso-prod-db
    blue_green_deployment_name: cso-prod-db-m6g
    state: absent
    delete_old_blue: true
    old_blue_final_snapshot_identifier: cso-prod-db-before-m6g
"""

RETURN = r"""
plan:
  description:
    - What the task does, in order. C(what) is the step in words; C(impact) is V(none) (creating the deployment,
      deleting it, turning deletion protection off), V(brief-interruption) (the switchover) or V(data-loss) (deleting
      the old blue); C(before) and C(after) are the instance settings (creation, switchover) or the deployment's status;
      C(effect) says who notices what.
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The step.
      type: str
      sample: "switch over blue/green deployment cso-prod-db-m6g: the green becomes cso-prod-db"
    impact:
      description: What the database's clients notice.
      type: str
      sample: brief-interruption
    before:
      description: Production's settings before the switchover; the deployment's status before a deletion; null for a creation.
      type: raw
    after:
      description: The green's settings (creation, switchover); null for a deletion.
      type: raw
      sample: {"db_instance_class": "db.m6g.large", "engine_version": "8.0.42", "db_parameter_group_name": "cso-mysql80-tls"}
    effect:
      description: The impact in words.
      type: str
blue_green_deployment:
  description:
    - The deployment as DescribeBlueGreenDeployments returns it (snake_case) after the task, null when there is none.
      After the switchover C(source) is the old blue (C(...:db:<id>-old<n>)) and C(target) the production instance.
  returned: always
  type: dict
  sample: {"blue_green_deployment_identifier": "bgd-0123456789abcdef", "status": "AVAILABLE",
           "source": "arn:aws:rds:eu-west-2:123456789012:db:cso-prod-db",
           "target": "arn:aws:rds:eu-west-2:123456789012:db:cso-prod-db-green-abcdef"}
green_instance_identifier:
  description: The green instance before the switchover, the production instance after it; null without a deployment.
  returned: always
  type: str
  sample: cso-prod-db-green-abcdef
"""

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import blue_green_aws as aws
from ansible_collections.cso.rds_hardening.plugins.module_utils import blue_green_plan as planning
from ansible_collections.cso.rds_hardening.plugins.module_utils import blue_green_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import NOTHING_CHANGED
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import fail_on
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True, aliases=["id"]),
    blue_green_deployment_name=dict(type="str", required=True, aliases=["name"]),
    state=dict(type="str", choices=[spec.PRESENT, spec.SWITCHED_OVER, spec.ABSENT], default=spec.PRESENT),
    target_engine_version=dict(type="str"),
    target_db_parameter_group_name=dict(type="str"),
    target_db_instance_class=dict(type="str"),
    target_storage_type=dict(type="str", choices=["gp2", "gp3", "io1", "io2"]),
    target_allocated_storage=dict(type="int"),
    target_iops=dict(type="int"),
    target_storage_throughput=dict(type="int"),
    switchover_timeout=dict(type="int", default=300),
    delete_target=dict(type="bool", default=False),
    delete_old_blue=dict(type="bool", default=False),
    old_blue_final_snapshot_identifier=dict(type="str"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=7200),
)
# A deployment's instances answer with this for a moment after a change; retry it too.
BUSY_ERRORS = ["InvalidDBInstanceState"]


def result(plan, deployment, changed):
    green = spec.identifier_of((deployment or {}).get("Target"))
    return dict(changed=changed, plan=plan, diff=planning.diff(plan), green_instance_identifier=green,
                blue_green_deployment=camel_dict_to_snake_dict(deployment, ignore_list=["TagList"]) if deployment else None)


# --- a new deployment -------------------------------------------------------------------------------------------


def create(module, rds, blue, settings, switch):
    """Create the deployment (and switch it over when asked); the plan is computed here, once."""
    params = module.params
    plan = [planning.creation_entry(params, blue, settings)]
    if switch:
        plan.append(planning.switchover_entry(params, spec.green_of(blue), settings))
    if module.check_mode:
        return result(plan, None, True)
    deployment = aws.create(rds, spec.create_parameters(params, blue, settings))
    if params["wait"]:
        aws.wait_available(module, rds, deployment)
    if switch:
        aws.switch_over(rds, deployment, params["switchover_timeout"])
        aws.wait_switched_over(module, rds, deployment)
    return result(plan, aws.describe_deployment(rds, deployment), True)


# --- an existing deployment -------------------------------------------------------------------------------------


def refuse_drift(module, rds, deployment, blue):
    """A green that lacks a target setting of the task is never switched over nor taken as present."""
    params = module.params
    green = aws.instance(rds, spec.identifier_of(deployment["Target"]))
    if green is None or blue is None or deployment["Status"] not in (spec.PROVISIONING, spec.AVAILABLE):
        return green
    differences = spec.drift(green, spec.green_settings(params, blue), params)
    if differences:
        message = spec.drift_refusal(params, green, differences)
        if module.check_mode:
            module.warn(f"A real run would fail: {message}")
        else:
            fail_on(module, [message], prefix=NOTHING_CHANGED)
    return green


def switch_existing(module, rds, deployment, blue, green):
    params = module.params
    if blue is None or green is None:
        fail_on(module, [f"Blue/green deployment {deployment['BlueGreenDeploymentName']} lacks its "
                         f"{'blue' if blue is None else 'green'} instance; AWS cannot switch it over. Delete it "
                         "(state=absent) and create it again."], prefix=NOTHING_CHANGED)
    plan = [planning.switchover_entry(params, spec.green_of(blue), spec.green_of(green))]
    if module.check_mode:
        return result(plan, deployment, True)
    if deployment["Status"] == spec.PROVISIONING:
        aws.wait_available(module, rds, deployment)
    aws.switch_over(rds, deployment, params["switchover_timeout"])
    aws.wait_switched_over(module, rds, deployment)
    return result(plan, aws.describe_deployment(rds, deployment), True)


def converge_existing(module, rds, deployment, blue):
    params, status = module.params, deployment["Status"]
    refusal = spec.status_refusal(deployment, params["state"])
    fail_on(module, [refusal] if refusal else [], prefix=NOTHING_CHANGED)
    green = refuse_drift(module, rds, deployment, blue)
    if params["state"] == spec.SWITCHED_OVER and status in (spec.PROVISIONING, spec.AVAILABLE):
        return switch_existing(module, rds, deployment, blue, green)
    waited = not module.check_mode and params["wait"] and status in (spec.PROVISIONING, spec.SWITCHING)
    if waited and status == spec.PROVISIONING:
        aws.wait_available(module, rds, deployment)
    elif waited:
        aws.wait_switched_over(module, rds, deployment)
    return result([], aws.describe_deployment(rds, deployment) if waited else deployment, False)


# --- deletion ---------------------------------------------------------------------------------------------------


def deletion_plan(module, rds, deployment):
    """[(plan entry, step)] of the deletion: the old blue first (while the deployment still names it), then the record."""
    params, steps = module.params, []
    if params["delete_old_blue"]:
        old_blue = aws.instance(rds, spec.identifier_of(deployment["Source"]))
        if old_blue is not None and old_blue.get("DBInstanceStatus") != "deleting":
            if old_blue.get("DeletionProtection"):
                steps.append((planning.protection_entry(old_blue, "old blue"), ("unprotect", old_blue)))
            steps.append((planning.old_blue_deletion_entry(old_blue, params["old_blue_final_snapshot_identifier"]),
                          ("delete_instance", old_blue)))
        elif old_blue is not None:
            steps.append((None, ("wait_instance", old_blue)))
    if params["delete_target"]:
        green = aws.instance(rds, spec.identifier_of(deployment["Target"]))
        if green is not None and green.get("DeletionProtection"):
            steps.append((planning.protection_entry(green, "green"), ("unprotect", green)))
    if deployment["Status"] != spec.DELETING:
        steps.append((planning.deletion_entry(deployment, params["delete_target"]), ("delete", deployment)))
    return steps


def run_step(module, rds, step):
    action, subject = step
    params = module.params
    if action == "unprotect":
        aws.turn_off_deletion_protection(rds, subject["DBInstanceIdentifier"])
    elif action == "delete_instance":
        aws.delete_instance(rds, subject["DBInstanceIdentifier"], params["old_blue_final_snapshot_identifier"])
        if params["wait"]:
            aws.wait_instance_deleted(module, rds, subject["DBInstanceIdentifier"])
    elif action == "wait_instance" and params["wait"]:
        aws.wait_instance_deleted(module, rds, subject["DBInstanceIdentifier"])
    elif action == "delete":
        aws.delete(rds, subject, params["delete_target"])


def delete(module, rds, deployment):
    params = module.params
    if deployment["Status"] == spec.SWITCHING:
        if module.check_mode or not params["wait"]:
            fail_on(module, [f"Blue/green deployment {deployment['BlueGreenDeploymentName']} is switching over; run the "
                             "task again once the switchover has ended (or with wait=true)."], prefix=NOTHING_CHANGED)
        aws.wait_switched_over(module, rds, deployment)
        deployment = aws.describe_deployment(rds, deployment)
    fail_on(module, planning.deletion_refusals(params, deployment), prefix=NOTHING_CHANGED)
    steps = deletion_plan(module, rds, deployment)
    plan = [pair[0] for pair in steps if pair[0] is not None]
    if module.check_mode:
        return result(plan, deployment, bool(plan))
    for pair in steps:
        run_step(module, rds, pair[1])
    if params["wait"]:
        aws.wait_deleted(module, rds, deployment)
    return result(plan, None if params["wait"] else aws.describe_deployment(rds, deployment), bool(plan))


# --- the task ---------------------------------------------------------------------------------------------------


def run(module):
    params = module.params
    fail_on(module, spec.input_errors(params), prefix=NOTHING_CHANGED)
    rds = aws_client(module, "rds", extra_error_codes=BUSY_ERRORS)
    deployments = aws.all_deployments(rds)
    deployment = spec.find(deployments, params["blue_green_deployment_name"])
    fail_on(module, spec.ownership_errors(deployment, params), prefix=NOTHING_CHANGED)
    if params["state"] == spec.ABSENT:
        return delete(module, rds, deployment) if deployment else result([], None, False)
    blue = aws.instance(rds, params["db_instance_identifier"])
    if deployment is not None:
        return converge_existing(module, rds, deployment, blue)
    settings = aws.validate_new(module, rds, blue, deployments)
    if spec.already_deployed(blue, params, settings):
        return result([], None, False)
    return create(module, rds, blue, settings, switch=params["state"] == spec.SWITCHED_OVER)


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                              mutually_exclusive=[("delete_target", "delete_old_blue")])
    run_module(module, run, "managing the blue/green deployment")


if __name__ == "__main__":
    main()
