"""The hosts' base image: one Debian bookworm rootfs for every host kind, built once and cached.

One image serves keystone, cso, rabbitmq and outsider hosts: the fixtures are baked in (hosts
have no route to the package mirrors) and only the services a host needs are enabled on it at
bring-up. The tarball lives outside the repository clone, keyed by a hash of this recipe, so CI
and later sessions reuse it::

    /var/cache/cso-rds-hardening/csolab-base-<hash>.tar

``python -m csolab.hosts.image`` builds it if missing and prints the path.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE_DIR = Path(os.environ.get("CSO_LAB_IMAGE_CACHE", "/var/cache/cso-rds-hardening"))
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"

BASE_PACKAGES = [
    "python3", "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2", "procps",
    "ca-certificates",
]
FIXTURE_PACKAGES = [
    "mariadb-client", "python3-venv", "openjdk-17-jre-headless", "libmariadb-java", "rabbitmq-server",
    "curl", "socat", "less",
    "python3-apt",  # Ansible's package/apt modules (present on Debian cloud images)
    "memcached",  # Keystone's token cache (keystone_db_token_cache), enabled by the role
    "libpython3.11",  # uWSGI (compiled below) links against it; listed so the purge keeps it
]
# Only needed to compile uWSGI into the Keystone venv; purged before the image is packed.
BUILD_ONLY_PACKAGES = ["gcc", "libc6-dev", "python3-dev"]
KEYSTONE_PIP = ["keystone==30.0.0", "PyMySQL<1.2", "uWSGI==2.0.28", "pymemcache==4.0.0"]
# Units that would only cost memory or fail in a container; the fixtures enable theirs per host.
DISABLED_UNITS = ["rabbitmq-server.service", "epmd.socket", "epmd.service", "memcached.service"]
MASKED_UNITS = [
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "systemd-udevd.service", "systemd-udev-trigger.service", "getty@tty1.service", "console-getty.service",
    "systemd-logind.service", "dpkg-db-backup.timer",
]

SOURCES_LIST = f"""deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb http://deb.debian.org/debian-security {SUITE}-security main
"""


def recipe_hash():
    """Changes whenever anything that ends up in the image changes."""
    recipe = repr((SUITE, BASE_PACKAGES, FIXTURE_PACKAGES, BUILD_ONLY_PACKAGES, KEYSTONE_PIP,
                   DISABLED_UNITS, MASKED_UNITS, SOURCES_LIST, _post_install_script()))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def tarball_path():
    return CACHE_DIR / f"csolab-base-{recipe_hash()}.tar"


def image_tag():
    return f"localhost/csolab-base:{recipe_hash()}"


def _post_install_script():
    disabled = " ".join(DISABLED_UNITS)
    masked = " ".join(MASKED_UNITS)
    pip = " ".join(f"'{spec}'" for spec in KEYSTONE_PIP)
    build_only = " ".join(BUILD_ONLY_PACKAGES)
    return f"""set -eux
export DEBIAN_FRONTEND=noninteractive
python3 -m venv /opt/keystone/venv
/opt/keystone/venv/bin/pip install --no-input --disable-pip-version-check {pip}
/opt/keystone/venv/bin/pip cache purge || true
apt-get purge -y --autoremove {build_only}
systemctl disable {disabled} || true
systemctl mask {masked}
systemctl enable ssh.service
mkdir -p /root/.ssh && chmod 700 /root/.ssh
sed -i 's/^#\\?PermitRootLogin.*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config
sed -i 's/^#\\?UseDNS.*/UseDNS no/' /etc/ssh/sshd_config
echo 'LANG=C.UTF-8' > /etc/default/locale
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /root/.cache /tmp/*
"""


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _chroot_mounts(root):
    mounts = [("proc", root / "proc", ["-t", "proc", "proc"]),
              ("sys", root / "sys", ["-t", "sysfs", "sysfs"]),
              ("dev", root / "dev", ["--bind", "/dev"]),
              ("pts", root / "dev/pts", ["--bind", "/dev/pts"])]
    done = []
    try:
        for _name, target, args in mounts:
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def _chroot(root, script, env=None):
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
    subprocess.run(["chroot", str(root), "/bin/sh", "-c", script], check=True, env=full_env)


def _build_rootfs(root):
    debs = CACHE_DIR / "debootstrap-debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
                    f"--include={','.join(BASE_PACKAGES)}", SUITE, str(root), MIRROR], check=True)
    (root / "etc/apt/sources.list").write_text(SOURCES_LIST)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")  # no service starts inside the chroot
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    with _chroot_mounts(root):
        packages = " ".join(FIXTURE_PACKAGES + BUILD_ONLY_PACKAGES)
        _chroot(root, f"apt-get update && apt-get install -y --no-install-recommends {packages}")
        # PyPI is reached through the controller's trust store (it may hold an intercepting CA).
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "tmp/controller-ca.crt")
        _chroot(root, _post_install_script(), env={"PIP_DEFAULT_TIMEOUT": "180", "PIP_CERT": "/tmp/controller-ca.crt"})
    policy.unlink()
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("localhost\n")


def build(force=False):
    """Return the cached tarball, building it first if this recipe has none."""
    target = tarball_path()
    with _locked(CACHE_DIR / "build.lock"):
        if target.exists() and not force:
            return target
        work = CACHE_DIR / f"build-{recipe_hash()}"
        if work.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=True)
        root = work / "rootfs"
        root.mkdir(parents=True)
        started = time.monotonic()
        _build_rootfs(root)
        partial = target.with_suffix(".tar.partial")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(target)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=True)
        (CACHE_DIR / f"csolab-base-{recipe_hash()}.build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
        for stale in CACHE_DIR.glob("csolab-base-*.tar"):
            if stale != target:  # an older recipe's tarball: nothing imports it any more
                stale.unlink()
        return target


if __name__ == "__main__":
    path = build(force="--force" in sys.argv)
    print(path, f"{path.stat().st_size / 1e6:.0f} MB")
