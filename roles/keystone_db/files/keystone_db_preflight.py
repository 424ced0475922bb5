# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight of the keystone_db role: prove a verified TLS connection with a Keystone URL.

Run with Keystone's own interpreter (its SQLAlchemy and PyMySQL), the URL on standard input (or
in the environment variable KEYSTONE_DB_PREFLIGHT_URL), never on the command line: it carries
the password.

    printf '%s' 'mysql+pymysql://...' | /opt/keystone/venv/bin/python keystone_db_preflight.py [--expect=primary|replica]

The URL is turned into PyMySQL's connect() arguments by SQLAlchemy's own dialect, exactly as
oslo.db does, so the check exercises the parameters Keystone will use. It passes only if the
session is encrypted (the server reports a cipher), the server certificate was verified against
a CA file (CERT_REQUIRED) and the host name was checked, AND the same URL then fails twice in TLS
verification (the negatives: inspecting the SSL context shows what was asked, only a refused
connection shows that it is enforced):

- untrusted CA: ``ssl_ca`` replaced by a CA this check generates (in a temporary directory);
- wrong host name: host and port replaced by ``localhost`` and the port of a relay this check runs
  on the loopback interface to the real endpoint (the same server, through a name its
  certificate does not carry; no DNS change on the host).

The report names the server the session landed on: ``server_id`` (@@server_id) and ``read_only``
(@@global.read_only, 0 or 1). ``--expect=primary`` requires a writable server (read_only 0: the
``[database] connection`` Keystone writes through), ``--expect=replica`` a read-only one (read_only
1, an RDS read replica: the ``slave_connection``); the caller compares the server ids.

With IAM database authentication (``plugin=rds_iam`` in the URL's query, as oslo.db appends
``[database] connection_parameters``) the URL carries no password: the rds_iam engine plugin in
Keystone's venv signs a token with this host's AWS identity for the connection, and the report's
``iam`` says which access key signed (not a secret) and whether the database refused the token.

Prints one JSON object without secrets. Exit codes: 0 verified TLS; 2 connected but not verified
TLS (a URL that must not be used); 3 could not connect (wrong CA, host name mismatch, network,
credentials: see "reason"); 4 verification is not effective (a negative connected); 5 a negative
could not be run or failed for a reason other than TLS (it proves nothing); 6 the server is not
what --expect says; 64 usage.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

URL_VARIABLE = "KEYSTONE_DB_PREFLIGHT_URL"
REASONS = (
    ("unable to get local issuer certificate", "the CA bundle does not contain the CA that signed the database's certificate"),
    ("self-signed certificate in certificate chain", "the CA bundle does not contain the CA that signed the database's certificate"),
    ("self signed certificate in certificate chain", "the CA bundle does not contain the CA that signed the database's certificate"),
    ("Hostname mismatch", "the database's certificate is not valid for the host name in the URL"),
    ("IP address mismatch", "the database's certificate is not valid for the address in the URL"),
    ("certificate has expired", "the database's certificate (or its CA) has expired"),
    ("No such file or directory", "the CA bundle file does not exist on this host"),
    ("Access denied", "the server refused the credentials (MariaDB also says this to a plaintext client when TLS is required)"),
    ("Name or service not known", "the database host name does not resolve on this host"),
    ("timed out", "the database is not reachable from this host (security group, routing)"),
    ("Connection refused", "nothing listens on the database address and port"),
)


# What a failed TLS verification looks like (ssl.SSLCertVerificationError, wrapped by PyMySQL/SQLAlchemy)
TLS_FAILURE_NEEDLES = ("certificate verify failed", "CERTIFICATE_VERIFY_FAILED", "Hostname mismatch",
                       "IP address mismatch", "SSLError", "SSLCertVerificationError", "[SSL")


