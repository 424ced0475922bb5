"""WSGI middleware in front of moto: the lab's own API, a call log and fault injection.

* ``/_lab/<route>``: lab controls (``calls``, ``faults``, plus routes the extensions register,
  e.g. ``maintenance-window``). JSON in, JSON out.
* Every AWS call is logged as ``{ts, service, region, action, status, faulted}`` so tests can
  count mutating calls.
* Faults: a share of calls answered with ``Throttling`` or a 5xx, as AWS does under load.

Requests carrying the ``X-Lab-Internal`` header (the data-plane bridge polling AWS state) are
neither logged nor faulted.
"""

import io
import json
import random
import re
import threading
import time
import uuid
from urllib.parse import parse_qs

_ROUTES = {}
_LOCK = threading.Lock()
_CALLS = []
_MAX_CALLS = 200_000
_FAULTS = {"rate": 0.0, "errors": ["Throttling", "ServiceUnavailable"], "actions": [], "seed": None}
_RANDOM = random.Random()

READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Search", "Lookup", "Generate")

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"/service/[^/]+/operation/([^/?]+)")


def lab_route(name):
    """Register ``func(payload: dict) -> dict`` as ``/_lab/<name>`` (GET and POST)."""

    def register(func):
        _ROUTES[name] = func
        return func

    return register


def is_mutating(action):
    return not action.startswith(READ_ONLY_PREFIXES)


@lab_route("ping")
def _ping(_payload):
    return {"ok": True}


@lab_route("calls")
def _calls(payload):
    with _LOCK:
        if payload.get("clear"):
            _CALLS.clear()
            return {"cleared": True}
        return {"calls": list(_CALLS)}


@lab_route("faults")
def _faults(payload):
    with _LOCK:
        for key in ("rate", "errors", "actions", "seed"):
            if key in payload:
                _FAULTS[key] = payload[key]
        if "seed" in payload:
            _RANDOM.seed(payload["seed"])
        return dict(_FAULTS)


def _identify(environ, body):
    """Return (service, region, action) of an AWS request, whatever its protocol."""
    service = region = action = ""
    scope = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope:
        region, service = scope.group(1), scope.group(2)
    target = environ.get("HTTP_X_AMZ_TARGET")
    cbor = _CBOR_PATH.search(environ.get("PATH_INFO", ""))
    if target:
        action = target.split(".")[-1]
    elif cbor:
        action = cbor.group(1)
    else:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            query.update(parse_qs(body.decode("utf-8", "replace")))
        action = (query.get("Action") or [""])[0]
    return service, region, action


def _should_fault(action):
    with _LOCK:
        rate, actions = _FAULTS["rate"], _FAULTS["actions"]
        if not rate or (actions and action not in actions):
            return None
        if _RANDOM.random() >= rate:
            return None
        return _RANDOM.choice(_FAULTS["errors"])


def _fault_response(environ, error_code, start_response):
    """An error shaped for the request's protocol, so botocore parses its code."""
    status = "400 Bad Request" if error_code == "Throttling" else "503 Service Unavailable"
    message = "Rate exceeded" if error_code == "Throttling" else "Service unavailable (lab fault injection)"
    request_id = str(uuid.uuid4())
    fault_type = "Sender" if error_code == "Throttling" else "Receiver"
    if environ.get("HTTP_X_AMZ_TARGET") or "json" in environ.get("CONTENT_TYPE", ""):
        body = json.dumps({"__type": error_code, "message": message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-query-error", f"{error_code};{fault_type}"),
            ("x-amzn-RequestId", request_id),
        ]
    else:
        body = (
            f"<ErrorResponse><Error><Type>{fault_type}</Type>"
            f"<Code>{error_code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    start_response(status, headers + [("Content-Length", str(len(body)))])
    return [body]


def _json_response(start_response, status, payload):
    body = json.dumps(payload, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class LabMiddleware:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        body = self._buffer_body(environ)
        if path.startswith("/_lab/"):
            return self._lab_api(path[len("/_lab/"):], body, start_response)
        if environ.get("HTTP_X_LAB_INTERNAL"):
            return self.app(environ, start_response)

        service, region, action = _identify(environ, body)
        record = {"ts": time.time(), "service": service, "region": region, "action": action}
        error_code = _should_fault(action) if action else None
        if error_code:
            self._log(record, status=400 if error_code == "Throttling" else 503, faulted=True)
            return _fault_response(environ, error_code, start_response)

        def recording_start_response(status, headers, exc_info=None):
            self._log(record, status=int(status.split()[0]), faulted=False)
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)

    @staticmethod
    def _buffer_body(environ):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    @staticmethod
    def _log(record, status, faulted):
        if not record["action"]:
            return
        with _LOCK:
            _CALLS.append(dict(record, status=status, faulted=faulted))
            del _CALLS[:-_MAX_CALLS]

    @staticmethod
    def _lab_api(route, body, start_response):
        handler = _ROUTES.get(route)
        if handler is None:
            return _json_response(start_response, "404 Not Found", {"error": f"no lab route {route!r}", "routes": sorted(_ROUTES)})
        try:
            payload = json.loads(body) if body else {}
            return _json_response(start_response, "200 OK", handler(payload))
        except Exception as exc:  # the lab API reports, it never takes the server down
            return _json_response(start_response, "500 Internal Server Error", {"error": f"{type(exc).__name__}: {exc}"})
