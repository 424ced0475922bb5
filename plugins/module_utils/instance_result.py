# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the DB instance modules (rds_hardened_instance, rds_hardened_replica) return, and their tag plan entry.

Pure: no AWS call. The result holds the plan (``instance_plan``'s shape), its ``--diff``, the pending
modifications and the instance as amazon.aws.rds_instance_info returns it (snake_case, tags as a dict).
"""

from __future__ import annotations

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_plan as planning


def tag_changes(instance, tags, purge_tags):
    """Whether ``tags`` (None: not managed) differ from the instance's."""
    if tags is None:
        return False
    to_add, to_remove = compare_aws_tags(boto3_tag_list_to_ansible_dict(instance.get("TagList", [])), tags, purge_tags)
    return bool(to_add or to_remove)


def tags_entry(instance, tags):
    return planning.entry("tags", boto3_tag_list_to_ansible_dict(instance.get("TagList", [])), tags,
                          planning.IMMEDIATELY, "none")


def pending_of(instance):
    """Pending modifications (snake_case), plus a parameter group waiting for a reboot."""
    pending = camel_dict_to_snake_dict(instance.get("PendingModifiedValues") or {})
    for group in instance.get("DBParameterGroups") or []:
        if group.get("ParameterApplyStatus") == "pending-reboot":
            pending["db_parameter_group_name"] = f"{group['DBParameterGroupName']} (pending-reboot)"
    return pending


def result_for(instance, plan, changed, extra=None):
    result = dict(changed=changed, plan=plan, diff=planning.diff(plan), pending_modified_values={})
    if instance:
        result["pending_modified_values"] = pending_of(instance)
        result["instance"] = camel_dict_to_snake_dict(instance, ignore_list=["TagList"])
        result["instance"]["tags"] = boto3_tag_list_to_ansible_dict(result["instance"].pop("tag_list", []))
    result.update(extra or {})
    return result