IAM_REASONS = (
    ("Access denied", "the database refused the IAM authentication token signed with this host's AWS identity "
                      "(no policy allowing rds-db:connect on the database user, IAM authentication disabled on the "
                      "instance, or the user is not IDENTIFIED WITH AWSAuthenticationPlugin)"),
    ("cannot sign an IAM authentication token", "this host has no AWS credentials to sign the IAM token with "
                                                "(instance profile, ~/.aws/credentials)"),
    ("No module named", "the rds_iam engine plugin or botocore is not installed in Keystone's venv"),
    ("Can't load plugin", "the rds_iam engine plugin is not installed in Keystone's venv"),
)


def reason_for(message, iam=False):
    reasons = (IAM_REASONS + REASONS) if iam else REASONS
    return next((reason for needle, reason in reasons if needle in message), "see error")


def iam_plugin_in(url):
    """The rds_iam query of a URL string (before SQLAlchemy removes it): {"region": ...} or None."""
    query = parse_qs(urlsplit(url).query)
    if "rds_iam" not in query.get("plugin", []):
        return None
    return {"region": (query.get("rds_iam_region") or [None])[-1], "access_key_id": signing_access_key()}


def signing_access_key():
    """The access key ID botocore's default chain finds on this host (the identity that signs the token)."""
    try:
        import botocore.session

        credentials = botocore.session.Session().get_credentials()
    except Exception:  # noqa: BLE001 (reported as no identity; the connection then says why)
        return None
    return credentials.access_key if credentials else None


def safe_connect_args(engine):
    """PyMySQL's keyword arguments as the dialect builds them, minus the password."""
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs.pop("password", None)
    kwargs.pop("passwd", None)
    return kwargs


