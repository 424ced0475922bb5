"""Contract: the MariaDB Audit Plugin as the AWS side of the lab follows option groups, through boto3 (no data
plane; what the server logs and what reaches CloudWatch Logs is in test_dataplane_audit.py): the settings the
data plane is told to apply (with AWS's defaults), the export flag, an unknown option group refused, and the
restart AWS makes when the plugin is removed (from the group, or by moving the instance off it)."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
GROUP = "audit-contract"
PLUGIN = {"OptionName": "MARIADB_AUDIT_PLUGIN", "OptionSettings": [
    {"Name": "SERVER_AUDIT_EVENTS", "Value": "CONNECT,QUERY_DDL"},
    {"Name": "SERVER_AUDIT_EXCL_USERS", "Value": "rdsadmin,monitor"}]}


@pytest.fixture
def rds(aws_lab):
    client = aws_lab.boto3("rds")
    client.create_option_group(OptionGroupName=GROUP, EngineName="mysql", MajorEngineVersion="8.0",
                               OptionGroupDescription="audit contract")
    return client


def described(aws_lab):
    return next(item for item in aws_lab.api("dataplane-instances")["instances"] if item["id"] == DB)


def attach(rds, **extra):
    rds.modify_db_instance(DBInstanceIdentifier=DB, OptionGroupName=GROUP, ApplyImmediately=True, **extra)


def test_no_plugin_without_the_option(aws_lab, rds):
    attach(rds)
    assert described(aws_lab)["audit"] == {"plugin": None, "export": False}


def test_the_option_settings_with_aws_defaults_and_the_export(aws_lab, rds):
    rds.modify_option_group(OptionGroupName=GROUP, OptionsToInclude=[PLUGIN], ApplyImmediately=True)
    attach(rds, CloudwatchLogsExportConfiguration={"EnableLogTypes": ["audit"]})
    audit = described(aws_lab)["audit"]
    assert audit == {"export": True, "plugin": {
        "SERVER_AUDIT_EVENTS": "CONNECT,QUERY_DDL", "SERVER_AUDIT_EXCL_USERS": "rdsadmin,monitor",
        "SERVER_AUDIT_INCL_USERS": "", "SERVER_AUDIT_FILE_ROTATE_SIZE": "1000000", "SERVER_AUDIT_FILE_ROTATIONS": "9",
        "SERVER_AUDIT_QUERY_LOG_LIMIT": "1024"}}
    assert described(aws_lab)["restart"]["seq"] == 0  # adding the plugin restarts nothing


def test_an_unknown_option_group_is_refused(aws_lab, rds):
    with pytest.raises(ClientError) as error:
        rds.modify_db_instance(DBInstanceIdentifier=DB, OptionGroupName="no-such-group", ApplyImmediately=True)
    assert error.value.response["Error"]["Code"] == "OptionGroupNotFoundFault"


def test_removing_the_option_restarts_the_instances_of_the_group(aws_lab, rds):
    rds.modify_option_group(OptionGroupName=GROUP, OptionsToInclude=[PLUGIN], ApplyImmediately=True)
    attach(rds)
    rds.modify_option_group(OptionGroupName=GROUP, OptionsToInclude=[dict(PLUGIN, OptionSettings=[
        {"Name": "SERVER_AUDIT_EVENTS", "Value": "CONNECT"}])], ApplyImmediately=True)
    assert described(aws_lab)["restart"]["seq"] == 0  # changing settings: no restart
    rds.modify_option_group(OptionGroupName=GROUP, OptionsToRemove=["MARIADB_AUDIT_PLUGIN"], ApplyImmediately=True)
    item = described(aws_lab)
    assert item["audit"]["plugin"] is None
    assert (item["restart"]["seq"], item["restart"]["reason"]) == (1, "MariaDB Audit Plugin removed")


def test_moving_off_a_group_with_the_option_restarts(aws_lab, rds):
    rds.modify_option_group(OptionGroupName=GROUP, OptionsToInclude=[PLUGIN], ApplyImmediately=True)
    attach(rds)
    rds.create_option_group(OptionGroupName="plain", EngineName="mysql", MajorEngineVersion="8.0",
                            OptionGroupDescription="no options")
    rds.modify_db_instance(DBInstanceIdentifier=DB, OptionGroupName="plain", ApplyImmediately=True)
    item = described(aws_lab)
    assert item["audit"]["plugin"] is None and item["restart"]["reason"] == "MariaDB Audit Plugin removed"
