"""Contract: engine versions, engine default parameters, parameter validation, create validation."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab


def _error(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]


def _create(rds, lab, identifier="ext-db", **overrides):
    arguments = dict(DBInstanceIdentifier=identifier, Engine="mysql", EngineVersion="8.0.40",
                     DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="admin",
                     MasterUserPassword="lab-password-1", DBSubnetGroupName="cso-db-private")
    arguments.update(overrides)
    return rds.create_db_instance(**arguments)["DBInstance"]


def test_mysql_80_versions_with_family_logs_and_cas(lab):
    lab.reset()
    rds = lab.boto3("rds")

    versions = rds.describe_db_engine_versions(Engine="mysql", EngineVersion="8.0")["DBEngineVersions"]

    by_version = {v["EngineVersion"]: v for v in versions}
    assert {"8.0.36", "8.0.40", "8.0.42"} <= set(by_version)
    v8040 = by_version["8.0.40"]
    assert v8040["DBParameterGroupFamily"] == "mysql8.0"
    assert v8040["SupportsLogExportsToCloudwatchLogs"] is True
    assert {"error", "general", "slowquery", "audit"} <= set(v8040["ExportableLogTypes"])
    assert "rds-ca-rsa2048-g1" in v8040["SupportedCACertificateIdentifiers"]
    assert "rds-ca-2019" not in v8040["SupportedCACertificateIdentifiers"]
    assert [t["EngineVersion"] for t in v8040["ValidUpgradeTarget"]] == ["8.0.41", "8.0.42"]


def test_default_only_and_family_filters(lab):
    lab.reset()
    rds = lab.boto3("rds")

    default = rds.describe_db_engine_versions(Engine="mysql", DefaultOnly=True)["DBEngineVersions"]
    pg15 = rds.describe_db_engine_versions(DBParameterGroupFamily="postgres15")["DBEngineVersions"]
    maria = rds.describe_db_engine_versions(Filters=[{"Name": "engine", "Values": ["mariadb"]}])["DBEngineVersions"]
    unknown = rds.describe_db_engine_versions(Engine="mysql", EngineVersion="5.1")["DBEngineVersions"]

    assert [v["EngineVersion"] for v in default] == ["8.0.42"]
    assert pg15 and {v["Engine"] for v in pg15} == {"postgres"} and all(v["EngineVersion"].startswith("15.") for v in pg15)
    assert maria and all(v["DBParameterGroupFamily"] == "mariadb10.11" for v in maria)
    assert unknown == []


@pytest.mark.parametrize("family", ["mysql8.0", "mariadb10.11"])
def test_mysql_like_defaults_include_require_secure_transport(lab, family):
    lab.reset()
    rds = lab.boto3("rds")

    defaults = rds.describe_engine_default_parameters(DBParameterGroupFamily=family)["EngineDefaults"]

    assert defaults["DBParameterGroupFamily"] == family
    by_name = {p["ParameterName"]: p for p in defaults["Parameters"]}
    rst = by_name["require_secure_transport"]
    assert (rst["ApplyType"], rst["DataType"], rst["AllowedValues"], rst["IsModifiable"], rst["ParameterValue"]) == \
        ("dynamic", "boolean", "0,1", True, "0")
    assert by_name["innodb_buffer_pool_size"]["ApplyType"] == "static"
    assert {"tls_version", "max_connections", "general_log", "slow_query_log", "long_query_time", "log_output",
            "character_set_server", "time_zone"} <= set(by_name)


def test_postgres_force_ssl_defaults_differ_between_15_and_16(lab):
    lab.reset()
    rds = lab.boto3("rds")

    def force_ssl(family):
        parameters = rds.describe_engine_default_parameters(DBParameterGroupFamily=family)["EngineDefaults"]["Parameters"]
        return {p["ParameterName"]: p for p in parameters}

    pg15, pg16 = force_ssl("postgres15"), force_ssl("postgres16")
    assert pg15["rds.force_ssl"]["ParameterValue"] == "0"
    assert pg16["rds.force_ssl"]["ParameterValue"] == "1"
    assert pg16["rds.force_ssl"]["ApplyType"] == "dynamic"
    assert pg16["shared_preload_libraries"]["ApplyType"] == "static"
    assert {"ssl_min_protocol_version", "log_connections"} <= set(pg16)


def test_modify_parameter_group_rejects_unknown_names(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="pg", DBParameterGroupFamily="mysql8.0", Description="x")

    error = _error(rds.modify_db_parameter_group, DBParameterGroupName="pg", Parameters=[
        {"ParameterName": "rds.force_ssl", "ParameterValue": "1", "ApplyMethod": "immediate"}])

    assert error == dict(error, Code="InvalidParameterValue", Message="Could not find parameter with name: rds.force_ssl")


def test_modify_parameter_group_rejects_immediate_for_static(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="pg", DBParameterGroupFamily="mysql8.0", Description="x")

    error = _error(rds.modify_db_parameter_group, DBParameterGroupName="pg", Parameters=[
        {"ParameterName": "tls_version", "ParameterValue": "TLSv1.2", "ApplyMethod": "immediate"}])

    assert error["Code"] == "InvalidParameterCombination"
    assert "static" in error["Message"]


def test_modify_parameter_group_rejects_values_outside_allowed_and_default_groups(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="pg", DBParameterGroupFamily="mysql8.0", Description="x")

    bad_value = _error(rds.modify_db_parameter_group, DBParameterGroupName="pg", Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "2", "ApplyMethod": "immediate"}])
    rds.describe_db_instances()  # makes moto materialise default.mysql8.0
    default_group = _error(rds.modify_db_parameter_group, DBParameterGroupName="default.mysql8.0", Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])

    assert bad_value["Code"] == "InvalidParameterValue" and "allowed values are: 0,1" in bad_value["Message"]
    assert default_group["Code"] == "InvalidParameterValue"


def test_describe_db_parameters_merges_defaults_with_user_values_and_filters_source(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="pg", DBParameterGroupFamily="mysql8.0", Description="x")
    rds.modify_db_parameter_group(DBParameterGroupName="pg", Parameters=[
        {"ParameterName": "require_secure_transport", "ParameterValue": "1", "ApplyMethod": "immediate"}])

    everything = {p["ParameterName"]: p for p in rds.describe_db_parameters(DBParameterGroupName="pg")["Parameters"]}
    user = rds.describe_db_parameters(DBParameterGroupName="pg", Source="user")["Parameters"]
    defaults = rds.describe_db_parameters(DBParameterGroupName="pg", Source="engine-default")["Parameters"]

    assert everything["require_secure_transport"]["ParameterValue"] == "1"
    assert everything["require_secure_transport"]["Source"] == "user"
    assert everything["max_connections"]["Source"] == "engine-default"
    assert [p["ParameterName"] for p in user] == ["require_secure_transport"]
    assert "require_secure_transport" not in {p["ParameterName"] for p in defaults}
    assert len(defaults) == len(everything) - 1 - sum(p["Source"] == "system" for p in everything.values())


def test_paginator_walks_describe_db_parameters(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="pg", DBParameterGroupFamily="mysql8.0", Description="x")

    pages = list(rds.get_paginator("describe_db_parameters").paginate(
        DBParameterGroupName="pg", PaginationConfig={"PageSize": 20}))
    names = [p["ParameterName"] for page in pages for p in page["Parameters"]]

    assert len(names) == len(set(names)) >= 15


def test_create_resolves_major_version_and_rejects_unknown_versions(lab):
    lab.reset()
    rds = lab.boto3("rds")

    created = _create(rds, lab, EngineVersion="8.0")
    error = _error(_create, rds=rds, lab=lab, identifier="ext-db-2", EngineVersion="8.0.99")

    assert created["EngineVersion"] == "8.0.42"
    assert error == dict(error, Code="InvalidParameterCombination", Message="Cannot find version 8.0.99 for mysql")


def test_create_rejects_a_kms_key_missing_in_the_region(lab):
    lab.reset()
    rds = lab.boto3("rds")
    dr_key = lab.boto3("kms", lab.state["dr_region"]).create_key()["KeyMetadata"]["Arn"]

    missing = _error(_create, rds=rds, lab=lab, StorageEncrypted=True,
                     KmsKeyId="arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000")
    other_region = _error(_create, rds=rds, lab=lab, StorageEncrypted=True, KmsKeyId=dr_key)

    assert missing["Code"] == other_region["Code"] == "KMSKeyNotAccessibleFault"


def test_create_with_a_key_alias_reports_the_key_arn_and_default_key_otherwise(lab):
    lab.reset()
    rds = lab.boto3("rds")
    kms = lab.boto3("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/cso-rds", TargetKeyId=key["KeyId"])

    with_alias = _create(rds, lab, StorageEncrypted=True, KmsKeyId="alias/cso-rds")
    with_default = _create(rds, lab, identifier="ext-db-2", StorageEncrypted=True)

    assert with_alias["KmsKeyId"] == key["Arn"]
    default_key = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    assert with_default["KmsKeyId"] == default_key


def test_the_default_rds_key_is_aws_managed_and_a_created_key_is_not(lab):
    lab.reset()
    kms = lab.boto3("kms")

    default_key = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]
    created = kms.create_key(Description="cmk")["KeyMetadata"]

    assert default_key["KeyManager"] == "AWS"
    assert default_key["Description"].startswith("Default key that protects my RDS database volumes")
    assert created["KeyManager"] == "CUSTOMER"


def test_create_rejects_a_parameter_group_of_another_family(lab):
    lab.reset()
    rds = lab.boto3("rds")
    rds.create_db_parameter_group(DBParameterGroupName="pg16", DBParameterGroupFamily="postgres16", Description="x")

    error = _error(_create, rds=rds, lab=lab, DBParameterGroupName="pg16")

    assert error["Code"] == "InvalidParameterCombination"


def test_default_groups_exist_and_unknown_groups_are_not_found(lab):
    lab.reset()
    rds = lab.boto3("rds")

    default = rds.describe_db_parameter_groups(DBParameterGroupName="default.postgres16")["DBParameterGroups"]
    error = _error(rds.describe_db_parameter_groups, DBParameterGroupName="nope")

    assert [(g["DBParameterGroupName"], g["DBParameterGroupFamily"]) for g in default] == [
        ("default.postgres16", "postgres16")]
    assert error["Code"] == "DBParameterGroupNotFound"


@pytest.mark.parametrize("storage, iops, throughput", [(50, 3000, 125), (400, 12000, 500)])
def test_gp3_reports_baseline_iops_and_throughput(lab, storage, iops, throughput):
    lab.reset()
    rds = lab.boto3("rds")

    created = _create(rds, lab, StorageType="gp3", AllocatedStorage=storage)

    assert (created["Iops"], created["StorageThroughput"]) == (iops, throughput)
