"""How the lab checks an RDS IAM authentication token (pure logic: no server, no moto).

``check(login, context, now)`` -> ``Decision(allowed, reason, identity_arn, access_key_id)``.

* ``login``: what the MariaDB plugin saw: ``user``, ``token``, ``tls`` (bool), ``auth_string``.
* ``context``: what the lab knows (``csolab.moto_ext.iam_auth``): ``instance`` (``region``,
  ``account_id``, ``address``, ``port``, ``dbi_resource_id``, ``iam_enabled``, ``id``) and
  ``credential`` for the token's access key (``secret_access_key``, ``status``,
  ``session_token``, ``expiration``, ``identity_arn``, ``policies``, ``session_policy``), or
  None when the lab knows no such key.
* ``now``: the lab's clock (epoch seconds; the lab clock offset is already added).

Every rule comes from AWS documentation, named per rule. The signature is computed again here
with botocore's SigV4 query signer from the lab's copy of the secret key: nothing the client
sends is trusted.
"""

import calendar
import fnmatch
import hmac
import json
import re
import time
import urllib.parse
from dataclasses import dataclass

# AWS: RDS User Guide, "IAM database authentication" -- "An authentication token is a unique
# string of characters ... Each token has a lifetime of 15 minutes."
MAX_LIFETIME = 900
# AWS: Signature Version 4 (IAM User Guide, "Elements of an AWS API request signature" /
# "Create a signed AWS API request"): requests dated more than 5 minutes in the future are refused.
MAX_CLOCK_SKEW = 300
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rds-db"
ACTION = "rds-db:connect"
_DATE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass
class Decision:
    allowed: bool
    reason: str
    identity_arn: str = None
    access_key_id: str = None


def deny(reason, credential=None, access_key_id=None):
    return Decision(False, reason, (credential or {}).get("identity_arn"), access_key_id)


def parse_token(token):
    """(host, port, params as a dict of single values) of ``<host>:<port>/?<query>``.

    AWS: RDS User Guide, "Connecting to your DB instance using IAM authentication" and the AWS
    CLI reference of ``rds generate-db-auth-token``: the token is a presigned URL of the
    ``connect`` action without its scheme."""
    authority, slash, query = token.partition("/?")
    if not slash or "://" in token:
        raise ValueError("not a presigned connect URL (<host>:<port>/?Action=connect&...)")
    host, colon, port = authority.rpartition(":")
    if not colon or not port.isdigit() or not host:
        raise ValueError("no <host>:<port> in the token")
    params = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True):
        if key in params:
            raise ValueError(f"parameter {key} given twice")
        params[key] = value
    return host, int(port), params


