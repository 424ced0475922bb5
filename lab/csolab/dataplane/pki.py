"""The lab's stand-in for the RDS CA hierarchy: one root CA per certificate identifier.

Generated once with ``cryptography`` and cached under ``<state dir>/dataplane/pki``:
``ca-<identifier>.pem`` per CA, ``global-bundle.pem`` with all of them (like AWS's
``global-bundle.pem``), and an unrelated ``rogue-ca.pem`` that negative tests trust instead.
Server certificates are signed by the CA the instance's ``CACertificateIdentifier`` names,
with SAN = the endpoint DNS name only: RDS server certificates name the endpoint (and, for
Multi-AZ/cluster endpoints, other DNS names), never an IP address (AWS: RDS User Guide, "Using
SSL/TLS to encrypt a connection to a DB instance or cluster": clients verify that the endpoint
name they connect to matches the certificate), so a client that connects by IP address fails
host-name verification here as it does in AWS.
"""

import datetime
import fcntl
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csolab.dataplane import layout

# identifier -> (key type, size/curve); the same list the lab's describe_certificates reports
CERTIFICATE_AUTHORITIES = {
    "rds-ca-2019": ("rsa", 2048),
    "rds-ca-rsa2048-g1": ("rsa", 2048),
    "rds-ca-rsa4096-g1": ("rsa", 4096),
    "rds-ca-ecc384-g1": ("ec", 384),
}
DEFAULT_IDENTIFIER = "rds-ca-rsa2048-g1"  # what AWS gives new instances (moto says "rds-ca-default")
ROGUE = "rogue-ca"
BUNDLE_NAME = "global-bundle.pem"
_EPOCH = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)


def resolve_identifier(identifier):
    return identifier if identifier in CERTIFICATE_AUTHORITIES else DEFAULT_IDENTIFIER


def _new_key(kind, size):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP384R1() if size == 384 else ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def _write_private(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name, unit="Amazon RDS (csolab stand-in)"):
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Amazon Web Services, Inc. (lab)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _root_ca(common_name, kind, size):
    key = _new_key(kind, size)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_EPOCH).not_valid_after(_EPOCH + datetime.timedelta(days=365 * 40))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384() if kind == "ec" else hashes.SHA256())
    )
    return key, cert


def _ensure_ca(directory, identifier, common_name, kind, size):
    cert_path, key_path = directory / f"ca-{identifier}.pem", directory / f"ca-{identifier}.key"
    if not (cert_path.exists() and key_path.exists()):
        key, cert = _root_ca(common_name, kind, size)
        _write_private(key_path, key)
        cert_path.write_bytes(_pem(cert))
    return cert_path


def ensure(state_dir=None):
    """Create the CAs, the bundle and the rogue CA once; return the pki directory.

    Two processes may ask at once (the bridge, and the AWS lab server that reports each CA's
    thumbprint): a lock file serializes them, so a CA's key and certificate always match."""
    directory = layout.pki_dir(layout.state_dir(state_dir))
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pems = []
        for identifier, (kind, size) in CERTIFICATE_AUTHORITIES.items():
            region_name = f"Amazon RDS {identifier} Root CA (lab)"
            pems.append(_ensure_ca(directory, identifier, region_name, kind, size).read_bytes())
        _ensure_ca(directory, ROGUE, "Rogue CA that no RDS instance uses (lab)", "rsa", 2048)
        bundle = directory / BUNDLE_NAME
        content = b"".join(pems)
        if not bundle.exists() or bundle.read_bytes() != content:
            partial = bundle.with_suffix(".partial")
            partial.write_bytes(content)
            partial.replace(bundle)
    return directory


def sha1_fingerprint(identifier, state_dir=None):
    """The CA certificate's SHA-1 fingerprint (lower-case hex), as ``openssl x509 -fingerprint -sha1``
    prints it without the colons."""
    cert = x509.load_pem_x509_certificate(ca_path(identifier, state_dir).read_bytes())
    return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 (a fingerprint, as RDS reports it)


def ca_path(identifier, state_dir=None):
    if identifier != ROGUE and identifier not in CERTIFICATE_AUTHORITIES:
        raise KeyError(f"unknown CA identifier {identifier!r}; known: {sorted(CERTIFICATE_AUTHORITIES)}")
    return ensure(state_dir) / f"ca-{identifier}.pem"


def bundle_path(state_dir=None):
    return ensure(state_dir) / BUNDLE_NAME


def _load_ca(directory, identifier):
    cert = x509.load_pem_x509_certificate((directory / f"ca-{identifier}.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / f"ca-{identifier}.key").read_bytes(), password=None)
    return cert, key


def issue_server_certificate(target_dir, identifier, dns_name, state_dir=None):
    """Write ``server.pem``/``server.key``/``ca.pem`` into ``target_dir`` for that CA and name.

    The key is kept across re-issues (a CA rotation re-signs the same key, as RDS does).
    """
    directory = ensure(state_dir)
    identifier = resolve_identifier(identifier)
    ca_cert, ca_key = _load_ca(directory, identifier)
    target_dir = Path(target_dir)
    key_path = target_dir / "server.key"
    if key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(key_path, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(dns_name)]  # no IP-address SAN: see the module docstring
    # Clients verify the SAN; the CN only has to be a legal one (at most 64 characters), and
    # renamed instances (``<id>-rollback-<stamp>``) have longer endpoint names than that.
    common_name = dns_name if len(dns_name) <= 64 else dns_name.split(".")[0][:64]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384() if isinstance(ca_key, ec.EllipticCurvePrivateKey) else hashes.SHA256())
    )
    for name, content in (("server.pem", _pem(cert)), ("ca.pem", _pem(ca_cert))):
        partial = target_dir / f"{name}.partial"
        partial.write_bytes(content)
        partial.replace(target_dir / name)
    return identifier
