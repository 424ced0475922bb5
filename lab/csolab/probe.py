"""The probe: keeps Keystone and CSO busy while something else changes the database, and records
every failure.

Each round trip on a ``keystone:`` target issues a token as ``admin`` (POST /v3/auth/tokens) and
validates it (GET /v3/auth/tokens with X-Subject-Token); both hit the database unless Keystone
caches. A ``keystone-validate:`` target validates one token issued earlier and kept (what users
who are already logged in see). Targets: every keystone host directly, the load balancer, and
CSO's ``/health``, which makes one request on each of CSO's database paths: a write through
``db.url`` and a read through ``db.read.url`` (its own pool; the write pool when the file has no
read URL), so a CSO target fails when either path does (``cso_paths`` says where each landed).
Traffic goes only into the lab's namespace: the probe moves itself there before it opens a socket.

    python -m csolab.probe --duration 60             # run, then print the summary
    python -m csolab.probe start --result FILE       # in the background ...
    python -m csolab.probe stop --result FILE        # ... stop it and print the summary
"""

import argparse
import ctypes
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def in_namespace(action):
    """Run ``action`` with this thread in the lab's namespace (sockets it opens stay there)."""
    from csolab import netns

    original = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    original_fd = os.open(original, os.O_RDONLY)
    try:
        _setns(str(netns.path()))
        return action()
    finally:
        _libc.setns(original_fd, CLONE_NEWNET)
        os.close(original_fd)


def _request(address, port, method, path, body=None, headers=None, timeout=10):
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        # response.headers is case-insensitive: haproxy lower-cases header names
        return response.status, response.headers, response.read().decode(errors="replace")
    finally:
        connection.close()


def _admin_password():
    from csolab.hosts import topology

    return topology.lab_secrets()["keystone_admin_password"]


def keystone_round_trip(address, port, password=None, timeout=10):
    """Issue and validate a token; raise with the status and body on any failure.

    ``timeout`` bounds each of the two requests (polling checks pass a short one)."""
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password or _admin_password()}}}}})
    status, headers, text = _request(address, port, "POST", "/v3/auth/tokens", body,
                                     {"Content-Type": "application/json"}, timeout=timeout)
    if status != 201:
        raise RuntimeError(f"issue: HTTP {status} {text[:200]}")
    token = headers.get("X-Subject-Token")
    status, _headers, text = _request(address, port, "GET", "/v3/auth/tokens", None,
                                      {"X-Auth-Token": token, "X-Subject-Token": token}, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"validate: HTTP {status} {text[:200]}")
    return True


class HeldToken:
    """Validates one token issued once and kept, as a service does with the token a user sent:
    what a Keystone outage costs users who are already logged in. A token is issued (outside the
    measurement) only when none is held yet or Keystone stopped knowing the held one."""

    def __init__(self, address, port, password, timeout=10):
        self.address, self.port, self.password, self.timeout = address, port, password, timeout
        self.token = None

    def _issue(self):
        body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": self.password}}}}})
        status, headers, _text = _request(self.address, self.port, "POST", "/v3/auth/tokens", body,
                                          {"Content-Type": "application/json"}, timeout=self.timeout)
        return headers.get("X-Subject-Token") if status == 201 else None

    def ready(self):
        if self.token is None:
            try:
                self.token = self._issue()
            except OSError:
                return False
        return self.token is not None

    def validate(self):
        status, _headers, text = _request(self.address, self.port, "GET", "/v3/auth/tokens", None,
                                          {"X-Auth-Token": self.token, "X-Subject-Token": self.token},
                                          timeout=self.timeout)
        if status == 404:  # expired or revoked: not an outage, take a new one next round
            self.token = None
        if status != 200:
            raise RuntimeError(f"validate issued token: HTTP {status} {text[:200]}")
        return True


def cso_health(address, port=8080, timeout=10):
    status, _headers, text = _request(address, port, "GET", "/health", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"health: HTTP {status} {text.strip()[:300]}")
    return True


