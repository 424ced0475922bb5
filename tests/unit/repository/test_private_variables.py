"""A role's private variables (``__<role>_...``) are read only inside that role.

Playbooks, other roles, inventories and Molecule scenarios read what a role publishes (for example
``keystone_db_result``, declared in its argument specs and README), never its ``__`` variables:
those may change with any release of the role.
"""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
READERS = ("playbooks", "roles", "inventories", "extensions/molecule")
SUFFIXES = {".yml", ".yaml", ".j2", ".json"}


def private_pattern(role):
    return re.compile(rf"(?<![A-Za-z0-9_])__{re.escape(role)}_[a-z0-9_]+")


def private_names(role_dir):
    """Every ``__<role>_...`` name that appears in the role's own files."""
    pattern = private_pattern(role_dir.name)
    names = set()
    for path in role_dir.rglob("*"):
        if path.is_file():
            names |= set(pattern.findall(path.read_text(errors="ignore")))
    return names


def readers_outside(root, role):
    for top in READERS:
        for path in (root / top).rglob("*"):
            if path.is_file() and path.suffix in SUFFIXES and (root / "roles" / role) not in path.parents:
                yield path


def private_reads(root):
    """(role, file, name) for each private name of a role read outside it. Names the role itself
    never uses are not its own (``phase1`` only holds the phase-1 playbook's defaults: the playbook's
    ``__phase1_*`` facts are the playbook's private names)."""
    found = []
    for role_dir in sorted((root / "roles").iterdir()):
        pattern, own = private_pattern(role_dir.name), private_names(role_dir)
        for path in readers_outside(root, role_dir.name):
            for name in sorted(set(pattern.findall(path.read_text(errors="ignore"))) & own):
                found.append((role_dir.name, str(path.relative_to(root)), name))
    return found


def test_no_private_variable_is_read_outside_its_role():
    assert private_reads(REPO_ROOT) == []


def test_the_roles_do_have_private_variables():
    """The check looks at something: the roles that keep state between tasks name it ``__<role>_``."""
    assert private_names(REPO_ROOT / "roles" / "keystone_db")
    assert private_names(REPO_ROOT / "roles" / "cso_db")


@pytest.mark.parametrize("reader", ["playbooks/phase1.yml", "roles/cso_db/tasks/main.yml",
                                    "extensions/molecule/keystone_db/verify.yml", "inventories/lab/all.yml"])
def test_the_check_finds_a_private_read(tmp_path, reader):
    (tmp_path / "roles" / "keystone_db" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "keystone_db" / "tasks" / "main.yml").write_text(
        "- ansible.builtin.set_fact:\n    __keystone_db_pending: true\n")
    path = tmp_path / reader
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("- ansible.builtin.debug:\n    var: __keystone_db_pending\n")
    assert private_reads(tmp_path) == [("keystone_db", reader, "__keystone_db_pending")]


def test_the_published_result_is_not_a_private_read(tmp_path):
    (tmp_path / "roles" / "keystone_db" / "tasks").mkdir(parents=True)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "phase1.yml").write_text("- debug:\n    var: keystone_db_result.tls_verified\n")
    assert private_reads(tmp_path) == []
