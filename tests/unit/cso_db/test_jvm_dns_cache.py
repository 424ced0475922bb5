"""roles/cso_db/files/jvm_dns_cache.py reads a running process's /proc entries by Java's precedence: the security
property networkaddress.cache.ttl (java.security, or -Djava.security.properties: '=file' replaces, 'file' adds), then
-Dsun.net.inetaddr.ttl (JAVA_TOOL_OPTIONS, then JDK_JAVA_OPTIONS, then the command line; the last wins), then 30 s.
Real processes stand in for the JVM (their /proc/<pid>/environ and cmdline are what the script reads)."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "cso_db" / "files" / "jvm_dns_cache.py"
spec = importlib.util.spec_from_file_location("jvm_dns_cache", SCRIPT)
jvm_dns_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(jvm_dns_cache)


@pytest.fixture
def process():
    """Start a sleeping process with the given -D arguments and environment; yield its pid."""
    started = []

    def start(*arguments, **environment):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *arguments],
                                 env=dict(os.environ, **environment))
        started.append(child)
        time.sleep(0.05)
        return child.pid

    yield start
    for child in started:
        child.kill()
        child.wait()


def test_without_any_setting_java_keeps_30_s(process, monkeypatch):
    pid = process()
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: pid)
    assert jvm_dns_cache.dns_cache("cso") == {"running": True, "pid": pid, "ttl": 30,
                                              "source": "Java's default (no setting)"}


def test_the_command_line_wins_over_java_tool_options(process, monkeypatch):
    pid = process("-Dsun.net.inetaddr.ttl=9", JAVA_TOOL_OPTIONS="-Xss1m -Dsun.net.inetaddr.ttl=5")
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: pid)
    assert jvm_dns_cache.dns_cache("cso")["ttl"] == 9


def test_java_tool_options_alone(process, monkeypatch):
    pid = process(JAVA_TOOL_OPTIONS="-Dsun.net.inetaddr.ttl=5")
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: pid)
    assert jvm_dns_cache.dns_cache("cso") == {"running": True, "pid": pid, "ttl": 5, "source": "-Dsun.net.inetaddr.ttl"}


def test_a_security_property_wins_over_the_system_property(process, monkeypatch, tmp_path):
    extra = tmp_path / "dns.security"
    extra.write_text("# site\nnetworkaddress.cache.ttl=3\n")
    pid = process(f"-Djava.security.properties={extra}", JAVA_TOOL_OPTIONS="-Dsun.net.inetaddr.ttl=5")
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: pid)
    assert jvm_dns_cache.dns_cache("cso") == {"running": True, "pid": pid, "ttl": 3,
                                              "source": f"networkaddress.cache.ttl in {extra}"}


def test_java_security_of_the_processs_home(process, monkeypatch, tmp_path):
    security = tmp_path / "conf" / "security" / "java.security"
    security.parent.mkdir(parents=True)
    security.write_text("networkaddress.cache.ttl=-1\n")
    pid = process(JAVA_TOOL_OPTIONS="-Dsun.net.inetaddr.ttl=5")
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: pid)
    monkeypatch.setattr(jvm_dns_cache, "java_security_file", lambda pid: str(security))
    assert jvm_dns_cache.dns_cache("cso")["ttl"] == -1
    # '=file' replaces java.security: without the property there, the system property counts again
    replacement = tmp_path / "replacement.security"
    replacement.write_text("securerandom.source=file:/dev/urandom\n")
    pid = process(f"-Djava.security.properties=={replacement}", JAVA_TOOL_OPTIONS="-Dsun.net.inetaddr.ttl=5")
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: pid)
    assert jvm_dns_cache.dns_cache("cso")["ttl"] == 5


def test_a_service_that_is_not_running(monkeypatch):
    monkeypatch.setattr(jvm_dns_cache, "main_pid", lambda service: 0)
    assert jvm_dns_cache.dns_cache("cso") == {"running": False, "pid": 0, "ttl": None, "source": "cso is not running"}
