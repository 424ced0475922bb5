"""The phase-1 maintenance-window gate: RDS weekly windows, including ones that wrap the week."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cso.rds_hardening.plugins.filter.in_maintenance_window import in_maintenance_window

# 2026-11-22 is a Sunday
SUNDAY_0430 = "2026-11-22T04:30:00Z"


@pytest.mark.parametrize(("window", "now", "inside"), [
    ("sun:04:00-sun:05:00", SUNDAY_0430, True),
    ("sun:04:00-sun:05:00", "2026-11-22T05:00:00Z", False),  # the end is exclusive
    ("sun:04:00-sun:05:00", "2026-11-22T04:00:00Z", True),   # the start is inclusive
    ("sun:04:00-sun:05:00", "2026-11-23T04:30:00Z", False),  # Monday
    ("sat:23:00-sun:01:00", "2026-11-22T00:30:00Z", True),
    ("sun:23:00-mon:01:00", "2026-11-23T00:30:00Z", True),   # wraps the end of the week
    ("sun:23:00-mon:01:00", "2026-11-22T22:59:00Z", False),
    ("SUN:04:00-SUN:05:00", "2026-11-22T06:30:00+02:00", True),  # offsets are converted to UTC
    ("sun:04:00-sun:05:00", "2026-11-22T04:30:00", True),    # no offset: UTC
])
def test_window(window, now, inside):
    assert in_maintenance_window(window, now) is inside


@pytest.mark.parametrize("window", ["", "sunday 04:00", "sun:25:00-sun:26:00", "xyz:04:00-sun:05:00",
                                    "sun:04:00-sun:04:00"])
def test_bad_window_says_what_to_fix(window):
    with pytest.raises(AnsibleFilterError, match="in_maintenance_window"):
        in_maintenance_window(window, SUNDAY_0430)


def test_bad_moment():
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        in_maintenance_window("sun:04:00-sun:05:00", "yesterday")


def test_default_is_now():
    assert in_maintenance_window("mon:00:00-sun:23:59") in (True, False)
