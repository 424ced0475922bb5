"""Phase 1 post-change check, run with Keystone's own interpreter on a dependent host.

Reads {"host", "port", "user", "password", "ca"} as JSON on standard input (never argv) and
tries two logins with the same credentials: one in plaintext (TLS explicitly disabled) and one
with verified TLS. Prints {"plaintext": {...}, "tls": {...}}; each has "ok" and, on failure,
"errno"/"error". Exit code 0 whatever the outcome: the playbook judges the result.
"""

import json
import sys

import pymysql


def attempt(settings, **tls):
    try:
        connection = pymysql.connect(host=settings["host"], port=int(settings["port"]), user=settings["user"],
                                     password=settings["password"], connect_timeout=10, **tls)
    except (pymysql.err.MySQLError, OSError) as failure:  # OSError: no CA bundle on the host yet
        errno = failure.args[0] if failure.args and isinstance(failure.args[0], int) else None
        return {"ok": False, "errno": errno, "error": str(failure)[:300]}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cursor.fetchone()
        return {"ok": True, "cipher": row[1] if row else ""}
    finally:
        connection.close()


def main():
    settings = json.load(sys.stdin)
    report = {
        "plaintext": attempt(settings, ssl_disabled=True),
        "tls": attempt(settings, ssl={"ca": settings["ca"], "check_hostname": True}),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
