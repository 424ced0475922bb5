"""The lab builds its MariaDB plugin AWSAuthenticationPlugin once per source and server headers."""

import ctypes
import os
import shutil
import subprocess

import pytest

from csolab.dataplane import auth_plugin
from support import unavailable

if shutil.which("gcc") is None or not (auth_plugin.INCLUDE_DIR / "mysql" / "plugin_auth.h").exists():
    unavailable("gcc or the MariaDB server plugin headers are missing", "apt-get install gcc libmariadbd-dev "
                "(make setup does)", allow_module_level=True)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(auth_plugin, "CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def test_built_once_then_reused_without_compiling(cache, monkeypatch):
    built = auth_plugin.plugin_dir()
    library = built / auth_plugin.SONAME
    assert built.parent == cache and library.is_file()
    assert hasattr(ctypes.CDLL(str(library)), "_maria_plugin_declarations_")  # a dynamic MariaDB plugin
    stamp = library.stat().st_mtime_ns

    def no_compiler(*args, **kwargs):
        raise AssertionError(f"compiled again: {args}")

    monkeypatch.setattr(subprocess, "run", no_compiler)
    assert auth_plugin.plugin_dir() == built
    assert library.stat().st_mtime_ns == stamp


def test_a_changed_source_builds_into_a_new_directory(cache, monkeypatch, tmp_path):
    first = auth_plugin.plugin_dir()
    changed = tmp_path / "aws_auth_plugin.c"
    changed.write_text(auth_plugin.SOURCE.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(auth_plugin, "SOURCE", changed)
    second = auth_plugin.plugin_dir()
    assert second != first and (second / auth_plugin.SONAME).is_file()
    assert sorted(os.listdir(cache)) == sorted(["build.lock", first.name, second.name])


def test_a_source_that_does_not_compile_says_so(cache, monkeypatch, tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(auth_plugin, "SOURCE", broken)
    with pytest.raises(auth_plugin.BuildError, match="broken.c failed"):
        auth_plugin.plugin_dir()
    assert not list(cache.glob("*/*.so"))
