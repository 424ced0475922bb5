"""What the data-plane contract tests share (tests/lab/test_dataplane*.py, test_keystone_iam_plugin.py): whether a
data plane can run here, a data plane of their own in a test namespace, and waiting until it serves an instance."""

import os
import shutil

import pytest

from support import unavailable

# the tests' own namespace: never the host lab's (csolab)
TEST_NETNS = "csolab-dptest"
TOOLS = ("mariadbd", "mariadb-install-db", "socat", "nft", "nsenter", "openssl")


def missing_requirement(extra_files=()):
    """Why no data plane can run here, or None. ``extra_files``: ``(path, what is missing and how to install it)``."""
    if os.geteuid() != 0:
        return "needs root (network namespace, nftables, /etc/hosts)"
    for tool in TOOLS:
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (apt-get install mariadb-server socat nftables util-linux openssl)"
    if shutil.which("gcc") is None or not os.path.exists("/usr/include/mariadb/server/mysql/plugin_auth.h"):
        return "gcc and the MariaDB server plugin headers are missing (apt-get install gcc libmariadbd-dev)"
    for path, missing in extra_files:
        if not os.path.exists(path):
            return missing
    return None


def require_data_plane(extra_files=()):
    """At the top of a test module: skip it, saying how to run it (a failure under ``CI=true``), when no data plane
    can run here."""
    reason = missing_requirement(extra_files)
    if reason:
        unavailable(reason, "run as root with `make setup` done", allow_module_level=True)


def start_own_data_plane(netns_name=TEST_NETNS):
    """Start a data plane of the test's own in ``netns_name``; refused while one runs (a host lab's serves the same
    instances). Returns whether the namespace was made here (``stop_own_data_plane`` then deletes it)."""
    from csolab import dataplane, netns

    if dataplane.status()["bridge"] == "up":
        pytest.fail("a data plane is already running (a host lab?): these tests start and stop their own; "
                    "run `make lab-down` first", pytrace=False)
    created = not netns.exists(netns_name)
    dataplane.start(netns_name=netns_name)
    return created


def stop_own_data_plane(created, netns_name=TEST_NETNS):
    from csolab import dataplane, netns

    dataplane.stop()
    if created:
        netns.delete(netns_name)


def own_data_plane(netns_name=TEST_NETNS):
    """A module fixture's body: ``yield from own_data_plane()``."""
    from csolab import dataplane

    created = start_own_data_plane(netns_name)
    yield dataplane
    stop_own_data_plane(created, netns_name)


def wait_served(lab, instance_id, timeout=60, **expect):
    """The data plane's entry for ``instance_id`` once it serves the lab's current instance of that name (and the
    entry has the ``expect`` values)."""
    from csolab import dataplane

    uid = next(item["uid"] for item in lab.api("dataplane-instances")["instances"] if item["id"] == instance_id)
    return dataplane.wait_ready(
        instance_id, timeout=timeout,
        predicate=lambda entry: entry["uid"] == uid and all(entry.get(k) == v for k, v in expect.items()))
