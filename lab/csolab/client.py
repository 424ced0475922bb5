"""What tests and tools use to talk to a running lab: boto3 clients and the lab API."""

import json
import os
import sys
import urllib.request

import boto3

from csolab import events, paths
from csolab.labstate import load_state, save_if_current


class LabClient:
    def __init__(self, state=None):
        self.state = state or load_state()
        self.endpoint_url = self.state["endpoint_url"]
        self.region = self.state["region"]

    def boto3(self, service, region=None):
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=region or self.region,
            aws_access_key_id=self.state["aws_access_key_id"],
            aws_secret_access_key=self.state["aws_secret_access_key"],
        )

    def api(self, route, payload=None, timeout=30):
        request = urllib.request.Request(
            f"{self.endpoint_url}/_lab/{route}",
            data=json.dumps(payload or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
            return json.loads(response.read())

    def calls(self):
        return self.api("calls")["calls"]

    def mutating_calls(self):
        from csolab.labapi import is_mutating

        return [call for call in self.calls() if is_mutating(call["action"])]

    def clear_calls(self):
        self.api("calls", {"clear": True})

    def set_faults(self, rate, errors=("Throttling", "ServiceUnavailable"), actions=(), seed=None):
        return self.api("faults", {"rate": rate, "errors": list(errors), "actions": list(actions), "seed": seed})

    def set_outage(self, seconds=None, failover_seconds=None):
        """How long a restart (reboot, modification with restart) / a failover keeps the data plane
        down; None keeps the current value. Returns the setting."""
        return self.api("outage", {"seconds": seconds, "failover_seconds": failover_seconds})

    def set_clock_offset(self, seconds):
        """Move the clock the data plane checks IAM tokens with (``csolab.moto_ext.iam_auth``);
        0 puts it back. Returns the setting."""
        return self.api("clock", {"offset_seconds": seconds})

    def set_storage_optimization(self, modifying_seconds=None, optimization_seconds=None, cooldown_seconds=None):
        """How long a storage change keeps an instance ``modifying`` and then ``storage-optimization``, and the
        cooldown (AWS's six hours) before the next storage change; None keeps the current value. Returns the
        setting (``csolab.moto_ext.storage_optimization``)."""
        return self.api("storage-optimization", {"modifying_seconds": modifying_seconds,
                                                 "optimization_seconds": optimization_seconds,
                                                 "cooldown_seconds": cooldown_seconds})

    def set_blue_green(self, provisioning_seconds=None, switchover_seconds=None, green_catch_up_seconds=None):
        """How long a new blue/green deployment stays ``PROVISIONING`` (its green instance ``creating``) and a switchover
        ``SWITCHOVER_IN_PROGRESS``, and (without a data plane) how long a green takes to catch up: above the
        switchover's timeout the switchover is rolled back. None keeps the current value. Returns the setting
        (``csolab.moto_ext.blue_green``)."""
        return self.api("blue-green", {"provisioning_seconds": provisioning_seconds,
                                       "switchover_seconds": switchover_seconds,
                                       "green_catch_up_seconds": green_catch_up_seconds})

    def reach_maintenance_window(self, db_instance_identifier=None):
        return self.api("maintenance-window", {"db_instance_identifier": db_instance_identifier})

    def reset(self, seed_database=True):
        """Forget every AWS resource, then seed the network (and today's database) again."""
        from csolab import seed

        self.set_faults(0)
        if paths.HOSTS_PRISTINE_MARKER.exists():  # the hosts' database goes with it
            paths.HOSTS_PRISTINE_MARKER.unlink(missing_ok=True)
            events.log("aws-reset (the hosts need a reset)", {"pid": os.getpid(), "by": " ".join(sys.argv[:4])})
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 (loopback only)
        self.api("outage", {"reset": True})  # a demo's realistic outage must not outlive it
        self.api("clock", {"reset": True})  # an aged lab clock neither
        self.api("storage-optimization", {"reset": True})  # nor a test's storage periods
        self.api("blue-green", {"reset": True})  # nor its blue/green periods
        self.state["seed"] = seed.seed_all(self, with_database=seed_database)
        save_if_current(self.state)  # tools read the seeded ids in aws.json
        self.clear_calls()
        return self.state["seed"]
