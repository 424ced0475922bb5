"""docs/recovery.md: the commands that point Keystone and CSO at a restored database come from the
roles (the same variables, the same rendering, the same preflight with negatives), never from
connection URLs written by hand in the runbook (a hand-written one used parameters the driver
ignores and the wrong database name). tests/integration/test_recovery_runbook.py runs them.
"""

import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
DOC = REPO_ROOT / "docs" / "recovery.md"

# what a hand-written database URL or TLS parameter looks like
HAND_WRITTEN = re.compile(r"jdbc:|mysql\+pymysql://|useSSL|requireSSL|verifyServerCertificate|sslMode|ssl_ca=|"
                          r"trustStore|trustCertificateKeyStore|ssl_verify")


def yaml_blocks():
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def repoint_plays():
    for block in yaml_blocks():
        if isinstance(block, list) and block and isinstance(block[0], dict) and "hosts" in block[0]:
            return {play["hosts"]: play for play in block}
    raise AssertionError("docs/recovery.md has no playbook that repoints Keystone and CSO")


def role_inputs(role):
    specs = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return set(specs["argument_specs"]["main"]["options"])


def included_roles(play):
    return [(task["ansible.builtin.include_role"]["name"], task.get("vars", {}))
            for task in play["tasks"] if "ansible.builtin.include_role" in task]


def test_the_runbook_writes_no_connection_url_by_hand():
    hits = [line.strip() for line in DOC.read_text().splitlines() if HAND_WRITTEN.search(line)]
    assert hits == [], f"docs/recovery.md writes database URLs/TLS parameters by hand: {hits}"


def test_keystone_and_cso_are_repointed_by_their_roles_with_only_the_host_changed():
    plays = repoint_plays()
    assert list(plays) == ["keystone", "cso"], "Keystone first, then CSO"
    for group, role in (("keystone", "keystone_db"), ("cso", "cso_db")):
        play = plays[group]
        assert play["serial"] == 1, f"{group}: one host at a time"
        assert play["vars"] == {f"{role}_host": "{{ new_endpoint }}"}, play["vars"]
        assert set(play["vars"]) <= role_inputs(role)
        roles = included_roles(play)
        assert [name for name, _ in roles] == ["cso.rds_hardening.rds_ca_bundle", f"cso.rds_hardening.{role}"]
        bundle_vars = roles[0][1]
        assert set(bundle_vars) <= role_inputs("rds_ca_bundle"), bundle_vars
        assert bundle_vars["rds_ca_bundle_verify_endpoints"] == [
            {"host": f"{{{{ {role}_host }}}}", "port": f"{{{{ {role}_port | int }}}}"}]
        assert roles[1][1] == {}, f"{role}: no settings of its own in the runbook"


def test_the_data_check_verifies_the_server_with_the_bundle_the_role_installs():
    defaults = yaml.safe_load((REPO_ROOT / "roles" / "rds_ca_bundle" / "defaults" / "main.yml").read_text())
    checks = [task for block in yaml_blocks() if isinstance(block, list) for task in block
              if isinstance(task, dict) and "community.mysql.mysql_query" in task]
    assert len(checks) == 1
    check = checks[0]["community.mysql.mysql_query"]
    assert check["ca_cert"] == defaults["rds_ca_bundle_path"]
    assert check["check_hostname"] is True
    assert checks[0]["no_log"] is True  # login_password
