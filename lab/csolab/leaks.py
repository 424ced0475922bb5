"""Search output for every secret the lab knows: ``python -m csolab.leaks FILE...``.

Secrets: the fixtures' passwords (Keystone admin, Keystone and CSO database users, the RabbitMQ
CA key's passphrase), the database master password, the lab's AWS secret key, the hosts' AWS
session credentials; and, by shape, Keystone (Fernet) tokens and PEM private keys. A hit is
reported as ``file:line: <secret name>``, never with the secret itself. Exit status 1 when anything is found.
"""

import re
import sys
from pathlib import Path

from csolab import paths, seed
from csolab.hosts import identities, topology

# A Fernet token is base64url of version byte 0x80 and a timestamp: it starts with "gAAAAA".
SHAPES = {
    "a Keystone (Fernet) token": re.compile(r"gAAAAA[A-Za-z0-9_\-]{60,}"),
    # the header alone: YAML output puts the key's body on the following lines
    "a PEM private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?(?:ENCRYPTED )?PRIVATE KEY-----"),
}


def known_secrets():
    """{name: value} of every secret this lab dir holds."""
    secrets = {
        "database master password": seed.LAB_DB_MASTER_PASSWORD,
        "lab AWS secret access key": paths.SECRET_KEY,
    }
    if topology.secrets_path().exists():
        secrets.update({name.replace("_", " "): value for name, value in topology.lab_secrets().items()})
    for host, identity in identities.recorded().items():
        secrets[f"{host}'s AWS secret access key"] = identity["secret_access_key"]
        secrets[f"{host}'s AWS session token"] = identity["session_token"]
    return secrets


def find(text, secrets=None):
    """[(line number, what)] of every secret or secret-shaped string in ``text``."""
    secrets = known_secrets() if secrets is None else secrets
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        hits += [(number, name) for name, value in secrets.items() if value and value in line]
        hits += [(number, name) for name, pattern in SHAPES.items() if pattern.search(line)]
    return hits


def report(named_texts, secrets=None):
    """Lines ``source:line: what`` for every hit in {source: text}."""
    return [f"{source}:{number}: {what}" for source, text in named_texts.items()
            for number, what in find(text, secrets)]


def main(argv=None):
    files = argv if argv is not None else sys.argv[1:]
    found = report({name: Path(name).read_text(errors="replace") for name in files})
    for line in found:
        print(line)
    print(f"{len(found)} secret(s) found in {len(files)} file(s)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
