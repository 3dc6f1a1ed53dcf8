"""Problem Details (RFC 9457) for every error the API returns.

Domain code raises ``DomainError`` subclasses (no FastAPI imports in services); the handlers
here turn them, request-validation failures and HTTP errors into ``application/problem+json``.
Validation problems always name the offending field(s) in ``errors[].field``.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 2  # what a 503 asks clients to wait: a Redis fail-over or a DB reconnect

# A dependency that is down or unreachable: Redis (refused, reset, timed out, no pooled connection
# free in time), the database (connection lost or refused, pool exhausted, SQLite busy) or a raw
# socket error on the way to either. The request may be retried: 503, never 500.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # also BusyLoading and MaxConnections
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled database connection in time
    ConnectionError,  # OSError: refused / reset / broken pipe before the driver wraps it
)


class DomainError(Exception):
    """Base of errors that services raise; each maps onto one HTTP status."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(DomainError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(DomainError):
    status, title, type_slug = 409, "Conflict", "conflict"


class Invalid(DomainError):
    status, title, type_slug = 422, "Invalid input", "validation-error"


class Forbidden(DomainError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class ServiceUnavailable(DomainError):
    status, title, type_slug = 503, "Service unavailable", "unavailable"


class Unauthorized(DomainError):
    status, title, type_slug = 401, "Not authenticated", "unauthorized"


class TooManyRequests(DomainError):
    """Throttled (switchboard.throttle): 429 with ``Retry-After`` in seconds."""

    status, title, type_slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class StillProcessing(Exception):
    """Accepted but not finished in time (202): the work may complete later; ``status_url`` tells.

    Not a DomainError: nothing went wrong, so the answer is not a problem document."""

    def __init__(self, detail: str, *, status_url: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_url = status_url
        self.extra = extra


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OUTAGE_ERRORS)


def outage_problem(request: Request, exc: BaseException) -> JSONResponse:
    log.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
    return problem(
        503,
        "Service unavailable",
        "A backing service (database or Redis) is unavailable; nothing was changed. Retry shortly.",
        type_slug="unavailable",
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://switchboard.dev/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        errors.append({"field": _field_path(err.get("loc", ())), "message": err.get("msg", "invalid")})
    return errors


_HTTP_TITLES = {
    400: ("Bad request", "bad-request"),
    401: ("Not authenticated", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not found", "not-found"),
    405: ("Method not allowed", "method-not-allowed"),
    409: ("Conflict", "conflict"),
    413: ("Request body too large", "payload-too-large"),
    415: ("Unsupported media type", "unsupported-media-type"),
    422: ("Invalid input", "validation-error"),
    429: ("Too many requests", "rate-limited"),
}


# RFC 9110: a 401 names the scheme to authenticate with.
WWW_AUTHENTICATE = 'Bearer realm="switchboard"'


def _domain_headers(status: int) -> dict[str, str] | None:
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if status == 401:
        return {"WWW-Authenticate": WWW_AUTHENTICATE}
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        extra = dict(exc.extra)
        # A service may report several problems at once (``errors=[...]``), or one via ``field``.
        errors = extra.pop("errors", None)
        if errors is None and exc.field:
            errors = [{"field": exc.field, "message": exc.detail}]
        headers = None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after)}
        else:
            headers = _domain_headers(exc.status)
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            type_slug=exc.type_slug,
            instance=request.url.path,
            headers=headers,
            errors=errors,
            **extra,
        )

    @app.exception_handler(StillProcessing)
    async def _still_processing(request: Request, exc: StillProcessing) -> JSONResponse:
        headers = {"Location": exc.status_url, "Retry-After": "1"}
        if request.headers.get("HX-Request"):
            headers["HX-Reswap"] = "none"  # the desktop: the socket brings the outcome
        body = {"status": "pending", "detail": exc.detail, "status_url": exc.status_url, **exc.extra}
        return JSONResponse(body, status_code=202, headers=headers)

    for outage in OUTAGE_ERRORS:
        app.add_exception_handler(outage, outage_problem)

    @app.exception_handler(sqlalchemy.exc.DBAPIError)
    async def _database(request: Request, exc: sqlalchemy.exc.DBAPIError) -> JSONResponse:
        if is_outage(exc):  # the connection died mid-statement
            return outage_problem(request, exc)
        raise exc  # a real fault (constraint, bad SQL): the 500 below, logged

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        fields = ", ".join(e["field"] for e in errors)
        return problem(
            422,
            "Invalid input",
            f"Invalid value for: {fields}",
            type_slug="validation-error",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title, slug = _HTTP_TITLES.get(exc.status_code, ("Error", "error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(
            exc.status_code,
            title,
            detail,
            type_slug=slug,
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):  # e.g. DBAPIError with connection_invalidated, or raised in a middleware
            return outage_problem(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "An unexpected error occurred",
            type_slug="internal",
            instance=request.url.path,
        )
