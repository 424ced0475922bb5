"""Start, stop and inspect the AWS side of the lab (moto's server with our extensions)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from csolab import paths
from csolab.client import LabClient
from csolab.labstate import write_state


def _free_loopback_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _read_pid():
    try:
        return int(paths.MOTO_PID_FILE.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _answers(endpoint_url, timeout=1.0):
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_lab/ping", data=b"{}", timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read()).get("ok") is True
    except OSError:
        return False


def is_up():
    pid = _read_pid()
    if not pid or not _pid_alive(pid) or not paths.AWS_STATE_FILE.exists():
        return False
    return _answers(json.loads(paths.AWS_STATE_FILE.read_text())["endpoint_url"])


def up(timeout=60):
    """Start the server if it is not already answering; seed it on a fresh start."""
    if is_up():
        return json.loads(paths.AWS_STATE_FILE.read_text()), False
    down()  # clears whatever a killed earlier run left behind
    paths.LAB_DIR.mkdir(parents=True, exist_ok=True)
    port = _free_loopback_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    # MOTO_IAM_LOAD_MANAGED_POLICIES would add AWS-managed policies but costs ~2 s per reset.
    env = dict(os.environ, PYTHONPATH=str(paths.REPO_ROOT / "lab"), MOTO_PORT=str(port))
    with open(paths.MOTO_LOG_FILE, "ab") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "csolab.server", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    paths.MOTO_PID_FILE.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not _answers(endpoint_url):
        if process.poll() is not None or time.monotonic() > deadline:
            down()
            raise RuntimeError(f"the AWS lab did not start; see {paths.MOTO_LOG_FILE}")
        time.sleep(0.2)
    state = {
        "endpoint_url": endpoint_url,
        "region": paths.REGION,
        "dr_region": paths.DR_REGION,
        "aws_access_key_id": paths.ACCESS_KEY,
        "aws_secret_access_key": paths.SECRET_KEY,
    }
    lab = LabClient(state)
    state["seed"] = lab.reset()
    write_state(state)
    return state, True


def down(timeout=10):
    pid = _read_pid()
    if pid and _pid_alive(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    for stale in (paths.MOTO_PID_FILE, paths.AWS_STATE_FILE, paths.AWS_ENV_FILE):
        stale.unlink(missing_ok=True)


def status():
    pid = _read_pid()
    if not is_up():
        return {"aws": "down", "stale_pid": pid if pid else None}
    state = json.loads(paths.AWS_STATE_FILE.read_text())
    return {"aws": "up", "pid": pid, "endpoint_url": state["endpoint_url"], "region": state["region"],
            "dr_region": state["dr_region"], "state_file": str(paths.AWS_STATE_FILE)}
