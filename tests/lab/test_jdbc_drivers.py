"""The pinned JDBC drivers (roles/cso_db/files/jdbc-drivers.lock) log in to the lab's RDS MySQL with
IAM tokens, as CSO does: the AWS Advanced JDBC Wrapper's ``iam`` plugin signs a token with the
credentials of the JVM's default AWS chain (here: environment variables) and MySQL Connector/J sends
it over TLS verified with sslMode=VERIFY_IDENTITY against a JKS truststore.

A small Java probe (tests/lab/java/JdbcProbe.java, compiled here with javac) connects through
DriverManager. Negatives: an identity whose policies do not allow rds-db:connect, a truststore with
an unrelated CA, and a host name the certificate does not carry must each be refused; the lab's
IAM verifier log says which logins it saw and who signed them.

Uses the host lab's data plane when one runs (and marks the host lab used, so its next user gets
it reset), else runs its own in namespace ``csolab-dptest`` (as tests/lab/test_dataplane.py). Run
it under ``flock /work/.dataplane.lock`` when others share the lab. Needs the jars in the cache:
``make jdbc-drivers``.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import unavailable

pytestmark = [pytest.mark.lab, pytest.mark.dataplane]

REPO_ROOT = Path(__file__).resolve().parents[2]
NETNS = "csolab-dptest"
DB_USER = "cso_iam"
REGION = "eu-west-2"
MARIADB_JAR = "/usr/share/java/mariadb-java-client.jar"
JDBC_CACHE = Path(os.environ.get("CSO_JDBC_CACHE", "/var/cache/cso-rds-hardening/jars"))


def _fetch_jars():
    spec = importlib.util.spec_from_file_location("fetch_jars", REPO_ROOT / "roles/cso_db/files/fetch_jars.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _missing_requirements():
    if os.geteuid() != 0:
        return "needs root (network namespace, nftables, /etc/hosts)"
    for tool in ("mariadbd", "socat", "nft", "javac", "keytool"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (make setup)"
    return None


if _missing_requirements():
    unavailable(_missing_requirements(), "run as root with `make setup` done", allow_module_level=True)

from csolab import dataplane, netns  # noqa: E402
from csolab.dataplane import layout  # noqa: E402


@pytest.fixture(scope="module")
def classpath():
    """The pinned jars, verified against the lock (a cache that does not match fails here)."""
    fetch_jars = _fetch_jars()
    jars = fetch_jars.parse_lock((REPO_ROOT / "roles/cso_db/files/jdbc-drivers.lock").read_text())
    missing = [jar.file_name for jar in jars if not (JDBC_CACHE / jar.file_name).exists()]
    if missing:
        unavailable(f"{len(missing)} pinned jars are not in {JDBC_CACHE} ({missing[0]}, ...)", "run `make jdbc-drivers`")
    paths = []
    for jar in jars:
        fetch_jars.verify(jar, JDBC_CACHE / jar.file_name)
        paths.append(str(JDBC_CACHE / jar.file_name))
    return paths


@pytest.fixture(scope="module")
def probe_classes(tmp_path_factory):
    classes = tmp_path_factory.mktemp("probe")
    subprocess.run(["javac", "--release", "17", "-d", str(classes), str(REPO_ROOT / "tests/lab/java/JdbcProbe.java")],
                   check=True, capture_output=True, text=True, timeout=120)
    return classes


@pytest.fixture(scope="module")
def data_plane(lab):
    """A data plane serving the seeded database: the host lab's when one runs (it is then marked
    used, so its next user gets it reset; nothing is reset here), else one of our own."""
    from csolab import hosts

    if dataplane.status()["bridge"] == "up":
        hosts.mark_used()
        yield "host lab"
        return
    lab.reset(seed_database=True)
    created = not netns.exists(NETNS)
    dataplane.start(netns_name=NETNS)
    yield NETNS
    dataplane.stop()
    layout.hosts_json(layout.state_dir()).unlink(missing_ok=True)
    if created:
        netns.delete(NETNS)


def _truststore(directory, pem_bundle):
    """A JKS truststore with every certificate of ``pem_bundle`` (keytool imports one per call)."""
    text = Path(pem_bundle).read_text()
    certificates = [block.split("-----END CERTIFICATE-----")[0] for block in text.split("-----BEGIN CERTIFICATE-----")[1:]]
    store = Path(directory) / (Path(pem_bundle).stem + ".jks")
    for index, body in enumerate(certificates):
        pem = Path(directory) / f"{store.stem}-{index}.pem"
        pem.write_text(f"-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----\n")
        subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", f"ca-{index}", "-file", str(pem),
                        "-keystore", str(store), "-storepass", "changeit", "-storetype", "JKS"],
                       check=True, capture_output=True, text=True, timeout=60)
    return store


@pytest.fixture
def iam_db(lab, data_plane, tmp_path):
    """The database served, IAM authentication enabled, cso_iam created as on RDS (dropped after)."""
    from iam_lab import enable_iam_auth

    uid = next(item["uid"] for item in lab.api("dataplane-instances")["instances"] if item["id"] == "cso-lab-db")
    dataplane.wait_ready("cso-lab-db", timeout=60, predicate=lambda entry: entry["uid"] == uid)
    dataplane.sql("cso-lab-db", "CREATE DATABASE IF NOT EXISTS cso")
    dataplane.sql("cso-lab-db", f"DROP USER IF EXISTS '{DB_USER}'@'%'")
    dataplane.sql("cso-lab-db", f"CREATE USER '{DB_USER}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL")
    dataplane.sql("cso-lab-db", f"GRANT SELECT ON cso.* TO '{DB_USER}'@'%'")
    enable_iam_auth(lab, "cso-lab-db")
    yield {
        "endpoint": dataplane.endpoint_for("cso-lab-db"),
        "truststore": _truststore(tmp_path, dataplane.ca_bundle_path()),
        "rogue_truststore": _truststore(tmp_path, dataplane.rogue_ca_path()),
    }
    dataplane.sql("cso-lab-db", f"DROP USER IF EXISTS '{DB_USER}'@'%'")


@pytest.fixture
def identities(lab):
    """Two role sessions (unique role names: the lab may not be reset between runs), one allowed
    rds-db:connect on cso_iam's ARN, one allowed it on another user's only."""
    from iam_lab import connect_policy, dbuser_arn, role_session

    arn = dbuser_arn(lab, "cso-lab-db", DB_USER)
    suffix = f"{os.getpid()}-{int(time.time())}"
    return {
        "arn": arn,
        "allowed": role_session(lab, f"lab-cso-jdbc-{suffix}", connect_policy(arn), session_name="cso-1"),
        "no_policy": role_session(lab, f"lab-cso-jdbc-other-{suffix}",
                                  connect_policy(arn.replace(f"/{DB_USER}", "/someone_else")), session_name="cso-1"),
    }


def wrapper_url(host, port, truststore, **extra):
    params = {"wrapperPlugins": "iam", "iamRegion": REGION, "sslMode": "VERIFY_IDENTITY",
              "trustCertificateKeyStoreUrl": f"file:{truststore}", "trustCertificateKeyStoreType": "JKS",
              "trustCertificateKeyStorePassword": "changeit", **extra}
    return f"jdbc:aws-wrapper:mysql://{host}:{port}/cso?" + "&".join(f"{k}={v}" for k, v in params.items())


def run_probe(classpath, probe_classes, url, identity, extra_jars=()):
    """The probe in a JVM whose default AWS credentials chain finds only ``identity`` (environment)."""
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": "/nonexistent/config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
           "AWS_ACCESS_KEY_ID": identity["key"], "AWS_SECRET_ACCESS_KEY": identity["secret"]}
    if identity.get("session_token"):
        env["AWS_SESSION_TOKEN"] = identity["session_token"]
    java_classpath = ":".join([*extra_jars, *classpath, str(probe_classes)])
    result = subprocess.run(["java", "-cp", java_classpath, "JdbcProbe", DB_USER], input=url + "\n", env=env,
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the probe printed no report (rc {result.returncode}): {result.stdout}{result.stderr[-2000:]}"
    report = json.loads(lines[-1])
    assert (result.returncode == 0) == report["connected"], report
    return report


def test_iam_login_through_the_wrapper_and_connector_j(iam_db, identities, classpath, probe_classes):
    endpoint = iam_db["endpoint"]
    arn, session, no_policy = identities["arn"], identities["allowed"], identities["no_policy"]
    url = wrapper_url(endpoint["name"], endpoint["port"], iam_db["truststore"])
    log_start = len(dataplane.iam_sessions())

    report = run_probe(classpath, probe_classes, url, session)
    assert report["current_user"] == f"{DB_USER}@%", report
    assert report["driver_class"] == "software.amazon.jdbc.Driver"
    assert report["target_driver"].startswith("MySQL Connector/J mysql-connector-j-8.4.0"), report
    assert report["cipher"].startswith("TLS_"), report

    # Debian's MariaDB Connector/J 2.x also claims jdbc:mysql: URLs: first on the class path it takes
    # the wrapper's target URL and ignores sslMode (plaintext, so it will not send the token);
    # disableMariaDbDriver in the URL makes it decline, and Connector/J connects.
    mariadb_first = run_probe(classpath, probe_classes, url, session, extra_jars=[MARIADB_JAR])
    assert not mariadb_first["connected"]
    assert "Connector use a plugin that require SSL without enabling ssl" in mariadb_first["error"], mariadb_first
    both = run_probe(classpath, probe_classes, url + "&disableMariaDbDriver", session, extra_jars=[MARIADB_JAR])
    assert (both["current_user"], both["target_driver"].split(" ")[0]) == (f"{DB_USER}@%", "MySQL"), both

    refused = {
        "identity without the policy": run_probe(classpath, probe_classes, url, no_policy),
        "unrelated CA": run_probe(classpath, probe_classes,
                                  wrapper_url(endpoint["name"], endpoint["port"], iam_db["rogue_truststore"]), session),
        # the instance's address: the certificate names the endpoint only (the token is still for the endpoint)
        "wrong host name": run_probe(classpath, probe_classes, wrapper_url(
            endpoint["loopback_ip"], endpoint["port"], iam_db["truststore"], iamHost=endpoint["name"]), session),
    }
    assert {name: report["connected"] for name, report in refused.items()} == dict.fromkeys(refused, False)
    assert "Access denied for user 'cso_iam'" in refused["identity without the policy"]["error"]
    assert "Path does not chain with any of the trust anchors" in refused["unrelated CA"]["error"], refused["unrelated CA"]
    assert ("Server identity verification failed. None of the certificate's DNS or IP Subject Alternative Name "
            f"entries matched the server hostname/IP '{endpoint['loopback_ip']}'") in refused["wrong host name"]["error"]

    # the verifier saw the two logins and the refused identity; the TLS refusals never reached it
    logged = [(entry["user"], entry["allowed"], entry["identity_arn"], entry["tls"])
              for entry in dataplane.iam_sessions()[log_start:]]
    assert logged == [(DB_USER, True, session["arn"], True), (DB_USER, True, session["arn"], True),
                      (DB_USER, False, no_policy["arn"], True)], logged
    assert dataplane.iam_sessions()[-1]["reason"].startswith(
        f"{no_policy['arn']}: its policies do not allow rds-db:connect on {arn}")


def run_cso_db_check(classpath, url, identity):
    """The cso_db role's preflight program (roles/cso_db/files/CsoDbCheck.java), as the role runs it."""
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": "/nonexistent/config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
           "AWS_ACCESS_KEY_ID": identity["key"], "AWS_SECRET_ACCESS_KEY": identity["secret"],
           "AWS_SESSION_TOKEN": identity["session_token"]}
    result = subprocess.run(
        ["java", "-cp", ":".join(classpath), str(REPO_ROOT / "roles/cso_db/files/CsoDbCheck.java"), "-", DB_USER,
         "--negatives", "--expect=primary"], input=f"\n{url}\n", env=env, capture_output=True, text=True, timeout=180)
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def test_cso_db_preflight_proves_the_iam_login_and_names_a_refused_identity(iam_db, identities, classpath):
    endpoint = iam_db["endpoint"]
    url = wrapper_url(endpoint["name"], endpoint["port"], iam_db["truststore"], iamExpiration="600",
                      disableMariaDbDriver="true")
    rc, report = run_cso_db_check(classpath, url, identities["allowed"])
    assert rc == 0, report
    assert (report["driver_class"], report["aws_access_key_id"]) == (
        "software.amazon.jdbc.Driver", identities["allowed"]["key"])
    assert report["target_driver"].startswith("MySQL Connector/J"), report
    assert report["cipher"].startswith("TLS_") and report["read_only"] == 0, report
    negatives = report["negatives"]
    assert [negatives[name]["refused"] for name in ("untrusted_ca", "wrong_host_name")] == [True, True], negatives
    assert [negatives[name]["tls_failure"] for name in ("untrusted_ca", "wrong_host_name")] == [True, True], negatives
    assert "iamHost=" + endpoint["name"] in negatives["wrong_host_name"]["url"]

    rc, refused = run_cso_db_check(classpath, url, identities["no_policy"])
    assert (rc, refused["iam_refused"], refused["aws_access_key_id"]) == (3, True, identities["no_policy"]["key"]), refused
    assert "Access denied for user 'cso_iam'" in refused["error"]
