"""What keystone_db and cso_db write for a read replica, rendered by the roles' own write tasks.

Each test runs the role's ``write.yml`` (``include_role`` with ``tasks_from``: the role's defaults
and vars, the real ini_file tasks) on the controller against a copy of a production file in a
temporary directory. No lab, no host, no database: what is written, not what it connects to (the
preflights that prove the replica are exercised on the host lab: tests/integration).
"""

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PRIMARY = "cso-db.abc.eu-west-2.rds.amazonaws.com"
REPLICA = "cso-db-read.abc.eu-west-2.rds.amazonaws.com"

KEYSTONE_CONF = """[DEFAULT]
debug = false

[database]
connection = mysql+pymysql://keystone:old@db.example.com/keystone
max_retries = -1

[token]
provider = fernet
"""

SETUP_PROPERTIES = """db.url=jdbc:mysql://db.example.com:3306/ssp
db.username=ssp_user
db.password=old
http.port=8080
"""


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), HOME=str(REPO_ROOT / ".ansible"))
    for name in list(env):
        if name.startswith("ANSIBLE_") and name != "ANSIBLE_CONFIG":
            env.pop(name)
    return env


def _write(tmp_path, role, variables):
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Render", "ansible.builtin.include_role": {"name": f"cso.rds_hardening.{role}",
                                                                      "tasks_from": "write.yml"}}],
    }]))
    extra = dict(variables, ansible_python_interpreter=sys.executable)
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(extra)],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result


def _keystone(tmp_path, **variables):
    conf = tmp_path / "keystone.conf"
    if not conf.exists():
        conf.write_text(KEYSTONE_CONF)
    _write(tmp_path, "keystone_db", dict({
        "keystone_db_host": PRIMARY, "keystone_db_password": "pw/with:special@", "keystone_db_admin_password": "x",
        "keystone_db_conf_path": str(conf)}, **variables))
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(conf.read_text())
    return parser["database"], conf.read_text()


def test_keystone_reads_stay_on_the_primary_by_default(tmp_path):
    database, text = _keystone(tmp_path)
    assert database["connection"].startswith(f"mysql+pymysql://keystone:pw%2Fwith%3Aspecial%40@{PRIMARY}:3306/")
    assert "slave_connection" not in database and "synchronous_reader" not in database, text


def test_keystone_read_host_renders_slave_connection_with_verified_tls_and_the_reader_setting(tmp_path):
    database, _text = _keystone(tmp_path, keystone_db_read_host=REPLICA)
    connection, slave = database["connection"], database["slave_connection"]
    assert slave == connection.replace(f"@{PRIMARY}:", f"@{REPLICA}:"), (connection, slave)
    assert slave.startswith(f"mysql+pymysql://keystone:pw%2Fwith%3Aspecial%40@{REPLICA}:3306/keystone?")
    query = slave.split("?", 1)[1].split("&")
    assert "ssl_ca=/etc/ssl/rds/rds-ca-bundle.pem" in query and "ssl_check_hostname=true" in query
    assert not any(part.startswith(("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")) for part in query)
    # without synchronous_reader = false oslo.db sends every reader transaction to `connection`
    assert database["synchronous_reader"] == "false"


def test_keystone_read_host_removed_again_takes_both_options_out(tmp_path):
    _keystone(tmp_path, keystone_db_read_host=REPLICA)
    database, text = _keystone(tmp_path, keystone_db_read_host="")
    assert "slave_connection" not in database and "synchronous_reader" not in database, text
    assert "provider = fernet" in text and "debug = false" in text


def _cso(tmp_path, **variables):
    props = tmp_path / "setup.properties"
    if not props.exists():
        props.write_text(SETUP_PROPERTIES)
    _write(tmp_path, "cso_db", dict({"cso_db_host": PRIMARY, "cso_db_password": "pw", "cso_db_properties_path": str(props)},
                                    **variables))
    lines = [line for line in props.read_text().splitlines() if "=" in line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_cso_read_url_is_the_write_url_on_the_replica(tmp_path):
    props = _cso(tmp_path, cso_db_read_host=REPLICA, cso_db_read_username="ssp_reader", cso_db_read_password="rpw")
    assert props["db.read.url"] == props["db.url"].replace(f"//{PRIMARY}:", f"//{REPLICA}:")
    assert props["db.read.url"].startswith(f"jdbc:mariadb://{REPLICA}:3306/ssp?useSSL=true&trustServerCertificate=false&")
    assert (props["db.read.username"], props["db.read.password"]) == ("ssp_reader", "rpw")
    assert props["http.port"] == "8080"


def test_cso_read_keys_removed_without_a_read_host(tmp_path):
    _cso(tmp_path, cso_db_read_host=REPLICA)
    props = _cso(tmp_path)
    assert not any(key.startswith("db.read.") for key in props), props
    assert props["db.url"].startswith(f"jdbc:mariadb://{PRIMARY}:3306/ssp?")



def test_cso_iam_mode_writes_the_wrapper_url_and_no_password(tmp_path):
    props_file = tmp_path / "setup.properties"
    props_file.write_text(SETUP_PROPERTIES)
    before = _cso(tmp_path, cso_db_read_host=REPLICA, cso_db_read_password="old-read-pw")
    assert before["db.password"] == "pw" and before["db.read.password"] == "old-read-pw"
    props = _cso(tmp_path, cso_db_auth="iam", cso_db_username="cso_iam", cso_db_read_username="cso_iam",
                 cso_db_read_host=REPLICA, cso_db_iam_token_cache_seconds=300)
    assert props["db.url"] == (
        f"jdbc:aws-wrapper:mysql://{PRIMARY}:3306/ssp?wrapperPlugins=iam&iamRegion=eu-west-2&iamExpiration=300"
        "&disableMariaDbDriver=true&sslMode=VERIFY_IDENTITY"
        "&trustCertificateKeyStoreUrl=file%3A/etc/ssl/rds/rds-truststore.jks&trustCertificateKeyStoreType=JKS"
        "&trustCertificateKeyStorePassword=changeit")
    assert props["db.read.url"] == props["db.url"].replace(f"//{PRIMARY}:", f"//{REPLICA}:")
    assert (props["db.username"], props["db.read.username"]) == ("cso_iam", "cso_iam")
    assert "db.password" not in props and "db.read.password" not in props, props
    text = props_file.read_text()
    assert "old-read-pw" not in text and "password=pw" not in text.lower()
