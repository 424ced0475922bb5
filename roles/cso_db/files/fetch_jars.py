# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download the JDBC driver jars pinned in jdbc-drivers.lock into a cache and verify each one.

    python3 fetch_jars.py [--lock FILE] [--cache DIR] [--repository URL]

Each lock line is ``group:artifact:version sha256``. A jar already in the cache is verified, a
missing one downloaded from the Maven repository and verified before it takes its name. Any
checksum that does not match is a hard failure (exit 1): nothing unverified is ever left under a
jar's name. Prints the verified paths, one a line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

DEFAULT_REPOSITORY = "https://repo.maven.apache.org/maven2"
DEFAULT_LOCK = Path(__file__).resolve().parent / "jdbc-drivers.lock"
DEFAULT_CACHE = Path("/var/cache/cso-rds-hardening/jars")
LINE = re.compile(r"^(?P<group>[\w.\-]+):(?P<artifact>[\w.\-]+):(?P<version>[\w.\-]+)\s+(?P<sha256>[0-9a-f]{64})$")


class LockError(ValueError):
    """The lock file cannot be read as group:artifact:version sha256 lines."""


class ChecksumMismatch(RuntimeError):
    """A jar's content is not the one the lock pins."""


class Jar:
    def __init__(self, group, artifact, version, sha256):
        self.group = group
        self.artifact = artifact
        self.version = version
        self.sha256 = sha256

    @property
    def coordinate(self):
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self):
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository):
        return "/".join([repository.rstrip("/"), *self.group.split("."), self.artifact, self.version, self.file_name])

    def __eq__(self, other):
        return isinstance(other, Jar) and vars(self) == vars(other)

    def __repr__(self):
        return f"Jar({self.coordinate} {self.sha256})"


def parse_lock(text):
    """The jars of a lock file's text; blank lines and ``#`` comments are ignored."""
    jars = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            raise LockError(f"line {number}: expected 'group:artifact:version sha256' (lowercase hex), got {line!r}")
        jars.append(Jar(**match.groupdict()))
    names = [jar.file_name for jar in jars]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LockError(f"the same jar is pinned twice: {', '.join(duplicates)}")
    if not jars:
        raise LockError("the lock file pins no jar")
    return jars


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(jar, path, source=None, advice="Remove it and fetch again."):
    actual = sha256_of(path)
    if actual != jar.sha256:
        raise ChecksumMismatch(
            f"{source or path}: sha256 {actual}, but the lock pins {jar.sha256} for {jar.coordinate}. {advice}")


def download(url, destination):
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:  # nosec B310 (https URL from the lock)
        while True:
            block = response.read(1 << 20)
            if not block:
                return
            out.write(block)


def fetch(jar, cache, repository=DEFAULT_REPOSITORY, opener=None):
    """The verified path of ``jar`` in ``cache``: the cached file after verification, or a fresh
    download verified before it is renamed into place (a mismatch leaves nothing behind)."""
    target = Path(cache) / jar.file_name
    if target.exists():
        verify(jar, target)
        return target
    handle, partial = tempfile.mkstemp(prefix=f".{jar.file_name}.", dir=cache)
    os.close(handle)
    try:
        url = jar.url(repository)
        (opener or download)(url, partial)
        verify(jar, partial, source=url, advice=(
            "The repository serves other content than the one pinned: nothing was kept; check the "
            "repository (CSO_MAVEN_REPOSITORY) and where the lock file's checksums came from."))
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def fetch_all(jars, cache, repository=DEFAULT_REPOSITORY, opener=None):
    Path(cache).mkdir(parents=True, exist_ok=True)
    return [fetch(jar, cache, repository, opener) for jar in jars]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("CSO_JDBC_CACHE", DEFAULT_CACHE)))
    parser.add_argument("--repository", default=os.environ.get("CSO_MAVEN_REPOSITORY", DEFAULT_REPOSITORY))
    args = parser.parse_args(argv)
    try:
        paths = fetch_all(parse_lock(args.lock.read_text()), args.cache, args.repository)
    except (LockError, ChecksumMismatch, OSError) as error:
        print(f"fetch_jars: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
