"""Helpers shared by the test layers (importable as ``support``: tests/conftest.py puts tests/ on the path)."""

import os

import pytest


def in_ci():
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason, how_to_enable, allow_module_level=False):
    """A test cannot run here: skip, saying how to run it; under ``CI=true`` fail instead.

    CI must run every test, so a missing tool, privilege or lab feature is a failure there.
    """
    message = f"{reason} (to run it: {how_to_enable})"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message, allow_module_level=allow_module_level)
