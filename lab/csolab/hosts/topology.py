"""The hosts of the lab, their addresses and security groups (docs/development.md, host lab)."""

import json
import os
import secrets

from csolab import paths

HOSTS = {
    "keystone-1": {"ip": "10.89.10.11", "kind": "keystone"},
    "keystone-2": {"ip": "10.89.10.12", "kind": "keystone"},
    "cso-1": {"ip": "10.89.10.21", "kind": "cso"},
    "rabbitmq-1": {"ip": "10.89.10.31", "kind": "rabbitmq"},
    "outsider-1": {"ip": "10.89.10.41", "kind": "none"},
}
GATEWAY = "10.89.10.1"
KEYSTONE_LB = ("10.89.10.5", 5000)
KEYSTONE_LB_NAME = "keystone-lb"
CSO_HEALTH_PORT = 8080
DB_INSTANCE = "cso-lab-db"
# The security-group names the seed creates; ids are looked up by name, so they survive a lab reset.
CORE_SG_NAME = "core-servers"


def hosts_of(kind):
    return [name for name, host in HOSTS.items() if host["kind"] == kind]


def ssh_dir():
    return paths.LAB_DIR / "ssh"


def ssh_key():
    return ssh_dir() / "id_ed25519"


def hosts_json_path():
    return paths.LAB_DIR / "hosts.json"


def dataplane_hosts_path():
    return paths.LAB_DIR / "dataplane-hosts"


def secrets_path():
    return paths.LAB_DIR / "hosts-secrets.json"


SECRET_PREFIXES = {
    "keystone_admin_password": "lab-admin-",
    "keystone_db_password": "lab-keystone-",
    "ssp_db_password": "lab-ssp-",
    "rabbitmq_ca_key_passphrase": "lab-rmq-ca-",  # the rabbitmq_tls scenario encrypts its CA key with it
}


def lab_secrets():
    """Secrets of the fixtures, generated once per lab dir (lab only, never real credentials).

    Also what ``csolab.leaks`` searches output for; a secret added here is filled in for lab dirs
    made before it existed.
    """
    path = secrets_path()
    values = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: prefix + secrets.token_hex(6) for name, prefix in SECRET_PREFIXES.items() if name not in values}
    if missing:
        values.update(missing)
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(json.dumps(values, indent=2) + "\n")
        path.chmod(0o600)
    return values


def security_group_ids(lab_client):
    """Each host's security groups, read from its EC2 network interface (seeded by csolab.seed)."""
    from csolab.dataplane.net import vpc_ip

    ec2 = lab_client.boto3("ec2")
    by_address = {vpc_ip(host): name for name, host in HOSTS.items()}
    interfaces = ec2.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": sorted(by_address)}])["NetworkInterfaces"]
    membership = {name: [] for name in HOSTS}
    for interface in interfaces:
        name = by_address[interface["PrivateIpAddress"]]
        membership[name] = [group["GroupId"] for group in interface["Groups"]]
    return membership


def write_hosts_json(lab_client):
    """``<lab dir>/hosts.json``, which the data plane's firewall reads."""
    membership = security_group_ids(lab_client)
    payload = {"hosts": {name: {"ip": host["ip"], "kind": host["kind"], "security_group_ids": membership[name]}
                         for name, host in HOSTS.items()}}
    path = hosts_json_path()
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return payload
