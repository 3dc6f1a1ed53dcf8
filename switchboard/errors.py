"""Problem Details (RFC 9457) for every error the API returns.

Domain code raises ``DomainError`` subclasses (no FastAPI imports in services); the handlers
here turn them, request-validation failures and HTTP errors into ``application/problem+json``.
Validation problems always name the offending field(s) in ``errors[].field``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        extra = dict(exc.extra)
        # A service may report several problems at once (``errors=[...]``), or one via ``field``.
        errors = extra.pop("errors", None)
        if errors is None and exc.field:
            errors = [{"field": exc.field, "message": exc.detail}]
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            type_slug=exc.type_slug,
            instance=request.url.path,
            errors=errors,
            **extra,
        )

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
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "An unexpected error occurred",
            type_slug="internal",
            instance=request.url.path,
        )
