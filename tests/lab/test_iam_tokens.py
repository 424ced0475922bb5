"""The lab's RDS IAM token check (csolab.dataplane.iam_tokens), without MariaDB or moto.

Tokens are made the way clients make them: boto3's ``generate_db_auth_token`` (offline), or
botocore's SigV4 query signer for what boto3 will not produce (a 1-hour token).
"""

import json
import time
import urllib.parse

import boto3
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from csolab.dataplane import iam_tokens

HOST, PORT, REGION, ACCOUNT, DBI = "cso-lab-db.abc.eu-west-2.rds.amazonaws.com", 3306, "eu-west-2", "123456789012", \
    "db-ABCDEFGHIJKLMNOPQRSTUVWXY"
KEY, SECRET = "AKIAIAMTESTKEY000001", "iam-test-secret-key-0000000000000000000"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/keystone-db"
ARN = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{DBI}/keystone_iam"


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW = policy({"Effect": "Allow", "Action": "rds-db:connect", "Resource": ARN})


def token(user="keystone_iam", host=HOST, port=PORT, region=REGION, key=KEY, secret=SECRET, session_token=None):
    client = boto3.client("rds", region_name=region, aws_access_key_id=key, aws_secret_access_key=secret,
                          aws_session_token=session_token)
    return client.generate_db_auth_token(host, port, user)


def context(policies=(ALLOW,), iam_enabled=True, **credential):
    return {"instance": {"id": "cso-lab-db", "region": REGION, "account_id": ACCOUNT, "address": HOST, "port": PORT,
                         "dbi_resource_id": DBI, "iam_enabled": iam_enabled},
            "credential": {"secret_access_key": SECRET, "status": "Active", "session_token": None, "expiration": None,
                           "identity_arn": USER_ARN, "policies": list(policies), "session_policy": None,
                           **credential}}


def check(tok=None, user="keystone_iam", ctx=None, now=None, tls=True, auth_string="RDS"):
    return iam_tokens.check({"user": user, "token": tok or token(user), "tls": tls, "auth_string": auth_string},
                            ctx or context(), time.time() if now is None else now)


def test_a_valid_token_is_accepted_and_names_its_identity():
    decision = check()
    assert (decision.allowed, decision.identity_arn, decision.access_key_id) == (True, USER_ARN, KEY), decision


@pytest.mark.parametrize("offset, allowed", [(14 * 60, True), (15 * 60 + 5, False), (16 * 60, False)])
def test_a_token_lives_15_minutes(offset, allowed):
    decision = check(now=time.time() + offset)
    assert decision.allowed is allowed, decision
    if not allowed:
        assert "expired" in decision.reason


def test_a_token_longer_than_15_minutes_is_refused_even_when_fresh():
    request = AWSRequest(method="GET", url=f"https://{HOST}:{PORT}/?Action=connect&DBUser=keystone_iam")
    SigV4QueryAuth(Credentials(KEY, SECRET), "rds-db", REGION, expires=3600).add_auth(request)
    long_lived = request.url[len("https://"):]
    assert "X-Amz-Expires=3600" in long_lived
    decision = check(long_lived)
    assert not decision.allowed and "15-minute" in decision.reason, decision


def test_a_token_dated_in_the_future_is_refused():
    decision = check(now=time.time() - 3600)
    assert not decision.allowed and "future" in decision.reason, decision


@pytest.mark.parametrize("tok, reason", [
    (lambda: token(user="cso_iam"), "database user 'cso_iam'"),
    (lambda: token(host="other-db.abc.eu-west-2.rds.amazonaws.com"), "not this endpoint"),
    (lambda: token(port=3307), "not this endpoint"),
    (lambda: token(region="eu-west-1"), "region eu-west-1"),
    (lambda: token(secret="not-the-secret"), "signature does not match"),
    (lambda: token(key="AKIAUNKNOWNKEY000000"), "unknown access key"),
    (lambda: token().replace("X-Amz-Expires=900", "X-Amz-Expires=899"), "signature does not match"),
    (lambda: token()[:-1] + ("0" if token()[-1] != "0" else "1"), "signature does not match"),
    (lambda: token().replace("Action=connect", "Action=connectx"), "not connect"),
    (lambda: "https://" + token(), "not a presigned"),
    (lambda: "garbage", "not a presigned"),
], ids=["other-user", "other-host", "other-port", "other-region", "wrong-secret", "unknown-key", "altered-expiry",
        "altered-signature", "other-action", "with-scheme", "garbage"])
