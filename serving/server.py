"""Run one `kserve.Model` in a KServe ModelServer bound to a chosen host, with pushgen's errors.

kserve 0.21's `ModelServer` hard-codes uvicorn's host to 0.0.0.0; `LocalModelServer` keeps all of
ModelServer (v1 + v2 REST routes, health, metadata, metrics, latency logging) and only sets the
host on the uvicorn config before serving, so local stacks and tests listen on 127.0.0.1. gRPC is
off: the local chain speaks REST.

In front of kserve's FastAPI app sits `RequestGate`, one ASGI middleware (see `serving.gate`)
that bounds what a request may cost before kserve reads it: header size, method, auth,
Content-Type, body size (counted while the body streams in, chunked included) and body-read time,
and (optionally) how many inference requests are in flight. Every error, kserve's own included,
is `{"error": message}`: `PushgenError` -> 400, `NotFoundError` -> 404, `UpstreamUnavailable` ->
503, FastAPI's v2 schema errors -> 400 (not 422), unknown routes 404, wrong method 405.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from http import HTTPStatus

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import Model, ModelServer
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, NoModelReady, ServerNotReady
from kserve.protocol.rest.server import RESTServer
from starlette.exceptions import HTTPException as StarletteHTTPException

from pushgen.core.errors import PushgenError

logger = logging.getLogger("kserve").getChild(__name__)  # kserve configures its handlers

API_KEY_ENV = "PUSHGEN_API_KEY"  # set (from a Secret) to require a key on every POST


class NotFoundError(PushgenError):
    """The request names something that does not exist (e.g. a video unknown to Feast): 404."""


class UpstreamUnavailable(PushgenError):
    """A model this one depends on is down or failing (e.g. the ranker): 503."""


class Overloaded(UpstreamUnavailable):
    """Too many requests already wait for this model: 503 now, rather than a timeout later."""


class RequestConflict(PushgenError):
    """The request repeats one already served (a reused `x-request-id`): 409."""


@dataclass(frozen=True)
class ServerConfig:
    """Where and how a model server listens, and what one request may cost it."""

    host: str = "127.0.0.1"  # never 0.0.0.0 on a shared machine; a pod sets 0.0.0.0 explicitly
    http_port: int = 8080  # REST port
    grace_period_s: int = 5  # uvicorn graceful-shutdown timeout; local stacks stop fast
    max_asyncio_workers: int = 4  # threads for blocking inference run off the event loop
    max_body_bytes: int = 1 << 20  # bodies past this get a 413, counted as they stream in
    body_timeout_s: float = 10.0  # the whole body must arrive within this, else 408
    max_header_bytes: int = 16 << 10  # all request headers together; more gets a 431
    max_inflight: int | None = None  # inference requests admitted at once; more get a 503
    api_key: str | None = None  # None: read PUSHGEN_API_KEY; empty: no auth (the default)

    def resolved_api_key(self) -> str | None:
        """The key POSTs must carry, or None when auth is off."""
        key = self.api_key if self.api_key is not None else os.environ.get(API_KEY_ENV, "")
        return key or None


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error shape every pushgen server answers with."""
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def _json_error(status: HTTPStatus, headers: dict[str, str] | None = None):
    async def handler(_request, exc):  # noqa: ANN001 - starlette handler signature
        logger.info("%s: %s", status.value, str(exc)[:300])  # one line: no traceback per bad call
        return error_response(status, str(exc), headers)

    return handler


async def _http_error(_request, exc: StarletteHTTPException) -> JSONResponse:  # noqa: ANN001
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == HTTPStatus.NOT_FOUND:
        detail = "no such route; see GET /v2/models/NAME for a model's routes"
    return error_response(exc.status_code, detail, getattr(exc, "headers", None))


async def _schema_error(_request, exc: RequestValidationError) -> JSONResponse:  # noqa: ANN001
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    message = "invalid v2 inference request: " + "; ".join(problems)
    logger.info("400: %s", message[:300])
    return error_response(HTTPStatus.BAD_REQUEST, message)


