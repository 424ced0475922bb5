"""Contract: fault injection reaches boto3 as AWS errors on every protocol; the call log counts
mutating calls only."""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"

# One read-only call per protocol: query (rds), json (kms), smithy-rpc-v2-cbor (cloudwatch).
CALLS = {
    "rds": lambda client: client.describe_db_instances(),
    "kms": lambda client: client.list_keys(),
    "cloudwatch": lambda client: client.describe_alarms(),
}


def _client(lab, service, max_attempts):
    state = lab.state
    return boto3.client(service, endpoint_url=state["endpoint_url"], region_name=state["region"],
                        aws_access_key_id=state["aws_access_key_id"],
                        aws_secret_access_key=state["aws_secret_access_key"],
                        config=Config(retries={"mode": "standard", "max_attempts": max_attempts}))


@pytest.fixture
def faulty_lab(lab):
    lab.reset()
    yield lab
    lab.set_faults(0)


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize("error_code, status", [("Throttling", 400), ("ServiceUnavailable", 503)])
def test_every_call_faulted_reaches_boto3_with_the_error_code(faulty_lab, service, error_code, status):
    faulty_lab.set_faults(1.0, errors=[error_code])

    with pytest.raises(ClientError) as error:
        CALLS[service](_client(faulty_lab, service, max_attempts=1))

    assert error.value.response["Error"]["Code"] == error_code
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_faults_limited_to_named_actions(faulty_lab):
    faulty_lab.set_faults(1.0, errors=["Throttling"], actions=["ListKeys"])
    rds = _client(faulty_lab, "rds", max_attempts=1)

    rds.describe_db_instances()
    with pytest.raises(ClientError):
        _client(faulty_lab, "kms", max_attempts=1).list_keys()


def test_standard_retries_ride_out_a_seeded_30_percent_fault_rate(faulty_lab):
    faulty_lab.set_faults(0.3, errors=["Throttling", "ServiceUnavailable"], seed=7)
    clients = {service: _client(faulty_lab, service, max_attempts=10) for service in CALLS}

    for _ in range(5):
        for service, call in CALLS.items():
            call(clients[service])

    faulted = [call for call in faulty_lab.calls() if call["faulted"]]
    assert faulted, "a 30% fault rate over 15 calls should have faulted some of them"
    assert {call["status"] for call in faulted} <= {400, 503}


def test_call_log_counts_a_modify_but_not_a_describe(faulty_lab):
    rds = faulty_lab.boto3("rds")
    faulty_lab.clear_calls()

    rds.describe_db_instances(DBInstanceIdentifier=DB)
    rds.modify_db_instance(DBInstanceIdentifier=DB, DeletionProtection=False)
    rds.describe_db_instances(DBInstanceIdentifier=DB)

    assert [call["action"] for call in faulty_lab.mutating_calls()] == ["ModifyDBInstance"]
    calls = faulty_lab.calls()
    assert [call["action"] for call in calls] == ["DescribeDBInstances", "ModifyDBInstance", "DescribeDBInstances"]
    assert all(call["service"] == "rds" and call["region"] == faulty_lab.region for call in calls)
