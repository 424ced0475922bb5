#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: keystone_token_check
short_description: Prove that Keystone serves database-backed requests (issue, validate, revoke tokens)
version_added: 0.1.0
description:
  - Runs on a Keystone host. Issues O(rounds) tokens with a password login, validates each one, then revokes
    every token it issued. Issuing reads the user, its password hash, roles and catalog from the database and
    validating reads them again, so the check fails when Keystone cannot reach its database; C(GET /v3) alone
    stays green with a broken C([database]) section.
  - Several tokens, so that every worker of a freshly reloaded Keystone answers at least once. Only the first
    login is retried (O(first_token_retries)), since a new worker may still be starting. The others are not, so a
    broken configuration is reported within a few O(timeout)s (with oslo.db's C(use_db_reconnect) a request
    against an unreachable database hangs for minutes; the timeout ends it).
  - One module run instead of a C(uri) task per request, so the check costs one task on the host.
  - A refused login or token is not a module failure. The result says whether Keystone passed
    (RV(verified)) and why not (RV(detail)), so a role can roll back before it fails the host.
  - Never changes anything that stays (the tokens it issues are revoked); runs the same in check mode.
    Neither the password nor a token ever appears in the result.
author:
  - CSO platform engineering (@cso-platform)
options:
  url:
    description: Keystone's v3 URL, as seen from the host the module runs on.
    type: str
    default: http://127.0.0.1:5000/v3
  user:
    description: The user that logs in (a user whose tokens may be revoked by the check).
    type: str
    required: true
  password:
    description: The password of O(user).
    type: str
    required: true
  domain_id:
    description: The domain id of O(user).
    type: str
    default: default
  rounds:
    description: Tokens issued and validated (at least 1).
    type: int
    default: 4
  timeout:
    description: Timeout of each request, in seconds.
    type: int
    default: 15
  first_token_retries:
    description: How often the first login is tried again when it does not return C(201).
    type: int
    default: 2
  first_token_delay:
    description: Seconds between those attempts.
    type: float
    default: 2
attributes:
  check_mode:
    description: Runs in check mode as in a real run (it leaves nothing behind).
    support: full
  diff_mode:
    description: Has no diff.
    support: none
"""

EXAMPLES = r"""
- name: Prove that Keystone issues and validates tokens after a reload
  cso.rds_hardening.keystone_token_check:
    user: admin
    password: "{{ keystone_admin_password }}"
    rounds: 4
  register: token_check

- name: Fail when it does not
  ansible.builtin.fail:
    msg: "Keystone does not serve database-backed requests: {{ token_check.detail }}"
  when: not token_check.verified
"""

RETURN = r"""
verified:
  description: Every token was issued (C(201)) and validated (C(200)).
  returned: always
  type: bool
  sample: true
issued:
  description: Tokens issued.
  returned: always
  type: int
  sample: 4
validated:
  description: Tokens validated.
  returned: always
  type: int
  sample: 4
revoked:
  description: Issued tokens revoked again (C(204), or C(404) when already gone).
  returned: always
  type: int
  sample: 4
rounds:
  description: Tokens the check asked for (O(rounds)).
  returned: always
  type: int
  sample: 4
errors:
  description: Each request that did not answer as expected, with its status or the client's error (never a body).
  returned: always
  type: list
  elements: str
  sample: ["POST /auth/tokens: HTTP 500 Internal Server Error"]
detail:
  description: One line for a report or a failure message.
  returned: always
  type: str
  sample: "issued 4/4, validated 4/4, revoked 4/4; last error: none"
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url

TOKENS_PATH = "/auth/tokens"
ARGUMENT_SPEC = dict(
    url=dict(type="str", default="http://127.0.0.1:5000/v3"),
    user=dict(type="str", required=True),
    password=dict(type="str", required=True, no_log=True),
    domain_id=dict(type="str", default="default"),
    rounds=dict(type="int", default=4),
    timeout=dict(type="int", default=15),
    first_token_retries=dict(type="int", default=2, no_log=False),
    first_token_delay=dict(type="float", default=2.0, no_log=False),
)


def login_body(user, password, domain_id):
    return {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"id": domain_id}, "password": password}}}}}


def describe(method, status, message):
    """``POST /auth/tokens: HTTP 500 ...`` for a refused request, the client's error for no answer."""
    what = f"HTTP {status}" if status and status > 0 else "no answer"
    return f"{method} {TOKENS_PATH}: {what} {message or ''}".rstrip()


class TokenCheck:
    """The issue / validate / revoke sequence over ``request(method, headers, body) -> (status, token, message)``."""

    def __init__(self, request, rounds, first_token_retries=2, first_token_delay=2.0, sleep=time.sleep):
        self.request = request
        self.rounds = rounds
        self.first_token_retries = first_token_retries
        self.first_token_delay = first_token_delay
        self.sleep = sleep
        self.errors = []

    def call(self, method, expected, headers=None, body=None):
        """True (or the new token for a login) when the answer is the expected one."""
        status, token, message = self.request(method, headers or {}, body)
        if status not in expected:
            self.errors.append(describe(method, status, message))
            return None
        if method == "POST" and not token:
            self.errors.append(describe(method, status, "without an X-Subject-Token header"))
            return None
        return token if method == "POST" else True

    def issue(self, body):
        token = None
        for attempt in range(self.first_token_retries + 1):
            if attempt:
                self.sleep(self.first_token_delay)
            token = self.call("POST", (201,), body=body)
            if token:
                break
        if not token:
            return []
        others = (self.call("POST", (201,), body=body) for _round in range(1, self.rounds))
        return [token] + [other for other in others if other]

    def run(self, body):
        tokens = self.issue(body)
        headers = [{"X-Auth-Token": token, "X-Subject-Token": token} for token in tokens]
        validated = sum(1 for h in headers if self.call("GET", (200,), headers=h))
        revoked = sum(1 for h in headers if self.call("DELETE", (204, 404), headers=h))
        verified = len(tokens) == self.rounds and validated == self.rounds
        last = self.errors[-1] if self.errors else "none"
        detail = (f"issued {len(tokens)}/{self.rounds}, validated {validated}/{self.rounds}, "
                  f"revoked {revoked}/{len(tokens)}; last error: {last[:300]}")
        return dict(verified=verified, issued=len(tokens), validated=validated, revoked=revoked,
                    rounds=self.rounds, errors=self.errors, detail=detail)


def http_request(module, url, timeout):
    def request(method, headers, body):
        data = json.dumps(body) if body is not None else None
        headers = dict(headers, **({"Content-Type": "application/json"} if data else {}))
        response, info = fetch_url(module, url + TOKENS_PATH, data=data, headers=headers, method=method,
                                   timeout=timeout)
        if response is not None:
            response.read()
        status = info.get("status", -1)
        message = info.get("msg", "") if status not in (200, 201, 204) else ""
        return status, info.get("x-subject-token"), message
    return request


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["rounds"] < 1 or params["timeout"] < 1 or params["first_token_retries"] < 0:
        module.fail_json(msg="rounds and timeout must be at least 1 and first_token_retries at least 0: "
                             f"got {params['rounds']}, {params['timeout']} and {params['first_token_retries']}")
    check = TokenCheck(http_request(module, params["url"].rstrip("/"), params["timeout"]), params["rounds"],
                       params["first_token_retries"], params["first_token_delay"])
    result = check.run(login_body(params["user"], params["password"], params["domain_id"]))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
