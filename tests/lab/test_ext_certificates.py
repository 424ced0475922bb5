"""Contract: describe_certificates, instance CA and CertificateDetails, CA changes."""

import datetime
import subprocess

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

DB = "cso-lab-db"
UTC = datetime.timezone.utc


def _instance(rds):
    return rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]


def test_certificate_catalogue(lab):
    lab.reset()
    rds = lab.boto3("rds")

    answer = rds.describe_certificates()
    certificates = {c["CertificateIdentifier"]: c for c in answer["Certificates"]}

    assert answer["DefaultCertificateForNewLaunches"] == "rds-ca-rsa2048-g1"
    assert set(certificates) == {"rds-ca-2019", "rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"}
    now = datetime.datetime.now(UTC)
    assert certificates["rds-ca-2019"]["ValidTill"] < now
    assert certificates["rds-ca-2019"]["ValidTill"].date() == datetime.date(2024, 8, 22)
    for certificate in certificates.values():
        assert certificate["CertificateType"] == "CA"
        assert certificate["CustomerOverride"] is False
        assert certificate["ValidFrom"] < now
        assert len(certificate["Thumbprint"]) == 40
        assert certificate["CertificateArn"].endswith(f":cert:{certificate['CertificateIdentifier']}")
    for current in ("rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"):
        assert certificates[current]["ValidTill"] > now + datetime.timedelta(days=365 * 30)


def openssl_sha1(pem_path):
    """``openssl x509 -noout -fingerprint -sha1`` as lower-case hex without colons."""
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha1", "-in", str(pem_path)],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def test_thumbprint_is_the_sha1_fingerprint_of_the_lab_ca(lab):
    from csolab import dataplane

    rds = lab.boto3("rds")
    certificates = {c["CertificateIdentifier"]: c["Thumbprint"] for c in rds.describe_certificates()["Certificates"]}
    other_region = {c["CertificateIdentifier"]: c["Thumbprint"]
                    for c in lab.boto3("rds", region="eu-west-1").describe_certificates()["Certificates"]}

    fingerprints = {identifier: openssl_sha1(dataplane.ca_path(identifier)) for identifier in certificates}
    assert certificates == fingerprints
    assert len(set(certificates.values())) == len(certificates)
    assert openssl_sha1(dataplane.rogue_ca_path()) not in certificates.values()
    assert other_region == certificates  # one lab CA per identifier, whatever the region


def test_describe_one_certificate_and_an_unknown_one(lab):
    lab.reset()
    rds = lab.boto3("rds")

    one = rds.describe_certificates(CertificateIdentifier="rds-ca-ecc384-g1")["Certificates"]
    with pytest.raises(ClientError) as error:
        rds.describe_certificates(CertificateIdentifier="rds-ca-nope")

    assert [c["CertificateIdentifier"] for c in one] == ["rds-ca-ecc384-g1"]
    assert error.value.response["Error"]["Code"] == "CertificateNotFound"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_new_instance_uses_the_default_ca_with_certificate_details(lab):
    lab.reset()
    instance = _instance(lab.boto3("rds"))

    assert instance["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    details = instance["CertificateDetails"]
    assert details["CAIdentifier"] == "rds-ca-rsa2048-g1"
    assert details["ValidTill"] > datetime.datetime.now(UTC)


def test_ca_change_waits_for_the_window_unless_applied_immediately(lab):
    lab.reset()
    rds = lab.boto3("rds")

    deferred = rds.modify_db_instance(DBInstanceIdentifier=DB, CACertificateIdentifier="rds-ca-ecc384-g1")["DBInstance"]
    assert deferred["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    assert deferred["PendingModifiedValues"] == {"CACertificateIdentifier": "rds-ca-ecc384-g1"}

    applied = rds.modify_db_instance(DBInstanceIdentifier=DB, CACertificateIdentifier="rds-ca-rsa4096-g1",
                                     ApplyImmediately=True, CertificateRotationRestart=False)["DBInstance"]
    assert applied["CACertificateIdentifier"] == "rds-ca-rsa4096-g1"
    assert applied["CertificateDetails"]["CAIdentifier"] == "rds-ca-rsa4096-g1"
    assert applied["PendingModifiedValues"] == {}


def test_instance_on_the_expired_ca_reports_its_expiry(lab):
    lab.reset()
    rds = lab.boto3("rds")

    instance = rds.modify_db_instance(DBInstanceIdentifier=DB, CACertificateIdentifier="rds-ca-2019",
                                      ApplyImmediately=True)["DBInstance"]

    assert instance["CertificateDetails"]["ValidTill"] < datetime.datetime.now(UTC)


@pytest.mark.parametrize("call", ["modify", "create"])
def test_unknown_ca_is_rejected(lab, call):
    lab.reset()
    rds = lab.boto3("rds")

    with pytest.raises(ClientError) as error:
        if call == "modify":
            rds.modify_db_instance(DBInstanceIdentifier=DB, CACertificateIdentifier="rds-ca-nope", ApplyImmediately=True)
        else:
            rds.create_db_instance(DBInstanceIdentifier="ext-ca", Engine="mysql", DBInstanceClass="db.t3.micro",
                                   AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="lab-password-1",
                                   CACertificateIdentifier="rds-ca-nope")

    assert error.value.response["Error"]["Code"] == "CertificateNotFound"
    assert _instance(rds)["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
