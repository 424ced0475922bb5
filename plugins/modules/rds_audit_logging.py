#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_audit_logging
short_description: Audit logging of an RDS for MySQL instance with the MariaDB Audit Plugin
version_added: 1.1.0
description:
  - RDS for MySQL has no database activity streams (they exist for Aurora, RDS for Oracle and RDS for SQL Server).
    Auditing there is the C(MARIADB_AUDIT_PLUGIN) option of an option group attached to the instance, with the
    C(audit) log published to CloudWatch Logs (log group C(/aws/rds/instance/<id>/audit)).
  - Ensures the option group O(option_group_name) (created for the instance's engine and major version when
    missing), the C(MARIADB_AUDIT_PLUGIN) option in it with the settings this task manages, the group attached
    to the instance, and C(audit) among the instance's CloudWatch Logs exports (the other log types stay).
  - No restart. AWS (RDS User Guide, "MariaDB Audit Plugin support for MySQL") says that after the option
    is added the instance needs no restart and auditing starts once the option group is active. Attaching an
    option group causes no outage (RDS API Reference, ModifyDBInstance C(OptionGroupName)). Every plan entry has
    impact C(none), except the removal below.
  - By default it logs C(CONNECT,QUERY_DDL,QUERY_DCL). C(QUERY), C(QUERY_DML) and C(QUERY_DML_NO_SELECT) write
    the text of data statements to the log, with their values (personal data, tokens, password hashes written by
    the applications), so the module warns when they are chosen. DCL text (C(CREATE USER ... IDENTIFIED BY),
    C(GRANT)) can hold passwords. Review what the engine writes before widening O(events) (see
    docs/phases.md, "Audit logging").
  - Every input is checked before the first change, against what AWS says the option offers
    (C(DescribeOptionGroupOptions)) - setting names, whether RDS lets them change, and their allowed values -
    and against the instance (engine, minimum version, the group's engine and major version).
  - With O(state=absent) the option is removed from the group and C(audit) from the exports. The group stays
    attached. AWS does not let the plugin's logging be turned off any other way, and it B(restarts) every instance
    that uses the group to stop auditing (RDS User Guide, "Removing the MariaDB Audit Plugin"). That plan entry
    has impact C(restart) and is refused unless O(allow_reboot=true).
  - Check mode returns the plan and makes no mutating call; C(--diff) shows the planned items before and after.
author:
  - CSO platform engineering (@cso-platform)
options:
  db_instance_identifier:
    description: The DB instance (engine mysql or mariadb).
    type: str
    required: true
  option_group_name:
    description:
      - The option group that carries the plugin. Created for the instance's engine and major version when it
        does not exist; an existing group must be of the same engine and major version.
      - The instance is moved onto it. A group shared by other instances changes their auditing too.
    type: str
    required: true
  option_group_description:
    description: Description of a new option group. Defaults to C(Audit logging of <db_instance_identifier>).
    type: str
  state:
    description: V(present) audits the instance; V(absent) removes the plugin option and the C(audit) export.
    type: str
    choices: [present, absent]
    default: present
  events:
    description:
      - C(SERVER_AUDIT_EVENTS), the activity logged. RDS accepts C(CONNECT), C(QUERY), C(QUERY_DDL),
        C(QUERY_DML), C(QUERY_DML_NO_SELECT) and C(QUERY_DCL) for MySQL (checked against AWS).
      - The default logs logins and disconnections (failed ones too), schema changes and grants, without the
        text of data statements.
    type: list
    elements: str
    default: [CONNECT, QUERY_DDL, QUERY_DCL]
  excluded_users:
    description:
      - C(SERVER_AUDIT_EXCL_USERS). RDS's own C(rdsadmin) checks the database every second; AWS advises leaving it
        out so the log does not fill with its queries.
      - An empty list leaves the setting as it is.
    type: list
    elements: str
    default: [rdsadmin]
  included_users:
    description:
      - C(SERVER_AUDIT_INCL_USERS). When set, only these users are logged. It takes precedence over
        O(excluded_users).
      - Not set, the setting is left as it is (AWS's default logs every user).
    type: list
    elements: str
  file_rotate_size:
    description: C(SERVER_AUDIT_FILE_ROTATE_SIZE), bytes after which the log file rotates. Not set, AWS's default.
    type: int
  file_rotations:
    description: C(SERVER_AUDIT_FILE_ROTATIONS), rotated files kept on the instance. Not set, AWS's default.
    type: int
  query_log_limit:
    description: C(SERVER_AUDIT_QUERY_LOG_LIMIT), bytes of statement text kept per record. Not set, AWS's default.
    type: int
  option_settings:
    description:
      - Other settings of the option by their AWS name, for example C(SERVER_AUDIT_LOGGING). Names the option lacks,
        settings RDS does not let you change and values outside the allowed ones are refused before any change.
    type: dict
    default: {}
  export_audit_log:
    description: Publish the C(audit) log to CloudWatch Logs (C(/aws/rds/instance/<id>/audit)).
    type: bool
    default: true
  apply:
    description:
      - When AWS applies the option group change and the instance's move onto the group. Neither restarts the
        database, so the default is V(immediately); V(maintenance-window) defers them.
      - Log exports always change at once.
    type: str
    choices: [immediately, maintenance-window]
    default: immediately
  allow_reboot:
    description: Allow the removal of the option (O(state=absent)), which restarts every instance using the group.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait, at most, for the instance after it is modified.
    type: int
    default: 1800
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - The module changes option groups and instances only; it never restarts the database.
  - AWS keeps the plugin's logging on while the option is in the group (C(SERVER_AUDIT_LOGGING) is always C(ON)).
"""

EXAMPLES = r"""
- name: Audit logins, schema changes and grants of the database (no restart)
  cso.rds_hardening.rds_audit_logging:
    db_instance_identifier: cso-prod-db
    option_group_name: cso-prod-mysql80-audit

- name: Show what auditing would change
  cso.rds_hardening.rds_audit_logging:
    db_instance_identifier: cso-prod-db
    option_group_name: cso-prod-mysql80-audit
    events: [CONNECT, QUERY_DDL, QUERY_DCL]
    excluded_users: [rdsadmin]
    query_log_limit: 2048
  check_mode: true
  register: audit_plan

- name: Stop auditing (the option leaves the group, audit leaves the log exports)
  cso.rds_hardening.rds_audit_logging:
    db_instance_identifier: cso-prod-db
    option_group_name: cso-prod-mysql80-audit
    state: absent
    allow_reboot: true   # AWS restarts the instances of the group to stop auditing
    apply: maintenance-window
"""

RETURN = r"""
plan:
  description:
    - Every change, in the order it is made. C(what) is C(option_group), C(MARIADB_AUDIT_PLUGIN settings),
      C(option_group_name) or C(enable_cloudwatch_logs_exports); C(impact) is C(none), except C(restart) for the
      removal of the option; C(apply) says when AWS applies it; C(effect) says who notices it (null for C(none)).
  returned: always
  type: list
  elements: dict
  sample:
    - what: option_group_name
      impact: none
      before: "default:mysql-8-0"
      after: cso-prod-mysql80-audit
      apply: immediately
      effect: null
settings:
  description: The plugin settings the task manages, as sent to AWS.
  returned: when state is present
  type: dict
  sample: {"SERVER_AUDIT_EVENTS": "CONNECT,QUERY_DDL,QUERY_DCL", "SERVER_AUDIT_EXCL_USERS": "rdsadmin"}
log_group:
  description: The CloudWatch Logs group RDS publishes the audit log to.
  returned: always
  type: str
  sample: /aws/rds/instance/cso-prod-db/audit
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.cso.rds_hardening.plugins.module_utils import audit_spec as spec
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import NOTHING_CHANGED
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import aws_client
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import fail_on
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import get_db_instance
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import run_module
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_applied
from ansible_collections.cso.rds_hardening.plugins.module_utils.instance_wait import wait_available

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True),
    option_group_name=dict(type="str", required=True),
    option_group_description=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    events=dict(type="list", elements="str", default=["CONNECT", "QUERY_DDL", "QUERY_DCL"]),
    excluded_users=dict(type="list", elements="str", default=["rdsadmin"]),
    included_users=dict(type="list", elements="str"),
    file_rotate_size=dict(type="int"),
    file_rotations=dict(type="int"),
    query_log_limit=dict(type="int"),
    option_settings=dict(type="dict", default={}),
    export_audit_log=dict(type="bool", default=True),
    apply=dict(type="str", choices=["immediately", "maintenance-window"], default="immediately"),
    allow_reboot=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=1800),
)
BUSY_ERRORS = ["InvalidDBInstanceState", "InvalidOptionGroupStateFault"]


