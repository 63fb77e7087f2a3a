"""Run one `kserve.Model` in a KServe ModelServer bound to a chosen host, with pushgen's errors.

kserve 0.21's `ModelServer` hard-codes uvicorn's host to 0.0.0.0; `LocalModelServer` keeps all of
ModelServer (v1 + v2 REST routes, health, metadata, metrics, latency logging) and only sets the
host on the uvicorn config before serving, so local stacks and tests listen on 127.0.0.1. gRPC is
off: the local chain speaks REST.

It also maps pushgen's errors to HTTP: `PushgenError` -> 400, `NotFoundError` -> 404,
`UpstreamUnavailable` -> 503, each as `{"error": message}` like kserve's own handlers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus

from fastapi.responses import JSONResponse
from kserve import Model, ModelServer
from kserve.protocol.rest.server import RESTServer

from pushgen.errors import PushgenError

logger = logging.getLogger(__name__)


class NotFoundError(PushgenError):
    """The request names something that does not exist (e.g. a video unknown to Feast): 404."""


class UpstreamUnavailable(PushgenError):
    """A model this one depends on is down or failing (e.g. the ranker): 503."""


class Overloaded(UpstreamUnavailable):
    """Too many requests already wait for this model: 503 now, rather than a timeout later."""


@dataclass(frozen=True)
class ServerConfig:
    """Where and how a model server listens."""

    host: str = "127.0.0.1"  # never 0.0.0.0 on a shared machine; a pod sets 0.0.0.0 explicitly
    http_port: int = 8080  # REST port
    grace_period_s: int = 5  # uvicorn graceful-shutdown timeout; local stacks stop fast
    max_asyncio_workers: int = 4  # threads for blocking inference run off the event loop
    max_body_bytes: int = 1 << 20  # larger declared bodies get a 413 before they are read


def _json_error(status: HTTPStatus):
    async def handler(_request, exc):  # noqa: ANN001 - starlette handler signature
        logger.info("%s: %s", status.value, exc)
        return JSONResponse(status_code=status, content={"error": str(exc)})

    return handler


class LocalModelServer(ModelServer):
    """A kserve ModelServer that binds `config.host` and answers pushgen errors with 4xx/503."""

    def __init__(self, config: ServerConfig):
        super().__init__(
            http_port=config.http_port,
            enable_grpc=False,
            workers=1,
            grace_period=config.grace_period_s,
            max_asyncio_workers=config.max_asyncio_workers,
        )
        self.host = config.host
        self.max_body_bytes = config.max_body_bytes

    def start(self, models: list[Model]) -> None:  # type: ignore[override]
        """Register `models`, then serve REST on (host, port) until stopped."""
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = RESTServer(
            "kserve.model_server:app",
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        # the one thing ModelServer does not let us choose: uvicorn reads it at serve() time
        self._rest_server.config.host = self.host
        _add_pushgen_handlers(self.max_body_bytes)
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


class BodyLimit:
    """ASGI middleware: a request whose Content-Length exceeds the limit gets a 413 unread."""

    def __init__(self, app, max_bytes: int):  # noqa: ANN001 - ASGI app
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):  # noqa: ANN001 - ASGI signature
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(
                    status_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    content={
                        "error": f"request body of {int(length)} bytes is over the {self.max_bytes}-byte limit"
                    },
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _add_pushgen_handlers(max_body_bytes: int) -> None:
    """Register handlers on kserve's app; starlette picks the most specific class first."""
    from kserve.model_server import app

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    app.add_exception_handler(NotFoundError, _json_error(HTTPStatus.NOT_FOUND))
    app.add_exception_handler(UpstreamUnavailable, _json_error(HTTPStatus.SERVICE_UNAVAILABLE))
    app.add_exception_handler(PushgenError, _json_error(HTTPStatus.BAD_REQUEST))


def serve(model: Model, config: ServerConfig) -> None:
    """Load `model` and serve it; blocks until SIGTERM/SIGINT."""
    model.load()
    LocalModelServer(config).start([model])
