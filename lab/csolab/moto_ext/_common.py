"""Small helpers shared by the extensions: wrapping moto methods so wrappers compose, backends."""

import functools

from moto.core import DEFAULT_ACCOUNT_ID
from moto.rds.models import rds_backends
from moto.rds.responses import RDSResponse


def around(cls, name):
    """Wrap ``cls.name`` with ``func(original, self, *args, **kwargs)``.

    The wrapped attribute is whatever is there now (moto's method or another extension's wrapper),
    so extensions that wrap the same method compose in import order (later = outer).
    """

    def decorate(func):
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(self, *args, **kwargs):
            return func(original, self, *args, **kwargs)

        setattr(cls, name, wrapper)
        return func

    return decorate


def rds_action(func):
    """Add ``func`` to moto's RDS response class as the handler of the action it is named after."""
    setattr(RDSResponse, func.__name__, func)
    return func


def rds_backend(region, account_id=DEFAULT_ACCOUNT_ID):
    return rds_backends[account_id][region]


def created_rds_backends(account_id=DEFAULT_ACCOUNT_ID):
    """The RDS backends of the regions that have been used so far."""
    return list(rds_backends[account_id].values())


def get(kwargs, key, default=None):
    """``kwargs.get`` that ignores None (moto passes absent parameters as missing or None)."""
    value = kwargs.get(key)
    return default if value is None else value


def arn_region(arn):
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" else None


def arn_account(arn):
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None