def describe_group(rds, name):
    try:
        return rds.describe_option_groups(OptionGroupName=name, aws_retry=True)["OptionGroupsList"][0]
    except is_boto3_error_code("OptionGroupNotFoundFault"):
        return None


def describe_option(rds, engine, version):
    """The option as AWS describes it for the instance's engine and major version (None: not offered)."""
    major = spec.major_version(engine, version)
    try:
        options = rds.describe_option_group_options(EngineName=engine, MajorEngineVersion=major,
                                                    aws_retry=True)["OptionGroupOptions"]
    except is_boto3_error_code("InvalidParameterCombination"):
        return None
    return spec.find_option(options, engine, version)


def validate(module, rds, instance, group):
    """Every check against AWS, before the first change."""
    params = module.params
    name, engine, version = params["option_group_name"], instance["Engine"], instance["EngineVersion"]
    errors = []
    if group is not None and (group.get("EngineName") != engine
                              or group.get("MajorEngineVersion") != spec.major_version(engine, version)):
        errors.append(f"Option group {name} is for {group.get('EngineName')} {group.get('MajorEngineVersion')}; "
                      f"{params['db_instance_identifier']} runs {engine} {version}. Choose another option_group_name.")
    if params["state"] == "present":
        option = describe_option(rds, engine, version) if engine in spec.ENGINES else None
        errors += spec.option_errors(option, engine, version, spec.desired_settings(params))
    fail_on(module, errors, prefix=NOTHING_CHANGED)


