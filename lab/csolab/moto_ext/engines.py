"""The engine catalogue: engine versions, engine default parameters, and the validation AWS does
with them (create_db_instance engine/version/KMS key, modify_db_parameter_group names and apply
methods), plus ``describe_db_parameters`` returning engine defaults merged with user values.
"""

import random
import re
import string

from moto.core.responses import ActionResult
from moto.kms.models import KmsBackend
from moto.rds.exceptions import (DBParameterGroupNotFoundError, InvalidParameterCombination,
                                 InvalidParameterValue)
from moto.rds.models import DBInstance, DBParameterGroup, RDSBackend

from csolab.moto_ext import catalogue
from csolab.moto_ext._common import around, rds_action

MAX_PARAMETERS_PER_MODIFY = 20


# --- describe_db_engine_versions ----------------------------------------------------------------

def _upgrade_target(engine, version, major):
    return {"Engine": engine, "EngineVersion": version, "Description": _version_description(engine, version),
            "AutoUpgrade": False, "IsMajorVersionUpgrade": major}


def _version_description(engine, version):
    return f"{catalogue.ENGINE_DESCRIPTION[engine].split()[0]} {version}" + ("-R1" if engine == "postgres" else "")


def _engine_version_entry(engine, family, version, versions):
    later = versions[versions.index(version) + 1:]
    targets = [_upgrade_target(engine, v, False) for v in later]
    for other_family, (other_versions, _default) in catalogue.ENGINE_VERSIONS[engine].items():
        if other_family > family and engine == "postgres":
            targets += [_upgrade_target(engine, v, True) for v in other_versions]
    return {
        "Engine": engine,
        "EngineVersion": version,
        "MajorEngineVersion": version.split(".")[0] if engine == "postgres" else ".".join(version.split(".")[:2]),
        "DBParameterGroupFamily": family,
        "DBEngineDescription": catalogue.ENGINE_DESCRIPTION[engine],
        "DBEngineVersionDescription": _version_description(engine, version),
        "ValidUpgradeTarget": targets,
        "ExportableLogTypes": catalogue.EXPORTABLE_LOG_TYPES[engine],
        "SupportsLogExportsToCloudwatchLogs": True,
        "SupportsReadReplica": True,
        "SupportedEngineModes": ["provisioned"],
        "SupportedFeatureNames": ["Lambda", "s3Import"] if engine == "postgres" else [],
        "Status": "available",
        "SupportsParallelQuery": False,
        "SupportsGlobalDatabases": False,
        "SupportsBabelfish": False,
        "SupportsLimitlessDatabase": False,
        "SupportsCertificateRotationWithoutRestart": True,
        "SupportedCACertificateIdentifiers": list(catalogue.SUPPORTED_CAS),
        "SupportsLocalWriteForwarding": False,
        "SupportsIntegrations": False,
        "TagList": [],
    }


def engine_versions(engine=None, version=None, family=None, default_only=False):
    """Catalogue entries matching the filters; ``version`` may be a major version ("8.0", "16")."""
    for engine_name, families in catalogue.ENGINE_VERSIONS.items():
        if engine and engine != engine_name:
            continue
        for family_name, (versions, default) in families.items():
            if family and family != family_name:
                continue
            if default_only and not (version or family) and family_name != catalogue.DEFAULT_FAMILY[engine_name]:
                continue  # DefaultOnly without a major version: the engine's default only
            for candidate in versions:
                if version and not (candidate == version or candidate.startswith(version + ".")):
                    continue
                if default_only and candidate != default:
                    continue
                yield _engine_version_entry(engine_name, family_name, candidate, versions)


def _paginate(items, max_records, marker):
    start = int(marker or 0)
    size = int(max_records or 100)
    page = items[start:start + size]
    next_marker = str(start + size) if start + size < len(items) else None
    return page, next_marker


@rds_action
def describe_db_engine_versions(self):
    filters = {f["Name"]: f["Values"] for f in self.params.get("Filters", [])}
    entries = list(engine_versions(self.params.get("Engine"), self.params.get("EngineVersion"),
                                   self.params.get("DBParameterGroupFamily"), bool(self.params.get("DefaultOnly"))))
    for name, key in (("engine", "Engine"), ("engine-version", "EngineVersion"),
                      ("db-parameter-group-family", "DBParameterGroupFamily"), ("status", "Status")):
        if name in filters:
            entries = [e for e in entries if e[key] in filters[name]]
    page, marker = _paginate(entries, self.params.get("MaxRecords"), self.params.get("Marker"))
    result = {"DBEngineVersions": page}
    if marker:
        result["Marker"] = marker
    return ActionResult(result)


