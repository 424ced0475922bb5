"""roles/cso_db/files/fetch_jars.py and the pinned JDBC drivers (jdbc-drivers.lock). No network:
the download is replaced by a function that writes what a repository would serve."""

import hashlib
import importlib.util
import os
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
FILES = REPO_ROOT / "roles" / "cso_db" / "files"
REPOSITORY = "https://repo.example.test/maven2"


def _load():
    spec = importlib.util.spec_from_file_location("cso_db_fetch_jars", FILES / "fetch_jars.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetch_jars = _load()


def sha(content):
    return hashlib.sha256(content).hexdigest()


class Repository:
    """Serves ``content`` per URL and records the URLs asked for."""

    def __init__(self, content):
        self.content = content
        self.asked = []

    def __call__(self, url, destination):
        self.asked.append(url)
        Path(destination).write_bytes(self.content[url])


def jar(content=b"jar bytes", group="com.mysql", artifact="mysql-connector-j", version="8.4.0"):
    return fetch_jars.Jar(group, artifact, version, sha(content))


def test_the_lock_pins_the_wrapper_connector_j_and_the_sdk_modules_of_the_iam_plugin():
    jars = fetch_jars.parse_lock((FILES / "jdbc-drivers.lock").read_text())
    coordinates = {f"{j.group}:{j.artifact}": j.version for j in jars}
    assert coordinates["software.amazon.jdbc:aws-advanced-jdbc-wrapper"] == "2.6.8"
    assert coordinates["com.mysql:mysql-connector-j"] == "8.4.0"
    for module in ("rds", "auth", "regions", "sdk-core", "aws-core", "http-auth-aws", "identity-spi", "profiles"):
        assert coordinates[f"software.amazon.awssdk:{module}"] == "2.59.1", module
    # one SDK version only (mixed SDK module versions fail at run time)
    assert {j.version for j in jars if j.group == "software.amazon.awssdk"} == {"2.59.1"}
    # no second MySQL-protocol driver that could claim jdbc:mysql: URLs
    assert not [j for j in jars if "mariadb" in j.artifact]


def test_parse_lock_skips_comments_and_reads_each_field():
    text = f"# pinned\n\ncom.mysql:mysql-connector-j:8.4.0 {'a' * 64}\n  org.slf4j:slf4j-api:1.7.36   {'b' * 64}  \n"
    assert fetch_jars.parse_lock(text) == [
        fetch_jars.Jar("com.mysql", "mysql-connector-j", "8.4.0", "a" * 64),
        fetch_jars.Jar("org.slf4j", "slf4j-api", "1.7.36", "b" * 64)]


@pytest.mark.parametrize("text, message", [
    ("com.mysql:mysql-connector-j:8.4.0\n", "line 1: expected 'group:artifact:version sha256'"),
    (f"com.mysql:mysql-connector-j {'a' * 64}\n", "line 1"),
    (f"com.mysql:mysql-connector-j:8.4.0 {'A' * 64}\n", "lowercase hex"),
    (f"com.mysql:mysql-connector-j:8.4.0 {'a' * 63}\n", "line 1"),
    (f"a:x:1 {'a' * 64}\nb:x:1 {'b' * 64}\n", "the same jar is pinned twice: x-1.jar"),
    ("# nothing\n", "pins no jar"),
])
def test_parse_lock_refuses_malformed_lines(text, message):
    with pytest.raises(fetch_jars.LockError, match=message):
        fetch_jars.parse_lock(text)


def test_url_follows_the_maven_repository_layout():
    pinned = jar(group="software.amazon.jdbc", artifact="aws-advanced-jdbc-wrapper", version="2.6.8")
    assert pinned.url(REPOSITORY + "/") == (
        f"{REPOSITORY}/software/amazon/jdbc/aws-advanced-jdbc-wrapper/2.6.8/aws-advanced-jdbc-wrapper-2.6.8.jar")


def test_fetch_downloads_verifies_and_names_the_jar(tmp_path):
    pinned = jar(b"the real jar")
    repository = Repository({pinned.url(REPOSITORY): b"the real jar"})
    path = fetch_jars.fetch(pinned, tmp_path, REPOSITORY, opener=repository)
    assert path == tmp_path / "mysql-connector-j-8.4.0.jar"
    assert path.read_bytes() == b"the real jar"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert repository.asked == [pinned.url(REPOSITORY)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mysql-connector-j-8.4.0.jar"]


def test_a_download_that_does_not_match_fails_and_leaves_nothing(tmp_path):
    pinned = jar(b"the real jar")
    repository = Repository({pinned.url(REPOSITORY): b"something else"})
    expected = f"{pinned.url(REPOSITORY)}: sha256 {sha(b'something else')}, but the lock pins {pinned.sha256}"
    with pytest.raises(fetch_jars.ChecksumMismatch, match=re.escape(expected) + ".*nothing was kept"):
        fetch_jars.fetch(pinned, tmp_path, REPOSITORY, opener=repository)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_leaves_nothing(tmp_path):
    def broken(url, destination):
        Path(destination).write_bytes(b"half")
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        fetch_jars.fetch(jar(), tmp_path, REPOSITORY, opener=broken)
    assert list(tmp_path.iterdir()) == []


def test_a_cached_jar_is_verified_without_a_download(tmp_path):
    pinned = jar(b"cached")
    (tmp_path / pinned.file_name).write_bytes(b"cached")
    repository = Repository({})
    assert fetch_jars.fetch(pinned, tmp_path, REPOSITORY, opener=repository) == tmp_path / pinned.file_name
    assert repository.asked == []


def test_a_cached_jar_that_does_not_match_is_a_hard_failure(tmp_path):
    pinned = jar(b"cached")
    (tmp_path / pinned.file_name).write_bytes(b"tampered")
    repository = Repository({pinned.url(REPOSITORY): b"cached"})
    with pytest.raises(fetch_jars.ChecksumMismatch, match=f"{tmp_path / pinned.file_name}: sha256 .* Remove it and fetch again"):
        fetch_jars.fetch(pinned, tmp_path, REPOSITORY, opener=repository)
    assert repository.asked == []
    assert (tmp_path / pinned.file_name).read_bytes() == b"tampered"


def test_main_exits_1_naming_the_mismatch_and_0_with_the_paths(tmp_path, capsys, monkeypatch):
    good, bad = jar(b"good", artifact="a"), jar(b"bad", artifact="b")
    lock = tmp_path / "jdbc-drivers.lock"
    lock.write_text(f"{good.coordinate} {good.sha256}\n{bad.coordinate} {bad.sha256}\n")
    served = {good.url(REPOSITORY): b"good", bad.url(REPOSITORY): b"not bad"}
    monkeypatch.setattr(fetch_jars, "download", Repository(served))
    cache = tmp_path / "cache"
    args = ["--lock", str(lock), "--cache", str(cache), "--repository", REPOSITORY]
    assert fetch_jars.main(args) == 1
    assert f"fetch_jars: {bad.url(REPOSITORY)}: sha256 {sha(b'not bad')}" in capsys.readouterr().err
    assert sorted(os.listdir(cache)) == ["a-8.4.0.jar"]
    served[bad.url(REPOSITORY)] = b"bad"
    assert fetch_jars.main(args) == 0
    assert capsys.readouterr().out.split() == [str(cache / "a-8.4.0.jar"), str(cache / "b-8.4.0.jar")]