def apply_group(module, rds, items, instance):
    params = module.params
    name, engine = params["option_group_name"], instance["Engine"]
    whats = {item["what"] for item in items}
    if "option_group" in whats:
        rds.create_option_group(
            OptionGroupName=name, EngineName=engine, MajorEngineVersion=spec.major_version(engine, instance["EngineVersion"]),
            OptionGroupDescription=params["option_group_description"] or f"Audit logging of {params['db_instance_identifier']}",
            aws_retry=True)
    if f"{spec.OPTION_NAME} settings" in whats:
        change = ({"OptionsToInclude": [spec.option_to_include(params)]} if params["state"] == "present"
                  else {"OptionsToRemove": [spec.OPTION_NAME]})
        rds.modify_option_group(OptionGroupName=name, ApplyImmediately=params["apply"] == "immediately",
                                aws_retry=True, **change)


def apply_instance(module, rds, items, instance):
    parameters = spec.instance_parameters(items, module.params["apply"])
    if not parameters:
        return
    identifier = instance["DBInstanceIdentifier"]
    if instance["DBInstanceStatus"] != "available":
        wait_available(module, rds, identifier)
    rds.modify_db_instance(DBInstanceIdentifier=identifier, aws_retry=True, **parameters)
    wait_applied(module, rds, identifier, {"ApplyImmediately": parameters["ApplyImmediately"]})


def wait_restarted(module, rds, items, instance):
    """A removal applied now restarts the instance: wait until it is back."""
    if any(item["impact"] == "restart" for item in items) and module.params["apply"] == "immediately":
        wait_available(module, rds, instance["DBInstanceIdentifier"])


def run(module):
    params = module.params
    fail_on(module, spec.input_errors(params), prefix=NOTHING_CHANGED)
    rds = aws_client(module, "rds", extra_error_codes=BUSY_ERRORS)
    identifier = params["db_instance_identifier"]
    instance = get_db_instance(rds, identifier)
    if instance is None:
        module.fail_json(msg=f"DB instance {identifier} does not exist; create it first (rds_hardened_instance).")
    group = describe_group(rds, params["option_group_name"])
    validate(module, rds, instance, group)
    if params["state"] == "present":
        for event in spec.sensitive_events(params["events"]):
            module.warn(f"events includes {event}: the audit log will hold the text of data statements with their "
                        "values (personal data, tokens); make sure the log group's readers may see them.")
    items = spec.plan(params, instance, group, params["apply"])
    refusals = spec.refusals(items, params["allow_reboot"])
    if module.check_mode:
        for message in refusals:
            module.warn(f"A real run would fail: {message}")
    else:
        fail_on(module, refusals, prefix=NOTHING_CHANGED)
    if items and not module.check_mode:
        steps = (apply_group, apply_instance) if params["state"] == "present" else (apply_instance, apply_group)
        for step in steps:
            step(module, rds, items, instance)
        wait_restarted(module, rds, items, instance)
    result = dict(changed=bool(items), plan=items, log_group=f"/aws/rds/instance/{identifier}/{spec.AUDIT_LOG_TYPE}")
    if params["state"] == "present":
        result["settings"] = spec.desired_settings(params)
    if module._diff:
        result["diff"] = spec.diff(items)
    return result


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run, "converging audit logging")


if __name__ == "__main__":
    main()
