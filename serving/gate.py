"""`RequestGate`: the ASGI middleware that bounds what one HTTP request may cost a pushgen server.

It runs in front of kserve's FastAPI app and answers, in this order, before kserve sees anything:

| check | answer |
| --- | --- |
| request headers over `max_header_bytes` (e.g. a 4 MB `x-request-id`) | 431 |
| a method other than POST on an inference route (`:predict`, `:explain`, `/infer`) | 405 |
| `api_key` set and a POST without `Authorization: Bearer KEY` or `x-api-key: KEY` | 401 |
| an inference POST with a Content-Type that is neither JSON nor, on a v2 `/infer` carrying the binary tensor extension's `Inference-Header-Content-Length`, `application/octet-stream` | 415 |
| `max_inflight` inference requests already admitted | 503 `busy`, `Retry-After: 1` |
| a body over `max_body_bytes`, declared (Content-Length) or counted while it streams in | 413 |
| a body not complete within `body_timeout_s` (a slow or half-sent upload) | 408 |
| the client hangs up mid-body | nothing: one log line, no traceback, kserve never called |

The body is read here, at most `max_body_bytes` of it (chunked uploads included: bytes are
counted as they arrive and reading stops at the limit), then handed to kserve as one message.
Memory per request is bounded by the limit, and uvicorn stops reading the socket meanwhile.
Every answer is `{"error": message}`.

A request with no Content-Type is read as JSON, as the Open Inference Protocol's clients send it
(tritonclient's HTTP `infer` sets none): the gate names it `application/json` for FastAPI,
which parses a body as JSON only under a JSON type. A v2 `/infer` with the binary tensor extension's
`Inference-Header-Content-Length` and no Content-Type is handed to kserve as
`application/octet-stream`, the type under which kserve's dataplane decodes it
(`kserve/protocol/dataplane.py`, `decode_inference_request` -> `InferRequest.from_bytes`).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

logger = logging.getLogger("kserve").getChild(__name__)  # kserve configures its handlers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INFERENCE_ROUTE = re.compile(
    r"^/v1/models/[^/]+:(predict|explain)$|^/v2/models/[^/]+(/versions/[^/]+)?/infer$"
    r"|^/openai/v1/completions$"
)
V2_INFER = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
JSON_TYPES = {"application/json", "application/cloudevents+json", "application/ld+json"}
BINARY_TYPE = "application/octet-stream"
# the binary tensor extension's header: the JSON part's length, binary tensors after it
BINARY_HEADER = b"inference-header-content-length"


# True while the current task serves an inference route: kserve asks a model `healthy()` before
# every predict as well as on readiness probes, and only the probes should reach upstreams
IN_INFERENCE: contextvars.ContextVar[bool] = contextvars.ContextVar("in_inference", default=False)


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class RequestGate:
    """ASGI middleware: size, method, auth, content-type, admission and body-time bounds."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = 1 << 20,
        body_timeout_s: float = 10.0,
        max_header_bytes: int = 16 << 10,
        max_inflight: int | None = None,
        api_key: str | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_header_bytes = max_header_bytes
        self.max_inflight = max_inflight
        self.api_key = api_key.encode() if api_key else None
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await self._answer(scope, receive, send, *refusal)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        inference = bool(INFERENCE_ROUTE.match(scope.get("path", "")))
        if inference and self.max_inflight is not None and self.inflight >= self.max_inflight:
            await self._answer(
                scope,
                receive,
                send,
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"server is busy: {self.inflight} requests in flight; retry later",
                {"Retry-After": "1"},
            )
            return
        self.inflight += inference
        IN_INFERENCE.set(inference)
        try:
            await self._read_then_call(scope, receive, send)
        finally:
            self.inflight -= inference

    def _refusal(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, str, dict[str, str] | None] | None:
        """The status, message and headers to refuse with before the body is read, or None."""
        size = sum(len(k) + len(v) for k, v in headers)
        if size > self.max_header_bytes:
            return (
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request headers of {size} bytes are over the {self.max_header_bytes}-byte limit",
                None,
            )
        method, path = scope["method"], scope.get("path", "")
        inference = bool(INFERENCE_ROUTE.match(path))
        if inference and method != "POST":
            return (
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed on {path}; use POST",
                {"Allow": "POST"},
            )
        found = {k.lower(): v for k, v in headers}
        if self.api_key is not None and method not in ("GET", "HEAD", "OPTIONS"):
            given = found.get(b"x-api-key", b"")
            auth = found.get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                given = auth[7:].strip()
            if not hmac.compare_digest(given, self.api_key):
                return (
                    HTTPStatus.UNAUTHORIZED,
                    "missing or wrong API key",
                    {"WWW-Authenticate": "Bearer"},
                )
        if inference:
            ctype = found.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
            binary = BINARY_HEADER in found and bool(V2_INFER.match(path))
            if ctype and ctype not in JSON_TYPES and not (binary and ctype == BINARY_TYPE):
                return (
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    f"send JSON with 'Content-Type: application/json' (got '{ctype}')",
                    None,
                )
            if not ctype:  # FastAPI reads a body as JSON only under a JSON Content-Type
                given = BINARY_TYPE if binary else "application/json"
                scope["headers"] = [*headers, (b"content-type", given.encode())]
        length = found.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return (
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body of {int(length)} bytes is over the {self.max_body_bytes}-byte limit",
                None,
            )
        return None

    async def _read_then_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body = await self._read_body(receive)
        except TimeoutError:
            logger.info(
                "408: body of %s not complete in %.0fs", scope.get("path"), self.body_timeout_s
            )
            await self._answer(
                scope,
                receive,
                send,
                HTTPStatus.REQUEST_TIMEOUT,
                f"request body not complete within {self.body_timeout_s:g}s",
                {"Connection": "close"},
            )
            return
        except _Disconnected:
            logger.info("client disconnected before its body was complete: %s", scope.get("path"))
            return
        if body is None:
            await self._answer(
                scope,
                receive,
                send,
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body is over the {self.max_body_bytes}-byte limit",
                {"Connection": "close"},
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _answer(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status != HTTPStatus.SERVICE_UNAVAILABLE:
            logger.info("%d: %s", status, message[:200])
        response = JSONResponse(status_code=status, content={"error": message}, headers=headers)
        await response(scope, receive, send)
