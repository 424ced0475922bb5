"""Every role has a README whose variables table matches its meta/argument_specs.yml.

The tables between the BEGIN/END markers are generated from the argument specs:
    .venv/bin/python tests/unit/repository/test_role_readmes.py --write
rewrites them. A README without markers (roles/phase1 writes its table by hand) must still name
exactly the options of its argument spec.
"""

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (REPO_ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
BEGIN = "<!-- BEGIN variables: generated from meta/argument_specs.yml by tests/unit/repository/test_role_readmes.py --write -->"
END = "<!-- END variables -->"


def _options(role):
    specs = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def _plain(text):
    text = re.sub(r"\b[CVIOM]\(((?:[^()]|\([^()]*\))*)\)", r"`\1`", text)
    return " ".join(text.split()).replace("|", "\\|")


def _first_sentence(description):
    first = description[0] if isinstance(description, list) else description
    first = " ".join(str(first).split())
    match = re.match(r"(.+?\.)(\s+[A-Z]|$)", first)
    return _plain(match.group(1) if match else first)


def _default(option):
    if option.get("required"):
        return "**required**"
    if "default" not in option:
        return "unset"
    rendered = yaml.safe_dump(option["default"], default_flow_style=True, width=1000).strip()
    rendered = rendered.removesuffix("\n...").removesuffix("...").strip()
    if len(rendered) > 50:
        return "see `defaults/main.yml`"
    if rendered in ("''", ""):
        return '`""`'
    return f"`{rendered}`"


def render_table(role):
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, option in _options(role).items():
        kind = option.get("type", "str")
        if kind == "list" and option.get("elements"):
            kind = f"list of {option['elements']}"
        rows.append(f"| `{name}` | {kind} | {_default(option)} | {_first_sentence(option.get('description', ''))} |")
    return "\n".join([BEGIN, "", *rows, "", "Full descriptions: `ansible-doc -t role cso.rds_hardening." + role + "`.", END])


def _readme(role):
    return (REPO_ROOT / "roles" / role / "README.md").read_text()


def test_every_role_is_covered():
    assert len(ROLES) >= 8, ROLES


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme_with_the_sections_users_need(role):
    readme = _readme(role)
    assert readme.startswith(f"# cso.rds_hardening.{role}\n"), role
    for heading in ("## Example", "## Variables", "## Result"):
        assert heading in readme, f"roles/{role}/README.md has no {heading!r} section"


@pytest.mark.parametrize("role", ROLES)
def test_readme_variables_match_the_argument_spec(role):
    readme = _readme(role)
    if BEGIN in readme:
        generated = readme[readme.index(BEGIN):readme.index(END) + len(END)]
        assert generated == render_table(role), (
            f"roles/{role}/README.md: the variables table differs from meta/argument_specs.yml; "
            "run .venv/bin/python tests/unit/repository/test_role_readmes.py --write")
        return
    section = readme[readme.index("## Variables"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    named = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M))
    assert named == set(_options(role)), (
        f"roles/{role}/README.md: missing {sorted(set(_options(role)) - named)}, "
        f"not in the spec {sorted(named - set(_options(role)))}")


def _write():
    for role in ROLES:
        path = REPO_ROOT / "roles" / role / "README.md"
        text = path.read_text()
        if BEGIN in text:
            text = text[:text.index(BEGIN)] + render_table(role) + text[text.index(END) + len(END):]
            path.write_text(text)
            print("rewrote", path)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
    else:
        for r in sys.argv[1:]:
            print(render_table(r))
