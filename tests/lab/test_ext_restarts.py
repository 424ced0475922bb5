"""Contract: what AWS does around a restart, through boto3 (no data plane): ``rebooting`` for the
lab's outage, which modifications restart, ForceFailover, and the outage setting."""

import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
OUTAGE = 1.0


@pytest.fixture
def rds(lab):
    lab.reset()
    before = lab.set_outage()
    lab.set_outage(seconds=OUTAGE, failover_seconds=OUTAGE / 2)
    yield lab.boto3("rds")
    lab.set_outage(seconds=before["seconds"], failover_seconds=before["failover_seconds"])


def _instance(rds):
    return rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]


def _seconds_until_available(rds, started, timeout=20):
    while _instance(rds)["DBInstanceStatus"] != "available":
        assert time.monotonic() - started < timeout
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_reboot_is_rebooting_for_the_outage_then_available(rds):
    started = time.monotonic()
    answered = rds.reboot_db_instance(DBInstanceIdentifier=DB)["DBInstance"]
    assert answered["DBInstanceStatus"] == "rebooting"
    took = _seconds_until_available(rds, started)
    print(f"rebooting for {took:.2f} s with the outage set to {OUTAGE} s")
    assert OUTAGE <= took <= OUTAGE + 0.5


def test_a_second_reboot_during_the_outage_is_refused(rds):
    rds.reboot_db_instance(DBInstanceIdentifier=DB)
    with pytest.raises(ClientError) as refused:
        rds.reboot_db_instance(DBInstanceIdentifier=DB)
    assert refused.value.response["Error"]["Code"] == "InvalidDBInstanceState"


def test_force_failover_needs_multi_az_and_keeps_pending_reboot_parameters(rds):
    with pytest.raises(ClientError) as refused:
        rds.reboot_db_instance(DBInstanceIdentifier=DB, ForceFailover=True)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    rds.create_db_parameter_group(DBParameterGroupName="cso-mysql80", DBParameterGroupFamily="mysql8.0",
                                  Description="cso")
    rds.modify_db_instance(DBInstanceIdentifier=DB, MultiAZ=True, DBParameterGroupName="cso-mysql80",
                           ApplyImmediately=True)

    started = time.monotonic()
    rds.reboot_db_instance(DBInstanceIdentifier=DB, ForceFailover=True)
    took = _seconds_until_available(rds, started)
    print(f"failover: rebooting for {took:.2f} s with the failover outage set to {OUTAGE / 2} s")
    assert OUTAGE / 2 <= took <= OUTAGE / 2 + 0.5
    assert _instance(rds)["DBParameterGroups"][0]["ParameterApplyStatus"] == "pending-reboot"


@pytest.mark.parametrize(("change", "status"), [
    ({"DBInstanceClass": "db.t3.xlarge"}, "rebooting"),
    ({"CACertificateIdentifier": "rds-ca-rsa4096-g1"}, "rebooting"),
    ({"BackupRetentionPeriod": 0}, "rebooting"),
    ({"CACertificateIdentifier": "rds-ca-rsa4096-g1", "CertificateRotationRestart": False}, "available"),
    ({"EnableIAMDatabaseAuthentication": True}, "available"),
    ({"MultiAZ": True}, "available"),
    # no restart: a storage change is modifying, then storage-optimization (test_ext_storage_optimization.py)
    ({"AllocatedStorage": 200}, "modifying"),
])
def test_which_modifications_restart_when_applied_immediately(rds, change, status):
    answered = rds.modify_db_instance(DBInstanceIdentifier=DB, ApplyImmediately=True, **change)["DBInstance"][
        "DBInstanceStatus"]
    assert answered == status


def test_a_deferred_restart_happens_at_the_maintenance_window(lab, rds):
    rds.modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t3.xlarge")
    assert _instance(rds)["DBInstanceStatus"] == "available"
    lab.reach_maintenance_window(DB)
    assert _instance(rds)["DBInstanceStatus"] == "rebooting"


def test_a_parameter_group_alone_does_not_restart(rds):
    rds.create_db_parameter_group(DBParameterGroupName="cso-mysql80", DBParameterGroupFamily="mysql8.0",
                                  Description="cso")
    modified = rds.modify_db_instance(DBInstanceIdentifier=DB, DBParameterGroupName="cso-mysql80",
                                      ApplyImmediately=True)["DBInstance"]
    assert modified["DBInstanceStatus"] == "available"
    assert modified["DBParameterGroups"][0]["ParameterApplyStatus"] == "pending-reboot"


def test_the_outage_setting_is_validated(lab, rds):
    assert lab.set_outage() == {"seconds": OUTAGE, "failover_seconds": OUTAGE / 2}
    with pytest.raises(Exception):
        lab.set_outage(seconds=-1)
    assert lab.set_outage()["seconds"] == OUTAGE


def test_a_lab_reset_restores_the_default_outage(lab, rds):
    lab.set_outage(seconds=25, failover_seconds=15)
    lab.reset()
    assert lab.set_outage() == {"seconds": 3.0, "failover_seconds": 2.0}