def install_pushgen_handlers(app, config: ServerConfig) -> None:  # noqa: ANN001 - FastAPI app
    """Gate middleware + one-shape error handlers on kserve's app (after kserve's own)."""
    from serving.gate import RequestGate

    app.add_middleware(
        RequestGate,
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
        max_header_bytes=config.max_header_bytes,
        max_inflight=config.max_inflight,
        api_key=config.resolved_api_key(),
    )
    # registered after kserve's: these replace its traceback-logging handlers for client errors
    app.add_exception_handler(InvalidInput, _json_error(HTTPStatus.BAD_REQUEST))
    app.add_exception_handler(ModelNotFound, _json_error(HTTPStatus.NOT_FOUND))
    # a readiness probe every few seconds must not write a traceback each time
    app.add_exception_handler(ModelNotReady, _json_error(HTTPStatus.SERVICE_UNAVAILABLE))
    app.add_exception_handler(ServerNotReady, _json_error(HTTPStatus.SERVICE_UNAVAILABLE))
    app.add_exception_handler(RequestValidationError, _schema_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(NotFoundError, _json_error(HTTPStatus.NOT_FOUND))
    app.add_exception_handler(RequestConflict, _json_error(HTTPStatus.CONFLICT))
    app.add_exception_handler(
        Overloaded, _json_error(HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": "1"})
    )
    app.add_exception_handler(UpstreamUnavailable, _json_error(HTTPStatus.SERVICE_UNAVAILABLE))
    app.add_exception_handler(PushgenError, _json_error(HTTPStatus.BAD_REQUEST))


class _PushgenRESTServer(RESTServer):
    """kserve's RESTServer, plus pushgen's gate and handlers once kserve has built its app."""

    def __init__(self, *args, pushgen_config: ServerConfig, **kwargs):  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.pushgen_config = pushgen_config

    def create_application(self) -> None:
        super().create_application()
        from kserve.model_server import app

        from serving.completions import register_completion_routes

        # the OpenAI completions routes of KServe's LLM runtime, for models that serve them
        register_completion_routes(app, self.dataplane.model_registry)
        install_pushgen_handlers(app, self.pushgen_config)


class LocalModelServer(ModelServer):
    """A kserve ModelServer that binds `config.host` and answers pushgen errors with 4xx/503.

    `start` is ModelServer's single-worker, REST-only start written with public kserve API
    (`register_model`, `Model.start`, `RESTServer`, `servers`), except for the host: kserve offers
    no way to choose it (`RESTServer` builds its `uvicorn.Config` with host 0.0.0.0), so it is set on
    that public `config` before serving, which works because uvicorn reads it only when serving.
    `tests/test_protocol.py` pins this: a server started on 127.0.0.2 must not answer on 127.0.0.1.
    """

    def __init__(self, config: ServerConfig):
        super().__init__(
            http_port=config.http_port,
            enable_grpc=False,
            workers=1,
            grace_period=config.grace_period_s,
            max_asyncio_workers=config.max_asyncio_workers,
        )
        self.host = config.host
        self.pushgen_config = config
        self.rest_server: _PushgenRESTServer | None = None

    def start(self, models: list[Model]) -> None:  # type: ignore[override]
        """Register `models` (at least one ready), then serve REST on (host, port) until stopped."""
        if not any(model.ready for model in models):
            raise NoModelReady(models)
        for model in models:
            if model.ready:
                self.register_model(model)
                model.enable_latency_logging = self.enable_latency_logging
            model.start()
        self.rest_server = _PushgenRESTServer(
            "kserve.model_server:app",
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            pushgen_config=self.pushgen_config,
        )
        self.rest_server.config.host = self.host  # see the class docstring
        self.servers.append(self.rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(_serve_all(self.servers))


async def _serve_all(servers: list) -> None:
    await asyncio.gather(*servers)


def add_server_args(parser, max_inflight: int | None = None) -> None:  # noqa: ANN001 - argparse
    """The request-cost flags every pushgen server takes (see `ServerConfig`)."""
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=ServerConfig.max_body_bytes,
        help="larger bodies get a 413, counted as they stream in",
    )
    parser.add_argument(
        "--body-timeout-s",
        type=float,
        default=ServerConfig.body_timeout_s,
        help="a body not complete within this gets a 408",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=max_inflight,
        help="inference requests admitted at once; more get a 503 busy",
    )


def server_config(args) -> ServerConfig:  # noqa: ANN001 - argparse namespace
    """A `ServerConfig` from `--host`, `--port` and the `add_server_args` flags."""
    return ServerConfig(
        host=args.host,
        http_port=args.port,
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout_s,
        max_inflight=args.max_inflight,
    )


def serve(model: Model, config: ServerConfig) -> None:
    """Load `model` and serve it; blocks until SIGTERM/SIGINT."""
    model.load()
    LocalModelServer(config).start([model])
