# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight of the keystone_db role: prove a verified TLS connection with a Keystone URL.

Run with Keystone's own interpreter (its SQLAlchemy and PyMySQL), the URL on standard input (or
in the environment variable KEYSTONE_DB_PREFLIGHT_URL), never on the command line: it carries
the password.

    printf '%s' 'mysql+pymysql://...' | /opt/keystone/venv/bin/python keystone_db_preflight.py

The URL is turned into PyMySQL's connect() arguments by SQLAlchemy's own dialect, exactly as
oslo.db does, so the check exercises the parameters Keystone will use. It passes only if the
session is encrypted (the server reports a cipher), the server certificate was verified against
a CA file (CERT_REQUIRED) and the host name was checked. Prints one JSON object without secrets.
Exit codes: 0 verified TLS; 2 connected but not verified TLS (a URL that must not be used);
3 could not connect (wrong CA, host name mismatch, network, credentials: see "reason").
"""

import json
import os
import ssl
import sys

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


def reason_for(message):
    return next((reason for needle, reason in REASONS if needle in message), "see error")


def safe_connect_args(engine):
    """PyMySQL's keyword arguments as the dialect builds them, minus the password."""
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs.pop("password", None)
    kwargs.pop("passwd", None)
    return kwargs


def main():
    url = os.environ.get(URL_VARIABLE) or sys.stdin.readline().strip()
    if not url:
        print(json.dumps({"ok": False, "reason": f"no URL on standard input or in {URL_VARIABLE}"}))
        return 64
    engine = create_engine(url, poolclass=NullPool)
    report = {"host": engine.url.host, "port": engine.url.port, "database": engine.url.database,
              "user": engine.url.username, "connect_args": safe_connect_args(engine)}
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            cipher = connection.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).fetchone()[1]
            version = connection.execute(text("SHOW SESSION STATUS LIKE 'Ssl_version'")).fetchone()[1]
            context = getattr(raw, "ctx", None)
            sock = getattr(raw, "_sock", None)
            peer = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    except Exception as error:  # noqa: BLE001 (any failure refuses the change; the reason says why)
        message = str(error)
        report.update(ok=False, error=message[:500], reason=reason_for(message))
        print(json.dumps(report))
        return 3
    report.update(
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
    report["ok"] = not problems
    if problems:
        report["reason"] = "; ".join(problems)
    print(json.dumps(report))
    return 0 if report["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
