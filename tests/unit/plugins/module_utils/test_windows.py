# -*- coding: utf-8 -*-
from __future__ import annotations

import pytest

from ansible_collections.cso.rds_hardening.plugins.filter import in_maintenance_window as window_filter
from ansible_collections.cso.rds_hardening.plugins.module_utils import instance_spec, windows


@pytest.mark.parametrize(
    "window, expected",
    [
        ("sun:04:00-sun:05:00", (6 * 1440 + 240, 6 * 1440 + 300)),
        ("Mon:00:00-mon:00:30", (0, 30)),
        ("sat:23:30-sun:00:30", (5 * 1440 + 1410, 6 * 1440 + 30)),
        ("sun:24:00-mon:01:00", None),
        ("sun:04:60-sun:05:00", None),
        ("xyz:04:00-sun:05:00", None),
        ("04:00-05:00", None),
    ],
)
def test_maintenance_window_parses_only_what_rds_accepts(window, expected):
    assert windows.parse_maintenance_window(window) == expected


@pytest.mark.parametrize(
    "window, expected",
    [("02:00-03:00", (120, 180)), ("23:30-00:30", (1410, 30)), ("24:00-01:00", None), ("2:00-3:00", None)],
)
def test_backup_window_parses_only_what_rds_accepts(window, expected):
    assert windows.parse_backup_window(window) == expected


@pytest.mark.parametrize(
    "start, end, minute, inside",
    [(10, 20, 10, True), (10, 20, 19, True), (10, 20, 20, False), (10, 20, 9, False), (10070, 10, 5, True), (10070, 10, 10, False)],
)
def test_contains_is_start_inclusive_end_exclusive_and_wraps(start, end, minute, inside):
    assert windows.contains(start, end, minute) is inside


@pytest.mark.parametrize(
    "backup, maintenance, overlap",
    [
        ("02:00-03:00", "sun:04:00-sun:05:00", False),
        ("04:30-05:30", "sun:04:00-sun:05:00", True),
        ("23:30-00:30", "mon:00:00-mon:00:30", True),
        ("23:30-00:30", "sun:23:00-sun:23:30", False),
    ],
)
def test_overlap_counts_a_daily_window_on_every_day_and_across_midnight(backup, maintenance, overlap):
    assert windows.windows_overlap(backup, maintenance) is overlap


def test_the_filter_and_the_module_share_one_parser(monkeypatch):
    calls = []

    def spy(window):
        calls.append(window)
        return (0, 30)

    monkeypatch.setattr(window_filter, "parse_maintenance_window", spy)
    assert window_filter.in_maintenance_window("anything", "2026-12-07T00:10:00Z") is True
    assert calls == ["anything"]
    assert instance_spec.parse_maintenance_window is windows.parse_maintenance_window
