"""playbooks/dr_drill.yml on the lab's data plane (``--limit`` to the database, the SQL from the controller):
a temporary cross-Region replica really replicates from the primary's MariaDB, is promoted, verified over TLS
and deleted.

The DR Region's key, security group and TLS parameter group are made here through boto3 with the names
phase3.yml's step dr_replica gives them (inventories/lab + roles/phase3 defaults).

1. the drill: marker rows written on the primary are on the promoted copy, which takes a write; RPO and RTO
   are reported; the temporary instance is deleted without a final snapshot; production is untouched;
2. a limit the drill misses (RTO), run at -vvv --diff: the drill fails, the temporary instance is deleted all the
   same, and no secret the lab knows (the database login's password among them) is in the output;
3. a CA bundle that does not hold the database's CA: the first connection is refused (certificate
   verification) and no instance is made;
4. an instance of the drill's name: without the drill's tag refused, with it refused unless
   phase3_dr_drill_replace_leftover; nothing else is made.
"""

import json
import time

import pytest
from botocore.exceptions import ClientError

from phase_support import DB, failure_messages, leaked_secrets, run_ansible, run_ansible_as_a_user_sees_it

pytestmark = pytest.mark.lab

LIMIT = ("--limit", DB)
DRILL = f"{DB}-dr-drill"
DR_KEY_ALIAS = f"alias/{DB}-rds-dr"
DR_SECURITY_GROUP = f"{DB}-db-dr"
DR_PARAMETER_GROUP = f"{DB}-dr-mysql80"
MARKERS = "cso_rds_hardening.dr_drill_markers"


@pytest.fixture
def drill_lab(aws_lab, dataplane):
    """The seeded lab with a data plane and the DR Region's resources of phase 3, outages short."""
    before = aws_lab.set_outage()
    aws_lab.set_outage(seconds=1.0, failover_seconds=0.5)
    dataplane.wait_ready(DB, timeout=60)
    region = aws_lab.state["dr_region"]
    kms = aws_lab.boto3("kms", region)
    key = kms.create_key(Description="DR key of phase 3")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=DR_KEY_ALIAS, TargetKeyId=key)
    ec2 = aws_lab.boto3("ec2", region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["cso-lab"]}])["Vpcs"][0]["VpcId"]
    ec2.create_security_group(GroupName=DR_SECURITY_GROUP, Description="DR replica", VpcId=vpc)
    aws_lab.boto3("rds", region).create_db_parameter_group(
        DBParameterGroupName=DR_PARAMETER_GROUP, DBParameterGroupFamily="mysql8.0", Description="DR, TLS required")
    aws_lab.boto3("rds", region).modify_db_parameter_group(DBParameterGroupName=DR_PARAMETER_GROUP, Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    yield {"lab": aws_lab, "region": region, "rds": aws_lab.boto3("rds", region), "dataplane": dataplane}
    aws_lab.set_outage(seconds=before["seconds"], failover_seconds=before["failover_seconds"])


def drill(lab, aws_env, tmp_path, as_a_user_sees_it=False, **extra):
    """dr_drill.yml with the lab's settings; ``as_a_user_sees_it``: at -vvv --diff with the default output."""
    summary = tmp_path / "drill.json"
    variables = {"phase3_dr_drill_sql_host": "localhost", "phase3_dr_drill_ca_file": str(lab["dataplane"].ca_bundle_path()),
                 "phase3_dr_drill_summary_path": str(summary), "phase3_dr_drill_wait_timeout": 120,
                 "phase3_dr_drill_catch_up_timeout": 30}
    variables.update(extra)
    run = run_ansible_as_a_user_sees_it if as_a_user_sees_it else run_ansible
    completed = run(aws_env, "dr_drill.yml", *LIMIT, "-e", json.dumps(variables))
    return completed, (json.loads(summary.read_text()) if summary.exists() else None)


def drill_instance(lab):
    try:
        return lab["rds"].describe_db_instances(DBInstanceIdentifier=DRILL)["DBInstances"][0]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "DBInstanceNotFound"
        return None


def calls(lab, action):
    """The regions of the successful calls of ``action`` since the call log was cleared."""
    return [call["region"] for call in lab["lab"].calls()
            if call["action"] == action and not call.get("faulted") and call["status"] < 400]


def test_the_drill_promotes_a_temporary_replica_verifies_its_data_and_deletes_it(drill_lab, aws_env, tmp_path):
    lab, dataplane = drill_lab, drill_lab["dataplane"]
    lab["lab"].clear_calls()
    started = time.time()
    completed, report = drill(lab, aws_env, tmp_path)
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]
    print(json.dumps(report, indent=1))

    assert report["first_marker_arrived"] and report["promoted_instance_writable"]
    # the lab replicates within milliseconds: the marker written just before the promotion is there
    assert report["last_write_before_promotion_arrived"] is True and report["rpo_seconds"] == 0
    assert report["promotion"] == "promoted" and report["cleaned_up"] is True
    assert 1.0 <= report["rto_seconds"] < 120, report  # at least the lab's outage of the promotion's restart
    run = report["markers_found"][0][:-2]
    assert report["markers_found"] == [f"{run}-1", f"{run}-2", f"{run}-3"]
    # the primary has the two markers written there, not the write made on the promoted copy
    assert dataplane.sql(DB, f"SELECT id FROM {MARKERS} WHERE id LIKE '{run}-%' ORDER BY id") == (
        (f"{run}-1",), (f"{run}-2",))

    # one replica made, promoted and deleted, all in the DR Region (the drill's; the test made no other)
    for action in ("CreateDBInstanceReadReplica", "PromoteReadReplica", "DeleteDBInstance"):
        assert calls(lab, action) == [lab["region"]], (action, calls(lab, action))
    assert drill_instance(lab) is None and DRILL not in dataplane.status()["instances"]
    restarts = [r for r in dataplane.restarts_since(started) if r["instance"] == DRILL]
    assert [r["reason"] for r in restarts] == ["promotion"], restarts
    assert [r for r in dataplane.restarts_since(started) if r["instance"] == DB] == []  # production untouched
    assert dataplane.sql(DB, "SELECT @@read_only") == ((0,),)


