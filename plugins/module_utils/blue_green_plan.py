# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan of an RDS blue/green deployment task (pure: no AWS call), in the shape every module returns
(``common.plan_item``: what, impact, before, after, plus ``effect``), and the deletions AWS or the task refuses.

Impacts, with their AWS sources (see ``blue_green_spec`` for the pages):

* creating the deployment: ``none``. The green is a new read replica of the blue; the snapshot that seeds it suspends
  a single-AZ blue's I/O for about a second (``replica_spec.snapshot_note``), and nothing reaches the green.
* the switchover: ``brief-interruption``. Writes stop and every connection drops until the names are swapped,
  "typically under a minute", never longer than the switchover timeout (AWS rolls back then); clients reconnect to
  the same endpoint with no configuration change.
* deleting the deployment, turning deletion protection off: ``none`` (deleting a deployment doesn't affect the blue
  environment).
* deleting the old blue: ``data-loss``. The instance and its automated backups go; going back is no longer possible.
"""

from __future__ import annotations

from ansible_collections.cso.rds_hardening.plugins.module_utils.blue_green_spec import SWITCHED
from ansible_collections.cso.rds_hardening.plugins.module_utils.blue_green_spec import identifier_of
from ansible_collections.cso.rds_hardening.plugins.module_utils.blue_green_spec import production_of
from ansible_collections.cso.rds_hardening.plugins.module_utils.common import plan_item
from ansible_collections.cso.rds_hardening.plugins.module_utils.replica_spec import snapshot_note


def creation_entry(params, blue, settings):
    name, blue_name = params["blue_green_deployment_name"], blue["DBInstanceIdentifier"]
    effect = (f"{blue_name} keeps serving its clients: RDS creates the green instance <{blue_name}-green-...> as a read "
              f"replica of it with the settings shown ({snapshot_note(blue).replace('the replica', 'the green')}). The green "
              "is read-only until the switchover; nothing reaches it before then.")
    return plan_item(f"create blue/green deployment {name} of {blue_name}", "none", None, settings, effect=effect)


def switchover_entry(params, blue_summary, settings):
    name, production = params["blue_green_deployment_name"], params["db_instance_identifier"]
    timeout = params["switchover_timeout"]
    effect = (f"RDS stops writes on {production} and the green, drops every connection to both and refuses new ones "
              f"until the green has caught up and the names are swapped: typically under a minute (AWS), at most "
              f"switchover_timeout ({timeout} s), after which AWS rolls the switchover back and changes nothing. Then the "
              f"green answers as {production} at the same endpoint (clients reconnect, no configuration change) and the "
              f"old instance stays, read-only, as {production}-old<n> (n a number: -old1 the first time).")
    return plan_item(f"switch over blue/green deployment {name}: the green becomes {production}", "brief-interruption",
                     dict(blue_summary, db_instance_identifier=production), dict(settings, db_instance_identifier=production),
                     effect=effect)


def protection_entry(instance, role):
    return plan_item(f"deletion_protection of {role} {instance['DBInstanceIdentifier']}", "none", True, False,
                     effect=None)


def deletion_entry(deployment, delete_target):
    name, status = deployment["BlueGreenDeploymentName"], deployment.get("Status")
    green = identifier_of(deployment.get("Target"))
    if status == SWITCHED:
        effect = (f"Only the deployment's record goes; {identifier_of(deployment.get('Target'))} (production) and "
                  f"{identifier_of(deployment.get('Source'))} (the old instance) stay as they are.")
    elif delete_target:
        effect = f"The green instance {green} is deleted (it never served production); the blue is not affected."
    else:
        effect = (f"The green instance {green} stays as a standalone instance (for RDS for MySQL, replication from the "
                  "blue continues); the blue is not affected.")
    return plan_item(f"delete blue/green deployment {name}" + (" and its green instance" if delete_target else ""),
                     "none", status, None, effect=effect)


def old_blue_deletion_entry(old_blue, final_snapshot):
    name = old_blue["DBInstanceIdentifier"]
    kept = (f"a final snapshot {final_snapshot} is kept" if final_snapshot
            else "no final snapshot is taken (old_blue_final_snapshot_identifier is unset)")
    effect = (f"{name}, the production instance before the switchover, is deleted with its automated backups; {kept}. "
              "Going back to it is no longer possible.")
    return plan_item(f"delete old blue instance {name}", "data-loss", old_blue.get("DBInstanceStatus"), None,
                     effect=effect)


def deletion_refusals(params, deployment):
    name, status = deployment["BlueGreenDeploymentName"], deployment["Status"]
    if params["delete_target"] and status == SWITCHED:
        return [f"Blue/green deployment {name} is switched over: its former green is production now and AWS refuses "
                f"DeleteTarget. To delete the old instance {identifier_of(deployment['Source'])}, use "
                "delete_old_blue=true instead of delete_target."]
    if params["delete_old_blue"] and status != SWITCHED:
        return [f"Blue/green deployment {name} is {status}, not switched over: its blue "
                f"{identifier_of(deployment['Source'])} is still production and is never deleted. Remove "
                "delete_old_blue (delete_target=true deletes the green instead)."]
    old_blue = identifier_of(deployment["Source"])
    if params["delete_old_blue"] and old_blue in (params["db_instance_identifier"], production_of(deployment)):
        return [f"The deployment's source {old_blue} is the production instance; it is never deleted."]
    return []


def diff(plan):
    return {"before": {item["what"]: item["before"] for item in plan},
            "after": {item["what"]: item["after"] for item in plan}}
