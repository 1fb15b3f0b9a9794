"""The late-event window (SPEC §10.3) in tests of other rules.

Some tests need usage on fixed calendar days (a daylight-saving change, a month end in a
time zone, a year of simulated months) and were written to send it years after it
happened. The window would refuse that usage; those tests are about something else, so
they measure the window from a moment they choose (`window_from`) or, when one batch
spans more than any window can (decades of fixed moments), turn the window off with the
`late_window_off` fixture. The window itself is tested in tests/usage/test_late_events.py."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from unittest import mock


@contextmanager
def window_from(moment: dt.datetime):
    """Measure the late-event window from `moment` instead of now."""
    with mock.patch("usage.late.window_clock", return_value=moment):
        yield


@contextmanager
def late_window_off():
    """No late-event window (the `late_window_off` fixture of tests/conftest.py)."""
    with mock.patch("usage.services.late_refusals", return_value=[]):
        yield
