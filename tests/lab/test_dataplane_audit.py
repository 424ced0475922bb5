"""The data plane follows the MariaDB Audit Plugin option (AWS: RDS User Guide, "MariaDB Audit Plugin support
for MySQL"; the lab's rules are in csolab/moto_ext/audit_logs.py): with the option in the instance's option group
its MariaDB runs ``server_audit`` with the group's settings, and with ``audit`` exported the lines reach the log
group ``/aws/rds/instance/<id>/audit``, read back here with ``logs filter-log-events`` as an operator would.

Same namespace and bridge rules as test_dataplane.py (own bridge in ``csolab-dptest``, refused while a host
lab's data plane is up)."""

import time

import pytest

from dataplane_support import own_data_plane, require_data_plane, wait_served

pytestmark = [pytest.mark.lab, pytest.mark.dataplane]


require_data_plane([("/usr/lib/mysql/plugin/server_audit.so",
                     "MariaDB's server_audit plugin is missing (apt-get install mariadb-server)")])

import pymysql  # noqa: E402

from csolab import dataplane  # noqa: E402
from csolab.dataplane import audit, layout  # noqa: E402


@pytest.fixture(scope="module")
def data_plane(lab):
    yield from own_data_plane()


@pytest.fixture
def served(aws_lab, data_plane):
    """The seeded database, served by a freshly provisioned MariaDB."""
    return wait_served(aws_lab, "cso-lab-db")


def connect(endpoint, user, password, **kwargs):
    """TLS verified against the lab's RDS CA bundle, by the endpoint's DNS name (as RDS clients must)."""
    return pymysql.connect(host=endpoint["name"], port=endpoint["port"], user=user, password=password,
                           connect_timeout=5, ssl_ca=str(dataplane.ca_bundle_path()), ssl_verify_cert=True,
                           ssl_verify_identity=True, **kwargs)

DB = "cso-lab-db"
GROUP = "cso-lab-db-audit"
LOG_GROUP = f"/aws/rds/instance/{DB}/audit"
EVENTS = "CONNECT,QUERY_DDL,QUERY_DCL"  # the collection's default
KEYSTONE_PASSWORD = "Ks-audit-secret-1"


def audit_option(events=EVENTS, excluded="rdsadmin,batch"):
    return {"OptionName": "MARIADB_AUDIT_PLUGIN", "OptionSettings": [
        {"Name": "SERVER_AUDIT_EVENTS", "Value": events}, {"Name": "SERVER_AUDIT_EXCL_USERS", "Value": excluded}]}


def enable_audit(aws_lab, export=True):
    rds = aws_lab.boto3("rds")
    rds.create_option_group(OptionGroupName=GROUP, EngineName="mysql", MajorEngineVersion="8.0",
                            OptionGroupDescription="audit")
    rds.modify_option_group(OptionGroupName=GROUP, OptionsToInclude=[audit_option()], ApplyImmediately=True)
    extra = {"CloudwatchLogsExportConfiguration": {"EnableLogTypes": ["audit"]}} if export else {}
    rds.modify_db_instance(DBInstanceIdentifier=DB, OptionGroupName=GROUP, ApplyImmediately=True, **extra)
    entry = dataplane.wait_ready(DB, timeout=10,
                                 predicate=lambda item: (item.get("audit") or {}).get("SERVER_AUDIT_EVENTS") == EVENTS)
    assert entry["restarted"] == 0, "adding the plugin must not restart the instance"


def users():
    """A Keystone-like service user and a batch user the option excludes (as rdsadmin on RDS), both over TLS."""
    dataplane.sql(DB, "CREATE DATABASE app")
    for user in ("keystone", "batch"):
        dataplane.sql(DB, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{KEYSTONE_PASSWORD}'")
        dataplane.sql(DB, f"GRANT ALL PRIVILEGES ON app.* TO '{user}'@'%'")


def as_user(user, *statements):
    with connect(dataplane.endpoint_for(DB), user, KEYSTONE_PASSWORD, autocommit=True) as connection, \
            connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def published(aws_lab):
    logs = aws_lab.boto3("logs")
    if not logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]:
        return []
    return [event["message"] for event in logs.filter_log_events(logGroupName=LOG_GROUP)["events"]]


