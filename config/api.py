"""The JSON API (django-ninja), and the one place that turns errors into HTTP answers.

Every refusal is JSON shaped like `ErrorOut`: {"detail": "...", "errors": [{index, field,
message}]}; nothing a client sends may produce a 500."""

from __future__ import annotations

import json
import re

import orjson
from django.core.exceptions import RequestDataTooBig
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import JSONRenderer

from core.errors import DomainError
from core.json_render import json_bytes
from credits.api import router as credits_router
from usage.api import router as usage_router
from usage.api_auth import ApiKeyAuth
from usage.events import metadata_levels_publish
from usage.statement_api import router as statements_router

MAX_BODY_BYTES = 1024 * 1024
# orjson reads integers beyond 64 bits as floats, where the standard parser keeps them
# exact; a body with such a long digit run is left to the standard parser.
LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")


class UnsupportedMediaType(DomainError):
    status_code = 415


class PayloadTooLarge(DomainError):
    status_code = 413


class MalformedJSON(DomainError):
    status_code = 400


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check_body_headers(request) -> None:
    """Refuse a wrong media type or a declared size over the limit before reading a byte."""
    if request.content_type.lower() != "application/json":
        shown = request.content_type or "none"
        raise UnsupportedMediaType(f"Send Content-Type: application/json (got {shown}).")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is larger than {MAX_BODY_BYTES} bytes.")


class StrictJSONParser(Parser):
    """Only JSON bodies of at most 1 MiB; NaN and Infinity are not JSON and are refused."""

    def parse_body(self, request):
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The body is larger than {MAX_BODY_BYTES} bytes.")
        # orjson is ~5x faster and strict; whatever it refuses (NaN, lone surrogates, a BOM,
        # UTF-16, bad UTF-8, huge numbers …) goes to the standard parser below, which
        # accepts it or words the refusal exactly as before.
        if not LONG_DIGIT_RUN.search(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        try:
            return json.loads(body, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise MalformedJSON(
                f"Malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN, absurd numbers/nesting
            raise MalformedJSON(f"Malformed JSON: {exc}.") from None


class FastJSONRenderer(JSONRenderer):
    """Every answer through core.json_render: orjson for plain JSON values, ninja's encoder
    for anything else (Decimal, dates, models, huge ints …)."""

    def render(self, request, data, *, response_status):
        return json_bytes(data)


class CreditPoolingAPI(NinjaAPI):
    def create_temporal_response(self, request):
        # ninja calls this after authentication and right before it reads the body, inside
        # its own error handling: the one spot to refuse a body without reading it.
        if request.method in ("POST", "PUT", "PATCH"):
            _check_body_headers(request)
        return super().create_temporal_response(request)

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        metadata_levels_publish(schema["components"]["schemas"])
        return schema


api = CreditPoolingAPI(
    title="Unified Credit Pooling API",
    version="1",
    description=(
        "Send usage events and read balances. Authenticate with a company API key: "
        "`Authorization: Bearer <key>`. Amounts are strings with 4 decimals."
    ),
    auth=ApiKeyAuth(),
    parser=StrictJSONParser(),
    renderer=FastJSONRenderer(),
    docs=Swagger(),  # served from ninja's bundled static files, no CDN
    urls_namespace="api",
)
api.add_router("/v1/", usage_router)
api.add_router("/v1/", credits_router)
api.add_router("/v1/", statements_router)


def _error(request, status: int, detail: str, errors: list | None = None, **headers):
    response = api.create_response(
        request, {"detail": detail, "errors": errors or []}, status=status
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@api.exception_handler(DomainError)
def domain_error(request, exc: DomainError):
    errors = [
        {"index": e.get("index"), "field": e.get("field", ""), "message": e.get("message", "")}
        for e in getattr(exc, "errors", [])
    ]
    return _error(request, exc.status_code, exc.message, errors)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc: AuthenticationError):
    return _error(
        request,
        401,
        "Missing, unknown or revoked API key. Send Authorization: Bearer <key>.",
        WWW_Authenticate="Bearer",
    )


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    # ninja wraps whatever the body parser raised; answer with the parser's own verdict.
    if isinstance(exc.__cause__, DomainError):
        return domain_error(request, exc.__cause__)
    return _error(request, exc.status_code, str(exc))


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc: RequestDataTooBig):
    return _error(request, 413, f"The body is larger than {MAX_BODY_BYTES} bytes.")


MESSAGES = {"missing": "This field is required.", "extra_forbidden": "Unknown field."}


def _item(error: dict) -> dict:
    source, *loc = error["loc"]
    if source == "body":
        loc = loc[1:]  # drop the parameter name: the body is the batch itself
    index = None
    if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
        index, loc = loc[1], loc[2:]
    field = ".".join(str(part) for part in loc) or ("event" if index is not None else source)
    message = MESSAGES.get(error["type"], error["msg"])
    return {"index": index, "field": field, "message": message.removeprefix("Value error, ")}


@api.exception_handler(ValidationError)
def invalid(request, exc: ValidationError):
    body_missing = any(
        e["type"] == "missing" and e["loc"][0] == "body" and len(e["loc"]) <= 2 for e in exc.errors
    )
    if body_missing:
        return _error(
            request,
            422,
            'The body is empty: send a JSON object {"events": [...]}.',
            [{"index": None, "field": "body", "message": "This field is required."}],
        )
    errors = [_item(e) for e in exc.errors]
    bad = {e["index"] for e in errors if e["index"] is not None}
    if bad:
        noun = "event is" if len(bad) == 1 else "events are"
        detail = f"{len(bad)} {noun} invalid; nothing was charged."
    else:
        detail = "Invalid request: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _error(request, 422, detail, errors)
