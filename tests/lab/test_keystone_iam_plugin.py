"""The keystone_db role's rds_iam SQLAlchemy plugin against the lab's data plane: real IAM logins
(AWSAuthenticationPlugin, checked by the lab's verifier like RDS) from an engine made as oslo.db
makes Keystone's: ``[database] connection`` without a password plus ``connection_parameters``.

The plugin comes from its wheel (built by build_wheel.py, installed with pip), so SQLAlchemy finds it
through the ``sqlalchemy.plugins`` entry point as it does in Keystone's venv. Credentials come
from the environment (botocore's default chain), as an STS session of a role.

Runs its own data plane in ``csolab-dptest`` as test_dataplane.py does, or uses the host lab's when one
is up (it only adds an IAM user and identities). Run under ``flock /work/.dataplane.lock``.
"""

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataplane_support import own_data_plane, require_data_plane

pytestmark = [pytest.mark.lab, pytest.mark.dataplane]

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "roles" / "keystone_db" / "files" / "rds_iam_sqlalchemy"
DB = "cso-lab-db"
USER = "keystone_iam"
CLOCK_MOVE = 16 * 60  # past a token's 15 minutes


require_data_plane()

import pymysql  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from csolab import dataplane  # noqa: E402
from iam_lab import connect_policy, dbuser_arn, enable_iam_auth, role_session, user_with_key  # noqa: E402


@pytest.fixture(scope="module")
def data_plane(lab):
    """Its own data plane, or the host lab's when one runs (marked used: its next user gets a reset)."""
    if dataplane.status()["bridge"] == "up":
        from csolab import hosts

        hosts.mark_used()
        yield dataplane
        return
    yield from own_data_plane()


@pytest.fixture(scope="module")
def plugin_wheel_installed(tmp_path_factory):
    """The plugin's wheel installed with pip (no dependencies: SQLAlchemy, PyMySQL and botocore are this venv's)."""
    work = tmp_path_factory.mktemp("rds_iam")
    wheel = subprocess.run([sys.executable, str(PLUGIN_DIR / "build_wheel.py"), "--out", str(work / "wheels")],
                           check=True, capture_output=True, text=True).stdout.strip()
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site), wheel],
                   check=True, capture_output=True)
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for name in [name for name in sys.modules if name.startswith("rds_iam_sqlalchemy")]:
        del sys.modules[name]


@pytest.fixture
def iam_user(aws_lab, data_plane):
    uid = next(item["uid"] for item in aws_lab.api("dataplane-instances")["instances"] if item["id"] == DB)
    dataplane.wait_ready(DB, timeout=60, predicate=lambda entry: entry["uid"] == uid)
    dataplane.sql(DB, f"CREATE USER '{USER}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL")
    enable_iam_auth(aws_lab, DB)
    return dbuser_arn(aws_lab, DB, USER)


