"""Logging helpers the settings refer to."""

from __future__ import annotations

import logging


class NoClientErrorTraceback(logging.Filter):
    """An ordinary 403 or 404 is logged as one line: Django attaches the PermissionDenied
    (or Http404) traceback to the record, which says nothing about a bug. Errors of the
    server (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
