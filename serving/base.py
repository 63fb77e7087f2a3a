"""What the three served models share: v1/v2 dispatch, metadata, and running blocking work off the loop.

A subclass names its v2 signature, validates one instance (`parse_instance`), answers a list of
requests (`infer`, async) and turns one result into v2 output tensors (`v2_outputs`). KServe's
`Model.__call__` then runs preprocess (parse) -> predict (infer) -> postprocess (encode).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kserve import Model
from kserve.protocol.infer_type import InferRequest

from serving.envelope import V2Signature, v1_instances, v2_instance, v2_response
from serving.protocol import RequestLimits
from serving.server import Overloaded

T = TypeVar("T")


@dataclass
class Parsed:
    """Validated requests plus the v2 request they came from (None for v1)."""

    requests: list[Any]
    v2: InferRequest | None


class PushgenModel(Model):
    """Base for pushgen's served models; subclasses fill in the four hooks below."""

    signature: V2Signature

    max_pending: int = 64  # requests allowed to wait for the inference thread; more get a 503

    def __init__(self, name: str, limits: RequestLimits | None = None):
        super().__init__(name)
        self.limits = limits or RequestLimits()
        self._pending = 0
        # one worker: torch already uses every core inside a call, and two concurrent forward
        # passes on 2 cores only thrash; the event loop stays free for health checks meanwhile
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-infer")

    # --- hooks ---
    @abc.abstractmethod
    def parse_instance(self, instance: Any) -> Any:
        """Validate one instance dict into a typed request (raise InvalidInput on bad input)."""

    @abc.abstractmethod
    async def infer(self, requests: list[Any], headers: dict[str, str] | None) -> list[dict]:
        """Answer validated requests, one result dict each."""

    @abc.abstractmethod
    def v2_outputs(self, result: dict) -> list[tuple[str, str, list[int], Any]]:
        """One result as v2 `(name, datatype, shape, data)` output tensors."""

    # --- kserve handlers ---
    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on this model's inference thread, leaving the event loop free.

        A bounded wait: past `max_pending` queued calls the request is refused at once (503), so
        an overloaded server says so instead of letting every client time out.
        """
        if self._pending >= self.max_pending:
            raise Overloaded(
                f"{self.name} is busy: {self._pending} requests already waiting; retry later"
            )
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Parsed:  # type: ignore[override]
        if isinstance(payload, InferRequest):
            return Parsed([self.parse_instance(v2_instance(payload, self.signature))], payload)
        return Parsed([self.parse_instance(i) for i in v1_instances(payload, self.limits)], None)

    def validate(self, payload: Any) -> Any:
        return payload  # preprocess has validated already, for both protocols

    async def predict(self, payload: Parsed, headers: dict[str, str] | None = None) -> Any:  # type: ignore[override]
        results = await self.infer(payload.requests, headers)
        if payload.v2 is not None:
            return v2_response(payload.v2, self.name, self.v2_outputs(results[0]))
        return {"predictions": results}

    def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers=None
    ) -> Any:  # type: ignore[override]
        return result

    def get_input_types(self) -> list[dict]:
        return [t.metadata() for t in self.signature.inputs]

    def get_output_types(self) -> list[dict]:
        return [t.metadata() for t in self.signature.outputs]

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().stop()
