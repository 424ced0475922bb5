"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse as YAML (ansible-doc refuses the module otherwise),
and the documented options are exactly the argument spec's."""

import ast
import pathlib

import pytest
import yaml

MODULES = sorted((pathlib.Path(__file__).resolve().parents[3] / "plugins" / "modules").glob("*.py"))


def _blocks(path):
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }


@pytest.mark.parametrize("path", MODULES, ids=[path.stem for path in MODULES])
def test_docs_parse(path):
    blocks = _blocks(path)
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    for name, text in blocks.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as error:
            pytest.fail(f"{path.name} {name} is not YAML (a ': ' inside a description?): {error}")


@pytest.mark.parametrize("path", MODULES, ids=[path.stem for path in MODULES])
def test_documented_options_match_the_argument_spec(path):
    documented = set(yaml.safe_load(_blocks(path)["DOCUMENTATION"])["options"])
    tree = ast.parse(path.read_text())
    spec = next((node.value for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", None) == "ARGUMENT_SPEC"), None)
    if spec is None:
        return  # the module builds its spec another way
    names = {keyword.arg for keyword in spec.keywords} if isinstance(spec, ast.Call) else set()
    common = {"tags", "purge_tags"}  # from the amazon.aws.tags fragment
    assert names - common <= documented, f"undocumented options: {sorted(names - common - documented)}"
    assert documented <= names, f"documented options the module lacks: {sorted(documented - names)}"
