# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLAlchemy engine plugin ``rds_iam``: IAM database authentication tokens for Amazon RDS for MySQL.

Enabled by the URL query ``plugin=rds_iam&rds_iam_region=<region>`` (oslo.db appends
``[database] connection_parameters`` to the URL, so an application such as Keystone needs no code
change). On every NEW DBAPI connection (SQLAlchemy's ``do_connect`` event) the plugin signs a token
for the engine's own host, port and user with botocore and hands it to the driver as the password;
the server asks for it with ``mysql_clear_password``, which PyMySQL answers over the URL's TLS.
A token is valid for 15 minutes at login; an open connection stays logged in, so pooled
connections are not touched.
"""

import logging
import threading

from sqlalchemy import event
from sqlalchemy.engine import CreateEnginePlugin

__all__ = ["RdsIamPlugin", "RdsIamConfigurationError", "RdsIamTokenError"]

LOG = logging.getLogger(__name__)

PLUGIN_NAME = "rds_iam"
REGION_PARAMETER = "rds_iam_region"
OWN_PARAMETERS = (REGION_PARAMETER,)
DEFAULT_PORT = 3306
# SQLAlchemy's MySQL dialects pass these to PyMySQL as separate arguments, which makes it rebuild
# its TLS settings without ssl_ca (no verification against the given CA)
CA_DROPPING_PARAMETERS = ("ssl_verify_cert", "ssl_verify_identity")
FALSE_WORDS = ("0", "false", "no", "off")


class _NoSigningMaterial(logging.Filter):
    """Drops botocore's DEBUG records of a signature and its inputs: with them a token can be rebuilt.

    botocore.auth logs the canonical request, string to sign and signature of every request it
    signs at DEBUG level, and an application's debug logging (Keystone with ``debug = true``:
    oslo.log quiets ``boto`` but not ``botocore``) would write a usable token into its log.
    """

    SIGNING_RECORDS = ("CanonicalRequest:", "StringToSign:", "Signature:")

    def filter(self, record):
        return not str(record.msg).startswith(self.SIGNING_RECORDS)


def _hide_signing_material():
    botocore_auth = logging.getLogger("botocore.auth")
    if not any(isinstance(existing, _NoSigningMaterial) for existing in botocore_auth.filters):
        botocore_auth.addFilter(_NoSigningMaterial())


class RdsIamConfigurationError(ValueError):
    """The URL cannot be used with IAM authentication (raised by create_engine)."""


class RdsIamTokenError(RuntimeError):
    """No token could be signed for a new connection (no credentials, botocore missing)."""


def _query_value(url, name):
    """A query parameter as one string (the last one when repeated), or None."""
    value = url.query.get(name)
    if isinstance(value, tuple):
        value = value[-1] if value else None
    return value


def _validate(url):
    """Refuse a URL that would send the token in the clear, unverified, or beside a password."""
    where = f"{url.drivername}://{url.username}@{url.host}:{url.port or DEFAULT_PORT}"
    if url.password is not None:
        raise RdsIamConfigurationError(
            f"rds_iam: the URL {where} carries a password; with IAM authentication the password is a token the plugin "
            "signs for each new connection: remove the password from the URL")
    if not url.username or not url.host:
        raise RdsIamConfigurationError(f"rds_iam: the URL {where} needs a user and a host (the token is signed for both)")
    if not _query_value(url, REGION_PARAMETER):
        raise RdsIamConfigurationError(
            f"rds_iam: {REGION_PARAMETER} is missing from the URL of {where}: add {REGION_PARAMETER}=<the database's "
            "region> (e.g. to oslo.db's [database] connection_parameters)")
    if not _query_value(url, "ssl_ca"):
        raise RdsIamConfigurationError(
            f"rds_iam: the URL of {where} has no ssl_ca: the token travels in clear text (mysql_clear_password) and "
            "RDS accepts it only over TLS; add ssl_ca=<RDS CA bundle>&ssl_check_hostname=true")
    disabled = _query_value(url, "ssl_disabled")
    if disabled is not None and disabled.lower() not in FALSE_WORDS:
        raise RdsIamConfigurationError(f"rds_iam: the URL of {where} sets ssl_disabled: IAM tokens need TLS")
    check_hostname = _query_value(url, "ssl_check_hostname")
    if check_hostname is not None and check_hostname.lower() in FALSE_WORDS:
        raise RdsIamConfigurationError(
            f"rds_iam: the URL of {where} sets ssl_check_hostname=false: the token would go to any server with a "
            "certificate from the CA; use ssl_check_hostname=true")
    dropping = [name for name in CA_DROPPING_PARAMETERS if name in url.query]
    if dropping:
        raise RdsIamConfigurationError(
            f"rds_iam: the URL of {where} sets {', '.join(dropping)}, which makes PyMySQL drop ssl_ca (the server "
            "certificate is then not verified against the RDS CA bundle): use ssl_ca plus ssl_check_hostname=true")


def _default_client_factory(region):
    """botocore's RDS client with the default credential chain; signing tokens makes no AWS call."""
    try:
        import botocore.session
    except ImportError as error:
        raise RdsIamTokenError("rds_iam: botocore is not installed in this Python environment") from error
    return botocore.session.Session().create_client("rds", region_name=region)


class RdsIamPlugin(CreateEnginePlugin):
    """Sets a fresh IAM authentication token as the password of every new DBAPI connection."""

    # replaced in tests; called with the region, returns an object with generate_db_auth_token()
    client_factory = staticmethod(_default_client_factory)

    def __init__(self, url, kwargs):
        super().__init__(url, kwargs)
        _validate(url)
        self.region = _query_value(url, REGION_PARAMETER)
        self._client = None
        self._client_lock = threading.Lock()
        self._endpoint = None
        _hide_signing_material()

    def update_url(self, url):
        """The URL the dialect sees: without this plugin's parameters (PyMySQL would refuse them)."""
        return url.difference_update_query(OWN_PARAMETERS)

    def engine_created(self, engine):
        self._endpoint = (engine.url.host, int(engine.url.port or DEFAULT_PORT), engine.url.username)
        event.listen(engine, "do_connect", self._set_token)

    def __repr__(self):
        host, port, user = self._endpoint or (None, None, None)
        return f"<RdsIamPlugin region={self.region!r} endpoint={host}:{port} user={user!r}>"

    def _rds_client(self):
        with self._client_lock:
            if self._client is None:
                self._client = self.client_factory(self.region)
            return self._client

    def token(self):
        """A new token for this engine's host, port and user (valid 15 minutes for a login)."""
        host, port, user = self._endpoint
        try:
            token = self._rds_client().generate_db_auth_token(host, port, user)
        except RdsIamTokenError:
            raise
        except Exception as error:  # botocore's NoCredentialsError and the like: say what to fix
            raise RdsIamTokenError(
                f"rds_iam: cannot sign an IAM authentication token for {user}@{host}:{port} in {self.region}: "
                f"{type(error).__name__}: {error} (credentials come from the default chain: environment, "
                "~/.aws/credentials, instance profile)") from None
        LOG.debug("rds_iam: signed a new IAM authentication token for %s@%s:%s (%s)", user, host, port, self.region)
        return token

    def _set_token(self, dialect, connection_record, cargs, cparams):  # pylint: disable=unused-argument
        cparams["password"] = self.token()
