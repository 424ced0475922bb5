"""The collection as users and AWX get it: the Galaxy tarball, ansible-doc, the execution environment."""

import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = ("rds_hardened_instance", "rds_alarm_set", "rds_backup_replication", "rds_restore_verification",
           "rds_certificate_info", "rds_dashboard", "rds_hardened_replica", "rds_audit_logging", "rds_iam_db_auth",
           "rds_blue_green", "rds_replica_promotion", "keystone_token_check")
ROLES = tuple(sorted(p.name for p in (REPO_ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()))
# development-only files and directories that must never reach the Galaxy tarball (galaxy.yml build_ignore)
DEV_ONLY_TOP = {".venv", ".lab", ".collections", ".cache", ".ci", ".git", ".github", ".pytest_cache", ".ansible",
                "lab", "bench", "build", "context", "inventories", "tests", "extensions", "scripts",
                "ansible.cfg", ".ansible-lint", ".yamllint", ".gitignore", "Makefile", "requirements-dev.txt",
                "constraints.txt", "pytest.ini"}


def _run(*argv, cwd=REPO_ROOT, **kwargs):
    env = {"ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(REPO_ROOT / ".ansible")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, **kwargs)


def test_galaxy_build_is_clean(tmp_path):
    result = _run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (tarball,) = tmp_path.glob("cso-rds_hardening-*.tar.gz")
    names = tarfile.open(tarball).getnames()
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    leaked = [n for n in names if n.split("/")[0] in DEV_ONLY_TOP
              or n.startswith(".lab") or "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/output")]
    assert not leaked, f"the tarball carries development files: {leaked[:10]}"
    # what users need is there: every role with its README, the playbooks, the docs
    wanted = {"README.md", "playbooks/phase1.yml", "playbooks/rollback_tls.yml", "playbooks/phase2.yml",
              "playbooks/rollback_phase2.yml", "playbooks/phase3.yml", "playbooks/rollback_phase3.yml", "playbooks/dr_drill.yml", "playbooks/dr_failover.yml",
              "docs/runbook-phase2.md", "docs/runbook-iam.md", "docs/phases.md",
              "docs/runbook-phase1.md", *(f"roles/{role}/README.md" for role in ROLES),
              *(f"docs/modules/{module}.md" for module in MODULES), *(f"plugins/modules/{module}.py" for module in MODULES)}
    assert not wanted - set(names), f"the tarball lacks {sorted(wanted - set(names))}"


def test_ansible_doc_lists_every_module_from_a_plain_checkout():
    result = _run(str(BIN / "ansible-doc"), "-l", "cso.rds_hardening")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    missing = {f"cso.rds_hardening.{m}" for m in MODULES} - listed
    assert not missing, f"ansible-doc does not list {missing}; it listed {sorted(listed)}"


def test_every_module_has_a_docs_page():
    missing = [m for m in MODULES if not (REPO_ROOT / "docs" / "modules" / f"{m}.md").is_file()]
    assert not missing, f"no docs/modules/<module>.md for {missing}"
    listed = {p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_")}
    assert listed == set(MODULES), f"plugins/modules has {sorted(listed)}; MODULES lists {sorted(MODULES)}"


def test_every_role_doc_renders():
    for role in ROLES:
        result = _run(str(BIN / "ansible-doc"), "-t", "role", f"cso.rds_hardening.{role}")
        assert result.returncode == 0, f"{role}: {result.stderr}"
        assert "ENTRY POINT: main" in result.stdout.replace("\x1b[1m", "").replace("\x1b[0m", ""), role


def test_every_module_doc_renders_with_examples_and_return():
    for module in MODULES:
        result = _run(str(BIN / "ansible-doc"), f"cso.rds_hardening.{module}")
        assert result.returncode == 0, f"{module}: {result.stderr}"
        assert "EXAMPLES:" in result.stdout and "RETURN VALUES:" in result.stdout, module


def test_execution_environment_definition_is_accepted(tmp_path):
    result = _run(str(BIN / "ansible-builder"), "create", "--file", "execution-environment.yml",
                  "--context", str(tmp_path / "context"), "--output-filename", "Containerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy" in containerfile or "install-from-bindep" in containerfile
    build_files = tmp_path / "context" / "_build"
    requirements = yaml.safe_load((build_files / "requirements.yml").read_text())
    names = {c["name"] for c in requirements["collections"]}
    assert {"amazon.aws", "community.mysql", "cso.rds_hardening"} <= names
    assert "boto3" in (build_files / "requirements.txt").read_text()


def test_galaxy_dependencies_match_the_execution_environment():
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    ee = yaml.safe_load((REPO_ROOT / "execution-environment.yml").read_text())
    ee_collections = {c["name"]: c["version"] for c in ee["dependencies"]["galaxy"]["collections"]}
    for name, version in galaxy["dependencies"].items():
        assert ee_collections.get(name) == version, f"{name}: galaxy.yml says {version}, the EE says {ee_collections.get(name)}"
