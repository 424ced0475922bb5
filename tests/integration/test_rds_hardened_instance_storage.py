"""cso.rds_hardening.rds_hardened_instance's storage against the lab (AWS API only): a move to provisioned IOPS,
the second run without a call, the refusal of the next storage change while AWS optimizes the storage (and within
the six hours after it), AWS's IOPS rules before any write, and the wait for the storage-optimization.

The task keeps everything else of the seeded instance as it is (its key, security group, settings), so the plans
hold only what the storage options change."""

import json

import pytest

pytestmark = pytest.mark.lab

DB = "cso-lab-db"  # seeded: gp3, 50 GiB, autoscaling up to 1000 GiB


@pytest.fixture
def keep(aws_lab):
    """Task arguments that keep the seeded instance as it is, and the lab's storage periods set short."""
    aws_lab.set_storage_optimization(modifying_seconds=0.3, optimization_seconds=2.0, cooldown_seconds=3.0)
    instance = _instance(aws_lab)
    return {
        "db_instance_identifier": DB,
        "kms_key_id": instance["KmsKeyId"],  # the AWS-managed key it uses: kept, with a warning
        "vpc_security_group_ids": [group["VpcSecurityGroupId"] for group in instance["VpcSecurityGroups"]],
        "publicly_accessible": False, "multi_az": False, "deletion_protection": instance.get("DeletionProtection", False),
        "copy_tags_to_snapshot": instance.get("CopyTagsToSnapshot", False),
        "auto_minor_version_upgrade": instance.get("AutoMinorVersionUpgrade", True),
        "enable_iam_database_authentication": False, "enable_cloudwatch_logs_exports": [],
        "enable_performance_insights": False, "monitoring_interval": 0,
        "storage_type": instance["StorageType"], "apply": "immediately",
    }


def _playbook(args, name="Storage"):
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: {name}
      cso.rds_hardening.rds_hardened_instance: {json.dumps(args)}
      register: out
"""


def _ok(run, name="Storage"):
    results = [r for r in run.results() if r["_task"] == name]
    assert run.returncode == 0, f"{results[-1].get('msg') if results else None} {run}"
    return results[-1]


def _instance(lab, identifier=DB):
    return lab.boto3("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _made(lab):
    return [call["action"] for call in lab.mutating_calls()]


def test_moving_to_provisioned_iops_then_nothing_then_the_next_storage_change_is_refused(aws_lab, keep, run_playbook):
    _ok(run_playbook(_playbook(keep)))  # whatever else differs from the task is converged first
    aws_lab.clear_calls()

    moved = _ok(run_playbook(_playbook(dict(keep, storage_type="io1", allocated_storage=100, iops=3000)), diff=True))

    # gp3 below 400 GiB reports its 3,000 IOPS baseline: iops 3000 is no change, but is sent with the size
    assert [(e["what"], e["before"], e["after"], e["impact"], e["storage_optimization"]) for e in moved["plan"]] == [
        ("storage_type", "gp3", "io1", "none", True), ("allocated_storage", 50, 100, "none", True)]
    assert "Result: io1 with 3,000 provisioned IOPS." in moved["plan"][0]["effect"]
    assert _made(aws_lab) == ["ModifyDBInstance"]
    instance = _instance(aws_lab)
    assert (instance["StorageType"], instance["AllocatedStorage"], instance["Iops"]) == ("io1", 100, 3000)

    aws_lab.clear_calls()
    again = _ok(run_playbook(_playbook(dict(keep, storage_type="io1", allocated_storage=100, iops=3000))))
    assert again["changed"] is False and again["plan"] == []
    assert _made(aws_lab) == []

    aws_lab.clear_calls()
    refused = run_playbook(_playbook(dict(keep, storage_type="io1", allocated_storage=200, iops=3000)))
    assert refused.returncode != 0
    message = refused.result("Storage")["msg"]
    # storage-optimization (2 s here) or, once over, the six hours since the change (the events' real dates)
    assert ("is in storage-optimization after its last storage change" in message
            or f"The last storage change of {DB} was at" in message), message
    assert "Run the task again" in message and message.endswith("Nothing was changed.")
    assert _made(aws_lab) == []
    assert _instance(aws_lab)["AllocatedStorage"] == 100

    aws_lab.clear_calls()
    planned = _ok(run_playbook(_playbook(dict(keep, storage_type="io1", allocated_storage=200, iops=3000)), check=True))
    assert [entry["what"] for entry in planned["plan"]] == ["allocated_storage"]
    assert any(warning.startswith("A real run would fail:") for warning in planned.get("warnings", []))
    assert _made(aws_lab) == []


def test_an_iops_ratio_aws_refuses_fails_before_any_write(aws_lab, keep, run_playbook):
    aws_lab.clear_calls()
    run = run_playbook(_playbook(dict(keep, storage_type="io1", allocated_storage=100, iops=6000)))
    assert run.returncode != 0
    assert run.result("Storage")["msg"] == ("iops 6,000 for 100 GiB of io1 is 60 IOPS per GiB; AWS allows 0.5 to 50. "
                                            "Use 1,000-5,000 IOPS, or change allocated_storage.")
    assert _made(aws_lab) == []
    assert _instance(aws_lab)["StorageType"] == "gp3"


def test_wait_for_storage_optimization_ends_with_the_storage_optimized(aws_lab, keep, run_playbook):
    _ok(run_playbook(_playbook(keep)))
    aws_lab.clear_calls()

    result = _ok(run_playbook(_playbook(dict(keep, allocated_storage=500, wait_for_storage_optimization=True))))

    assert [entry["what"] for entry in result["plan"]] == ["allocated_storage", "iops", "storage_throughput"]
    assert result["instance"]["db_instance_status"] == "available"  # the task's own last answer
    instance = _instance(aws_lab)
    assert (instance["DBInstanceStatus"], instance["AllocatedStorage"], instance["Iops"],
            instance["StorageThroughput"]) == ("available", 500, 12000, 500)
    assert _made(aws_lab) == ["ModifyDBInstance"]