def cso_paths(address, port=8080, timeout=10):
    """Where CSO's two database paths landed on one /health request:
    ``{"write": {"server_id", "read_only"}, "read": {"server_id", "read_only", "split"}}``."""
    status, _headers, text = _request(address, port, "GET", "/health", timeout=timeout)
    if status != 200 or not text.startswith("OK {"):
        raise RuntimeError(f"health: HTTP {status} {text.strip()[:300]}")
    return json.loads(text[3:])


def default_targets():
    from csolab.hosts import topology

    password = _admin_password()
    keystones = {name: (topology.HOSTS[name]["ip"], 5000) for name in topology.hosts_of("keystone")}
    keystones["lb"] = topology.KEYSTONE_LB
    targets = {}
    for name, (address, port) in keystones.items():
        targets[f"keystone:{name}"] = lambda a=address, p=port: keystone_round_trip(a, p, password)
        targets[f"keystone-validate:{name}"] = HeldToken(address, port, password)
    for name in topology.hosts_of("cso"):
        targets[f"cso:{name}"] = lambda ip=topology.HOSTS[name]["ip"]: cso_health(ip, topology.CSO_HEALTH_PORT)
    return targets


class Recorder:
    """Requests, failures and outages (a run of failures until the next success) per target."""

    def __init__(self, targets):
        self.lock = threading.Lock()
        self.started = time.time()
        self.stats = {name: {"requests": 0, "failures": 0, "max_latency_s": 0.0, "outages": []} for name in targets}
        self.failures = []
        self._open_outage = {}

    def record(self, target, began, latency, error):
        with self.lock:
            stats = self.stats[target]
            stats["requests"] += 1
            stats["max_latency_s"] = max(stats["max_latency_s"], round(latency, 3))
            if error is None:
                self._close_outage(target, began)
                return
            stats["failures"] += 1
            self.failures.append({"ts": round(began, 3), "target": target, "error": error})
            self._open_outage.setdefault(target, began)

    def _close_outage(self, target, until):
        start = self._open_outage.pop(target, None)
        if start is not None:
            self.stats[target]["outages"].append({"start": round(start, 3), "end": round(until, 3),
                                                  "seconds": round(until - start, 3)})

    def summary(self):
        with self.lock:
            ended = time.time()
            for target in list(self._open_outage):
                self._close_outage(target, ended)
            targets = {}
            for name, stats in self.stats.items():
                longest = max((outage["seconds"] for outage in stats["outages"]), default=0.0)
                targets[name] = {**stats, "longest_outage_s": longest}
            return {"started": round(self.started, 3), "ended": round(ended, 3),
                    "requests": sum(s["requests"] for s in targets.values()),
                    "failures": sum(s["failures"] for s in targets.values()),
                    "longest_outage_s": max((t["longest_outage_s"] for t in targets.values()), default=0.0),
                    "targets": targets, "failure_log": self.failures}


def run(duration, interval, result_path, stop_event=None):
    """Probe until ``duration`` seconds pass (0: until SIGTERM/SIGINT); write and return the summary."""
    from csolab import netns

    _setns(str(netns.path()))  # before any thread exists, so every thread inherits it
    targets = default_targets()
    recorder = Recorder(targets)
    stop_event = stop_event or threading.Event()

    def loop(name, action):
        held = action if isinstance(action, HeldToken) else None
        while not stop_event.is_set():
            if held is not None:
                if not held.ready():
                    stop_event.wait(interval)
                    continue
                action = held.validate
            began = time.time()
            error = None
            try:
                action()
            except Exception as failure:  # noqa: BLE001 (every failure is the measurement)
                error = str(failure)[:500]
            recorder.record(name, began, time.time() - began, error)
            stop_event.wait(interval)

    threads = [threading.Thread(target=loop, args=item, daemon=True) for item in targets.items()]
    for thread in threads:
        thread.start()
    stop_event.wait(duration if duration > 0 else None)
    stop_event.set()
    for thread in threads:
        thread.join(timeout=15)
    summary = recorder.summary()
    if result_path:
        partial = Path(f"{result_path}.partial")
        partial.write_text(json.dumps(summary, indent=2) + "\n")
        partial.replace(result_path)
    return summary


# A request that began this long before the server stopped may still be cut by the stop.
REQUEST_SLACK_SECONDS = 2.0
# The ride-through goal: every service answers again within this long of the database being back.
RIDE_THROUGH_SECONDS = 10.0


