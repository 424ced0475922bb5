"""``<lab dir>/hosts-events.log``: one line per host-lab event (acquire, release, an AWS reset that
makes the hosts need a reset), printed at the end of `make test`."""

import json
import time

from csolab import paths


def path():
    return paths.LAB_DIR / "hosts-events.log"


def log(kind, details):
    with open(path(), "a") as handle:
        handle.write(f"{time.strftime('%H:%M:%S')} {kind} {json.dumps(details, sort_keys=True)}\n")
