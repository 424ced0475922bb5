"""rds_certificate_info against stubbed clients: the exact reads, pagination, thumbprint form, an unknown CA."""

import datetime

import pytest

from ansible_collections.cso.rds_hardening.plugins.modules import rds_certificate_info as module_under_test
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Exited
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import Failed
from ansible_collections.cso.rds_hardening.tests.unit.plugins.modules.stubbed_module import StubbedModule

UTC = datetime.timezone.utc


def certificate(identifier, thumbprint):
    return {"CertificateIdentifier": identifier, "CertificateType": "CA", "Thumbprint": thumbprint,
            "ValidFrom": datetime.datetime(2021, 5, 21, 22, 15, 59, tzinfo=UTC),
            "ValidTill": datetime.datetime(2061, 5, 21, 23, 15, 59, tzinfo=UTC),
            "CertificateArn": f"arn:aws:rds:eu-west-2:123456789012:cert:{identifier}", "CustomerOverride": False}


def make_module(params, check_mode=False):
    return StubbedModule(module_under_test.ARGUMENT_SPEC, params, check_mode)


@pytest.mark.parametrize("check_mode", [False, True])
def test_one_ca_with_its_thumbprint(check_mode):
    module = make_module({"certificate_identifier": "rds-ca-rsa2048-g1"}, check_mode)
    module.stub("rds").add_response(
        "describe_certificates",
        {"Certificates": [certificate("rds-ca-rsa2048-g1", "AB:CD:EF:01")], "DefaultCertificateForNewLaunches": "rds-ca-rsa2048-g1"},
        {"CertificateIdentifier": "rds-ca-rsa2048-g1"})

    with pytest.raises(Exited) as exited:
        module_under_test.run(module)

    result = exited.value.result
    module.assert_all_calls_made()
    assert result["changed"] is False
    assert result["default_certificate_for_new_launches"] == "rds-ca-rsa2048-g1"
    assert [(c["certificate_identifier"], c["thumbprint"]) for c in result["certificates"]] == [("rds-ca-rsa2048-g1", "abcdef01")]
    assert result["certificates"][0]["valid_till"] == "2061-05-21T23:15:59+00:00"


def test_every_page_is_read():
    module = make_module({"certificate_identifier": None})
    stub = module.stub("rds")
    stub.add_response("describe_certificates", {"Certificates": [certificate("rds-ca-a", "11")], "Marker": "m1"}, {})
    stub.add_response("describe_certificates", {"Certificates": [certificate("rds-ca-b", "22")]}, {"Marker": "m1"})

    with pytest.raises(Exited) as exited:
        module_under_test.run(module)

    module.assert_all_calls_made()
    assert [c["certificate_identifier"] for c in exited.value.result["certificates"]] == ["rds-ca-a", "rds-ca-b"]
    assert exited.value.result["default_certificate_for_new_launches"] == ""


def test_an_unknown_ca_names_the_known_ones():
    module = make_module({"certificate_identifier": "rds-ca-nope"})
    stub = module.stub("rds")
    stub.add_client_error("describe_certificates", "CertificateNotFound", "Certificate rds-ca-nope not found.",
                          404, expected_params={"CertificateIdentifier": "rds-ca-nope"})
    stub.add_response("describe_certificates", {"Certificates": [certificate("rds-ca-rsa4096-g1", "33"),
                                                                  certificate("rds-ca-rsa2048-g1", "44")]}, {})

    with pytest.raises(Failed) as failed:
        module_under_test.run(module)

    module.assert_all_calls_made()
    assert failed.value.result["msg"] == (
        "RDS has no certificate authority rds-ca-nope in eu-west-2. Use one of: rds-ca-rsa2048-g1, rds-ca-rsa4096-g1.")
