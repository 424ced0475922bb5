"""Contract: what the lab's IAM token verifier reads from the emulated AWS (``/_lab/iam-auth-context``)
and the lab clock, through the verifier's own socket protocol, without MariaDB.

The MariaDB side (the plugin, TLS, real clients) is in tests/lab/test_dataplane.py."""

import pytest

from csolab.dataplane import iam_verifier
from iam_lab import auth_token, connect_policy, dbuser_arn, enable_iam_auth, role_session, user_with_key

pytestmark = pytest.mark.lab

DB, DB_USER = "cso-lab-db", "keystone_iam"


@pytest.fixture
def verifier(aws_lab, tmp_path):
    running = iam_verifier.Verifier(tmp_path, aws_lab.endpoint_url).start()
    yield running
    running.stop()


def _instance(lab):
    return next(item for item in lab.api("dataplane-instances")["instances"] if item["id"] == DB)


def ask(verifier, lab, identity, db_user=DB_USER, login_user=None, tls=True, host=None, port=None):
    instance = _instance(lab)
    token = auth_token(identity, host or instance["address"], port or instance["port"], db_user)
    request = f"v1\n{instance['uid']}\n{login_user or db_user}\n{int(tls)}\n10.89.10.11\nRDS\n{token}".encode()
    return iam_verifier.ask(verifier.state_dir, request)


def test_users_keys_and_their_inline_managed_and_group_policies_count(aws_lab, verifier):
    enable_iam_auth(aws_lab, DB)
    arn = dbuser_arn(aws_lab, DB, DB_USER)
    identities = {
        "inline": user_with_key(aws_lab, "db-inline", inline=connect_policy(arn)),
        "managed": user_with_key(aws_lab, "db-managed", managed=connect_policy(arn)),
        "group": user_with_key(aws_lab, "db-group", group_inline=connect_policy(arn)),
        "none": user_with_key(aws_lab, "db-none"),
        "other-user": user_with_key(aws_lab, "db-other", inline=connect_policy(arn.replace(DB_USER, "cso_iam"))),
        "denied": user_with_key(aws_lab, "db-denied", inline=connect_policy(arn),
                                managed=connect_policy("*", effect="Deny")),
    }
    answers = {name: ask(verifier, aws_lab, identity) for name, identity in identities.items()}
    assert {name: answer.split()[0] for name, answer in answers.items()} == {
        "inline": "ALLOW", "managed": "ALLOW", "group": "ALLOW", "none": "DENY", "other-user": "DENY",
        "denied": "DENY"}, answers
    assert "do not allow" in answers["none"] and "explicitly deny" in answers["denied"]
    accepted = [entry for entry in iam_verifier.sessions(verifier.state_dir) if entry["allowed"]]
    assert sorted(entry["identity_arn"] for entry in accepted) == sorted(
        identities[name]["arn"] for name in ("inline", "managed", "group"))
    assert {entry["instance"] for entry in accepted} == {DB}


def test_role_sessions_sign_with_sts_credentials(aws_lab, verifier):
    enable_iam_auth(aws_lab, DB)
    arn = dbuser_arn(aws_lab, DB, DB_USER)
    session = role_session(aws_lab, "keystone-db", connect_policy(arn), session_name="keystone-1")
    answer = ask(verifier, aws_lab, session)
    assert answer.startswith("ALLOW"), answer
    assert iam_verifier.sessions(verifier.state_dir)[-1]["identity_arn"] == session["arn"]
    assert session["arn"].endswith(":assumed-role/keystone-db/keystone-1")
    without_token = dict(session, session_token=None)
    assert "security token" in ask(verifier, aws_lab, without_token)


def test_the_lab_clock_ages_tokens_and_a_reset_puts_it_back(aws_lab, verifier):
    enable_iam_auth(aws_lab, DB)
    identity = user_with_key(aws_lab, "db-clock", inline=connect_policy(dbuser_arn(aws_lab, DB, DB_USER)))
    assert ask(verifier, aws_lab, identity).startswith("ALLOW")
    assert aws_lab.set_clock_offset(16 * 60)["offset_seconds"] == 960
    answer = ask(verifier, aws_lab, identity)
    assert answer.startswith("DENY token expired"), answer
    assert iam_verifier.sessions(verifier.state_dir)[-1]["lab_time"] - \
        iam_verifier.sessions(verifier.state_dir)[-1]["ts"] == pytest.approx(960, abs=1)
    aws_lab.reset()
    assert aws_lab.api("clock")["offset_seconds"] == 0


def test_iam_logins_follow_the_instances_iam_flag(aws_lab, verifier):
    identity = user_with_key(aws_lab, "db-flag", inline=connect_policy(dbuser_arn(aws_lab, DB, DB_USER)))
    assert "not enabled" in ask(verifier, aws_lab, identity)  # the seeded instance: no IAM auth
    aws_lab.boto3("rds").modify_db_instance(DBInstanceIdentifier=DB, EnableIAMDatabaseAuthentication=True)
    assert "not enabled" in ask(verifier, aws_lab, identity)  # pending until the maintenance window
    aws_lab.reach_maintenance_window(DB)
    assert ask(verifier, aws_lab, identity).startswith("ALLOW")


def test_the_lab_dummy_credentials_and_a_wrong_endpoint_are_refused(aws_lab, verifier):
    enable_iam_auth(aws_lab, DB)
    lab_key = {"key": aws_lab.state["aws_access_key_id"], "secret": aws_lab.state["aws_secret_access_key"],
               "session_token": None}
    assert "unknown access key" in ask(verifier, aws_lab, lab_key)
    identity = user_with_key(aws_lab, "db-endpoint", inline=connect_policy(dbuser_arn(aws_lab, DB, DB_USER)))
    assert "not this endpoint" in ask(verifier, aws_lab, identity, port=3307)
    assert "database user" in ask(verifier, aws_lab, identity, login_user="cso_iam")
    assert "SSL/TLS" in ask(verifier, aws_lab, identity, tls=False)
