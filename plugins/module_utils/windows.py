# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""RDS's daily backup window and weekly maintenance window: one parser for the modules and the filter.

Formats as AWS documents them for ``PreferredBackupWindow`` (``hh24:mi-hh24:mi``) and
``PreferredMaintenanceWindow`` (``ddd:hh24:mi-ddd:hh24:mi``), both UTC.
"""

from __future__ import annotations

import re

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_TIME = r"([01]\d|2[0-3]):([0-5]\d)"
_DAY = r"(mon|tue|wed|thu|fri|sat|sun)"
_BACKUP_WINDOW = re.compile(rf"^{_TIME}-{_TIME}$")
_MAINTENANCE_WINDOW = re.compile(rf"^{_DAY}:{_TIME}-{_DAY}:{_TIME}$")


def parse_backup_window(window):
    """(start, end) minute of the day, or None when the format is wrong."""
    match = _BACKUP_WINDOW.match(str(window).strip())
    if not match:
        return None
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def parse_maintenance_window(window):
    """(start, end) minute of the week (Monday 00:00 = 0), or None when the format is wrong."""
    match = _MAINTENANCE_WINDOW.match(str(window).strip().lower())
    if not match:
        return None
    d1, h1, m1, d2, h2, m2 = match.groups()
    return minute_of_week(DAYS.index(d1), int(h1), int(m1)), minute_of_week(DAYS.index(d2), int(h2), int(m2))


def minute_of_week(weekday, hour, minute):
    """Minutes since Monday 00:00; ``weekday`` counts from Monday = 0 like ``datetime.weekday()``."""
    return weekday * MINUTES_PER_DAY + hour * 60 + minute


def length(start, end, period):
    """Minutes in a window that may wrap around ``period`` (a day or a week)."""
    return (end - start) % period


def contains(start, end, minute, period=MINUTES_PER_WEEK):
    """True when ``minute`` lies in [start, end), the window possibly wrapping around ``period``."""
    return (minute - start) % period < length(start, end, period)


def windows_overlap(backup_window, maintenance_window):
    """True when the weekly maintenance window shares a minute with the daily backup window."""
    b_start, b_end = parse_backup_window(backup_window)
    m_start, m_end = parse_maintenance_window(maintenance_window)
    maintenance_minutes = (
        (m_start + offset) % MINUTES_PER_WEEK for offset in range(length(m_start, m_end, MINUTES_PER_WEEK))
    )
    return any(contains(b_start, b_end, minute % MINUTES_PER_DAY, MINUTES_PER_DAY) for minute in maintenance_minutes)
