"""The OpenAI completions protocol on a pushgen ModelServer, at the paths KServe's LLM runtime uses.

KServe's Hugging Face runtime (vLLM backend) serves `POST /openai/v1/completions` and
`GET /openai/v1/models` (kserve/protocol/rest/openai/endpoints.py, prefix `/openai`); the
transformer and batch generation speak only that protocol to a generator, so our CPU generator
serves the same routes and the same code runs locally and on a cluster.

kserve 0.21's own OpenAI classes (`OpenAIGenerativeModel`) cannot be imported here: their request
and response types are vLLM's (kserve/protocol/rest/openai/types/__init__.py imports
`vllm.entrypoints.openai...`), and vllm 0.24 pins torch 2.11 and fastapi < 0.137, which conflict
with ours. So the request is validated by `CompletionBody` below (the subset of OpenAI's
`CompletionCreateParams` a generator needs; every other field that would change the output is
refused with a 400, never ignored) and the answer is the `openai` package's own `Completion` type.

A model serves completions by subclassing `CompletionModel`; `register_completion_routes` mounts
the routes once for every such model in the server's registry, under each of its served names.
"""

from __future__ import annotations

import abc
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from openai.types import Completion, CompletionChoice, CompletionUsage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.protocol import LIMITS

ROUTE_PREFIX = "/openai/v1"  # as kserve's OPENAI_ROUTE_PREFIX default ("/openai") + "/v1"
MAX_PROMPT_TOKENS = 2048  # one push prompt is a few hundred tokens (task + caption + category)

TokenIds = Annotated[list[Annotated[int, Field(strict=True, ge=0)]], Field(min_length=1)]
# fields of OpenAI's / vLLM's completion request that would change the answer and that this
# server does not implement: refused by name rather than silently ignored
UNSUPPORTED = (
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "presence_penalty",
    "stop",
    "suffix",
    "stream_options",
)


class CompletionBody(BaseModel):
    """One completions request: K prompts (text or token ids), `n` continuations each."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1, max_length=LIMITS.max_id_chars)
    prompt: str | list[str] | TokenIds | list[TokenIds]
    max_tokens: int | None = Field(16, ge=1, le=LIMITS.max_new_tokens)  # OpenAI's default 16
    temperature: float | None = Field(None, ge=0.0, le=2.0)  # None: 1.0, as OpenAI and vLLM
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1, le=LIMITS.max_n_per_category)
    seed: int | None = None
    stream: bool | None = False
    user: str | None = None

    def prompts(self) -> list[str | list[int]]:
        """The prompts as a list: each a text or a list of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [p]  # type: ignore[list-item]
        return list(p)  # type: ignore[arg-type]


def parse_completion(body: Any) -> CompletionBody:
    """A validated request, or an `InvalidInput` (400) naming the first problem in one line."""
    if not isinstance(body, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(body).__name__}")
    given = [k for k in UNSUPPORTED if body.get(k) not in (None, False)]
    unknown = sorted(set(body) - set(CompletionBody.model_fields) - set(UNSUPPORTED))
    if given or unknown:
        raise InvalidInput(
            f"unsupported completion field(s) {given + unknown}; this server takes "
            f"{sorted(CompletionBody.model_fields)}"
        )
    try:
        req = CompletionBody.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"][:1]) or "body"
        raise InvalidInput(f"invalid completion request: {where}: {err['msg']}") from None
    if req.stream:
        raise InvalidInput("stream is not supported: a push is one short line; send stream=false")
    prompts = req.prompts()
    n = req.n or 1
    if not 1 <= len(prompts) * n <= LIMITS.max_candidates:
        raise InvalidInput(
            f"{len(prompts)} prompts x n {n} = {len(prompts) * n} completions; "
            f"the limit is {LIMITS.max_candidates}"
        )
    if any(len(p) == 0 for p in prompts):
        raise InvalidInput("prompt: every prompt must be non-empty")
    return req


def completion(
    model: str,
    texts: list[tuple[str, int]],
    prompt_tokens: int,
    max_tokens: int,
    fingerprint: str | None = None,
) -> Completion:
    """The OpenAI `Completion` for (text, new tokens) choices, in request order."""
    choices = [
        CompletionChoice(index=i, text=text, finish_reason="length" if n >= max_tokens else "stop")
        for i, (text, n) in enumerate(texts)
    ]
    produced = sum(n for _, n in texts)
    return Completion(
        id=f"cmpl-{uuid.uuid4().hex}",
        object="text_completion",
        created=int(time.time()),
        model=model,
        choices=choices,
        system_fingerprint=fingerprint,
        usage=CompletionUsage(
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            total_tokens=prompt_tokens + produced,
        ),
    )


class CompletionModel(abc.ABC):
    """A served model that also answers OpenAI completions (mix into a `kserve.Model`)."""

    name: str
    ready: bool

    @abc.abstractmethod
    def completion_names(self) -> list[str]:
        """The `model` names it answers to (its own name, and its release's adapter name)."""

    @abc.abstractmethod
    async def create_completion(self, request: CompletionBody) -> Completion:
        """Answer one validated request."""


def _models(app_registry: Any) -> dict[str, CompletionModel]:
    found: dict[str, CompletionModel] = {}
    for model in app_registry.get_models().values():
        if isinstance(model, CompletionModel):
            for name in model.completion_names():
                found.setdefault(name, model)
    return found


def register_completion_routes(app: FastAPI, registry: Any) -> bool:
    """Mount `/openai/v1/completions` and `/openai/v1/models` if a registered model serves them."""
    if not _models(registry):
        return False
    router = APIRouter(prefix=ROUTE_PREFIX)

    async def create(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidInput(f"Unrecognized request format: {exc}") from None
        req = parse_completion(body)
        model = _models(registry).get(req.model)
        if model is None:
            raise ModelNotFound(req.model)
        if not model.ready:
            raise ModelNotReady(req.model)
        answer = await model.create_completion(req)
        return answer.model_dump(exclude_none=True)

    async def models() -> dict:
        now = int(time.time())
        data = [
            {"id": name, "object": "model", "created": now, "owned_by": "pushgen"}
            for name in _models(registry)
        ]
        return {"object": "list", "data": data}

    router.add_api_route("/completions", create, methods=["POST"])
    router.add_api_route("/models", models, methods=["GET"])
    app.include_router(router)
    return True
