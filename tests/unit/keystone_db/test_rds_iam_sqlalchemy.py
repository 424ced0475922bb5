"""The rds_iam SQLAlchemy engine plugin shipped with the keystone_db role (roles/keystone_db/files/rds_iam_sqlalchemy).

No database: PyMySQL's connect() is replaced by a recorder, so each test sees exactly the keyword
arguments a new DBAPI connection would get (and the token among them). Tokens are signed by the
real botocore with fixed dummy credentials (signing is local: no AWS call).
"""

import logging
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.dialects import plugins

PACKAGE_DIR = Path(__file__).resolve().parents[3] / "roles" / "keystone_db" / "files" / "rds_iam_sqlalchemy"
sys.path.insert(0, str(PACKAGE_DIR))

import rds_iam_sqlalchemy  # noqa: E402
from rds_iam_sqlalchemy import RdsIamConfigurationError, RdsIamPlugin, RdsIamTokenError  # noqa: E402

plugins.register("rds_iam", "rds_iam_sqlalchemy", "RdsIamPlugin")  # the wheel registers it by entry point

WRITER = "cso-lab-db.aaaaaaaaaa.eu-west-2.rds.amazonaws.com"
READER = "cso-lab-db-replica.aaaaaaaaaa.eu-west-2.rds.amazonaws.com"
KEYSTONE_URL = (f"mysql+pymysql://keystone_iam@{WRITER}:3306/keystone"
                "?charset=utf8&ssl_ca=/etc/ssl/rds/rds-ca-bundle.pem&ssl_check_hostname=true")
PARAMETERS = "plugin=rds_iam&rds_iam_region=eu-west-2"
ACCESS_KEY = "AKIAKEYSTONEHOST0001"


def oslo_db_url(url=KEYSTONE_URL, parameters=PARAMETERS):
    """What oslo.db 18.1.1 (engines.create_engine) makes of [database] connection + connection_parameters."""
    from sqlalchemy.engine import make_url
    return make_url(url).update_query_string(parameters, append=True)


class Refused(pymysql.err.OperationalError):
    pass