def use_identity(monkeypatch, identity, tmp_path):
    """botocore's default chain finds exactly this identity (environment), no file, no metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", identity["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", identity["secret"])
    if identity["session_token"]:
        monkeypatch.setenv("AWS_SESSION_TOKEN", identity["session_token"])
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def keystone_engine(endpoint):
    """As oslo.db 18.1.1 builds it: the connection URL, then connection_parameters appended to its query."""
    connection = (f"mysql+pymysql://{USER}@{endpoint['name']}:{endpoint['port']}/"
                  f"?charset=utf8&ssl_ca={dataplane.ca_bundle_path()}&ssl_check_hostname=true")
    url = make_url(connection).update_query_string("plugin=rds_iam&rds_iam_region=eu-west-2", append=True)
    engine = create_engine(url, pool_size=2)
    tokens = []  # the passwords new DBAPI connections got (the plugin's listener runs first)
    event.listen(engine, "do_connect", lambda dialect, record, cargs, cparams: tokens.append(cparams["password"]))
    return engine, tokens


def session_facts(connection):
    user = connection.execute(text("SELECT CURRENT_USER()")).scalar()
    cipher = connection.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).fetchone()[1]
    return user, bool(cipher)


def replay(endpoint, token):
    """An old token given by hand, over the same verified TLS."""
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host=endpoint["name"], port=endpoint["port"], user=USER, password=token, connect_timeout=5,
                        ssl={"ca": str(dataplane.ca_bundle_path()), "check_hostname": True}).close()
    return refused.value.args[0]


def test_keystone_engine_logs_in_with_a_fresh_token_per_new_connection(
        aws_lab, iam_user, plugin_wheel_installed, monkeypatch, tmp_path):
    endpoint = dataplane.endpoint_for(DB)
    host_role = role_session(aws_lab, "lab-keystone-iam-plugin", connect_policy(iam_user), session_name="keystone-1")
    use_identity(monkeypatch, host_role, tmp_path)
    log_start = len(dataplane.iam_sessions())
    engine, tokens = keystone_engine(endpoint)
    assert "plugin" not in engine.url.query and "rds_iam_region" not in engine.url.query

    first = engine.connect()
    assert session_facts(first) == (f"{USER}@%", True)
    first.close()  # back to the pool
    with engine.connect() as again:  # the pooled connection: no new login, no new token
        assert session_facts(again) == (f"{USER}@%", True)
    assert len(tokens) == 1
    assert tokens[0].startswith(f"{endpoint['name']}:{endpoint['port']}/?Action=connect&DBUser={USER}&")

    # 16 minutes later, on the lab's clock and on the signer's (botocore's signing time)
    real_datetime = __import__("botocore.auth", fromlist=["get_current_datetime"]).get_current_datetime
    monkeypatch.setattr("botocore.auth.get_current_datetime",
                        lambda *args, **kwargs: real_datetime(*args, **kwargs) + datetime.timedelta(seconds=CLOCK_MOVE))
    aws_lab.set_clock_offset(CLOCK_MOVE)
    try:
        pooled = engine.connect()
        assert session_facts(pooled) == (f"{USER}@%", True)  # logged in before: the server does not ask again
        with engine.connect() as fresh:  # the pooled one is checked out: a new DBAPI connection, a new token
            assert session_facts(fresh) == (f"{USER}@%", True)
        pooled.close()
        assert len(tokens) == 2 and tokens[1] != tokens[0]
        assert replay(endpoint, tokens[0]) == 1045  # the first token is past its 15 minutes
    finally:
        aws_lab.set_clock_offset(0)
        engine.dispose()

    logged = dataplane.iam_sessions()[log_start:]
    summary = [(entry["user"], entry["allowed"], entry["identity_arn"] if entry["allowed"] else entry["reason"][:13])
               for entry in logged]
    assert summary == [(USER, True, host_role["arn"]), (USER, True, host_role["arn"]),
                       (USER, False, "token expired")], summary
    assert logged[1]["lab_time"] - logged[0]["lab_time"] >= CLOCK_MOVE
    assert all(entry["tls"] for entry in logged)


def test_an_identity_without_the_connect_policy_is_refused(aws_lab, iam_user, plugin_wheel_installed,
                                                            monkeypatch, tmp_path):
    endpoint = dataplane.endpoint_for(DB)
    other_user_only = user_with_key(aws_lab, "keystone-host-wrong-policy",
                                    inline=connect_policy(iam_user.replace(f"/{USER}", "/cso_iam")))
    use_identity(monkeypatch, other_user_only, tmp_path)
    log_start = len(dataplane.iam_sessions())
    engine, tokens = keystone_engine(endpoint)
    with pytest.raises(Exception) as refused:
        engine.connect()
    engine.dispose()
    assert getattr(refused.value, "orig", refused.value).args[0] == 1045
    assert len(tokens) == 1 and tokens[0] not in str(refused.value)
    (entry,) = dataplane.iam_sessions()[log_start:]
    assert (entry["allowed"], entry["reason"]) == (
        False, f"{other_user_only['arn']}: its policies do not allow rds-db:connect on {iam_user}")
