# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long the running JVM of a systemd service keeps a resolved host name, by Java's own rules.

Java (8 to 21, no security manager) takes the security property ``networkaddress.cache.ttl`` (the JRE's
``java.security``, or a file named by ``-Djava.security.properties``: ``=file`` replaces java.security, ``file``
adds to it), else the system property ``sun.net.inetaddr.ttl``, else 30 s. System properties come from
JAVA_TOOL_OPTIONS, then JDK_JAVA_OPTIONS, then the command line (a later -D wins). -1 caches forever.

Usage: python3 jvm_dns_cache.py SERVICE (as root: it reads the service's /proc entries). Prints JSON: running, pid, ttl, source.
"""

import json
import os
import shlex
import subprocess
import sys

JAVA_DEFAULT_TTL = 30


def main_pid(service):
    shown = subprocess.run(["systemctl", "show", "--property", "MainPID", "--value", service],
                           capture_output=True, text=True, check=False)
    return int(shown.stdout.strip() or 0)


def read_nul_separated(path):
    with open(path, "rb") as handle:
        return [item.decode(errors="replace") for item in handle.read().split(b"\0") if item]


def system_properties(pid):
    environment = dict(item.split("=", 1) for item in read_nul_separated(f"/proc/{pid}/environ") if "=" in item)
    options = shlex.split(environment.get("JAVA_TOOL_OPTIONS", "")) + shlex.split(environment.get("JDK_JAVA_OPTIONS", ""))
    options += read_nul_separated(f"/proc/{pid}/cmdline")[1:]
    properties = {}
    for option in options:
        if option.startswith("-D") and "=" in option:
            key, value = option[2:].split("=", 1)
            properties[key] = value
    return properties


def read_properties(path):
    properties = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith(("#", "!")) and "=" in line:
                    key, value = line.split("=", 1)
                    properties[key.strip()] = value.strip()
    except OSError:
        pass
    return properties


def java_security_file(pid):
    home = os.path.dirname(os.path.dirname(os.path.realpath(f"/proc/{pid}/exe")))
    for candidate in ("conf/security/java.security", "jre/lib/security/java.security", "lib/security/java.security"):
        path = os.path.join(home, candidate)
        if os.path.exists(path):
            return path
    return None


def security_properties(pid, system):
    path = java_security_file(pid)
    properties = read_properties(path) if path else {}
    extra = system.get("java.security.properties")
    if extra and properties.get("security.overridePropertiesFile", "true") == "true":
        replace = extra.startswith("=")
        extra_path = extra[1:] if replace else extra
        extra_path = extra_path[len("file:"):] if extra_path.startswith("file:") else extra_path
        added = read_properties(extra_path)
        properties = added if replace else {**properties, **added}
        path = extra_path
    return properties, path


def dns_cache(service):
    pid = main_pid(service)
    if pid == 0:
        return {"running": False, "pid": 0, "ttl": None, "source": f"{service} is not running"}
    system = system_properties(pid)
    security, security_path = security_properties(pid, system)
    if "networkaddress.cache.ttl" in security:
        return {"running": True, "pid": pid, "ttl": int(security["networkaddress.cache.ttl"]),
                "source": f"networkaddress.cache.ttl in {security_path}"}
    if "sun.net.inetaddr.ttl" in system:
        return {"running": True, "pid": pid, "ttl": int(system["sun.net.inetaddr.ttl"]),
                "source": "-Dsun.net.inetaddr.ttl"}
    return {"running": True, "pid": pid, "ttl": JAVA_DEFAULT_TTL, "source": "Java's default (no setting)"}


if __name__ == "__main__":
    print(json.dumps(dns_cache(sys.argv[1])))
