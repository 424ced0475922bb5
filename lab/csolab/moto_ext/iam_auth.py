"""What the lab's IAM token verifier needs from the emulated AWS, read in-process; the lab clock.

``/_lab/iam-auth-context`` ``{"uid", "access_key_id"}`` answers (``csolab.dataplane.iam_tokens``
checks the token with it):

* ``instance``: the RDS instance the data-plane server of ``uid`` serves (region, account,
  endpoint address and port, ``DbiResourceId``, whether IAM database authentication is enabled),
  or None;
* ``credential``: the access key as moto's IAM and STS know it: an IAM user's access key (its
  status; the user's inline and attached managed policies and those of its groups) or the
  temporary credentials of an ``AssumeRole`` session (session token, expiration, the role's inline
  and attached policies, the session policy), with the secret key; None for a key moto does not
  know;
* ``clock_offset``: the lab clock (below).

``/_lab/clock`` ``{"offset_seconds": 960}`` moves the lab's clock for token checks (tests age
tokens with it); ``{"reset": true}`` sets it back (a lab reset does); ``{}`` reads it.
Only the data plane's token checks use it: moto and the signing clients keep the real time.
"""

import calendar
import threading
import time

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from csolab.labapi import lab_route
from csolab.moto_ext import dataplane_state

_LOCK = threading.Lock()
CLOCK = {"offset_seconds": 0.0}
MAX_OFFSET = 7 * 24 * 3600


@lab_route("clock")
def _clock(payload):
    with _LOCK:
        if payload.get("reset"):
            CLOCK["offset_seconds"] = 0.0
        if payload.get("offset_seconds") is not None:
            value = float(payload["offset_seconds"])
            if abs(value) > MAX_OFFSET:
                raise ValueError(f"offset_seconds must be within ±{MAX_OFFSET} s")
            CLOCK["offset_seconds"] = value
        return {"offset_seconds": CLOCK["offset_seconds"], "now": time.time() + CLOCK["offset_seconds"]}


def _instance(uid):
    with dataplane_state._LOCK:
        entries = [entry for entry in dataplane_state._INSTANCES.values() if entry["uid"] == uid]
    for entry in entries:
        database = entry["obj"]
        if not dataplane_state._is_live(database):
            continue
        return {"id": database.db_instance_identifier, "region": database.region, "account_id": database.account_id,
                "address": database.address, "port": int(database.port or 3306),
                "dbi_resource_id": database.dbi_resource_id,
                "iam_enabled": bool(database.enable_iam_database_authentication)}
    return None


def _documents(holder):
    """Inline and attached managed policy documents (the default version) of a user, group or role."""
    documents = list(holder.policies.values())
    for managed in holder.managed_policies.values():
        documents += [version.document for version in managed.versions if version.is_default_version]
    return documents


def _epoch(value):
    return None if value is None else calendar.timegm(value.utctimetuple())


def _credential(access_key_id):
    for _account, partitions in list(iam_backends.items()):
        for iam in list(partitions.values()):
            for user in list(iam.users.values()):
                for key in user.access_keys:
                    if key.access_key_id != access_key_id:
                        continue
                    documents = _documents(user)
                    for group in iam.get_groups_for_user(user.name):
                        documents += _documents(group)
                    return {"secret_access_key": key.secret_access_key, "status": key.status, "session_token": None,
                            "expiration": None, "identity_arn": user.arn, "identity_kind": "user",
                            "policies": documents, "session_policy": None}
    for account_id, partitions in list(sts_backends.items()):
        for sts in list(partitions.values()):
            session = sts.get_assumed_role_from_access_key(access_key_id)
            if session is None:
                continue
            documents = []
            for iam in iam_backends[account_id].values():
                try:
                    documents = _documents(iam.get_role_by_arn(session.role_arn))
                    break
                except Exception:  # noqa: BLE001 (a session of a role that is gone has no policies)
                    continue
            return {"secret_access_key": session.secret_access_key, "status": "Active",
                    "session_token": session.session_token, "expiration": _epoch(session.expiration),
                    "identity_arn": session.arn, "identity_kind": "assumed-role", "role_arn": session.role_arn,
                    "policies": documents, "session_policy": session.policy or None}
    return None


@lab_route("iam-auth-context")
def _context(payload):
    with _LOCK:
        offset = CLOCK["offset_seconds"]
    return {"instance": _instance(payload.get("uid")), "credential": _credential(payload.get("access_key_id") or ""),
            "clock_offset": offset}
