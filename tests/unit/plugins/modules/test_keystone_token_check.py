"""keystone_token_check: the issue / validate / revoke sequence, and the module against a local Keystone stand-in."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.cso.rds_hardening.plugins.modules.keystone_token_check import TokenCheck, login_body

PASSWORD = "s3cret-admin-password"


class FakeKeystone:
    """Answers like Keystone's /v3/auth/tokens; ``logins`` is the status of each successive login."""

    def __init__(self, logins=None, validate=200, revoke=204):
        self.logins = list(logins or [])
        self.validate, self.revoke = validate, revoke
        self.issued, self.requests = [], []

    def __call__(self, method, headers, body):
        self.requests.append((method, headers.get("X-Subject-Token")))
        if method == "POST":
            assert body == login_body("admin", PASSWORD, "default")
            status = self.logins.pop(0) if self.logins else 201
            if status != 201:
                return status, None, "Internal Server Error"
            self.issued.append(f"token-{len(self.issued)}")
            return 201, self.issued[-1], ""
        return (self.validate if method == "GET" else self.revoke), None, ""


def run(keystone, rounds=4, retries=2):
    sleeps = []
    result = TokenCheck(keystone, rounds, retries, 2.0, sleep=sleeps.append).run(login_body("admin", PASSWORD, "default"))
    return result, sleeps


def test_every_token_is_issued_validated_and_revoked():
    keystone = FakeKeystone()
    result, sleeps = run(keystone)
    assert result["verified"] is True and (result["issued"], result["validated"], result["revoked"]) == (4, 4, 4)
    assert [method for method, _token in keystone.requests] == ["POST"] * 4 + ["GET"] * 4 + ["DELETE"] * 4
    assert [token for method, token in keystone.requests if method == "DELETE"] == keystone.issued
    assert sleeps == [] and result["detail"] == "issued 4/4, validated 4/4, revoked 4/4; last error: none"


def test_only_the_first_login_is_tried_again():
    keystone = FakeKeystone(logins=[503, 503, 201, 500])
    result, sleeps = run(keystone)
    assert sleeps == [2.0, 2.0]
    assert result["verified"] is False and result["issued"] == 3 and result["validated"] == 3 and result["revoked"] == 3
    assert result["errors"] == ["POST /auth/tokens: HTTP 503 Internal Server Error"] * 2 + [
        "POST /auth/tokens: HTTP 500 Internal Server Error"]
    assert "issued 3/4" in result["detail"]


def test_no_first_token_means_no_other_request():
    keystone = FakeKeystone(logins=[500, 500, 500])
    result, sleeps = run(keystone)
    assert [method for method, _token in keystone.requests] == ["POST"] * 3 and len(sleeps) == 2
    assert result["verified"] is False and result["issued"] == 0 and result["revoked"] == 0


def test_a_token_that_does_not_validate_fails_the_check_and_is_still_revoked():
    keystone = FakeKeystone(validate=401)
    result, _sleeps = run(keystone, rounds=2)
    assert result["verified"] is False and result["validated"] == 0 and result["revoked"] == 2
    assert result["errors"] == ["GET /auth/tokens: HTTP 401"] * 2


def test_no_answer_is_reported_as_such():
    result, _sleeps = run(lambda method, headers, body: (-1, None, "Request failed: timed out"), rounds=1, retries=0)
    assert result["errors"] == ["POST /auth/tokens: no answer Request failed: timed out"]
    assert result["verified"] is False


# --- the module, over HTTP ---------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    keystone = None

    def _answer(self, status, token=None):
        self.send_response(status)
        if token:
            self.send_header("X-Subject-Token", token)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self):  # noqa: N802 (http.server's names)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, token, _message = self.keystone("POST", {}, body)
        self._answer(status, token)

    def do_GET(self):  # noqa: N802
        self._answer(self.keystone("GET", {"X-Subject-Token": self.headers["X-Subject-Token"]}, None)[0])

    def do_DELETE(self):  # noqa: N802
        self._answer(self.keystone("DELETE", {"X-Subject-Token": self.headers["X-Subject-Token"]}, None)[0])

    def log_message(self, *args):
        pass


@pytest.fixture
def keystone_url():
    Handler.keystone = FakeKeystone(logins=[201, 201, 500])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v3"
    server.shutdown()


def run_module(tmp_path, args):
    import ansible_collections.cso.rds_hardening.plugins.modules.keystone_token_check as module

    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    completed = subprocess.run([sys.executable, str(Path(module.__file__)), str(args_file)],
                               capture_output=True, text=True, timeout=60, check=False)
    return json.loads(completed.stdout), completed


def test_the_module_reports_through_http_and_never_shows_the_password_or_a_token(tmp_path, keystone_url):
    result, completed = run_module(tmp_path, {"url": keystone_url, "user": "admin", "password": PASSWORD,
                                              "rounds": 3, "first_token_delay": 0.1})
    assert result["changed"] is False and result.get("failed") is not True, result
    assert (result["issued"], result["validated"], result["revoked"], result["verified"]) == (2, 2, 2, False)
    assert result["errors"][0].startswith("POST /auth/tokens: HTTP 500")
    output = completed.stdout + completed.stderr
    assert PASSWORD not in output and "token-0" not in output and "token-1" not in output
    assert [token for method, token in Handler.keystone.requests if method == "DELETE"] == ["token-0", "token-1"]


def test_the_module_refuses_zero_rounds(tmp_path, keystone_url):
    result, _completed = run_module(tmp_path, {"url": keystone_url, "user": "admin", "password": PASSWORD, "rounds": 0})
    assert result["failed"] is True and "rounds and timeout must be at least 1" in result["msg"]
    assert Handler.keystone.requests == []