def expected_signature(host, port, params, secret_access_key, session_token, region):
    """The SigV4 query signature of ``GET https://host:port/?<params>`` for ``rds-db`` in
    ``region``, computed with botocore (AWS: IAM User Guide, "Create a signed AWS API request",
    query-string / presigned form)."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.utils import percent_encode_sequence

    unsigned = {key: value for key, value in params.items() if key != "X-Amz-Signature"}
    request = AWSRequest(method="GET", url=f"https://{host}:{port}/?{percent_encode_sequence(unsigned)}")
    request.context["timestamp"] = params["X-Amz-Date"]
    signer = SigV4QueryAuth(Credentials(params["X-Amz-Credential"].split("/")[0], secret_access_key, session_token),
                            SERVICE, region, expires=int(params["X-Amz-Expires"]))
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)


def _epoch(amz_date):
    return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _load(document):
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except (TypeError, ValueError):
        return json.loads(urllib.parse.unquote(document))


def _matches(patterns, value, case_sensitive):
    # AWS: IAM User Guide, "IAM JSON policy elements: Action" (case-insensitive, * and ? wildcards)
    # and "IAM JSON policy elements: Resource" (case-sensitive ARNs, * and ? wildcards).
    for pattern in patterns:
        translated = fnmatch.translate(pattern.replace("[", "[[]"))
        if re.match(translated, value, 0 if case_sensitive else re.IGNORECASE):
            return True
    return False


def _statement_applies(statement, action, resource):
    if "Action" in statement:
        action_ok = _matches(_as_list(statement["Action"]), action, False)
    elif "NotAction" in statement:
        action_ok = not _matches(_as_list(statement["NotAction"]), action, False)
    else:
        return False
    if "Resource" in statement:
        resource_ok = _matches(_as_list(statement["Resource"]), resource, True)
    elif "NotResource" in statement:
        resource_ok = not _matches(_as_list(statement["NotResource"]), resource, True)
    else:
        return False
    return action_ok and resource_ok


def evaluate(documents, action, resource):
    """"allow", "deny" (explicit) or "implicit-deny" for identity-based policy documents.

    AWS: IAM User Guide, "Policy evaluation logic": an explicit Deny in any policy wins; otherwise
    an Allow is needed; otherwise the request is implicitly denied. The lab evaluates no
    Condition: an Allow with a Condition does not count, a Deny with one does (stricter than AWS)."""
    allowed = False
    for document in documents:
        for statement in _as_list(_load(document).get("Statement", [])):
            if not _statement_applies(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny":
                return "deny"
            if statement.get("Effect") == "Allow" and not statement.get("Condition"):
                allowed = True
    return "allow" if allowed else "implicit-deny"


def resource_arn(instance, user):
    # AWS: RDS User Guide, "Creating and using an IAM policy for IAM database access":
    # arn:aws:rds-db:<region>:<account-id>:dbuser:<DbiResourceId>/<db-user-name>
    return f"arn:aws:rds-db:{instance['region']}:{instance['account_id']}:dbuser:{instance['dbi_resource_id']}/{user}"


def check(login, context, now):  # noqa: C901 (one rule after the other, in the order RDS's docs give them)
    instance = context.get("instance")
    if instance is None:
        return deny("the lab serves no such instance")
    # AWS: RDS User Guide, "Enabling and disabling IAM database authentication": IAM logins
    # work only while the instance has IAM database authentication enabled.
    if not instance.get("iam_enabled"):
        return deny("IAM database authentication is not enabled on the instance")
    # AWS: RDS User Guide, "Creating a database account using IAM authentication":
    # IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'.
    if login.get("auth_string") != "RDS":
        return deny("the account is not IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    # AWS: RDS User Guide, "IAM database authentication" ("... you must use SSL") and
    # "Connecting to your DB instance using IAM authentication from the command line": the token
    # travels as a cleartext password, so only over TLS.
    if not login.get("tls"):
        return deny("IAM authentication requires an SSL/TLS connection")
    try:
        host, port, params = parse_token(login["token"])
    except ValueError as exc:
        return deny(f"malformed token: {exc}")
    access_key_id = params.get("X-Amz-Credential", "").split("/")[0] or None
    credential = context.get("credential")
    required = ("Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                "X-Amz-SignedHeaders", "X-Amz-Signature")
    missing = [key for key in required if key not in params]
    if missing:
        return deny(f"token lacks {', '.join(missing)}", credential, access_key_id)
    # AWS: RDS User Guide, "Connecting to your DB instance using IAM authentication": the token
    # is for the action connect, the database user and the instance's endpoint and port.
    if params["Action"] != "connect":
        return deny(f"token is for action {params['Action']!r}, not connect", credential, access_key_id)
    if params["DBUser"] != login["user"]:
        return deny(f"token is for database user {params['DBUser']!r}, not {login['user']!r}", credential,
                    access_key_id)
    if host.lower() != instance["address"].lower() or port != int(instance["port"]):
        return deny(f"token is for {host}:{port}, not this endpoint {instance['address']}:{instance['port']}",
                    credential, access_key_id)
    # AWS: IAM User Guide, "Create a signed AWS API request" (credential scope
    # <key>/<date>/<region>/<service>/aws4_request; algorithm AWS4-HMAC-SHA256).
    scope = params["X-Amz-Credential"].split("/")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        return deny(f"signing algorithm {params['X-Amz-Algorithm']!r} is not {ALGORITHM}", credential, access_key_id)
    if len(scope) != 5 or scope[3] != SERVICE or scope[4] != "aws4_request":
        return deny(f"credential scope {params['X-Amz-Credential']!r} is not for {SERVICE}", credential, access_key_id)
    if scope[2] != instance["region"]:
        return deny(f"token is signed for region {scope[2]}, the instance is in {instance['region']}", credential,
                    access_key_id)
    if not _DATE.match(params["X-Amz-Date"]) or scope[1] != params["X-Amz-Date"][:8]:
        return deny("X-Amz-Date does not match the credential scope", credential, access_key_id)
    if not params["X-Amz-Expires"].isdigit():
        return deny("X-Amz-Expires is not a number of seconds", credential, access_key_id)
    signed_at, lifetime = _epoch(params["X-Amz-Date"]), int(params["X-Amz-Expires"])
    # AWS: RDS User Guide, "IAM database authentication": a token lives 15 minutes at most.
    if lifetime > MAX_LIFETIME:
        return deny(f"X-Amz-Expires {lifetime} exceeds the 15-minute ({MAX_LIFETIME} s) token lifetime", credential,
                    access_key_id)
    if now > signed_at + lifetime:
        return deny(f"token expired {int(now - signed_at - lifetime)} s ago", credential, access_key_id)
    if signed_at > now + MAX_CLOCK_SKEW:
        return deny("token is dated in the future", credential, access_key_id)
    if "host" not in params["X-Amz-SignedHeaders"].lower().split(";"):
        return deny("the host header is not signed", credential, access_key_id)
    # AWS: IAM User Guide, "Create a signed AWS API request": the signature is checked with the
    # secret key of the access key; an unknown or inactive key is refused.
    if credential is None:
        return deny(f"unknown access key {access_key_id}", None, access_key_id)
    if credential.get("status", "Active") != "Active":
        return deny(f"access key {access_key_id} is {credential['status']}", credential, access_key_id)
    # AWS: IAM User Guide, "Use temporary credentials with AWS resources": temporary credentials
    # sign with their session token (X-Amz-Security-Token) and stop working when they expire.
    if (params.get("X-Amz-Security-Token") or None) != (credential.get("session_token") or None):
        return deny("the security token does not belong to the access key", credential, access_key_id)
    if credential.get("expiration") is not None and now > credential["expiration"]:
        return deny("the temporary credentials have expired", credential, access_key_id)
    expected = expected_signature(host, port, params, credential["secret_access_key"],
                                  credential.get("session_token"), instance["region"])
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return deny("signature does not match", credential, access_key_id)
    # AWS: RDS User Guide, "Creating and using an IAM policy for IAM database access": the
    # identity needs rds-db:connect on arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>;
    # IAM User Guide, "Policy evaluation logic": a session policy narrows a role session further.
    arn = resource_arn(instance, login["user"])
    verdict = evaluate(credential.get("policies") or [], ACTION, arn)
    if verdict == "allow" and credential.get("session_policy"):
        verdict = evaluate([credential["session_policy"]], ACTION, arn)
    if verdict != "allow":
        how = "explicitly deny" if verdict == "deny" else "do not allow"
        return deny(f"{credential['identity_arn']}: its policies {how} {ACTION} on {arn}", credential, access_key_id)
    return Decision(True, "token valid", credential["identity_arn"], access_key_id)
