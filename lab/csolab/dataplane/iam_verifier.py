"""The lab's IAM token verifier: answers the MariaDB plugin AWSAuthenticationPlugin.

One per lab, a thread of the data-plane bridge (started and stopped with it), listening on
``<state dir>/dataplane/iam-verifier.sock``. Per login the plugin (``aws_auth_plugin.c``) sends
``v1\\n<instance uid>\\n<user>\\n<tls 0|1>\\n<client address>\\n<auth string>\\n<token>`` and
reads ``ALLOW ...`` or ``DENY <reason>``. The verifier asks the AWS lab for what it knows
(``/_lab/iam-auth-context``: the instance, the access key's secret and identity with its
policies, the lab clock offset) and decides with ``csolab.dataplane.iam_tokens.check``.

Every decision is appended to ``<state dir>/dataplane/iam-sessions.log``, one JSON object a
line: ``ts`` (real time), ``lab_time`` (the lab clock), ``instance`` (id), ``uid``, ``user``,
``client``, ``tls``, ``allowed``, ``identity_arn`` (who signed the token), ``access_key_id``,
``reason``. Tests and the issue-17 checks read it with ``sessions()``.
"""

import json
import logging
import os
import socket
import socketserver
import threading
import time
import urllib.request
from pathlib import Path

from csolab.dataplane import iam_tokens, layout

LOG = logging.getLogger("csolab.dataplane.iam")
MAX_REQUEST = 64 * 1024
CONTEXT_TIMEOUT = 8


def socket_path(state_dir):
    return layout.verifier_socket(state_dir)


def log_path(state_dir):
    return layout.iam_sessions_log(state_dir)


def sessions(state_dir=None):
    """The decisions logged so far (oldest first)."""
    try:
        lines = log_path(layout.state_dir(state_dir)).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def parse_request(data):
    fields = data.split(b"\n", 6)
    if len(fields) != 7 or fields[0] != b"v1":
        raise ValueError("not a v1 request")
    uid, user, tls, client, auth_string, token = (field.decode("utf-8", "replace") for field in fields[1:])
    return {"uid": uid, "user": user, "tls": tls == "1", "client": client, "auth_string": auth_string, "token": token}


def fetch_context(endpoint_url, uid, access_key_id):
    request = urllib.request.Request(
        f"{endpoint_url}/_lab/iam-auth-context", data=json.dumps({"uid": uid, "access_key_id": access_key_id}).encode(),
        headers={"Content-Type": "application/json", "X-Lab-Internal": "1"}, method="POST")
    with urllib.request.urlopen(request, timeout=CONTEXT_TIMEOUT) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read())


def _access_key_id(token):
    try:
        _host, _port, params = iam_tokens.parse_token(token)
    except ValueError:
        return ""
    return params.get("X-Amz-Credential", "").split("/")[0]


class Verifier:
    def __init__(self, state_dir, endpoint_url):
        """``endpoint_url``: the AWS lab's URL, or a callable returning it (read when needed)."""
        self.state_dir = Path(state_dir)
        self.endpoint_url = endpoint_url
        self.server = None
        self.thread = None
        self.log_lock = threading.Lock()

    def decide(self, request):
        endpoint = self.endpoint_url() if callable(self.endpoint_url) else self.endpoint_url
        context = fetch_context(endpoint, request["uid"], _access_key_id(request["token"]))
        lab_time = time.time() + float(context.get("clock_offset") or 0)
        decision = iam_tokens.check(request, context, lab_time)
        self._log(request, context, decision, lab_time)
        return decision

    def _log(self, request, context, decision, lab_time):
        entry = {"ts": round(time.time(), 3), "lab_time": round(lab_time, 3),
                 "instance": (context.get("instance") or {}).get("id"), "uid": request["uid"],
                 "user": request["user"], "client": request["client"], "tls": request["tls"],
                 "allowed": decision.allowed, "identity_arn": decision.identity_arn,
                 "access_key_id": decision.access_key_id, "reason": decision.reason}
        with self.log_lock, open(log_path(self.state_dir), "a") as log:
            log.write(json.dumps(entry, sort_keys=True) + "\n")
        LOG.info("IAM login %s@%s on %s: %s (%s)", request["user"], request["client"], entry["instance"],
                 "allowed" if decision.allowed else "refused", decision.identity_arn or decision.reason)

    def answer(self, data):
        try:
            request = parse_request(data)
        except ValueError as exc:
            return f"DENY malformed request: {exc}\n"
        try:
            decision = self.decide(request)
        except Exception as exc:  # noqa: BLE001 (the lab cannot check it: refuse, as AWS would fail closed)
            LOG.exception("IAM token check failed")
            return f"DENY the lab could not check the token: {type(exc).__name__}\n"
        return ("ALLOW " if decision.allowed else "DENY ") + decision.reason.replace("\n", " ") + "\n"

    def start(self):
        path = socket_path(self.state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        verifier = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(10)
                chunks, size = [], 0
                try:
                    while size <= MAX_REQUEST:
                        chunk = self.request.recv(65536)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                    self.request.sendall(verifier.answer(b"".join(chunks)).encode())
                except OSError:
                    pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(path), Handler)
        os.chmod(path, 0o600)  # only root (mariadbd runs as root) may ask
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.5},
                                       name="iam-verifier", daemon=True)
        self.thread.start()
        LOG.info("IAM token verifier listening on %s", path)
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        socket_path(self.state_dir).unlink(missing_ok=True)


def ask(state_dir, request, timeout=10):
    """Send one request as the plugin does (for tests): returns the answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(socket_path(state_dir)))
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    return answer.decode()
