"""Lab helper of the keystone_db/cso_db scenarios: require TLS on cso-lab-db through the AWS API.

    PYTHONPATH=lab python extensions/molecule/keystone_db/require_tls.py on|off

``on``: a custom DB parameter group with require_secure_transport=1 is attached to the instance
(created if missing; a new group applies at reboot, as on RDS); ``off``: the instance goes back to
its default group. Waits until the data plane runs with the value. Test infrastructure only.
"""

import sys
import time

from csolab import dataplane, paths
from csolab.client import LabClient

INSTANCE = "cso-lab-db"
GROUP = "cso-lab-dbroles-require-tls"
SAVED_GROUP = paths.LAB_DIR / "dbroles-original-parameter-group"


def wait_for(value, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = (dataplane.status().get("instances") or {}).get(INSTANCE) or {}
        if instance.get("require_secure_transport") is value and instance.get("ready"):
            return
        time.sleep(1)
    raise SystemExit(f"{INSTANCE}: require_secure_transport did not become {value} within {timeout}s")


def main(action):
    rds = LabClient().boto3("rds")
    groups = {g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]}
    instance = rds.describe_db_instances(DBInstanceIdentifier=INSTANCE)["DBInstances"][0]
    current = instance["DBParameterGroups"][0]["DBParameterGroupName"]
    if action == "on":
        if current != GROUP:
            SAVED_GROUP.write_text(current)
        if GROUP not in groups:
            rds.create_db_parameter_group(DBParameterGroupName=GROUP, DBParameterGroupFamily="mysql8.0",
                                          Description="dbroles scenario: require_secure_transport")
        rds.modify_db_parameter_group(DBParameterGroupName=GROUP, Parameters=[{
            "ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
        rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, DBParameterGroupName=GROUP, ApplyImmediately=True)
    else:
        original = SAVED_GROUP.read_text().strip() if SAVED_GROUP.exists() else current
        rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, DBParameterGroupName=original, ApplyImmediately=True)
    rds.reboot_db_instance(DBInstanceIdentifier=INSTANCE)
    wait_for(action == "on")
    if action == "off" and GROUP in groups:
        rds.delete_db_parameter_group(DBParameterGroupName=GROUP)
    print(f"{INSTANCE}: require_secure_transport {'ON' if action == 'on' else 'OFF'}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("on", "off"):
        raise SystemExit(__doc__)
    main(sys.argv[1])
