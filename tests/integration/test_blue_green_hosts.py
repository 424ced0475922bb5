"""A blue/green switchover on the host lab, under the probe: phase3.yml's step blue_green (no storage change, no DR
replica; the green gets another instance class). The lab's data plane makes the green a real read-only MariaDB
replica of the blue and acts the switchover out (writes stopped, sessions cut on both, the production name moved to
the green's address, the old blue read-only as ``-old1``). Keystone and CSO keep the endpoint name: no configuration
changes, they ride through.

1. CSO's JVM with Java's default DNS cache (30 s: the lab's CSO before the role cso_db ran): phase 3 refuses the
   switchover before any mutating call, naming the host, the cache and what to set. Measured on the lab before that
   check existed: CSO wrote to the read-only old blue for 25 s after a switchover.
2. playbooks/cso_db.yml sets the cache (cso_db_jvm_dns_ttl, 5 s; one restart) and the restarted JVM reports it; then
   the switchover: production has the green's class, the old blue is ``-old1``; no Keystone or CSO file changed;
   Keystone fails only while neither server serves (its seeded configuration has no token cache, so validations
   fail there too), CSO at most its DNS cache and a few seconds longer (a cached old address reaches ``-old1``,
   whose certificate does not carry the production name: refused by verified TLS); one outage per target; CSO's
   writes then run on the new production server, not on the old blue.

The lab is reset for the next module that uses it (production is the former green now).
"""

import json

import pytest

from phase_support import DB, aws_env_module, cso_health, failure_messages, host_checksums, run_ansible, run_results  # noqa: F401
from phase_support import instance, reset_for_the_next_module

pytestmark = [pytest.mark.hosts, pytest.mark.lab]

CSO = "cso-1"
OLD_BLUE = f"{DB}-old1"
GREEN_CLASS = "db.m5.large"  # inventories/lab/phase3.yml
ONLY_THE_SWITCHOVER = {"phase3_storage": False, "phase3_blue_green": True, "phase3_stop_after": "blue_green"}
DROP_IN = "/etc/systemd/system/cso.service.d/cso-db-jvm-dns.conf"
JVM_DNS_TTL = 5  # roles/cso_db/defaults/main.yml
# Beyond Keystone's outage (the switchover as a client that resolves the name at each connection sees it), CSO may
# fail for its DNS cache plus: a pooled connection's validation and reconnect (the lab's pools: connect timeout 3 s),
# the probe's pace (0.5 s) and a request in flight when the name moved.
CSO_SLACK_SECONDS = 6.0
# Keystone's failures while neither server serves (measured on the lab: 0.5-0.7 s; the fence, the green catching up
# and both servers restarted under their new names on 2 busy cores)
KEYSTONE_OUTAGE_BOUND = 10.0


@pytest.fixture(scope="module")
def bg_lab(host_lab, request):
    """The seeded host lab (hosts on their plaintext settings; the blue's parameter group accepts them) with short
    blue/green periods."""
    host_lab.set_blue_green(provisioning_seconds=2, switchover_seconds=1)
    yield host_lab
    host_lab.api("blue-green", {"reset": True})
    reset_for_the_next_module(request)


def phase3(env):
    return run_ansible(env, "phase3.yml", "-e", json.dumps(ONLY_THE_SWITCHOVER))


def test_a_switchover_is_refused_while_csos_jvm_keeps_addresses_30_s(bg_lab, aws_env_module):
    from csolab.hosts import fixtures

    assert fixtures.sh(CSO, f"test -e {DROP_IN}", check=False).returncode != 0, "the seeded CSO has no DNS cache setting"
    bg_lab.clear_calls()
    completed = phase3(aws_env_module)
    assert completed.returncode != 0
    refusals = [message for message in failure_messages(completed) if message.startswith(f"{CSO}:")]
    assert refusals, failure_messages(completed)
    message = " ".join(refusals[0].split())
    assert "keeps a resolved address 30 s (Java's default (no setting))" in message, message
    assert "cso_db_jvm_dns_ttl" in message and "Nothing was changed" in message, message
    assert bg_lab.mutating_calls() == []
    assert instance(bg_lab, DB)["DBInstanceClass"] != GREEN_CLASS


def test_the_switchover_with_a_short_dns_cache_keeps_every_service(bg_lab, aws_env_module, tmp_path):
    from csolab import dataplane
    from csolab.hosts import fixtures
    from csolab.probe import BackgroundProbe, format_summary

    configured = run_ansible(aws_env_module, "playbooks/cso_db.yml")
    assert configured.returncode == 0, failure_messages(configured) or configured.stderr[-2000:]
    result = next(r["ansible_facts"]["cso_db_result"] for r in run_results(configured, CSO)
                  if "cso_db_result" in r.get("ansible_facts", {}))
    assert result["changed"] and result["jvm_dns_cache"]["ttl"] == JVM_DNS_TTL, result
    assert result["jvm_dns_cache"]["source"] == "-Dsun.net.inetaddr.ttl", result
    assert f"-Dsun.net.inetaddr.ttl={JVM_DNS_TTL}" in fixtures.sh(CSO, f"cat {DROP_IN}").stdout

    blue_server = dataplane.sql(DB, "SELECT @@server_id")[0][0]
    before = host_checksums()
    probe = BackgroundProbe(tmp_path / "probe.json").start()
    try:
        completed = phase3(aws_env_module)
    finally:
        summary = probe.stop()
    print(format_summary(summary))
    assert completed.returncode == 0, failure_messages(completed) or completed.stderr[-2000:]

    production = instance(bg_lab, DB)
    assert production["DBInstanceClass"] == GREEN_CLASS, production["DBInstanceClass"]
    assert instance(bg_lab, OLD_BLUE) is not None
    assert host_checksums() == before, "the switchover needs no configuration change on the hosts"

    # The switchover stops writes and cuts every session: Keystone (its seeded configuration: no token cache, so a
    # validation needs the database like a new login) fails while neither server serves, CSO at most its DNS cache
    # longer. One outage per target, nothing before or after it.
    targets, failures = summary["targets"], summary["failure_log"]
    assert failures, "the probe saw no switchover at all"
    began = min(failure["ts"] for failure in failures)
    keystone = [failure["ts"] for failure in failures if failure["target"].startswith("keystone")]
    keystone_end = max(keystone, default=began)
    assert keystone_end - began <= KEYSTONE_OUTAGE_BOUND, (keystone_end - began, failures)
    late = [failure for failure in failures if failure["ts"] > keystone_end + JVM_DNS_TTL + CSO_SLACK_SECONDS]
    assert late == [], late
    assert all(len(t["outages"]) <= 1 for t in targets.values()), {n: t["outages"] for n, t in targets.items()}

    # CSO writes on the new production server (the former green), not on the old blue
    green_server = dataplane.sql(DB, "SELECT @@server_id")[0][0]
    assert green_server != blue_server
    status, paths = cso_health(CSO)
    assert status == "200", paths
    assert paths["write"] == {"server_id": green_server, "read_only": 0}, paths
    assert dataplane.sql(OLD_BLUE, "SELECT @@server_id, @@read_only")[0] == (blue_server, 1)
