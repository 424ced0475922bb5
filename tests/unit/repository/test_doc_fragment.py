"""Every module documents what the collection's modules share through one doc fragment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).parents[3] / "plugins" / "modules").glob("*.py"))


def _documentation(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"{path.name} has no DOCUMENTATION")


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_module_extends_the_shared_fragment_and_does_not_repeat_it(path):
    documentation = _documentation(path)
    assert "cso.rds_hardening.modules" in documentation["extends_documentation_fragment"]
    notes = " ".join(documentation.get("notes", []))
    assert "action group" not in notes, "the action-group note comes from the cso.rds_hardening.modules fragment"
