# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open AMQP 0-9-1 connections over TLS and report, per case, whether the broker accepted them.

Reads one JSON document on stdin (so that client keys never appear in the process list):
  {"address": "127.0.0.1", "port": 5671, "server_name": "rabbitmq-1.example", "ca_file": "/etc/...",
   "timeout": 10, "cases": {"with_cert": {"cert": "PEM", "key": "PEM"}, "without_cert": null}}
Prints {"<case>": {"outcome": "accepted|refused|server_untrusted|unreachable", "detail": "..."}}.

"Accepted" means the broker answered the AMQP protocol header with a method frame
(Connection.Start): with TLS 1.3 the client finishes its handshake before the server has
checked the client certificate, so a completed handshake alone proves nothing.
"""
import json
import os
import socket
import ssl
import sys
import tempfile

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
METHOD_FRAME = 1


def _client_context(ca_file, client, workdir):
    context = ssl.create_default_context(cafile=ca_file)
    if client:
        cert_path = os.path.join(workdir, "client.pem")
        key_path = os.path.join(workdir, "client.key")
        for path, pem in ((cert_path, client["cert"]), (key_path, client["key"])):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(pem)
        context.load_cert_chain(cert_path, key_path)
    return context


def _probe(request, client, workdir):
    context = _client_context(request["ca_file"], client, workdir)
    timeout = request.get("timeout", 10)
    try:
        raw = socket.create_connection((request["address"], request["port"]), timeout=timeout)
    except OSError as error:
        return {"outcome": "unreachable", "detail": str(error)}
    try:
        with context.wrap_socket(raw, server_hostname=request["server_name"]) as tls:
            tls.sendall(AMQP_HEADER)
            answer = tls.recv(7)
            if answer and answer[0] == METHOD_FRAME:
                return {"outcome": "accepted", "detail": f"{tls.version()} {tls.cipher()[0]}"}
            return {"outcome": "refused", "detail": f"connection closed after the handshake ({answer!r})"}
    except ssl.SSLCertVerificationError as error:
        return {"outcome": "server_untrusted", "detail": str(error)}
    except (ssl.SSLError, ConnectionError, socket.timeout) as error:
        return {"outcome": "refused", "detail": str(error)}
    finally:
        raw.close()


def main():
    request = json.load(sys.stdin)
    results = {}
    for name, client in request["cases"].items():
        with tempfile.TemporaryDirectory(prefix="amqp-tls-probe-") as workdir:
            results[name] = _probe(request, client, workdir)
    json.dump(results, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
