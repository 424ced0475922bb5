"""The rds_ca_bundle role on the controller itself (connection local, a temporary directory):
merge and de-duplication, idempotence, truststore alias removal, refusals that leave the bundle
as it was. Needs only openssl and keytool, no lab."""

import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
if not (shutil.which("openssl") and shutil.which("keytool")):
    unavailable("needs openssl and keytool", "`make setup` (openssl, openjdk-17-jdk-headless)",
                allow_module_level=True)

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - cso.rds_hardening.rds_ca_bundle
"""


def _ca(path, name, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def cas(tmp_path):
    future = datetime.datetime(2060, 1, 1, tzinfo=datetime.timezone.utc)
    old = _ca(tmp_path / "old.pem", "Old RDS CA", future)
    new = _ca(tmp_path / "new.pem", "New RDS CA", future)
    expired = _ca(tmp_path / "expired.pem", "Expired RDS CA", datetime.datetime(2024, 8, 22, tzinfo=datetime.timezone.utc))
    bundle = tmp_path / "global.pem"
    bundle.write_text(old.read_text() + new.read_text())
    return {"old": old, "new": new, "expired": expired, "global": bundle}


def _run(tmp_path, sources, check=False, **extra):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    out = tmp_path / "out"
    variables = {"rds_ca_bundle_sources": sources, "rds_ca_bundle_path": str(out / "bundle.pem"),
                 "rds_ca_bundle_truststore_enabled": True, "rds_ca_bundle_truststore_path": str(out / "trust.jks"),
                 "ansible_python_interpreter": sys.executable, **extra}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               str(playbook), "-e", json.dumps(variables)] + (["--check"] if check else [])
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                               env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                    "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "HOME": str(Path.home())})
    stats = json.loads(completed.stdout)["stats"]["localhost"] if completed.stdout.startswith("{") else {}
    return completed, stats


def _aliases(tmp_path):
    listed = subprocess.run(["keytool", "-list", "-keystore", str(tmp_path / "out" / "trust.jks"), "-storepass", "changeit"],
                            capture_output=True, text=True, check=True).stdout
    return sorted(line.split(",")[0] for line in listed.splitlines() if "trustedCertEntry" in line)


def test_rotation_merge_idempotence_and_removal(tmp_path, cas):
    rotation = [{"src": str(cas["global"])}, {"src": str(cas["old"])}]
    completed, stats = _run(tmp_path, rotation, check=True)
    assert completed.returncode == 0 and stats["changed"] > 0, completed.stdout[-2000:]
    assert not (tmp_path / "out" / "bundle.pem").exists(), "check mode wrote the bundle"

    completed, stats = _run(tmp_path, rotation)
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert (tmp_path / "out" / "bundle.pem").read_text().count("BEGIN CERTIFICATE") == 2  # old was listed twice
    assert len(_aliases(tmp_path)) == 2

    completed, stats = _run(tmp_path, rotation)
    assert completed.returncode == 0 and stats["changed"] == 0, "second run changed something"

    completed, stats = _run(tmp_path, [{"src": str(cas["new"])}])
    assert completed.returncode == 0 and stats["changed"] > 0
    assert (tmp_path / "out" / "bundle.pem").read_text().count("BEGIN CERTIFICATE") == 1
    assert len(_aliases(tmp_path)) == 1


@pytest.mark.parametrize("bad", ["expired", "garbage"])
def test_refusals_leave_the_bundle_alone(tmp_path, cas, bad):
    completed, _ = _run(tmp_path, [{"src": str(cas["global"])}])
    assert completed.returncode == 0
    before = (tmp_path / "out" / "bundle.pem").read_bytes()
    source = cas["expired"] if bad == "expired" else tmp_path / "garbage.pem"
    if bad == "garbage":
        source.write_text("-----BEGIN CERTIFICATE-----\nMIIBroken==\n-----END CERTIFICATE-----\n")
    completed, _ = _run(tmp_path, [{"src": str(cas["new"])}, {"src": str(source)}])
    assert completed.returncode != 0
    assert ("expired" if bad == "expired" else "does not parse") in completed.stdout
    assert (tmp_path / "out" / "bundle.pem").read_bytes() == before


def test_expired_dropped_on_request(tmp_path, cas):
    completed, _ = _run(tmp_path, [{"src": str(cas["new"])}, {"src": str(cas["expired"])}], rds_ca_bundle_on_expired="drop")
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert (tmp_path / "out" / "bundle.pem").read_text().count("BEGIN CERTIFICATE") == 1
