"""Connection limits: request-body size, enforced while the body arrives rather than after it has been spooled to
disk; the time a client may take to send a request's head; how many connections are open at once.

A declared Content-Length over the limit is refused before a byte is read; a chunked body is counted as it streams
and refused the moment it passes the limit (the endpoint then sees a disconnect and its reply is dropped).
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from trashseg.config import ServeConfig


def too_large(limit: int) -> str:
    return f"request body larger than {limit / 2**20:g} MiB (serve.max_upload_mb)"


class BodyLimit:
    """ASGI middleware: 413 with a named message for request bodies over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        received, refused = 0, False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit and not refused:
                refused = True
                await self._refuse(send)
            return {"type": "http.disconnect"} if refused else message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except ClientDisconnect:
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": too_large(self.limit)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request head (request line and
    headers) within `seconds`, on its first request and on each kept-alive one.

    Written by hand because uvicorn has no such setting: ``timeout_keep_alive`` covers only the idle time between
    requests and is cancelled by the first byte received, so a client that sends half a header line and waits
    holds its connection forever; an ASGI middleware cannot help, as the app runs only once the head is parsed.
    """

    class HeaderTimeout(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.cycle is None or self.cycle.response_complete:  # not answering a pipelined request already
                self._arm()

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's head has arrived: its body and answer have their own limits
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self.head_timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _expire(self) -> None:
            self.head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeout


def server_config(app: ASGIApp, host: str, port: int, limits: ServeConfig) -> uvicorn.Config:
    """uvicorn's settings for `app` under `limits`: the request-head timeout above, and at most
    ``serve.max_connections`` connections (uvicorn answers 503 to requests beyond it, before the app runs)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_timeout_protocol(limits.header_timeout),
        limit_concurrency=limits.max_connections,
    )