@rds_action
def describe_engine_default_parameters(self):
    family = self.params.get("DBParameterGroupFamily")
    parameters = catalogue.default_parameters(family) or []
    page, marker = _paginate(parameters, self.params.get("MaxRecords"), self.params.get("Marker"))
    defaults = {"DBParameterGroupFamily": family, "Parameters": page}
    if marker:
        defaults["Marker"] = marker
    return ActionResult({"EngineDefaults": defaults})


# --- Parameter groups ---------------------------------------------------------------------------

def effective_parameters(group):
    """Engine defaults merged with the group's user values (Source ``user``), in catalogue order."""
    defaults = catalogue.default_parameters(group.family)
    if defaults is None:
        return [dict(p, Source="user") for p in group.parameters.values()]
    merged = []
    for parameter in defaults:
        user = group.parameters.get(parameter["ParameterName"])
        if user and user.get("ParameterValue") is not None:
            parameter = dict(parameter, ParameterValue=user["ParameterValue"], Source="user",
                             ApplyMethod=user.get("ApplyMethod", parameter["ApplyMethod"]))
        merged.append(parameter)
    return merged


_RANGE = re.compile(r"^(-?[0-9.]+)-(-?[0-9.]+)$")


def _allowed(spec, value):
    allowed = spec.get("AllowedValues")
    if not allowed or value.startswith("{"):
        return True  # formulas such as {DBInstanceClassMemory*3/4} are accepted as AWS does
    bounds = _RANGE.match(allowed)
    if bounds and spec["DataType"] in ("integer", "float"):
        try:
            return float(bounds.group(1)) <= float(value) <= float(bounds.group(2))
        except ValueError:
            return False
    choices = allowed.split(",")
    items = value.split(",") if spec["DataType"] == "list" else [value]
    return all(item in choices for item in items)


def validate_parameters(group, parameters):
    if len(parameters) > MAX_PARAMETERS_PER_MODIFY:
        raise InvalidParameterValue("A maximum of 20 parameters can be modified in a single request.")
    if group.name.startswith("default."):
        raise InvalidParameterValue("Cannot modify a default parameter group.")
    if catalogue.default_parameters(group.family) is None:
        return  # a family the lab does not model: accept, as moto does
    for parameter in parameters:
        name = parameter["ParameterName"]
        spec = catalogue.parameter_spec(group.family, name)
        if spec is None:
            raise InvalidParameterValue(f"Could not find parameter with name: {name}")
        if not spec["IsModifiable"]:
            raise InvalidParameterValue(f"The parameter {name} cannot be modified.")
        if spec["ApplyType"] == "static" and parameter.get("ApplyMethod") == "immediate":
            raise InvalidParameterCombination("cannot use immediate apply method for static parameter")
        value = parameter.get("ParameterValue")
        if value is not None and not _allowed(spec, str(value)):
            raise InvalidParameterValue(
                f"Invalid parameter value: {value} for: {name} allowed values are: {spec['AllowedValues']}")


@around(RDSBackend, "modify_db_parameter_group")
def _modify_db_parameter_group(original, backend, db_parameter_group_name, db_parameter_group_parameters):
    group = backend.db_parameter_groups.get(db_parameter_group_name)
    if group is None:
        raise DBParameterGroupNotFoundError(db_parameter_group_name)
    parameters = list(db_parameter_group_parameters)
    validate_parameters(group, parameters)
    return original(backend, db_parameter_group_name, parameters)


@rds_action
def describe_db_parameters(self):
    name = self.params.get("DBParameterGroupName")
    group = self.backend.db_parameter_groups.get(name)
    if group is None:
        raise DBParameterGroupNotFoundError(name)
    parameters = effective_parameters(group)
    source = self.params.get("Source")
    if source:
        parameters = [p for p in parameters if p["Source"] == source]
    page, marker = _paginate(parameters, self.params.get("MaxRecords"), self.params.get("Marker"))
    result = {"Parameters": page}
    if marker:
        result["Marker"] = marker
    return ActionResult(result)


# --- create_db_instance validation --------------------------------------------------------------

def default_kms_key_arn(backend):
    return backend.kms.describe_key("alias/aws/rds").arn


