"""Pure request parsing and response building for the three served models (no I/O, no torch).

Every served model speaks KServe v1 (`{"instances": [...]}` -> `{"predictions": [...]}`) and the
v2 open inference protocol (named tensors). Both are parsed here into one typed request per model,
so validation lives in one place and a bad request fails the same way on either protocol: an
`InvalidInput` (HTTP 400) whose message names the field and the problem.

    req = parse_rank_v1({"instances": [{"texts": ["a", "b"]}]}, limits)[0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from pushgen.categories import resolve_categories
from pushgen.contracts import MAX_TEXT_CHARS
from pushgen.errors import PushgenError


@dataclass(frozen=True)
class RequestLimits:
    """What one request may ask for; larger requests are refused with a 400, never truncated."""

    max_caption_chars: int = 2000  # a caption is a paragraph; more is a client bug or an attack
    max_text_chars: int = MAX_TEXT_CHARS  # same bound as the `pushes` contract
    max_candidates: int = 16  # K: ranker cost grows as K*(K-1) pairs
    max_n_per_category: int = 4  # generator cost grows linearly with it
    max_instances: int = 8  # instances per v1 request
    max_id_chars: int = 128  # video ids are short keys
    max_new_tokens: int = 64  # cap on a request's own generation budget (pushes are one line)
    # ranker pairs per HTTP request, all instances together: one K=16 instance (240 pairs) is the
    # heaviest legal request, so no request costs more than ~5x a typical K=8 one (56 pairs)
    max_pairs: int = 240


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: a caption, the categories to write in, and candidates per category."""

    caption: str
    categories: tuple[str, ...]
    n_per_category: int = 1
    video_id: str | None = None
    max_new_tokens: int | None = None  # None: the server's default budget


@dataclass(frozen=True)
class RankRequest:
    """One ranking: candidate texts (K >= 1) and, optionally, the caption they were written for."""

    texts: tuple[str, ...]
    caption: str | None = None


@dataclass(frozen=True)
class PushRequest:
    """One end-to-end push: a video id (looked up in Feast) or a caption given directly."""

    video_id: str | None
    caption: str | None
    categories: tuple[str, ...] | None = None
    n_per_category: int = 1


@dataclass
class V2Tensor:
    """A v2 tensor spec: name, datatype, shape (-1 = variable) and whether it must be present."""

    name: str
    datatype: str
    shape: list[int]
    required: bool = True
    help: str = ""

    def metadata(self) -> dict[str, Any]:
        """The entry for the v2 model-metadata endpoint."""
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass
class V2Signature:
    """Inputs and outputs of one model in the v2 protocol (served by the metadata endpoint)."""

    inputs: list[V2Tensor]
    outputs: list[V2Tensor] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# field checks shared by both protocols


def _bad(msg: str) -> InvalidInput:
    return InvalidInput(msg)