def is_held_token_validation(target):
    return target.startswith("keystone-validate:")


def restart_window(restart, ended):
    return (restart["down"] - REQUEST_SLACK_SECONDS, (restart["up"] or ended) + RIDE_THROUGH_SECONDS)


def explain_failures(summary, restarts):
    """Attribute the probe's failures to the database restarts the data plane acted out.

    Returns ``(events, unexplained)``: per restart, its failures per target; and the failures no
    restart explains. A validation of an issued token is never explained: logged-in users must ride
    through (Keystone's token cache); other requests may fail from the restart until
    RIDE_THROUGH_SECONDS after the server accepts connections again.
    """
    events = [{**restart, "failures": {}} for restart in restarts]
    unexplained = []
    for failure in summary["failure_log"]:
        event = next((event for event in events
                      if restart_window(event, summary["ended"])[0] <= failure["ts"] <= restart_window(event, summary["ended"])[1]),
                     None)
        if event is not None:
            event["failures"][failure["target"]] = event["failures"].get(failure["target"], 0) + 1
        if event is None or is_held_token_validation(failure["target"]):
            unexplained.append(failure)
    return events, unexplained


def format_events(events):
    lines = []
    for event in events:
        seen = ", ".join(f"{target} {count}" for target, count in sorted(event["failures"].items())) or "no failure"
        down = time.strftime("%H:%M:%S", time.localtime(event["down"]))
        back = f"{event['up'] - event['down']:.1f} s" if event["up"] else "not back"
        lines.append(f"event: {event['instance']} {event['reason']} at {down}, database back after {back}; "
                     f"failed requests: {seen}")
    return "\n".join(lines)


def format_summary(summary):
    lines = [f"probe: {summary['requests']} requests, {summary['failures']} failures, "
             f"longest outage {summary['longest_outage_s']:.1f}s over {summary['ended'] - summary['started']:.0f}s"]
    for name, stats in summary["targets"].items():
        lines.append(f"  {name:22} requests {stats['requests']:5}  failures {stats['failures']:5}  "
                     f"longest outage {stats['longest_outage_s']:6.1f}s  max latency {stats['max_latency_s']:.2f}s")
    for failure in summary["failure_log"][:3]:
        lines.append(f"  first failures: {time.strftime('%H:%M:%S', time.localtime(failure['ts']))} "
                     f"{failure['target']}: {failure['error'][:160]}")
    return "\n".join(lines)


class BackgroundProbe:
    """For tests: the probe as a child process, stopped with SIGTERM; ``stop()`` returns the summary."""

    def __init__(self, result_path, interval=0.5):
        self.result_path = Path(result_path)
        self.interval = interval
        self.process = None

    def start(self):
        self.result_path.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        self.process = subprocess.Popen([sys.executable, "-m", "csolab.probe", "run", "--result", str(self.result_path),
                                         "--interval", str(self.interval)], env=env, start_new_session=True,
                                        stdout=subprocess.DEVNULL)
        return self

    def stop(self, timeout=30):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return json.loads(self.result_path.read_text())


def _pid_file(result_path):
    return Path(f"{result_path}.pid")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="csolab.probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", default="run", choices=["run", "start", "stop"])
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until SIGTERM/SIGINT")
    parser.add_argument("--interval", type=float, default=0.5, help="pause between round trips per target")
    parser.add_argument("--result", help="write the summary (JSON) here")
    args = parser.parse_args(argv)
    if args.action == "start":
        if not args.result:
            parser.error("start needs --result")
        probe = BackgroundProbe(args.result, args.interval).start()
        _pid_file(args.result).write_text(str(probe.process.pid))
        print(f"probe running (pid {probe.process.pid}); stop with: python -m csolab.probe stop --result {args.result}")
        return 0
    if args.action == "stop":
        if not args.result:
            parser.error("stop needs --result")
        pid = int(_pid_file(args.result).read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        _pid_file(args.result).unlink(missing_ok=True)
        print(format_summary(json.loads(Path(args.result).read_text())))
        return 0
    stop_event = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_event.set())
    summary = run(args.duration, args.interval, args.result, stop_event)
    print(format_summary(summary))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
