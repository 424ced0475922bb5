# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: in_maintenance_window
short_description: Whether a moment lies inside an RDS-style weekly maintenance window
version_added: 0.1.0
description:
  - Takes a weekly window in the format RDS uses for C(PreferredMaintenanceWindow),
    C(ddd:hh24:mi-ddd:hh24:mi) in UTC (for example V(sun:04:00-sun:05:00)), and returns V(true)
    when O(now) lies inside it. Windows that wrap around the week (V(sat:23:00-sun:01:00)) are understood.
  - The start is inclusive, the end exclusive.
options:
  _input:
    description: The window, C(ddd:hh24:mi-ddd:hh24:mi), UTC.
    type: str
    required: true
  now:
    description:
      - The moment to test, an ISO 8601 date-time (a time without offset is taken as UTC).
        Empty for the current time.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Refuse disruptive steps outside the instance's maintenance window
  ansible.builtin.assert:
    that: instance.preferred_maintenance_window | cso.rds_hardening.in_maintenance_window
"""

RETURN = r"""
_value:
  description: V(true) when O(now) is inside the window.
  type: bool
"""

import datetime

from ansible.errors import AnsibleFilterError

from ansible_collections.cso.rds_hardening.plugins.module_utils.windows import (
    contains,
    minute_of_week,
    parse_maintenance_window,
)


def parse_window(window):
    """Return (start, end) as minutes since Monday 00:00 UTC."""
    parsed = parse_maintenance_window(window)
    if parsed is None:
        raise AnsibleFilterError(
            f"in_maintenance_window: {window!r} is not a weekly window like 'sun:04:00-sun:05:00' "
            "(ddd:hh24:mi-ddd:hh24:mi, UTC); fix phase1_maintenance_window or the instance's window"
        )
    if parsed[0] == parsed[1]:
        raise AnsibleFilterError(f"in_maintenance_window: {window!r} is empty (start equals end)")
    return parsed


def _moment(now):
    if not now:
        return datetime.datetime.now(datetime.timezone.utc)
    try:
        moment = datetime.datetime.fromisoformat(str(now).replace("Z", "+00:00"))
    except ValueError:
        raise AnsibleFilterError(f"in_maintenance_window: now={now!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def in_maintenance_window(window, now=""):
    start, end = parse_window(window)
    moment = _moment(now)
    return contains(start, end, minute_of_week(moment.weekday(), moment.hour, moment.minute))


class FilterModule:
    def filters(self):
        return {"in_maintenance_window": in_maintenance_window}