def untrusted_ca(directory):
    """A self-signed CA certificate (PEM) that never signed the database's certificate."""
    path = os.path.join(directory, "untrusted-ca.pem")
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:  # Keystone's venv has cryptography; openssl otherwise
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=keystone_db preflight untrusted CA",
                        "-keyout", os.path.join(directory, "untrusted-ca.key"), "-out", path],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keystone_db preflight untrusted CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    with open(path, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    return path


class Relay:
    """127.0.0.1:<free port> -> host:port, so the client reaches the same server as "localhost"."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _address = self.listener.accept()
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                return
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def negative(url):
    """Connect with a URL that must fail in TLS verification: {"refused", "tls_failure", "error"}."""
    redacted = url.render_as_string(hide_password=True) if hasattr(url, "render_as_string") else repr(url)
    try:
        with create_engine(url, poolclass=NullPool).connect() as connection:
            cipher = connection.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).fetchone()[1]
    except Exception as error:  # noqa: BLE001 (refused: what the negative wants)
        message = str(error)
        return {"url": redacted, "refused": True, "tls_failure": any(n in message for n in TLS_FAILURE_NEEDLES),
                "error": message[:300]}
    return {"url": redacted, "refused": False, "cipher": cipher}


def negatives(engine):
    directory = tempfile.mkdtemp(prefix="keystone_db-negatives.")
    try:
        results = {"untrusted_ca": negative(engine.url.update_query_dict({"ssl_ca": untrusted_ca(directory)}))}
        relay = Relay(engine.url.host, engine.url.port or 3306)
        try:
            results["wrong_host_name"] = negative(engine.url.set(host="localhost", port=relay.port))
        finally:
            relay.close()
        return results
    finally:
        shutil.rmtree(directory, ignore_errors=True)


EXPECTATIONS = {
    "primary": (0, "the server is read-only (read_only=1): Keystone's writes through this URL would fail; "
                   "expected the primary (a writable instance)"),
    "replica": (1, "the server is not a read replica (read_only=0): reads through this URL would not be offloaded; "
                   "expected a read-only replica"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    expect = None
    for argument in argv:
        if argument.startswith("--expect=") and argument.split("=", 1)[1] in EXPECTATIONS:
            expect = argument.split("=", 1)[1]
        else:
            print(json.dumps({"ok": False, "reason": f"usage: keystone_db_preflight.py [--expect=primary|replica] "
                                                     f"(unknown argument {argument!r})"}))
            return 64
    url = os.environ.get(URL_VARIABLE) or sys.stdin.readline().strip()
    if not url:
        print(json.dumps({"ok": False, "reason": f"no URL on standard input or in {URL_VARIABLE}"}))
        return 64
    iam = iam_plugin_in(url)
    try:
        engine = create_engine(url, poolclass=NullPool)
    except Exception as error:  # noqa: BLE001 (a URL the plugin or SQLAlchemy refuses: nothing to connect with)
        message = str(error)
        print(json.dumps({"ok": False, "iam": iam, "error": message[:500], "reason": reason_for(message, bool(iam))}))
        return 3
    report = {"host": engine.url.host, "port": engine.url.port, "database": engine.url.database,
              "user": engine.url.username, "connect_args": safe_connect_args(engine), "iam": iam}
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            cipher = connection.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).fetchone()[1]
            version = connection.execute(text("SHOW SESSION STATUS LIKE 'Ssl_version'")).fetchone()[1]
            server_id, read_only, current_user = connection.execute(
                text("SELECT @@server_id, @@global.read_only, CURRENT_USER()")).fetchone()
            context = getattr(raw, "ctx", None)
            sock = getattr(raw, "_sock", None)
            peer = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    except Exception as error:  # noqa: BLE001 (any failure refuses the change; the reason says why)
        message = str(error)
        report.update(ok=False, error=message[:500], reason=reason_for(message, bool(iam)))
        if iam:
            iam["refused"] = "Access denied" in message
        print(json.dumps(report))
        return 3
    if iam:
        iam["refused"] = False
    report.update(
        current_user=current_user,
        server_id=int(server_id),
        read_only=int(read_only),
        expect=expect,
        cipher=cipher,
        tls_version=version,
        verify_mode=context.verify_mode.name if context else None,
        check_hostname=bool(context and context.check_hostname),
        peer_subject=[dict(part) for part in peer.get("subject", ())] if peer else None,
        peer_issuer=[dict(part) for part in peer.get("issuer", ())] if peer else None,
    )
    problems = []
    if not cipher:
        problems.append("the session is not encrypted")
    if not context or context.verify_mode != ssl.CERT_REQUIRED:
        problems.append("the server certificate is not verified (ssl_verify_cert/ssl_verify_identity in the URL make "
                        "PyMySQL drop the ssl_ca that SQLAlchemy passes: use ssl_ca plus ssl_check_hostname=true)")
    if not report["check_hostname"]:
        problems.append("the host name is not checked")
    if problems:
        report.update(ok=False, reason="; ".join(problems))
        print(json.dumps(report))
        return 2
    if expect and report["read_only"] != EXPECTATIONS[expect][0]:
        report.update(ok=False, reason=EXPECTATIONS[expect][1])
        print(json.dumps(report))
        return 6
    try:
        report["negatives"] = negatives(engine)
    except Exception as error:  # noqa: BLE001 (a negative that cannot run proves nothing)
        report.update(ok=False, reason=f"cannot run the negative checks: {error}"[:400])
        print(json.dumps(report))
        return 5
    untrusted, wrong_name = report["negatives"]["untrusted_ca"], report["negatives"]["wrong_host_name"]
    code = 0
    if not untrusted["refused"]:
        code, reason = 4, ("verification is not effective: the client accepted a server certificate from a CA that is "
                           "not in ssl_ca (a CA this check generated)")
    elif not wrong_name["refused"]:
        code, reason = 4, ("verification is not effective: the client accepted the server's certificate for a host "
                           "name it does not carry (localhost, relayed to the same server)")
    elif not (untrusted["tls_failure"] and wrong_name["tls_failure"]):
        code, reason = 5, "a negative check failed for a reason other than TLS verification, so it proves nothing"
    report["ok"] = code == 0
    if code:
        report["reason"] = reason
    print(json.dumps(report))
    return code


if __name__ == "__main__":
    sys.exit(main())
