"""podman for the lab's hosts, with the settings that work on these machines (lab-facts.md).

Every call runs as ``nsenter --net=/run/netns/<netns> podman …`` so the bridge network and the
containers live inside the lab's namespace (``ip netns exec`` would remount /sys and runc would
find no cgroups). Storage is per lab directory (``<lab dir>/podman/``), so labs of different
helpers or CI jobs never share container names or networks; the image comes from a read-only
shared store (``/var/lib/cso-lab-podman/images``) that is filled once from the cached tarball.
"""

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from csolab import netns, paths
from csolab.hosts import image, topology

SHARED_IMAGE_STORE = "/var/lib/cso-lab-podman/images"


def _lab_digest(lab_dir=None):
    return hashlib.sha256(str(Path(lab_dir or paths.LAB_DIR).resolve()).encode()).hexdigest()[:12]


def network_name(lab_dir=None):
    """podman keeps IP allocations per network name machine-wide (CNI_IPAM_DIR), so each lab dir
    gets its own network name."""
    return f"csolab-{_lab_digest(lab_dir)}"


NETWORK = network_name()


def _dir():
    return paths.LAB_DIR / "podman"


def _run_root():
    # tmpfs, so a reboot clears podman's runtime state together with the namespace
    return f"/run/cso-lab-podman/{_lab_digest()}"


def write_config():
    base = _dir()
    base.mkdir(parents=True, exist_ok=True)
    (base / "storage.conf").write_text(f"""[storage]
driver = "overlay"
graphroot = "{base / 'storage'}"
runroot = "{_run_root()}/storage"
[storage.options]
additionalimagestores = ["{SHARED_IMAGE_STORE}"]
""")
    (base / "containers.conf").write_text(f"""[containers]
default_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "{_run_root()}/libpod"
[network]
network_config_dir = "{base / 'networks'}"
""")
    return base


def _env():
    base = _dir()
    return {"CONTAINERS_CONF": str(base / "containers.conf"), "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class PodmanError(subprocess.CalledProcessError):
    """A failed podman call whose message carries podman's own reason (exit 125 is its catch-all)."""

    def __str__(self):
        return f"{super().__str__()}\npodman said: {(self.stderr or '').strip()}"


def podman(*args, check=True, input=None, timeout=300):
    """Run podman inside the lab's namespace with the lab's configuration."""
    result = subprocess.run(netns.nsenter(["podman", *args]), check=False, text=True, capture_output=True,
                            env=_env(), input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise PodmanError(result.returncode, result.args, result.stdout, result.stderr)
    return result


def ensure_image():
    """The base image, imported into the shared read-only store when this recipe is new there."""
    tag = image.image_tag()
    shared = ["podman", "--root", SHARED_IMAGE_STORE, "--runroot", "/run/cso-lab-podman/shared-store",
              "--storage-driver", "overlay"]
    present = subprocess.run([*shared, "image", "exists", tag], env=_env(), check=False)
    if present.returncode != 0:
        tarball = image.build()
        subprocess.run([*shared, "import", "--change", 'CMD ["/sbin/init"]', str(tarball), tag],
                       env=_env(), check=True, capture_output=True, text=True)
    return tag


def ensure_network():
    listed = podman("network", "ls", "--format", "{{.Name}}").stdout.split()
    if NETWORK not in listed:
        podman("network", "create", "--subnet", netns.HOSTS_SUBNET, "--gateway", topology.GATEWAY,
               "--disable-dns", NETWORK)


def has_state():
    return (_dir() / "containers.conf").exists()


def remove_all():
    """Containers and network of this lab's storage; quiet when there is nothing.

    After a killed run the namespace may be gone while containers remain: podman must run in
    a namespace to remove them, so one is created for it (``down`` deletes it afterwards).
    """
    if not has_state():
        # no podman state here, so no container of this lab dir exists: address reservations under its network
        # name were left by a lab whose directory was deleted (a removed checkout of the same path)
        release_addresses()
        return
    netns.ensure()
    podman("rm", "-f", "-t", "0", "--all", check=False)
    for network in podman("network", "ls", "--format", "{{.Name}}", check=False).stdout.split():
        if network != "podman":  # podman's built-in default
            podman("network", "rm", "-f", network, check=False)
    kill_stray_containers()
    release_addresses()
    shutil.rmtree(_run_root(), ignore_errors=True)  # this lab's runtime state only


# The CNI host-local IPAM keeps one file per address it handed out, per network name. A container
# killed outside podman (a killed run, `leftovers --clear`) never gives its address back, and the
# next `podman run --ip` of the same lab dir then fails: "requested IP address ... is not available".
CNI_IPAM_DIR = "/var/lib/cni/networks"


def release_addresses(network=None):
    """Forget the address reservations of this lab's network (call once its containers are gone)."""
    shutil.rmtree(os.path.join(CNI_IPAM_DIR, network or NETWORK), ignore_errors=True)


def _conmon_pids_of_this_lab():
    storage = f"{_dir() / 'storage'}/"
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and any(arg.startswith(storage.encode()) for arg in argv):
            pids.append(int(entry))
    return pids


def kill_stray_containers():
    """Containers of this lab that podman no longer knows (its runtime state was lost): kill them.

    Only processes whose conmon runs on this lab dir's storage are touched: the container's
    init (killing PID 1 ends its whole PID namespace) and its conmon.
    """
    for conmon in _conmon_pids_of_this_lab():
        children = subprocess.run(["pgrep", "-P", str(conmon)], capture_output=True, text=True).stdout.split()
        for pid in [*map(int, children), conmon]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
