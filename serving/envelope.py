"""How a request arrives: a KServe v1 body or a v2 (open inference protocol) request, unwrapped
into the instance dicts that `serving.protocol`'s request models validate. v2 tensors are read
with kserve's public `InferInput.as_numpy()`; each served model's v2 signature lives here, and
responses are built from (name, type, shape, data).

    instances = v1_instances(body, LIMITS)             # then RankRequest.parse(instances[0])
    instance = v2_instance(infer_request, RANKER_V2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
from pydantic import ConfigDict, Field

from serving.protocol import LIMITS, RequestLimits, RequestModel


class _V1Body(RequestModel):
    model_config = ConfigDict(extra="ignore")
    instances: list[Any] = Field(min_length=1, max_length=LIMITS.max_instances)


def v1_instances(body: Any, limits: RequestLimits) -> list[Any]:
    """The instances of a v1 body; a bare JSON object is one instance (handy for curl)."""
    if isinstance(body, bytes | bytearray | str):
        # kserve hands the raw body over when the content type is not JSON
        raise InvalidInput("request body must be JSON sent with 'Content-Type: application/json'")
    if not isinstance(body, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(body).__name__}")
    if "instances" not in body:
        return [body]
    return _V1Body.parse({"instances": body["instances"]}, limits).instances


class V2Tensor(NamedTuple):
    """A v2 tensor spec: name, datatype and shape (-1 = any length)."""

    name: str
    datatype: str
    shape: list[int]

    def metadata(self) -> dict[str, Any]:
        """The entry for the v2 model-metadata endpoint."""
        return self._asdict()


class V2Signature(NamedTuple):
    """Inputs and outputs of one model in the v2 protocol (served by the metadata endpoint)."""

    inputs: list[V2Tensor]
    outputs: list[V2Tensor]


def _values(tensor: InferInput, spec: V2Tensor) -> list[Any]:
    """A tensor's values, flat, once its datatype and shape match `spec`."""
    shape, name = list(tensor.shape or []), spec.name
    if tensor.datatype != spec.datatype:
        raise InvalidInput(
            f"input '{name}' must have datatype {spec.datatype}, got {tensor.datatype}"
        )
    if len(shape) != len(spec.shape) or any(
        d < 0 or want not in (-1, d) for d, want in zip(shape, spec.shape, strict=False)
    ):
        raise InvalidInput(f"input '{name}' must have shape {spec.shape} (-1 = any), got {shape}")
    try:
        values = tensor.as_numpy().reshape(-1).tolist()
    except ValueError:
        n = np.asarray(tensor.data, dtype=object).size
        raise InvalidInput(f"input '{name}' has {n} values but shape {shape}") from None
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]


def v2_instance(request: InferRequest, signature: V2Signature) -> dict[str, Any]:
    """A v2 request as the instance dict v1 uses, so one model validates both protocols (and
    reports missing inputs); the counts come as request parameters."""
    names, specs = [t.name for t in request.inputs], {s.name: s for s in signature.inputs}
    if unknown := sorted(set(names) - set(specs)):
        raise InvalidInput(f"unknown input(s) {unknown}; expected {sorted(specs)}")
    if len(set(names)) < len(names):
        raise InvalidInput(f"an input is given twice: {names}")
    values = {t.name: _values(t, specs[t.name]) for t in request.inputs}
    instance = {k: v if specs[k].shape == [-1] else v[0] for k, v in values.items()}
    params = request.parameters if isinstance(request.parameters, dict) else {}
    return instance | {k: params[k] for k in ("n_per_category", "max_new_tokens") if k in params}


def v2_response(
    request: InferRequest, model_name: str, outputs: Sequence[tuple[str, str, list[int], Any]]
) -> InferResponse:
    """An `InferResponse` from `(name, datatype, shape, data)` tuples."""
    tensors = [InferOutput(name=n, datatype=t, shape=s, data=d) for n, t, s, d in outputs]
    return InferResponse(response_id=request.id or "", model_name=model_name, infer_outputs=tensors)


def _tensors(*specs: str) -> list[V2Tensor]:
    """`"texts BYTES -1"` -> V2Tensor("texts", "BYTES", [-1]): name, datatype, shape (-1 = any)."""
    return [
        V2Tensor(name, dtype, [int(d) for d in dims])
        for name, dtype, *dims in map(str.split, specs)
    ]


GENERATOR_V2 = V2Signature(
    _tensors("caption BYTES 1", "categories BYTES -1", "video_id BYTES 1"),
    _tensors("category BYTES -1", "text BYTES -1", "guard_ok BOOL -1"),
)
RANKER_V2 = V2Signature(
    _tensors("texts BYTES -1", "caption BYTES 1"),
    _tensors("scores FP32 -1", "win_matrix FP32 -1 -1", "chosen INT64 1"),
)
PUSH_V2 = V2Signature(
    _tensors("video_id BYTES 1", "caption BYTES 1", "categories BYTES -1"),
    _tensors(
        "text BYTES 1",
        "category BYTES 1",
        "score FP32 1",
        "alternative_texts BYTES -1",
        "alternative_categories BYTES -1",
        "alternative_scores FP32 -1",
    ),
)
