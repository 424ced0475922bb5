"""Shared pytest fixtures: the collection loader, the AWS lab, and running playbooks."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "lab"))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # support.py, shared by the layers


def _install_collection_loader():
    """Make ``ansible_collections.cso.rds_hardening`` and the bundled collections importable."""
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    finder = _AnsibleCollectionFinder(paths=[str(REPO_ROOT / ".collections"), sysconfig.get_paths()["purelib"]])
    finder._install()


_install_collection_loader()


@pytest.fixture(scope="session")
def lab():
    """A running AWS lab (started here when it is not up, stopped again at the end)."""
    from csolab import aws
    from csolab.client import LabClient

    started_here = False
    if not aws.is_up():
        aws.up()
        started_here = True
    yield LabClient()
    if started_here and not os.environ.get("CSO_LAB_KEEP"):
        aws.down()


@pytest.fixture(scope="session")
def host_lab(lab):
    """The full host lab (Keystone, CSO, RabbitMQ, load balancer) in its seeded state: the running
    one (`make test` brings it up once for every layer) reset if used, or brought up here and taken
    down at the end. Tests using it run last: see pytest_collection_modifyitems."""
    from csolab import hosts

    lease = hosts.acquire("pytest")
    print(f"host lab for pytest: {lease}")
    yield lab
    if not os.environ.get("CSO_LAB_KEEP"):
        hosts.release("pytest")


def pytest_collection_modifyitems(items):
    """Run the tests on the host lab after all others. The others reset the AWS lab (which
    re-provisions the seeded database without the hosts' users) or run a data plane of their own,
    so they must not run while the host lab is up.

    Tests using the ``dataplane`` fixture are marked ``dataplane``: `make test` runs the others on a
    second AWS lab in parallel with the host layers (no data plane there: its endpoint names would
    shadow the host lab's in the controller's /etc/hosts)."""
    for item in items:
        if "dataplane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dataplane)
    items.sort(key=lambda item: "host_lab" in getattr(item, "fixturenames", ()))


@pytest.fixture
def aws_lab(lab):
    """The lab reset to its seeded state (network + today's database), faults off, call log empty."""
    lab.reset(seed_database=True)
    yield lab
    lab.set_faults(0)


@pytest.fixture
def aws_env(lab):
    """Environment for a subprocess (ansible-playbook, boto3) that must talk to the lab."""
    state = lab.state
    return dict(
        os.environ,
        AWS_ENDPOINT_URL=state["endpoint_url"],
        AWS_REGION=state["region"],
        AWS_DEFAULT_REGION=state["region"],
        AWS_ACCESS_KEY_ID=state["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=state["aws_secret_access_key"],
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
    )


class PlaybookRun:
    """The outcome of one ``ansible-playbook`` run, read through the ansible.posix.json callback."""

    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        try:
            self.json = json.loads(completed.stdout)
        except json.JSONDecodeError:
            self.json = {"plays": [], "stats": {}, "raw": completed.stdout}

    @property
    def stats(self):
        return self.json.get("stats", {})

    def changed(self, host="localhost"):
        return self.stats.get(host, {}).get("changed", 0)

    def failed(self, host="localhost"):
        return self.stats.get(host, {}).get("failures", 0) + self.stats.get(host, {}).get("unreachable", 0)

    def results(self, host="localhost"):
        """Every task result for ``host``, in order, each with the task name under ``_task``."""
        out = []
        for play in self.json.get("plays", []):
            for task in play.get("tasks", []):
                result = task.get("hosts", {}).get(host)
                if result is not None:
                    out.append(dict(result, _task=task["task"]["name"]))
        return out

    def result(self, task_name, host="localhost"):
        matches = [r for r in self.results(host) if r["_task"] == task_name]
        assert matches, f"no task named {task_name!r}; ran: {[r['_task'] for r in self.results(host)]}"
        return matches[-1]

    def failures(self):
        """(host, task, message) of every failed task, for assertion messages."""
        out = []
        for play in self.json.get("plays", []):
            for task in play.get("tasks", []):
                for host, result in task.get("hosts", {}).items():
                    if result.get("failed") or result.get("unreachable"):
                        items = [r.get("msg", "") for r in result.get("results", []) if r.get("failed")]
                        out.append((host, task["task"]["name"], str(items or result.get("msg", ""))[:1500]))
        return out

    def __repr__(self):
        return (f"PlaybookRun(rc={self.returncode}, stats={self.stats}, failures={self.failures()}, "
                f"stderr={self.stderr[-2000:]!r})")


@pytest.fixture
def run_playbook(aws_env, tmp_path):
    """Run a playbook (a path, or YAML text) and return a :class:`PlaybookRun`."""

    def run(playbook, extra_vars=None, check=False, diff=False, inventory=None, env=None, timeout=900):
        if "\n" in str(playbook):
            path = tmp_path / "playbook.yml"
            path.write_text(playbook)
        else:
            path = Path(playbook)
        command = [str(Path(sys.executable).parent / "ansible-playbook"), str(path)]
        command += ["-i", inventory or "localhost,", "-c", "local"] if inventory is None else ["-i", inventory]
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        run_env = dict(aws_env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
                       ANSIBLE_PYTHON_INTERPRETER=sys.executable, **(env or {}))
        completed = subprocess.run(command, cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=timeout)
        return PlaybookRun(completed)

    return run


@pytest.fixture(scope="module")
def dataplane(lab):
    """The lab's data plane (MariaDB behind each RDS endpoint), started here when not running."""
    from csolab import dataplane as plane
    from csolab import netns

    if plane.status()["bridge"] == "up":
        yield plane
        return
    created_namespace = not netns.exists()
    plane.start()
    yield plane
    plane.stop()
    if created_namespace:
        netns.delete()