@pytest.fixture(autouse=True)
def host_credentials(monkeypatch, tmp_path):
    """The default chain finds these (as it finds an instance profile on the host) and nothing else."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def dbapi_connects(monkeypatch):
    """Record PyMySQL connect() keyword arguments; every connection attempt is refused after that."""
    calls = []

    def connect(*args, **kwargs):
        calls.append(kwargs)
        raise Refused(1045, "Access denied for user 'keystone_iam'@'10.20.1.11' (using password: YES)")

    monkeypatch.setattr(pymysql, "connect", connect)
    return calls


def attempt(engine):
    with pytest.raises(Exception) as refused:
        engine.connect()
    return refused.value


def plugin_of(engine):
    return next(listener.__self__ for listener in engine.dialect.dispatch.do_connect
                if isinstance(getattr(listener, "__self__", None), RdsIamPlugin))


def parse_token(token):
    endpoint, query = token.split("?", 1)
    return endpoint, dict(urllib.parse.parse_qsl(query))


def test_oslo_db_parameters_load_the_plugin_and_are_removed_before_the_driver(dbapi_connects):
    engine = create_engine(oslo_db_url())
    assert "plugin" not in engine.url.query and "rds_iam_region" not in engine.url.query
    assert dict(engine.url.query) == {"charset": "utf8", "ssl_ca": "/etc/ssl/rds/rds-ca-bundle.pem",
                                      "ssl_check_hostname": "true"}
    attempt(engine)
    (kwargs,) = dbapi_connects
    assert set(kwargs) == {"host", "port", "user", "database", "charset", "ssl", "client_flag", "password"}
    assert kwargs["ssl"] == {"ca": "/etc/ssl/rds/rds-ca-bundle.pem", "check_hostname": True}  # TLS args kept


def test_each_new_connection_gets_a_new_token_signed_for_its_engine(dbapi_connects, monkeypatch):
    signed = []

    class Client:
        def generate_db_auth_token(self, host, port, user):
            signed.append((host, port, user))
            return f"{host}:{port}/?Action=connect&DBUser={user}&X-Amz-Signature={len(signed):064d}"

    created = []
    monkeypatch.setattr(RdsIamPlugin, "client_factory", staticmethod(lambda region: created.append(region) or Client()))
    writer = create_engine(oslo_db_url())
    reader = create_engine(oslo_db_url(KEYSTONE_URL.replace(WRITER, READER).replace(":3306/", ":3307/")))
    for engine in (writer, writer, reader, writer):
        attempt(engine)
    assert signed == [(WRITER, 3306, "keystone_iam"), (WRITER, 3306, "keystone_iam"),
                      (READER, 3307, "keystone_iam"), (WRITER, 3306, "keystone_iam")]
    assert [call["password"].rsplit("=", 1)[1].lstrip("0") for call in dbapi_connects] == ["1", "2", "3", "4"]
    assert [(call["host"], call["port"]) for call in dbapi_connects] == [
        (WRITER, 3306), (WRITER, 3306), (READER, 3307), (WRITER, 3306)]
    assert created == ["eu-west-2", "eu-west-2"]  # one client per engine, reused for its connections


def test_the_token_is_a_sigv4_presigned_connect_for_the_engine_host_port_user_and_region(dbapi_connects):
    attempt(create_engine(oslo_db_url(parameters="plugin=rds_iam&rds_iam_region=eu-west-1")))
    endpoint, query = parse_token(dbapi_connects[0]["password"])
    assert endpoint == f"{WRITER}:3306/"
    assert (query["Action"], query["DBUser"], query["X-Amz-Algorithm"], query["X-Amz-Expires"]) == (
        "connect", "keystone_iam", "AWS4-HMAC-SHA256", "900")
    key, _date, region, service, _terminator = query["X-Amz-Credential"].split("/")
    assert (key, region, service) == (ACCESS_KEY, "eu-west-1", "rds-db")


def test_the_region_is_required():
    with pytest.raises(RdsIamConfigurationError, match="rds_iam_region is missing"):
        create_engine(oslo_db_url(parameters="plugin=rds_iam"))


@pytest.mark.parametrize("url, refusal", [
    (KEYSTONE_URL.replace("&ssl_ca=/etc/ssl/rds/rds-ca-bundle.pem", ""), "has no ssl_ca"),
    (KEYSTONE_URL + "&ssl_disabled=true", "sets ssl_disabled"),
    (KEYSTONE_URL.replace("ssl_check_hostname=true", "ssl_check_hostname=false"), "ssl_check_hostname=false"),
    (KEYSTONE_URL + "&ssl_verify_cert=true", "ssl_verify_cert, which makes PyMySQL drop ssl_ca"),
    (KEYSTONE_URL + "&ssl_verify_identity=true", "ssl_verify_identity, which makes PyMySQL drop ssl_ca"),
], ids=["no-ca", "ssl-disabled", "no-hostname-check", "verify-cert", "verify-identity"])
def test_a_url_without_verified_tls_is_refused(url, refusal, dbapi_connects):
    with pytest.raises(RdsIamConfigurationError, match=refusal):
        create_engine(oslo_db_url(url))
    assert dbapi_connects == []


@pytest.mark.parametrize("credentials", ["keystone_iam:secret", "keystone_iam:"])
def test_a_url_with_a_password_is_refused(credentials, dbapi_connects):
    with pytest.raises(RdsIamConfigurationError, match="carries a password") as refused:
        create_engine(oslo_db_url(KEYSTONE_URL.replace("keystone_iam@", f"{credentials}@")))
    assert "secret" not in str(refused.value)


def test_the_token_is_in_no_log_record_repr_or_error(dbapi_connects, caplog):
    caplog.set_level(logging.DEBUG)
    engine = create_engine(oslo_db_url(), echo_pool="debug")
    error = attempt(engine)
    token = dbapi_connects[0]["password"]
    signature = parse_token(token)[1]["X-Amz-Signature"]
    assert "signed a new IAM authentication token for keystone_iam@" in caplog.text  # the log was captured
    seen = {"log": caplog.text, "error": f"{error!s} {error!r}", "engine": repr(engine), "url": str(engine.url),
            "url_repr": repr(engine.url), "plugin": repr(plugin_of(engine))}
    assert {name: signature in text for name, text in seen.items()} == dict.fromkeys(seen, False)
    assert repr(plugin_of(engine)) == f"<RdsIamPlugin region='eu-west-2' endpoint={WRITER}:3306 user='keystone_iam'>"


def test_no_credentials_is_a_clear_error_and_no_connection_attempt(dbapi_connects, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RdsIamTokenError, match=r"cannot sign an IAM authentication token for keystone_iam@"
                                               rf"{WRITER}:3306 in eu-west-2: NoCredentialsError"):
        create_engine(oslo_db_url()).connect()
    assert dbapi_connects == []


def test_an_engine_without_the_plugin_is_untouched(dbapi_connects):
    engine = create_engine(KEYSTONE_URL.replace("keystone_iam@", "keystone:pw@"))
    attempt(engine)
    assert dbapi_connects[0]["password"] == "pw"
    assert not any(isinstance(getattr(listener, "__self__", None), RdsIamPlugin)
                   for listener in engine.dialect.dispatch.do_connect)


def test_the_wheel_is_reproducible_and_registers_the_entry_point(tmp_path):
    """build_wheel.py builds offline, byte-identical twice; installed, SQLAlchemy finds the plugin by its entry point."""
    wheels = [subprocess.run([sys.executable, str(PACKAGE_DIR / "build_wheel.py"), "--out", str(tmp_path / name)],
                             check=True, capture_output=True, text=True).stdout.strip() for name in ("a", "b")]
    assert Path(wheels[0]).name == "rds_iam_sqlalchemy-1.0.0-py3-none-any.whl"
    assert Path(wheels[0]).read_bytes() == Path(wheels[1]).read_bytes()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target),
                    wheels[0]], check=True, capture_output=True)
    probe = ("from sqlalchemy import create_engine; e = create_engine(%r); "
             "print(sorted(e.url.query), type(next(iter(e.dialect.dispatch.do_connect)).__self__).__module__)") % str(oslo_db_url())
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['charset', 'ssl_ca', 'ssl_check_hostname'] rds_iam_sqlalchemy"


def test_the_module_imports_no_boto3():
    """botocore only: boto3 is not installed into Keystone's venv."""
    source = Path(rds_iam_sqlalchemy.__file__).read_text()
    assert "boto3" not in source and "botocore.session" in source
