"""JSON answers of the API: orjson for plain JSON values, the standard encoder for the rest."""

from __future__ import annotations

import json

import orjson
from django.http import HttpResponse
from ninja.responses import NinjaJSONEncoder

MEDIA_TYPE = "application/json; charset=utf-8"
OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _not_native(value):
    raise TypeError  # orjson gives up; the standard encoder takes the whole value


def json_bytes(data) -> bytes:
    """orjson for plain JSON values (str, int of 64 bits, float, bool, None, lists, dicts
    with str keys); anything else (Decimal, dates, models, huge ints …) is rendered by
    ninja's encoder. Same values; the bytes differ only in whitespace and in non-ASCII
    text being sent as UTF-8 rather than \\u escapes."""
    try:
        return orjson.dumps(data, default=_not_native, option=OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(data, cls=NinjaJSONEncoder).encode()


def json_response(data, status: int = 200) -> HttpResponse:
    """An answer already shaped like its response schema, rendered as the API renders."""
    return HttpResponse(json_bytes(data), status=status, content_type=MEDIA_TYPE)