def test_a_missed_limit_fails_the_drill_and_still_deletes_the_instance(drill_lab, aws_env, tmp_path):
    """Run at -vvv --diff, as an operator debugging a failed drill would: the database login's password and
    the lab's AWS keys appear nowhere in that output (the drill logs in to the primary and the copy)."""
    completed, report = drill(drill_lab, aws_env, tmp_path, as_a_user_sees_it=True, phase3_dr_drill_max_rto_seconds=1)
    assert completed.returncode != 0
    assert "exceed the limits" in completed.stdout, completed.stdout[-3000:]
    assert report["first_marker_arrived"] and report["rto_seconds"] > 1 and report["cleaned_up"] is True
    assert drill_instance(drill_lab) is None
    assert leaked_secrets(completed, "dr_drill.yml -vvv --diff (a missed limit)") == []


def test_a_bundle_without_the_database_ca_is_refused_before_any_instance(drill_lab, aws_env, tmp_path):
    drill_lab["lab"].clear_calls()
    rogue = drill_lab["dataplane"].rogue_ca_path()
    completed, report = drill(drill_lab, aws_env, tmp_path, phase3_dr_drill_ca_file=str(rogue))
    assert completed.returncode != 0 and report is None
    messages = " ".join(failure_messages(completed))
    assert "certificate verify failed" in messages or "CERTIFICATE_VERIFY_FAILED" in messages, messages
    assert calls(drill_lab, "CreateDBInstanceReadReplica") == [] and drill_instance(drill_lab) is None


def test_an_instance_of_the_drills_name_is_refused(drill_lab, aws_env, tmp_path):
    rds = drill_lab["rds"]
    rds.create_db_instance(DBInstanceIdentifier=DRILL, Engine="mysql", DBInstanceClass="db.t3.micro",
                           MasterUsername="admin", MasterUserPassword="not-a-drill-1", AllocatedStorage=20,
                           DBSubnetGroupName="cso-db-private")
    arn = drill_instance(drill_lab)["DBInstanceArn"]
    drill_lab["lab"].clear_calls()
    completed, _report = drill(drill_lab, aws_env, tmp_path)
    assert completed.returncode != 0
    assert any("not a drill instance" in message for message in failure_messages(completed))

    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "cso-rds-hardening:dr-drill", "Value": "true"}])
    drill_lab["lab"].clear_calls()
    completed, _report = drill(drill_lab, aws_env, tmp_path)
    assert completed.returncode != 0
    assert any("phase3_dr_drill_replace_leftover=true" in message for message in failure_messages(completed))
    mutating = [c["action"] for c in drill_lab["lab"].mutating_calls()]
    assert mutating == [], mutating
    assert drill_instance(drill_lab) is not None
    rds.delete_db_instance(DBInstanceIdentifier=DRILL, SkipFinalSnapshot=True)
