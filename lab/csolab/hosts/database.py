"""The database the fixtures use: the data plane's instance ``cso-lab-db`` (csolab.dataplane)."""

from csolab import dataplane
from csolab.hosts import topology


def start(timeout=60):
    """The data-plane bridge (reads ``hosts.json`` for its firewall), until it serves the instance."""
    dataplane.start()
    return dataplane.wait_ready(topology.DB_INSTANCE, timeout=timeout)


def stop():
    dataplane.stop()


def endpoint_name():
    return dataplane.endpoint_for(topology.DB_INSTANCE)["name"]


def sql(statements):
    for statement in statements:
        dataplane.sql(topology.DB_INSTANCE, statement)