def test_tokens_not_for_this_login_or_not_signed_by_a_known_key_are_refused(tok, reason):
    ctx = context()
    made = tok()
    if "AKIAUNKNOWNKEY" in made:
        ctx["credential"] = None
    decision = check(made, ctx=ctx)
    assert not decision.allowed and reason in decision.reason, decision


def test_plaintext_connections_are_refused():
    decision = check(tls=False)
    assert not decision.allowed and "SSL/TLS" in decision.reason, decision


def test_iam_logins_are_refused_while_the_instance_has_iam_auth_disabled():
    decision = check(ctx=context(iam_enabled=False))
    assert not decision.allowed and "not enabled" in decision.reason, decision


def test_an_account_not_identified_as_rds_is_refused():
    decision = check(auth_string="")
    assert not decision.allowed and "AS 'RDS'" in decision.reason, decision


def test_an_inactive_key_is_refused():
    decision = check(ctx=context(status="Inactive"))
    assert not decision.allowed and "Inactive" in decision.reason, decision


@pytest.mark.parametrize("policies, allowed", [
    ((), False),
    ((policy({"Effect": "Allow", "Action": "rds-db:connect", "Resource": ARN.replace("/keystone_iam", "/cso_iam")}),),
     False),
    ((policy({"Effect": "Allow", "Action": "rds-db:connect",
              "Resource": ARN.replace(DBI, "db-OTHERINSTANCE0000000000000")}),), False),
    ((policy({"Effect": "Allow", "Action": "rds:*", "Resource": "*"}),), False),
    ((policy({"Effect": "Allow", "Action": "RDS-DB:*", "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{DBI}/*"}),),
     True),
    ((policy({"Effect": "Allow", "Action": ["s3:GetObject", "rds-db:connect"], "Resource": [ARN]}),), True),
    ((ALLOW, policy({"Effect": "Deny", "Action": "rds-db:*", "Resource": "*"})), False),
    ((policy({"Effect": "Allow", "Action": "rds-db:connect", "Resource": ARN,
              "Condition": {"Bool": {"aws:SecureTransport": "true"}}}),), False),
    ((policy({"Effect": "Allow", "NotAction": "s3:*", "NotResource": "arn:aws:s3:::*"}),), True),
], ids=["no-policy", "other-users-arn", "other-instances-arn", "other-service", "wildcards", "lists",
        "explicit-deny-wins", "condition-not-evaluated", "not-action"])
def test_the_identity_needs_rds_db_connect_on_this_users_arn(policies, allowed):
    decision = check(ctx=context(policies=policies))
    assert decision.allowed is allowed, decision
    if not allowed:
        assert USER_ARN in decision.reason and ARN in decision.reason


def test_role_sessions_sign_with_their_session_token_until_they_expire():
    session = "FwoGZXIvYXdzEJr//////////wEaDG1vdG8+c2Vzc2lvbg=="
    ctx = context(session_token=session, expiration=time.time() + 3600,
                  identity_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/keystone-db/keystone-1")
    assert check(token(session_token=session), ctx=ctx).allowed
    assert "security token" in check(token(), ctx=ctx).reason  # the session's key without its token
    assert "security token" in check(token(session_token=session + "x"), ctx=ctx).reason
    ctx["credential"]["expiration"] = time.time() - 1
    assert "temporary credentials have expired" in check(token(session_token=session), ctx=ctx).reason


def test_a_session_policy_narrows_the_roles_policies():
    session = "FwoGZXIvYXdzEJr//////////wEaDG1vdG8+c2Vzc2lvbg=="
    ctx = context(session_token=session, session_policy=policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    decision = check(token(session_token=session), ctx=ctx)
    assert not decision.allowed and "do not allow" in decision.reason, decision


def test_the_user_name_is_compared_exactly_and_encoded_like_boto3():
    odd = "svc user+x/ü"
    arn = ARN.replace("/keystone_iam", "/" + odd)
    ctx = context(policies=(policy({"Effect": "Allow", "Action": "rds-db:connect", "Resource": arn}),))
    assert check(token(user=odd), user=odd, ctx=ctx).allowed
    assert urllib.parse.quote(odd, safe="") in token(user=odd)
    assert not check(token(user=odd.upper()), user=odd, ctx=ctx).allowed
