"""RDS certificate authorities: ``describe_certificates``, an instance's ``CACertificateIdentifier``
(the regional default for new instances) and ``CertificateDetails``, and CA validation on
create/modify. Whether a CA change waits for the maintenance window is decided in ``pending``.

``Thumbprint`` (AWS: RDS API Reference, "Certificate": "The thumbprint of the certificate"; RDS
returns 40 hex digits, the SHA-1 fingerprint of the CA certificate, as for every X.509 thumbprint
AWS reports) is the SHA-1 fingerprint of the lab CA certificate the data plane signs servers with
for that identifier (``csolab.dataplane.pki``, in the data plane's state dir: the one the bridge
reports, else the lab dir). AWS has one root CA per identifier and region; the lab has one per
identifier, so every region reports the same thumbprint.
"""

import datetime

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBInstance, RDSBackend

from csolab.dataplane import pki
from csolab.moto_ext import catalogue, dataplane_state
from csolab.moto_ext._common import around, get, rds_action

SERVER_CERTIFICATE_LIFETIME = datetime.timedelta(days=365)


class CertificateNotFoundFault(RDSClientError):
    def __init__(self, identifier):
        super().__init__("CertificateNotFound", f"Certificate {identifier} not found.")


def certificate(identifier, region, account_id):
    valid_from, valid_till = catalogue.CERTIFICATE_AUTHORITIES[identifier]
    return {
        "CertificateIdentifier": identifier,
        "CertificateType": "CA",
        "Thumbprint": thumbprint(identifier),
        "ValidFrom": valid_from,
        "ValidTill": valid_till,
        "CertificateArn": f"arn:aws:rds:{region}:{account_id}:cert:{identifier}",
        "CustomerOverride": False,
    }


def thumbprint(identifier):
    """The SHA-1 fingerprint of the CA certificate the data plane uses for ``identifier``."""
    return pki.sha1_fingerprint(identifier, dataplane_state.state_dir())


def validate_ca(identifier):
    if identifier not in catalogue.CERTIFICATE_AUTHORITIES:
        raise CertificateNotFoundFault(identifier)


@rds_action
def describe_certificates(self):
    identifier = self.params.get("CertificateIdentifier")
    if identifier:
        validate_ca(identifier)
    names = [identifier] if identifier else sorted(catalogue.CERTIFICATE_AUTHORITIES)
    certificates = [certificate(name, self.region, self.current_account) for name in names]
    return ActionResult({"DefaultCertificateForNewLaunches": catalogue.DEFAULT_CA, "Certificates": certificates})


@around(DBInstance, "__init__")
def _instance_init(original, instance, *args, **kwargs):
    original(instance, *args, **kwargs)
    if instance.ca_certificate_identifier in (None, "rds-ca-default"):
        instance.ca_certificate_identifier = catalogue.DEFAULT_CA
    instance._lab_ca_issued = utcnow()


def _certificate_details(instance):
    validity = catalogue.CERTIFICATE_AUTHORITIES.get(instance.ca_certificate_identifier)
    if validity is None:
        return None
    issued = instance.__dict__.get("_lab_ca_issued") or utcnow()
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=catalogue.UTC)
    return {"CAIdentifier": instance.ca_certificate_identifier,
            "ValidTill": min(validity[1], issued + SERVER_CERTIFICATE_LIFETIME)}


DBInstance.certificate_details = property(_certificate_details)


@around(RDSBackend, "create_db_instance")
def _create_db_instance(original, backend, db_kwargs):
    identifier = get(db_kwargs, "ca_certificate_identifier")
    if identifier:
        validate_ca(identifier)
    return original(backend, db_kwargs)


@around(RDSBackend, "modify_db_instance")
def _modify_db_instance(original, backend, db_instance_identifier, db_kwargs):
    identifier = get(db_kwargs, "ca_certificate_identifier")
    if identifier:
        validate_ca(identifier)
    instance = backend.describe_db_instances(db_instance_identifier)[0]
    before = instance.ca_certificate_identifier
    result = original(backend, db_instance_identifier, db_kwargs)
    if result.ca_certificate_identifier != before:
        result._lab_ca_issued = utcnow()  # the instance gets a new server certificate from the new CA
    return result
