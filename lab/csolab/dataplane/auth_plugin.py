"""Build (once) the lab's MariaDB server plugin ``AWSAuthenticationPlugin`` (``aws_auth_plugin.c``).

The plugin is compiled with gcc against the installed server's plugin API (Debian package
``libmariadbd-dev``: ``/usr/include/mariadb/server/mysql/plugin_auth.h``) into
``<cache>/mariadb-plugins/<hash>/aws_auth.so``; the hash covers the C source, the compiler flags
and the server's plugin headers, so a warm machine never rebuilds it and a changed source or a
server upgrade does. Every lab MariaDB uses that directory as its ``plugin_dir`` and loads it
(``csolab.dataplane.mariadb.DEFAULTS``).
"""

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("aws_auth_plugin.c")
SONAME = "aws_auth.so"
PLUGIN_NAME = "AWSAuthenticationPlugin"
INCLUDE_DIR = Path("/usr/include/mariadb/server")
HEADERS = ("mysql/plugin.h", "mysql/plugin_auth.h", "mysql/plugin_auth_common.h", "mysql_version.h")
CFLAGS = ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-DMYSQL_DYNAMIC_PLUGIN"]
CACHE_DIR = Path(os.environ.get("CSO_LAB_PLUGIN_CACHE",
                                Path(os.environ.get("CSO_LAB_IMAGE_CACHE", "/var/cache/cso-rds-hardening"))
                                / "mariadb-plugins"))


class BuildError(RuntimeError):
    pass


def build_hash():
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join(CFLAGS).encode())
    for header in HEADERS:
        path = INCLUDE_DIR / header
        if not path.exists():
            raise BuildError(f"{path} is missing: install the Debian package libmariadbd-dev (make setup does)")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


SERVER_PLUGIN_DIR = Path("/usr/lib/mysql/plugin")


def plugin_dir():
    """The directory holding the built plugin (built now if this source/server has none yet) and
    links to the server's own plugins, which ``plugin_dir`` must still reach (e.g. ``server_audit``
    for the audit option)."""
    directory = CACHE_DIR / build_hash()
    target = directory / SONAME
    if not target.exists():
        _build(directory, target)
    _link_server_plugins(directory)
    return directory


def _link_server_plugins(directory):
    for plugin in SERVER_PLUGIN_DIR.glob("*.so"):
        link = directory / plugin.name
        if not link.exists():
            try:
                link.symlink_to(plugin)
            except FileExistsError:  # another lab linked it meanwhile
                pass


def _build(directory, target):
    directory.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            partial = directory / f"{SONAME}.partial-{os.getpid()}"
            completed = subprocess.run(
                ["gcc", *CFLAGS, f"-I{INCLUDE_DIR}", "-o", str(partial), str(SOURCE)],
                capture_output=True, text=True, timeout=120)
            if completed.returncode:
                partial.unlink(missing_ok=True)
                raise BuildError(f"building {SOURCE.name} failed:\n{completed.stderr}")
            partial.replace(target)
