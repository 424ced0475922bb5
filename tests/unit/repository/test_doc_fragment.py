"""Every module documents what the collection's modules share through one doc fragment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[3]
MODULES = sorted((ROOT / "plugins" / "modules").glob("*.py"))
# The fragment describes the AWS modules (action group, plan, AWS retries); a module that runs on a
# dependent host (keystone_token_check) is in no action group and does not extend it.
AWS_MODULES = set(yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]["rds"][1:])


def _documentation(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"{path.name} has no DOCUMENTATION")


def test_every_module_but_the_host_checks_is_an_aws_module():
    assert {path.stem for path in MODULES} - AWS_MODULES == {"keystone_token_check"}


@pytest.mark.parametrize("path", [path for path in MODULES if path.stem in AWS_MODULES], ids=lambda path: path.stem)
def test_module_extends_the_shared_fragment_and_does_not_repeat_it(path):
    documentation = _documentation(path)
    assert "cso.rds_hardening.modules" in documentation["extends_documentation_fragment"]
    notes = " ".join(documentation.get("notes", []))
    assert "action group" not in notes, "the action-group note comes from the cso.rds_hardening.modules fragment"