def wait_published(aws_lab, *fragments, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        lines = published(aws_lab)
        if all(any(fragment in line for line in lines) for fragment in fragments):
            return lines
        assert time.monotonic() < deadline, f"{fragments} not published within {timeout} s: {lines}"
        time.sleep(0.3)


def audit_file_lines():
    uid = dataplane.status()["instances"][DB]["uid"]
    return audit.audit_file(layout.instance_dir(layout.state_dir(), uid)).read_text().splitlines()


def test_a_login_and_ddl_reach_cloudwatch_logs_but_not_dml_nor_statements_of_excluded_users(served, aws_lab):
    users()
    enable_audit(aws_lab)
    as_user("keystone", "CREATE TABLE app.audited (id INT)", "INSERT INTO app.audited VALUES (4242)",
            "SELECT * FROM app.audited")
    as_user("batch", "CREATE TABLE app.hidden (id INT)")
    dataplane.sql(DB, "CREATE USER 'late'@'%' IDENTIFIED BY 'Late-secret-2'")  # DCL by the master user
    lines = wait_published(aws_lab, ",keystone,", "CREATE TABLE app.audited", "CREATE USER")
    print("\n".join(lines))
    assert any(",keystone," in line and ",CONNECT," in line for line in lines)  # the service's login
    assert not any("4242" in line or "SELECT * FROM app.audited" in line for line in lines)  # no DML by default
    # an excluded user's statements are left out; MariaDB's server_audit still logs its logins (CONNECT)
    assert not any("app.hidden" in line or (",batch," in line and ",QUERY," in line) for line in lines)
    assert any(",batch," in line and ",CONNECT," in line for line in lines)
    assert not any("Late-secret-2" in line for line in lines)  # CREATE USER's password is masked
    logs = aws_lab.boto3("logs")
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP)["logStreams"]
    assert [stream["logStreamName"] for stream in streams] == [DB]


def test_without_the_export_the_server_audits_but_nothing_is_published(served, aws_lab):
    users()
    enable_audit(aws_lab, export=False)
    as_user("keystone", "CREATE TABLE app.unexported (id INT)")
    deadline = time.monotonic() + 5
    while not any("app.unexported" in line for line in audit_file_lines()):
        assert time.monotonic() < deadline, "the server did not audit the DDL"
        time.sleep(0.2)
    time.sleep(1.0)  # a few polls of the bridge
    assert published(aws_lab) == []


def test_removing_the_option_restarts_the_instance_and_stops_auditing(served, aws_lab):
    users()
    enable_audit(aws_lab)
    as_user("keystone", "CREATE TABLE app.before_removal (id INT)")
    wait_published(aws_lab, "app.before_removal")
    aws_lab.boto3("rds").modify_option_group(OptionGroupName=GROUP, OptionsToRemove=["MARIADB_AUDIT_PLUGIN"],
                                             ApplyImmediately=True)
    entry = wait_served(aws_lab, DB, timeout=30, restarted=1, ready=True)
    assert entry["audit"] is None
    restart = [item for item in dataplane.status()["restarts"] if item["instance"] == DB][-1]
    assert restart["reason"] == "MariaDB Audit Plugin removed" and restart["up"] is not None
    as_user("keystone", "CREATE TABLE app.after_removal (id INT)")
    assert dataplane.sql(DB, "SELECT @@GLOBAL.server_audit_logging") == ((0,),)
    time.sleep(1.0)  # a few polls of the bridge
    assert not any("app.after_removal" in line for line in published(aws_lab) + audit_file_lines())
