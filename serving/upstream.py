"""How the transformer calls its upstream models and names its requests, failing fast and safely.

- `Upstream`: one predictor (generator or ranker; v1 `predict`, or OpenAI `complete`) behind short timeouts (connect, read) cut to
  the request's remaining deadline, a `CircuitBreaker` that fails fast while the predictor is
  down, and a cached readiness probe. Errors name the predictor, never its URL or its body
  (those go to the server log, one line).
- `RequestIds`: validates a client's `x-request-id` (1-128 of `A-Z a-z 0-9 . _ : -`) and refuses
  one already served (409), so every serving-log row joins to exactly one request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import httpx
from kserve.errors import InvalidInput

from serving.server import API_KEY_ENV, Overloaded, RequestConflict, UpstreamUnavailable

logger = logging.getLogger("kserve").getChild(__name__)  # kserve configures its handlers

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
COMPLETIONS_PATH = "/openai/v1/completions"  # KServe's LLM runtime (and our generator) serve it


class RequestIds:
    """Request ids: the client's, validated and never served twice, or fresh uuid4 hex."""

    def __init__(self, remember: int = 100_000):
        self.remember = remember  # ids kept to detect reuse (~100 bytes each)
        self._seen: OrderedDict[str, bool] = OrderedDict()

    @staticmethod
    def validate(given: str | None) -> str | None:
        """The client's id if well-formed; None if absent; InvalidInput (400) if malformed."""
        if given is None or given == "":
            return None
        if not REQUEST_ID.match(given):
            shown = given[:40] + ("..." if len(given) > 40 else "")
            raise InvalidInput(
                f"header 'x-request-id' must be 1-128 characters of A-Z a-z 0-9 . _ : -, "
                f"got {len(given)} characters: {shown!r}"
            )
        return given

    def claim(self, given: str | None, n: int) -> list[str]:
        """`n` ids for one HTTP request's instances, reserved; a reused client id is a 409."""
        base = self.validate(given)
        if base is None:
            ids = [uuid.uuid4().hex for _ in range(n)]
        else:
            ids = [base] if n == 1 else [f"{base}.{i}" for i in range(n)]
            taken = [i for i in ids if i in self._seen]
            if taken:
                raise RequestConflict(
                    f"x-request-id {taken[0]!r} was already used; send a new id for a new request"
                )
        for i in ids:
            self._seen[i] = True
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return ids

    def release(self, ids: list[str]) -> None:
        """Forget ids whose request failed before anything was served, so a retry may reuse them."""
        for i in ids:
            self._seen.pop(i, None)


@dataclass
class CircuitBreaker:
    """Closed -> open after `threshold` consecutive failures; half-open (one trial) after cooldown."""

    threshold: int = 3
    cooldown_s: float = 5.0
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    def is_open(self, now: float | None = None) -> bool:
        """Whether a call must fail fast now (open, or half-open with its trial already out)."""
        if self.opened_at is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self.opened_at < self.cooldown_s or self.trial_in_flight

    def before_call(self) -> None:
        """Mark the half-open trial as taken (call only when `is_open()` is False)."""
        if self.opened_at is not None:
            self.trial_in_flight = True

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.trial_in_flight = 0, None, False

    def failed(self) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()

    def retry_in_s(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (time.monotonic() - self.opened_at))


class Upstream:
    """One predictor the transformer calls: timeouts, circuit breaker, readiness, clean errors."""

    def __init__(
        self,
        which: str,
        base_url: str,
        model: str,
        timeout_s: float,
        connect_timeout_s: float = 1.0,
        breaker: CircuitBreaker | None = None,
        api_key: str | None = None,
    ):
        self.which = which
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.breaker = breaker or CircuitBreaker()
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None
        self._probe: tuple[float, bool] = (0.0, False)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created in the serving loop, on first use
            self._client = httpx.AsyncClient(headers=self.headers)
        return self._client

    def _unavailable(self, detail: str) -> UpstreamUnavailable:
        logger.warning("%s at %s: %s", self.which, self.base_url, detail[:300])
        return UpstreamUnavailable(f"the {self.which} is unavailable ({detail.split(':')[0]})")

    def check_open(self) -> None:
        """Fail fast (503) while the breaker is open."""
        if self.breaker.is_open():
            raise UpstreamUnavailable(
                f"the {self.which} is unavailable (failing fast after "
                f"{self.breaker.failures} failures; next try in {self.breaker.retry_in_s():.0f}s)"
            )

    async def predict(self, instance: dict, remaining_s: float) -> dict:
        """POST one v1 instance; its prediction, or UpstreamUnavailable / InvalidInput."""
        answer = await self._post(
            f"/v1/models/{self.model}:predict", {"instances": [instance]}, remaining_s
        )
        return answer["predictions"][0]

    async def complete(self, request: dict, remaining_s: float) -> dict:
        """POST one OpenAI completions request (`/openai/v1/completions`, as KServe's LLM runtime
        serves it); the `Completion`, checked against the `openai` package's type."""
        from openai.types import Completion
        from pydantic import ValidationError

        answer = await self._post(f"{COMPLETIONS_PATH}", request, remaining_s)
        try:
            return Completion.model_validate(answer).model_dump()
        except ValidationError as exc:
            self.breaker.failed()
            raise self._unavailable(f"answered no completion: {exc}") from None

    async def _post(self, path: str, body: dict, remaining_s: float) -> dict:
        """POST `body` to `path`; the JSON answer, or UpstreamUnavailable / InvalidInput."""
        self.check_open()
        read = max(0.05, min(self.timeout_s, remaining_s))
        timeout = httpx.Timeout(read, connect=min(self.connect_timeout_s, read))
        url = f"{self.base_url}{path}"
        self.breaker.before_call()
        try:
            resp = await self.client.post(url, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            self.breaker.failed()
            raise self._unavailable(f"timed out after {read:.1f}s: {exc!r}") from None
        except httpx.HTTPError as exc:
            self.breaker.failed()
            raise self._unavailable(f"connection failed: {exc!r}") from None
        except BaseException:  # cancelled (the request's deadline): the trial proved nothing
            self.breaker.trial_in_flight = False
            raise
        if resp.status_code == 503 and "busy" in resp.text:
            self.breaker.succeeded()  # alive, only full: no reason to stop calling it
            raise Overloaded(f"the {self.which} is busy; retry later")
        if resp.status_code >= 500 or resp.status_code in (404, 429):
            self.breaker.failed()
            raise self._unavailable(f"answered {resp.status_code}: {resp.text[:300]}")
        self.breaker.succeeded()
        if resp.status_code >= 400:  # our request was bad for it, e.g. a Feast caption too long
            logger.info("%s refused a request: %s", self.which, resp.text[:300])
            raise InvalidInput(
                f"the {self.which} refused the request ({resp.status_code}); "
                "check the caption and categories against the limits in serving/README.md"
            )
        return resp.json()

    async def ready(self, cache_s: float = 2.0) -> bool:
        """Whether the predictor says it is ready (cached `cache_s`); False while the breaker is open."""
        if self.breaker.is_open():
            return False
        checked_at, ok = self._probe
        if time.monotonic() - checked_at < cache_s:
            return ok
        try:
            resp = await self.client.get(
                f"{self.base_url}/v2/models/{self.model}/ready",
                timeout=httpx.Timeout(1.0, connect=min(self.connect_timeout_s, 1.0)),
            )
            ok = resp.status_code == 200
        except httpx.HTTPError:
            ok = False
        self._probe = (time.monotonic(), ok)
        return ok

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


__all__ = ["API_KEY_ENV", "CircuitBreaker", "RequestIds", "Upstream"]
