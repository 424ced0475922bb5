"""A real subset of RDS's engine, parameter and certificate catalogue (data only).

Values follow what RDS documents and returns (describe-db-engine-versions,
describe-engine-default-parameters, describe-certificates); trimmed to what the lab needs.
"""

import datetime

UTC = datetime.timezone.utc

# --- Certificates -------------------------------------------------------------------------------

DEFAULT_CA = "rds-ca-rsa2048-g1"
# identifier -> (valid from, valid till); per-region dates differ by minutes on AWS, not modelled.
CERTIFICATE_AUTHORITIES = {
    "rds-ca-2019": (datetime.datetime(2019, 8, 22, 17, 8, 50, tzinfo=UTC),
                    datetime.datetime(2024, 8, 22, 17, 8, 50, tzinfo=UTC)),
    "rds-ca-ecc384-g1": (datetime.datetime(2021, 5, 21, 22, 23, 47, tzinfo=UTC),
                         datetime.datetime(2121, 5, 21, 23, 23, 47, tzinfo=UTC)),
    "rds-ca-rsa2048-g1": (datetime.datetime(2021, 5, 21, 22, 15, 59, tzinfo=UTC),
                          datetime.datetime(2061, 5, 21, 23, 15, 59, tzinfo=UTC)),
    "rds-ca-rsa4096-g1": (datetime.datetime(2021, 5, 21, 22, 19, 41, tzinfo=UTC),
                          datetime.datetime(2121, 5, 21, 23, 19, 41, tzinfo=UTC)),
}
# What engine versions list as SupportedCACertificateIdentifiers (the expired CA is gone).
SUPPORTED_CAS = ["rds-ca-ecc384-g1", "rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1"]



# --- Engine versions ----------------------------------------------------------------------------

# engine -> {family: (versions oldest..newest, default version)}
ENGINE_VERSIONS = {
    "mysql": {"mysql8.0": (["8.0.36", "8.0.37", "8.0.39", "8.0.40", "8.0.41", "8.0.42"], "8.0.42")},
    "postgres": {
        "postgres15": (["15.7", "15.8", "15.10", "15.12"], "15.12"),
        "postgres16": (["16.3", "16.4", "16.6", "16.8"], "16.8"),
    },
    "mariadb": {"mariadb10.11": (["10.11.8", "10.11.9", "10.11.10", "10.11.11"], "10.11.11")},
}
DEFAULT_FAMILY = {"mysql": "mysql8.0", "postgres": "postgres16", "mariadb": "mariadb10.11"}
ENGINE_DESCRIPTION = {"mysql": "MySQL Community Edition", "postgres": "PostgreSQL",
                      "mariadb": "MariaDB Community Edition"}
EXPORTABLE_LOG_TYPES = {
    "mysql": ["audit", "error", "general", "iam-db-auth-error", "slowquery"],
    "mariadb": ["audit", "error", "general", "iam-db-auth-error", "slowquery"],
    "postgres": ["iam-db-auth-error", "postgresql", "upgrade"],
}


def family_of(engine, version):
    for family, (versions, _default) in ENGINE_VERSIONS.get(engine, {}).items():
        if version in versions:
            return family
    return None


def resolve_engine_version(engine, requested):
    """The full version AWS would pick for ``requested`` (None, a major like "8.0", or a full one)."""
    families = ENGINE_VERSIONS[engine]
    if not requested:
        return families[DEFAULT_FAMILY[engine]][1]
    for versions, default in families.values():
        if requested in versions:
            return requested
        if default.startswith(requested + "."):
            return default
    return None


# --- Engine default parameters ------------------------------------------------------------------

def _p(name, value, apply_type, data_type, allowed, description, modifiable=True, source="engine-default"):
    parameter = {"ParameterName": name, "Description": description, "Source": source, "ApplyType": apply_type,
                 "DataType": data_type, "AllowedValues": allowed, "IsModifiable": modifiable,
                 "ApplyMethod": "pending-reboot"}
    if value is not None:
        parameter["ParameterValue"] = value
    return parameter


_CHARSETS = "big5,dec8,cp850,hp8,koi8r,latin1,latin2,swe7,ascii,ujis,sjis,hebrew,tis620,euckr,koi8u,gb2312,greek," \
            "cp1250,gbk,latin5,armscii8,utf8mb3,ucs2,cp866,keybcs2,macce,macroman,cp852,latin7,utf8mb4,cp1251," \
            "utf16,cp1256,cp1257,utf32,binary,geostd8,cp932,eucjpms"
_TIME_ZONES = "Africa/Cairo,America/New_York,Asia/Tokyo,Europe/Berlin,Europe/Dublin,Europe/London,Europe/Paris," \
              "US/Eastern,US/Pacific,UTC"


