"""csolab.leaks finds every secret the lab knows, and says where without repeating it."""

import subprocess
import sys

from csolab import leaks

SECRETS = {"keystone admin password": "lab-admin-0123456789ab", "database master password": "lab-master-password-1"}
TOKEN = "gAAAAABnX2" + "a" * 120
KEY = "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIBVqN0YpZ5b3uXr9yWQk1fa2o6N8Q8s5f0OQ2gX3oEoAoAoGCCqGSM49"


def test_finds_values_tokens_and_private_keys_by_line():
    text = "\n".join(["ok: [keystone-1]", f'"password": "{SECRETS["keystone admin password"]}"', "nothing",
                      f'"x_subject_token": "{TOKEN}"', f'"privatekey": "{KEY}"', "lab-master-password-1 twice"])
    assert leaks.find(text, SECRETS) == [(2, "keystone admin password"), (4, "a Keystone (Fernet) token"),
                                         (5, "a PEM private key"), (6, "database master password")]


def test_a_censored_result_and_a_public_certificate_are_clean():
    text = ('"censored": "the output has been hidden due to the fact that \'no_log: true\' was specified"\n'
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n"
            "mysql+pymysql://keystone:********@db:3306/keystone\n")
    assert leaks.find(text, SECRETS) == []


def test_the_command_reports_where_but_never_what(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(f"line one\nconnection = mysql+pymysql://admin:{leaks.seed.LAB_DB_MASTER_PASSWORD}@db\n")
    completed = subprocess.run([sys.executable, "-m", "csolab.leaks", str(log)], capture_output=True, text=True)
    assert completed.returncode == 1
    assert completed.stdout == f"{log}:2: database master password\n"
    assert leaks.seed.LAB_DB_MASTER_PASSWORD not in completed.stdout + completed.stderr