def _text(value: Any, name: str, max_chars: int, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise _bad(f"missing field '{name}'")
        return None
    if not isinstance(value, str):
        raise _bad(f"field '{name}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise _bad(f"field '{name}' is empty")
    if len(value) > max_chars:
        raise _bad(f"field '{name}' has {len(value)} characters; the limit is {max_chars}")
    return value


def _int(value: Any, name: str, lo: int, hi: int, default: int) -> int:
    if value is None:
        return default
    # bool is an int subclass; `true` is not a count
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise _bad(f"field '{name}' must be an integer, got {type(value).__name__}")
    if not lo <= int(value) <= hi:
        raise _bad(f"field '{name}' must be between {lo} and {hi}, got {value}")
    return int(value)


def _categories(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise _bad("field 'categories' must be a list of strings")
    if not value:
        raise _bad("field 'categories' is empty; omit it to use every category")
    try:
        return tuple(resolve_categories(value))
    except PushgenError as exc:
        raise _bad(f"field 'categories': {exc}") from None


def _object(instance: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(instance, dict):
        raise _bad(f"each instance must be a JSON object, got {type(instance).__name__}")
    unknown = sorted(set(instance) - allowed)
    if unknown:
        raise _bad(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return instance


def generate_request(instance: Any, limits: RequestLimits) -> GenerateRequest:
    """Validate one generator instance: `{caption, categories?, n_per_category?, video_id?}`."""
    obj = _object(
        instance, {"caption", "categories", "n_per_category", "video_id", "max_new_tokens"}
    )
    caption = _text(obj.get("caption"), "caption", limits.max_caption_chars)
    categories = _categories(obj.get("categories")) or tuple(resolve_categories())
    n = _int(obj.get("n_per_category"), "n_per_category", 1, limits.max_n_per_category, 1)
    if len(categories) * n > limits.max_candidates:
        raise _bad(
            f"{len(categories)} categories x n_per_category {n} = {len(categories) * n} "
            f"candidates; the limit is {limits.max_candidates}"
        )
    video_id = _text(obj.get("video_id"), "video_id", limits.max_id_chars, required=False)
    budget = obj.get("max_new_tokens")
    if budget is not None:
        budget = _int(budget, "max_new_tokens", 1, limits.max_new_tokens, 1)
    return GenerateRequest(caption, categories, n, video_id, budget)


def _texts_from_generator(obj: Mapping[str, Any]) -> list[Any]:
    """The guarded texts of a generator prediction (an InferenceGraph step maps it to an instance)."""
    cands = obj["candidates"]
    if not isinstance(cands, list) or not all(isinstance(c, dict) and "text" in c for c in cands):
        raise _bad("field 'candidates' must be a list of objects with a 'text'")
    return [c["text"] for c in cands if c.get("guard_ok", True)]


def rank_request(instance: Any, limits: RequestLimits) -> RankRequest:
    """Validate one ranker instance: `{texts: [K strings], caption?}` with 1 <= K <= limit.

    A generator prediction (`{candidates: [...], ...}`) is accepted too: its guarded candidates
    are the texts, which lets an InferenceGraph chain generator -> ranker directly.
    """
    if isinstance(instance, dict) and "candidates" in instance and "texts" not in instance:
        instance = {"texts": _texts_from_generator(instance), "caption": instance.get("caption")}
    obj = _object(instance, {"texts", "caption"})
    texts = obj.get("texts")
    if texts is None:
        raise _bad("missing field 'texts'")
    if not isinstance(texts, list):
        raise _bad(f"field 'texts' must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise _bad("field 'texts' is empty: K=0 candidates, need at least 1")
    if len(texts) > limits.max_candidates:
        raise _bad(
            f"field 'texts' has K={len(texts)} candidates; the limit is {limits.max_candidates}"
        )
    clean = tuple(_text(t, f"texts[{i}]", limits.max_text_chars) for i, t in enumerate(texts))
    caption = _text(obj.get("caption"), "caption", limits.max_caption_chars, required=False)
    return RankRequest(clean, caption)  # type: ignore[arg-type]


def push_request(instance: Any, limits: RequestLimits) -> PushRequest:
    """Validate one transformer instance: `{video_id | caption, categories?, n_per_category?}`."""
    obj = _object(instance, {"video_id", "caption", "categories", "n_per_category"})
    video_id = _text(obj.get("video_id"), "video_id", limits.max_id_chars, required=False)
    caption = _text(obj.get("caption"), "caption", limits.max_caption_chars, required=False)
    if video_id is None and caption is None:
        raise _bad("give 'video_id' (looked up in the feature store) or 'caption'")
    categories = _categories(obj.get("categories"))
    n = _int(obj.get("n_per_category"), "n_per_category", 1, limits.max_n_per_category, 1)
    k = len(categories or resolve_categories()) * n
    if k > limits.max_candidates:
        raise _bad(f"{k} candidates requested; the limit is {limits.max_candidates}")
    return PushRequest(video_id, caption, categories, n)


# ---------------------------------------------------------------------------------------------
# v1: {"instances": [...]} (a bare object counts as one instance)


def v1_instances(body: Any, limits: RequestLimits) -> list[Any]:
    """The instances of a v1 body; a bare JSON object is one instance (handy for curl)."""
    if isinstance(body, bytes | bytearray | str):
        # kserve hands the raw body over when the content type is not JSON
        raise _bad("request body must be JSON sent with 'Content-Type: application/json'")
    if not isinstance(body, dict):
        raise _bad(f"request body must be a JSON object, got {type(body).__name__}")
    if "instances" not in body:
        return [body]
    instances = body["instances"]
    if not isinstance(instances, list):
        raise _bad("field 'instances' must be a list")
    if not instances:
        raise _bad("field 'instances' is empty")
    if len(instances) > limits.max_instances:
        raise _bad(f"{len(instances)} instances; the limit is {limits.max_instances} per request")
    return instances


# ---------------------------------------------------------------------------------------------
# v2: named tensors


def _flat(data: Any) -> list[Any]:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).tolist()
    out: list[Any] = []
    stack = [data]
    while stack:  # iterative flatten: a hostile deeply nested list must not blow the stack
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _tensor_values(tensor: InferInput, spec: V2Tensor) -> list[Any]:
    if tensor.datatype != spec.datatype:
        raise _bad(f"input '{spec.name}' must have datatype {spec.datatype}, got {tensor.datatype}")
    shape = list(tensor.shape or [])
    if len(shape) != len(spec.shape) or any(
        want != -1 and got != want for got, want in zip(shape, spec.shape, strict=False)
    ):
        raise _bad(f"input '{spec.name}' must have shape {spec.shape} (-1 = any), got {shape}")
    if any((not isinstance(d, int)) or d < 0 for d in shape):
        raise _bad(f"input '{spec.name}' has an invalid shape {shape}")
    raw = tensor._raw_data
    if raw is not None:
        raise _bad(f"input '{spec.name}': binary tensor data is not supported; send JSON data")
    values = _flat(tensor.data)
    if len(values) != int(np.prod(shape)):
        raise _bad(f"input '{spec.name}' has {len(values)} values but shape {shape}")
    if spec.datatype == "BYTES":
        values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    return values


def v2_inputs(request: InferRequest, signature: V2Signature) -> dict[str, list[Any]]:
    """Named input values of a v2 request, checked against the model's signature."""
    by_name: dict[str, InferInput] = {}
    for tensor in request.inputs:
        if tensor.name in by_name:
            raise _bad(f"input '{tensor.name}' given twice")
        by_name[tensor.name] = tensor
    specs = {s.name: s for s in signature.inputs}
    unknown = sorted(set(by_name) - set(specs))
    if unknown:
        raise _bad(f"unknown input(s) {unknown}; expected {sorted(specs)}")
    values: dict[str, list[Any]] = {}
    for name, spec in specs.items():
        if name not in by_name:
            if spec.required:
                raise _bad(f"missing input '{name}' ({spec.datatype} {spec.shape})")
            continue
        values[name] = _tensor_values(by_name[name], spec)
    return values


def v2_parameter(request: InferRequest, name: str) -> Any:
    """A request-level parameter (`{"parameters": {...}}`), or None."""
    params = request.parameters or {}
    value = params.get(name) if isinstance(params, dict) else None
    # gRPC-style InferParameter objects never reach us (gRPC is off), plain JSON values do
    return value


def v2_response(
    request: InferRequest, model_name: str, outputs: Sequence[tuple[str, str, list[int], Any]]
) -> InferResponse:
    """An `InferResponse` from `(name, datatype, shape, data)` tuples."""
    infer_outputs = [
        InferOutput(name=name, datatype=dtype, shape=shape, data=data)
        for name, dtype, shape, data in outputs
    ]
    return InferResponse(
        response_id=request.id or "", model_name=model_name, infer_outputs=infer_outputs
    )


# ---------------------------------------------------------------------------------------------
# signatures

GENERATOR_V2 = V2Signature(
    inputs=[
        V2Tensor("caption", "BYTES", [1], help="the video caption"),
        V2Tensor("categories", "BYTES", [-1], required=False, help="styles to write in"),
        V2Tensor("video_id", "BYTES", [1], required=False, help="for logging only"),
    ],
    outputs=[
        V2Tensor("category", "BYTES", [-1]),
        V2Tensor("text", "BYTES", [-1]),
        V2Tensor("guard_ok", "BOOL", [-1]),
    ],
)

RANKER_V2 = V2Signature(
    inputs=[
        V2Tensor("texts", "BYTES", [-1], help="K candidate pushes"),
        V2Tensor("caption", "BYTES", [1], required=False, help="the video caption"),
    ],
    outputs=[
        V2Tensor("scores", "FP32", [-1]),
        V2Tensor("win_matrix", "FP32", [-1, -1]),
        V2Tensor("chosen", "INT64", [1]),
    ],
)

PUSH_V2 = V2Signature(
    inputs=[
        V2Tensor("video_id", "BYTES", [1], required=False),
        V2Tensor("caption", "BYTES", [1], required=False),
        V2Tensor("categories", "BYTES", [-1], required=False),
    ],
    outputs=[
        V2Tensor("text", "BYTES", [1]),
        V2Tensor("category", "BYTES", [1]),
        V2Tensor("score", "FP32", [1]),
        V2Tensor("alternative_texts", "BYTES", [-1]),
        V2Tensor("alternative_categories", "BYTES", [-1]),
        V2Tensor("alternative_scores", "FP32", [-1]),
    ],
)


def v2_instance(request: InferRequest, signature: V2Signature) -> dict[str, Any]:
    """A v2 request as the same instance dict v1 uses, so one validator covers both protocols."""
    values = v2_inputs(request, signature)
    list_inputs = {s.name for s in signature.inputs if s.shape == [-1]}
    instance: dict[str, Any] = {
        name: (vals if name in list_inputs else vals[0]) for name, vals in values.items()
    }
    for name in ("n_per_category", "max_new_tokens"):
        value = v2_parameter(request, name)
        if value is not None:
            instance[name] = value
    return instance