def _mysql_like(tls_allowed):
    return [
        _p("require_secure_transport", "0", "dynamic", "boolean", "0,1",
           "Controls whether client connections to the server are required to use some form of secure transport."),
        _p("tls_version", "TLSv1.2,TLSv1.3", "static", "list", tls_allowed,
           "Specifies which TLS protocols the server permits for encrypted connections."),
        _p("max_connections", "{DBInstanceClassMemory/12582880}", "dynamic", "integer", "1-100000",
           "The number of simultaneous client connections allowed."),
        _p("general_log", None, "dynamic", "boolean", "0,1",
           "Whether the general query log is enabled"),
        _p("slow_query_log", None, "dynamic", "boolean", "0,1",
           "Enable or disable the slow query log"),
        _p("long_query_time", None, "dynamic", "float", "0-31536000",
           "Defines what MySQL considers long queries"),
        _p("log_output", "FILE", "dynamic", "string", "TABLE,FILE,NONE",
           "Controls where to store query logs"),
        _p("innodb_buffer_pool_size", "{DBInstanceClassMemory*3/4}", "static", "integer",
           "0-9223372036854775807", "The size in bytes of the memory buffer innodb uses to cache data and indexes of its tables"),
        _p("character_set_server", None, "dynamic", "string", _CHARSETS, "The server's default character set."),
        _p("time_zone", None, "dynamic", "string", _TIME_ZONES, "Sets the time zone of the server."),
        _p("local_infile", "1", "dynamic", "boolean", "0,1",
           "Controls whether LOCAL is supported for LOAD DATA INFILE"),
        _p("max_allowed_packet", None, "dynamic", "integer", "1024-1073741824",
           "This value by default is small, to catch large (possibly incorrect) packets. Must be increased if using large BLOB columns or long strings. As big as largest BLOB."),
        _p("wait_timeout", None, "dynamic", "integer", "1-31536000",
           "The number of seconds the server waits for activity on a non-interactive TCP/IP or UNIX File connection before closing it."),
        _p("performance_schema", "0", "static", "boolean", "0,1", "Enables or disables the Performance Schema"),
        _p("binlog_format", "ROW", "dynamic", "string", "ROW,STATEMENT,MIXED", "Binary logging format for replication"),
        _p("event_scheduler", None, "dynamic", "string", "ON,OFF", "Enables or disables the Event Scheduler."),
        _p("log_bin_trust_function_creators", None, "dynamic", "boolean", "0,1",
           "Enforces restrictions on stored functions / triggers - logging for replication."),
        _p("basedir", "/rdsdbbin/mysql", "static", "string", None, "The MySQL installation base directory.",
           modifiable=False, source="system"),
    ]


def _postgres(force_ssl_default):
    return [
        _p("rds.force_ssl", force_ssl_default, "dynamic", "boolean", "0,1", "Force SSL connections."),
        _p("ssl_min_protocol_version", "TLSv1.2", "dynamic", "string", "TLSv1,TLSv1.1,TLSv1.2,TLSv1.3",
           "Sets the minimum SSL/TLS protocol version to use."),
        _p("ssl_max_protocol_version", None, "dynamic", "string", "TLSv1,TLSv1.1,TLSv1.2,TLSv1.3",
           "Sets the maximum SSL/TLS protocol version to use."),
        _p("log_connections", None, "dynamic", "boolean", "0,1", "Logs each successful connection."),
        _p("log_disconnections", None, "dynamic", "boolean", "0,1", "Logs end of a session, including duration."),
        _p("log_min_duration_statement", None, "dynamic", "integer", "-1-2147483647",
           "(ms) Sets the minimum execution time above which statements will be logged."),
        _p("shared_preload_libraries", "pg_stat_statements", "static", "list",
           "auto_explain,orafce,pgaudit,pglogical,pg_bigm,pg_cron,pg_hint_plan,pg_prewarm,pg_similarity,"
           "pg_stat_statements,pg_tle,pg_transport,plprofiler", "Lists shared libraries to preload into server."),
        _p("max_connections", "LEAST({DBInstanceClassMemory/9531392},5000)", "static", "integer", "6-262143",
           "Sets the maximum number of concurrent connections."),
        _p("password_encryption", "scram-sha-256", "dynamic", "string", "md5,scram-sha-256",
           "Encrypt passwords."),
        _p("rds.logical_replication", "0", "static", "boolean", "0,1", "Enables logical decoding."),
        _p("timezone", None, "dynamic", "string", _TIME_ZONES, "Sets the time zone for displaying and interpreting time stamps."),
        _p("data_directory", None, "static", "string", None, "Sets the servers data directory.",
           modifiable=False, source="system"),
    ]


ENGINE_DEFAULT_PARAMETERS = {
    "mysql8.0": _mysql_like("TLSv1.2,TLSv1.3"),
    "mariadb10.11": [p for p in _mysql_like("TLSv1.2,TLSv1.3") if p["ParameterName"] != "basedir"],
    "postgres15": _postgres("0"),
    "postgres16": _postgres("1"),
}


def default_parameters(family):
    """The family's engine defaults as fresh dicts, or None for a family the lab does not model."""
    parameters = ENGINE_DEFAULT_PARAMETERS.get(family)
    return None if parameters is None else [dict(p) for p in parameters]


def parameter_spec(family, name):
    for parameter in ENGINE_DEFAULT_PARAMETERS.get(family, ()):
        if parameter["ParameterName"] == name:
            return parameter
    return None
