"""Labs of other checkouts still running on this machine: ``python -m csolab leftovers [--clear]``.

A CI machine may keep a previous run's lab (the run was killed, or its clone was removed): its
data plane still answers for the same endpoint names in the controller's /etc/hosts, its
namespace holds the hosts' subnet and the load balancer's address. ``find()`` names such labs by
the lab dir their processes work in; ``clear()`` takes each down with this checkout's own
``csolab down`` when its dir still exists, then stops whatever of it is left and deletes the
namespaces it held. Labs of this lab dir are never touched.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from csolab import netns, paths

# Paths every lab process carries on its command line, whatever the lab dir is called: relays and
# MariaDB (<lab>/dataplane/i/<uid>/...), the bridge (--state-dir <lab>), conmon
# (<lab>/podman/storage/...), haproxy (<lab>/lb/haproxy.cfg).
LAB_DIR_IN_ARGV = re.compile(r"(/[^\s\0:=]+?)/(?:dataplane/(?:i|template)/|podman/storage/|lb/haproxy)"
                             r"|--state-dir\0(/[^\0]+)")
# the lab's namespaces: the host lab's and the data-plane tests'
NAMESPACES = (netns.NAME, "csolab-dptest")


def _argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _pids():
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and int(entry) != os.getpid()]


def _ours(lab_dir):
    try:
        return Path(lab_dir).resolve() == paths.LAB_DIR.resolve()
    except OSError:
        return False


def find():
    """{foreign lab dir: [pids]} of lab processes that do not belong to this lab dir."""
    found = {}
    for pid in _pids():
        argv = _argv(pid)
        for lab_dir in {match.group(1) or match.group(2) for match in LAB_DIR_IN_ARGV.finditer(argv)}:
            if not _ours(lab_dir):
                found.setdefault(lab_dir, []).append(pid)
    return found


def _running(pid):
    """Alive and not a zombie (a killed process whose parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _with_descendants(pids):
    """``pids`` and every process below them (a container's init and what it runs, under conmon)."""
    family, found = set(pids), True
    while found:
        found = {pid for pid in _pids() if pid not in family and _parent(pid) in family}
        family |= found
    return sorted(family)


def _kill(pids, timeout=10):
    pids = _with_descendants(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not any(_running(pid) for pid in pids):
            return


def _down_with_this_checkout(lab_dir):
    env = dict(os.environ, CSO_LAB_DIR=lab_dir, PYTHONPATH=str(paths.REPO_ROOT / "lab"))
    return subprocess.run([sys.executable, "-m", "csolab", "down"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def clear(log=print, namespaces=NAMESPACES, only=None):
    """Take down every foreign lab (or those of ``only``, lab dirs); returns the lab dirs it cleared."""
    from csolab.dataplane import net
    from csolab.hosts import podman

    cleared = []
    for lab_dir in sorted(find()):
        if only is not None and lab_dir not in {str(item) for item in only}:
            continue
        if Path(lab_dir).is_dir():
            outcome = _down_with_this_checkout(lab_dir)
            log(f"leftover lab {lab_dir}: `csolab down` exited {outcome.returncode}")
        remaining = find().get(lab_dir, [])
        if remaining:
            log(f"leftover lab {lab_dir}: stopping processes {remaining[:10]}")
            _kill(remaining)
        podman.release_addresses(podman.network_name(lab_dir))
        cleared.append(lab_dir)
    for name in namespaces:
        if not netns.exists(name):
            continue
        inside = netns.pids(name)
        if (name == netns.NAME and (paths.LAB_DIR / "hosts-netns").exists()) or any(
                str(paths.LAB_DIR) in _argv(pid) for pid in inside):
            continue  # this lab dir's own namespace
        if inside:
            log(f"namespace {name}: stopping processes {inside[:10]} of a lab that is gone")
            _kill(inside)
        netns.delete(name)
        net.remove_etc_hosts_block(name)
        log(f"namespace {name}: deleted (left by another lab)")
    return cleared


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if args == ["--clear"]:
        clear()
        return 0
    found = find()
    for lab_dir, pids in sorted(found.items()):
        print(f"{lab_dir}: {len(pids)} processes (e.g. {pids[:5]})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
