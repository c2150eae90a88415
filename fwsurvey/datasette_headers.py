"""A Datasette plugin that adds security headers to every HTTP response it sends.

Datasette 0.65 has no setting for response headers, so this ``asgi_wrapper`` hook adds them.
It is self-contained (it imports nothing of fwsurvey) because it travels as a file: ``fwsurvey
serve`` and the folder ``fwsurvey publish`` writes load it with ``datasette --plugins-dir``.

The content security policy fits Datasette's pages and the datasette-vega plugin: Datasette
writes inline ``<script>`` blocks and ``style`` attributes, and Vega compiles its expressions
with ``Function`` (hence ``'unsafe-inline'`` and ``'unsafe-eval'`` for scripts); everything
else is the server's own (``'self'``), charts export as ``data:``/``blob:`` images, and no
other site may frame the pages, load plugins, receive form posts or change the base URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from datasette import hookimpl

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

#: The headers every response carries (a header of the same name from Datasette is replaced).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that ignore frame-ancestors
    "Referrer-Policy": "same-origin",  # a query's SQL in a URL stays on this server
}

_RAW = [(name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in SECURITY_HEADERS.items()]
_NAMES = {name for name, _ in _RAW}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_security_headers(app: App) -> App:
    """Wrap an ASGI ``app`` so that each HTTP response starts with :data:`SECURITY_HEADERS`."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(name, value) for name, value in message.get("headers", [])
                        if name.lower() not in _NAMES]
                message = {**message, "headers": kept + _RAW}
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


@hookimpl
def asgi_wrapper(datasette: Any) -> Callable[[App], App]:
    """Datasette's hook: wrap the whole application."""
    return with_security_headers
