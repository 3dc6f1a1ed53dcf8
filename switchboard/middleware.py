"""Pure ASGI middleware: the receipt stamp, the request-body size limit (oversize uploads refused
before they are read), the bad-input guard (control characters, undecodable and too-deep JSON) and
the browser headers."""

from __future__ import annotations

import json
import re
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.text import CONTROL, first_control
from switchboard.text import MESSAGE as CONTROL_MESSAGE

RECEIVED_AT = "switchboard.received_at"


class ReceivedAt:
    """Stamps every HTTP request with when the app received it (``received_at``), before any other
    work: an agent's click is judged by this time, however long the request then waits for the
    event loop, the database or the engine (an accept in time is honoured, issue #15)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RECEIVED_AT] = time.time()
        await self.app(scope, receive, send)


def received_at(scope: Scope) -> float:
    """When the request arrived (epoch seconds): the ``ReceivedAt`` stamp, else now."""
    stamp = scope.get(RECEIVED_AT)
    return stamp if isinstance(stamp, float) else time.time()


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send, scope)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(send, scope)

    async def _reject(self, send: Send, scope: Scope) -> None:
        body = json.dumps(
            {
                "type": "https://switchboard.dev/problems/payload-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"The request body exceeds {self.max_bytes} bytes",
                "instance": scope.get("path"),
                "errors": [{"field": "body", "message": f"larger than {self.max_bytes} bytes"}],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit.

    An ``HTTPException`` so that FastAPI's body parsing re-raises it (it turns any other error
    while reading the body into a 400) and the app's handler renders a 413 problem; if it escapes
    the app instead, ``BodySizeLimit`` answers 413 itself.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds {max_bytes} bytes")


# Everything the pages load is ours (htmx and the API docs' bundles are served from static/vendor);
# the desktop's socket is same-origin, which 'self' covers for ws:/wss: too.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'"
)
# Swagger UI and ReDoc set inline styles and ReDoc searches in a blob: worker; still nothing remote.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
# The customer chat page is embedded by the bank's own site (chat/widget.js opens it in an iframe).
EMBEDDABLE_PATHS = ("/chat",)


class SecurityHeaders:
    """The browser-facing protections on every HTTP response, as pure ASGI (websockets untouched).

    - CSP without remote sources or inline script; frame-ancestors 'none' (X-Frame-Options DENY
      for old browsers), except the chat page, which the bank's origins may frame;
    - nosniff, a same-origin referrer, a same-origin opener;
    - HSTS when the deployment is production or sends secure cookies (HTTPS is then certain);
    - ``Cache-Control: no-store`` on every response not from /static that sets none itself: pages
      and API answers carry customer data and sessions, and must not stay in a shared cache or
      the browser's back/forward history.
    """

    def __init__(self, app: ASGIApp, *, frame_origins: list[str], hsts: bool) -> None:
        self.app = app
        # Only plain origins reach the header: a stray ';' in a setting must not add a directive.
        origins = [o for o in frame_origins if _ORIGIN.fullmatch(o)]
        ancestors = " ".join(["'self'", *origins])
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self._default = [
            *common,
            (b"content-security-policy", f"{_CSP}; frame-ancestors 'none'".encode()),
            (b"x-frame-options", b"DENY"),
        ]
        self._docs = [
            *common,
            (b"content-security-policy", f"{_DOCS_CSP}; frame-ancestors 'none'".encode()),
            (b"x-frame-options", b"DENY"),
        ]
        self._embeddable = [
            *common,
            (b"content-security-policy", f"{_CSP}; frame-ancestors {ancestors}".encode()),
        ]

    def _headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        if path in DOCS_PATHS:
            return self._docs
        if path in EMBEDDABLE_PATHS:
            return self._embeddable
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = self._headers_for(path)
        static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                if not static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------------------------------------
# Bad input refused at the boundary, in one place, before any route or validator sees it.

# In a JSON body those can only arrive escaped (raw ones are invalid JSON) or as a raw DEL; a
# surrogate only escaped (raw, it is not UTF-8).
_JSON_CONTROL_HINT = re.compile(rb"\\u00[01][0-9a-fA-F]|\\u007[fF]|\x7f|\\u[dD][89a-fA-F]")
_FORM_CONTROL_HINT = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])")
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def _json_depth(raw: bytes) -> int:
    """The deepest nesting of ``raw``'s arrays and objects (brackets inside strings ignored)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper than the limit: the common case costs two counts
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class RequestGuard:
    """Refuses, as problem+json naming the field, what no route can take:

    - a query string or form field with a control character (NUL, ESC, ...): 422 ``query.<name>``
      / ``body.<name>``; text keeps tab, newline and carriage return;
    - a JSON body that is not UTF-8: 400 ``body``; nested deeper than 64 levels: 400 ``body``
      (Python's parser would hit its recursion limit); with a control character in any string:
      422 naming the string's path.

    JSON bodies are read here (``BodySizeLimit``, outside, bounds them) and passed on unchanged;
    the usual body costs two byte counts and a regex scan, and is decoded only when a hint of a
    control character is in it. Websockets and other bodies (multipart) pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._check_query(scope["query_string"])
        if refused is None and CONTROL.search(scope.get("path", "")):
            refused = (422, "path", CONTROL_MESSAGE)
        if refused is not None:
            await _refuse(send, scope, *refused)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        media = content_type.split(";", 1)[0].strip().lower()
        if not (_is_json(content_type) or media == "application/x-www-form-urlencoded"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        refused = self._check_json(raw) if _is_json(content_type) else self._check_form(raw)
        if refused is not None:
            await _refuse(send, scope, *refused)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()  # after the body: the disconnect, whenever it comes

        await self.app(scope, replay, send)

    @staticmethod
    def _check_query(query: bytes) -> tuple[int, str, str] | None:
        if not query or not (_FORM_CONTROL_HINT.search(query) or CONTROL.search(query.decode("latin-1"))):
            return None
        return _check_pairs(query, "query")

    @staticmethod
    def _check_form(raw: bytes) -> tuple[int, str, str] | None:
        if not _FORM_CONTROL_HINT.search(raw) and not CONTROL.search(raw.decode("latin-1")):
            return None
        return _check_pairs(raw, "body")

    @staticmethod
    def _check_json(raw: bytes) -> tuple[int, str, str] | None:
        if not raw:
            return None
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return 400, "body", f"The body is not valid UTF-8 (byte {exc.start})"
        if _json_depth(raw) > MAX_JSON_DEPTH:
            return 400, "body", f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
        if not _JSON_CONTROL_HINT.search(raw):
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None  # malformed: the route's own parser says so (422 naming the position)
        path = first_control(value, "body")
        if path is None:
            return None
        return 422, path, CONTROL_MESSAGE


def _check_pairs(raw: bytes, where: str) -> tuple[int, str, str] | None:
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return 400, where, f"The {where} is not valid UTF-8"
    for name, value in pairs:
        if CONTROL.search(name) or CONTROL.search(value):
            field = f"{where}.{CONTROL.sub('?', name)}"
            return 422, field, CONTROL_MESSAGE
    return None


async def _refuse(send: Send, scope: Scope, status: int, field: str, message: str) -> None:
    title, slug = ("Invalid input", "validation-error") if status == 422 else ("Bad request", "bad-request")
    body = json.dumps(
        {
            "type": f"https://switchboard.dev/problems/{slug}",
            "title": title,
            "status": status,
            "detail": f"{message}: {field}",
            "instance": scope.get("path"),
            "errors": [{"field": field, "message": message}],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
