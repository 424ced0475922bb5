"""The AWS identities of the lab's hosts, as an EC2 instance profile gives them in AWS.

In AWS a Keystone or CSO host signs IAM database-authentication tokens with its instance
profile's role credentials (temporary STS credentials, served by the instance metadata service).
The lab has no metadata service, so each host gets an STS session of its kind's IAM role in
root's default credentials file, which botocore and the AWS SDK for Java read through their
default chains just as they would read the instance profile.

The roles carry no policy: what a host may do is what the collection (or a test) attaches.
Token signing is local, so hosts never call the emulated AWS; the data plane's verifier asks
the lab which identity owns the access key and which policies it has.

``.lab/hosts-identities.json`` (0600) records each host's role and session, secrets included:
``csolab.leaks`` searches output for them.
"""

import json
import os

from csolab.hosts import fixtures, topology
from csolab import paths

ROLE_OF_KIND = {"keystone": "lab-keystone-hosts", "cso": "lab-cso-hosts"}
SESSION_SECONDS = 12 * 3600  # STS's maximum for a role session; a test run ends well within it
EC2_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def identities_path():
    return paths.LAB_DIR / "hosts-identities.json"


def recorded():
    """{host: {"role_name", "role_arn", "arn", "access_key_id", "secret_access_key", "session_token"}}."""
    path = identities_path()
    return json.loads(path.read_text()) if path.exists() else {}


def role_of(host):
    """The IAM role name whose session ``host`` signs with."""
    for kind, role_name in ROLE_OF_KIND.items():
        if host in topology.hosts_of(kind):
            return role_name
    raise KeyError(f"{host} has no AWS identity in the lab (only {', '.join(ROLE_OF_KIND)} hosts do)")


def _ensure_role(iam, role_name):
    try:
        return iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=EC2_TRUST,
                               Description="lab: the instance profile role of these hosts")["Role"]["Arn"]


def _session(sts, role_arn, host):
    assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName=host, DurationSeconds=SESSION_SECONDS)
    credentials = assumed["Credentials"]
    return {"arn": assumed["AssumedRoleUser"]["Arn"], "access_key_id": credentials["AccessKeyId"],
            "secret_access_key": credentials["SecretAccessKey"], "session_token": credentials["SessionToken"]}


def credentials_file(session):
    return ("[default]\n"
            f"aws_access_key_id = {session['access_key_id']}\n"
            f"aws_secret_access_key = {session['secret_access_key']}\n"
            f"aws_session_token = {session['session_token']}\n")


def config_file(region):
    return f"[default]\nregion = {region}\n"


def configure(lab_client):
    """Create the roles (if missing) and give every Keystone and CSO host a fresh session of its role."""
    iam, sts = lab_client.boto3("iam"), lab_client.boto3("sts")
    identities = {}
    for kind, role_name in ROLE_OF_KIND.items():
        role_arn = _ensure_role(iam, role_name)
        for host in topology.hosts_of(kind):
            session = _session(sts, role_arn, host)
            fixtures.put(host, "/root/.aws/credentials", credentials_file(session), mode="0600")
            fixtures.put(host, "/root/.aws/config", config_file(lab_client.region), mode="0600")
            identities[host] = {"role_name": role_name, "role_arn": role_arn, **session}
    _write_record(identities)
    return identities


def _write_record(identities):
    path = identities_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(json.dumps(identities, indent=2) + "\n")
    path.chmod(0o600)
