# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the wheel of rds-iam-sqlalchemy without network access or a build backend.

    python build_wheel.py --out DIR     # prints the wheel's path

A pure-Python wheel (PEP 427) from pyproject.toml's [project] table and the package directory,
with fixed timestamps and file order, so the same sources always give the same bytes (its sha256
can be pinned). Needs Python >= 3.11 (tomllib).
"""

import argparse
import base64
import hashlib
import io
import os
import sys
import tomllib
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
TIMESTAMP = (2026, 1, 1, 0, 0, 0)


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata(project):
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
             f"Summary: {project['description']}", f"License: {project['license']['text']}",
             f"Requires-Python: {project['requires-python']}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    readme = project.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(HERE, readme), encoding="utf-8") as handle:
            body = "\n" + handle.read()
    return ("\n".join(lines) + "\n" + body).encode()


def _entry_points(project):
    sections = []
    for group, entries in sorted(project.get("entry-points", {}).items()):
        sections.append(f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in sorted(entries.items())))
    return "\n".join(sections).encode()


def _package_files(package):
    root = os.path.join(HERE, package)
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                yield os.path.relpath(path, HERE).replace(os.sep, "/"), path


def build(out_dir):
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as handle:
        pyproject = tomllib.load(handle)
    project = pyproject["project"]
    distribution = project["name"].replace("-", "_")
    dist_info = f"{distribution}-{project['version']}.dist-info"
    files = []
    for package in pyproject["tool"]["setuptools"]["packages"]:
        for arcname, path in _package_files(package):
            with open(path, "rb") as handle:
                files.append((arcname, handle.read()))
    files += [
        (f"{dist_info}/METADATA", _metadata(project)),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: build_wheel.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt", _entry_points(project)),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    os.makedirs(out_dir, exist_ok=True)
    wheel_path = os.path.join(out_dir, f"{distribution}-{project['version']}-py3-none-any.whl")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            info = zipfile.ZipInfo(name, TIMESTAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    with open(wheel_path, "wb") as handle:
        handle.write(buffer.getvalue())
    return wheel_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the wheel to")
    print(build(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
