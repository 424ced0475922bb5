"""Small helpers shared by the extensions: wrapping moto methods in an explicit order, backends."""

import functools

from moto.core import DEFAULT_ACCOUNT_ID
from moto.rds.models import rds_backends
from moto.rds.responses import RDSResponse


_WRAPPERS = []  # (defining module, class, method name, wrapper function), in definition order
_INSTALLED = []


def around(cls, name):
    """Register ``func(original, self, *args, **kwargs)`` as a wrapper of ``cls.name``.

    Nothing is wrapped at import: ``install_wrappers`` applies the registered wrappers in the
    order of an explicit list of extension modules (``csolab.moto_ext.EXTENSIONS``).
    """

    def decorate(func):
        _WRAPPERS.append((func.__module__, cls, name, func))
        return func

    return decorate


def _wrap(cls, name, func):
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        return func(original, self, *args, **kwargs)

    setattr(cls, name, wrapper)


def install_wrappers(module_names):
    """Wrap moto's methods, module by module in the given order: a later module's wrapper is outer
    (it runs first and sees what the inner ones return). Idempotent."""
    if _INSTALLED:
        return
    unlisted = sorted({owner for owner, *_ in _WRAPPERS} - set(module_names))
    if unlisted:
        raise RuntimeError(f"moto extensions with wrappers but no place in the order: {unlisted}")
    for module_name in module_names:
        for owner, cls, name, func in _WRAPPERS:
            if owner == module_name:
                _wrap(cls, name, func)
    _INSTALLED.append(tuple(module_names))


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


def update_periods(settings, defaults, payload, longest=3600):
    """A lab route's periods: ``{"reset": true}`` restores ``defaults``, named values (seconds, 0 to ``longest``)
    replace the current ones, ``{}`` only reads them. Returns the periods now in force."""
    if payload.get("reset"):
        settings.update(defaults)
    for name in defaults:
        if payload.get(name) is not None:
            value = float(payload[name])
            if not 0 <= value <= longest:
                raise ValueError(f"{name} must be between 0 and {longest} seconds")
            settings[name] = value
    return dict(settings)