@around(KmsBackend, "_generate_default_keys")
def _aws_managed_default_key(original, kms, alias_name):
    """moto creates ``alias/aws/<service>`` keys on first use as customer keys; in AWS they are
    AWS managed (``KeyManager: AWS``), which is how tools tell the default key from a CMK."""
    key_id = original(kms, alias_name)
    if key_id:
        key = kms.keys[key_id]
        key.key_manager = "AWS"
        service = alias_name.split("/")[-1]
        key.description = ("Default key that protects my RDS database volumes when no other key is defined"
                           if service == "rds" else f"Default key that protects my {service} resources when no other key is defined")
    return key_id


@around(RDSBackend, "create_db_instance")
def _create_db_instance(original, backend, db_kwargs):
    engine = db_kwargs.get("engine")
    if engine in catalogue.ENGINE_VERSIONS and not db_kwargs.get("db_cluster_identifier"):
        requested = db_kwargs.get("engine_version")
        version = catalogue.resolve_engine_version(engine, requested)
        if version is None:
            raise InvalidParameterCombination(f"Cannot find version {requested} for {engine}")
        db_kwargs["engine_version"] = version
        _check_parameter_group_family(backend, db_kwargs.get("db_parameter_group_name"),
                                      catalogue.family_of(engine, version))
    key = db_kwargs.get("kms_key_id")
    if key:
        db_kwargs["kms_key_id"] = backend._validate_kms_key(key)
        if db_kwargs.get("storage_encrypted") is None:
            db_kwargs["storage_encrypted"] = True
    elif db_kwargs.get("storage_encrypted"):
        db_kwargs["kms_key_id"] = default_kms_key_arn(backend)
    return original(backend, db_kwargs)


def _check_parameter_group_family(backend, group_name, family):
    group = backend.db_parameter_groups.get(group_name) if group_name else None
    if group is not None and group.family and group.family != family:
        raise InvalidParameterCombination(
            f"The parameter group {group.name} with DBParameterGroupFamily {group.family} can't be used for this "
            f"instance. Use a parameter group with DBParameterGroupFamily {family}.")



@around(DBInstance, "__init__")
def _instance_init(original, instance, *args, **kwargs):
    """What AWS fills in at creation however the instance came to be (create, restore, replica)."""
    original(instance, *args, **kwargs)
    instance.dbi_resource_id = "db-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=26))
    if instance.db_cluster_identifier is None and instance.kms_key_id == "default_kms_key_id":
        instance.kms_key_id = default_kms_key_arn(instance.backend)


# gp3 volumes always report their IOPS and throughput; below 400 GiB (MySQL, MariaDB, PostgreSQL)
# the baseline is 3000 IOPS / 125 MiB/s, from 400 GiB 12000 IOPS / 500 MiB/s.
def _gp3_baseline(instance):
    large = (instance.allocated_storage or 0) >= 400
    return (12000, 500) if large else (3000, 125)


_moto_storage_throughput = DBInstance.storage_throughput


def _storage_throughput(self):
    value = _moto_storage_throughput.fget(self)
    if value is None and getattr(self, "storage_type", None) == "gp3":
        return _gp3_baseline(self)[1]
    return value


def _iops(self):
    value = self.__dict__.get("_iops")
    if value is None and getattr(self, "storage_type", None) == "gp3" and self.db_cluster_identifier is None:
        return _gp3_baseline(self)[0]
    return value


def _set_iops(self, value):
    self._iops = value


DBInstance.storage_throughput = property(_storage_throughput, _moto_storage_throughput.fset)
DBInstance.iops = property(_iops, _set_iops)


def ensure_default_parameter_group(backend, name):
    """AWS has a ``default.<family>`` group for every family; moto only once an instance used it."""
    family = name[len("default."):] if name and name.lower().startswith("default.") else None
    if family in catalogue.ENGINE_DEFAULT_PARAMETERS and name not in backend.db_parameter_groups:
        backend.db_parameter_groups[name] = DBParameterGroup(
            backend=backend, db_parameter_group_name=name, db_parameter_group_family=family,
            description=f"Default parameter group for {family}", tags=[])


@around(RDSBackend, "describe_db_parameter_groups")
def _describe_db_parameter_groups(original, backend, db_parameter_group_kwargs):
    name = db_parameter_group_kwargs.get("db_parameter_group_name")
    ensure_default_parameter_group(backend, name)
    groups = original(backend, db_parameter_group_kwargs)
    if name and not groups:
        raise DBParameterGroupNotFoundError(name)  # moto answers an empty list; AWS an error
    return groups
