"""Request schemas of the three served models (pydantic; no I/O, no torch).

Every served model speaks KServe v1 and v2; `serving.envelope` unwraps either into instance
dicts, and one pydantic model per served model validates them, so a bad request fails the same
way on either protocol: an `InvalidInput` (HTTP 400) whose one-line message names the field and
the problem.

    req = rank_request({"texts": ["a", "b"]}, LIMITS)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from kserve.errors import InvalidInput
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.data.categories import resolve_categories
from pushgen.data.contracts import MAX_TEXT_CHARS


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


LIMITS = RequestLimits()  # the `Field` bounds of the request models below


def _known(names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(resolve_categories(names))
    except PushgenError as exc:  # pydantic reports a ValueError as this field's problem
        raise ValueError(str(exc)) from None


# strict: `42` is not a string, `true` or "2" not a count; every string is stripped first
Caption = Annotated[str, Field(strict=True, min_length=1, max_length=LIMITS.max_caption_chars)]
Text = Annotated[str, Field(strict=True, min_length=1, max_length=LIMITS.max_text_chars)]
VideoId = Annotated[str, Field(strict=True, min_length=1, max_length=LIMITS.max_id_chars)]
PerCategory = Annotated[int, Field(strict=True, ge=1, le=LIMITS.max_n_per_category)]
Names = tuple[Annotated[str, Field(strict=True)], ...]
Categories = Annotated[Names, Field(min_length=1), AfterValidator(_known)]


class RequestModel(BaseModel):
    """Unknown fields are refused, a JSON null counts as absent, positional args fill fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def __init__(self, *args: Any, **data: Any) -> None:
        super().__init__(**dict(zip(type(self).model_fields, args, strict=False)), **data)

    @model_validator(mode="before")
    @classmethod
    def _nulls_absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    @classmethod
    def parse(cls, instance: Any, limits: RequestLimits = LIMITS) -> Any:
        """`instance` validated, or an `InvalidInput` (400) naming its first problem."""
        if limits != LIMITS:  # the Field bounds are LIMITS: other limits would half apply
            raise ConfigError(f"requests are checked against serving.protocol.LIMITS: {limits}")
        try:
            return cls.model_validate(instance)
        except ValidationError as exc:
            raise InvalidInput(_message(exc.errors()[0], cls)) from None


def _check_k(categories: int, n: int) -> None:
    """K = categories x n_per_category candidates, at most `max_candidates`."""
    if categories * n > LIMITS.max_candidates:
        raise ValueError(
            f"{categories} categories x n_per_category {n} = {categories * n} candidates; "
            f"the limit is {LIMITS.max_candidates}"
        )


class GenerateRequest(RequestModel):
    """One generation: a caption, the categories to write in, and candidates per category."""

    caption: Caption
    categories: Categories = Field(default_factory=lambda: tuple(resolve_categories()))
    n_per_category: PerCategory = 1
    video_id: VideoId | None = None
    max_new_tokens: int | None = Field(None, strict=True, ge=1, le=LIMITS.max_new_tokens)

    @model_validator(mode="after")
    def _k(self) -> GenerateRequest:
        _check_k(len(self.categories), self.n_per_category)
        return self


class RankRequest(RequestModel):
    """One ranking: candidate texts (K >= 1) and, optionally, the caption they were written for.

    A generator prediction (`{candidates: [...], ...}`) is accepted too: its guarded candidates
    are the texts, which lets an InferenceGraph chain generator -> ranker directly.
    """

    texts: tuple[Text, ...] = Field(min_length=1, max_length=LIMITS.max_candidates)
    caption: Caption | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_generator(cls, data: Any) -> Any:
        if not (isinstance(data, dict) and "candidates" in data and "texts" not in data):
            return data
        cands = data["candidates"]
        if not isinstance(cands, list) or any(
            not isinstance(c, dict) or "text" not in c for c in cands
        ):
            raise ValueError("field 'candidates' must be a list of objects with a 'text'")
        texts = [c["text"] for c in cands if c.get("guard_ok", True)]
        return {"texts": texts, "caption": data.get("caption")}


class PushRequest(RequestModel):
    """One end-to-end push: a video id (looked up in Feast) or a caption given directly."""

    video_id: VideoId | None = None
    caption: Caption | None = None
    categories: Categories | None = None  # None: every category
    n_per_category: PerCategory = 1

    @model_validator(mode="after")
    def _video_or_caption(self) -> PushRequest:
        if self.video_id is None and self.caption is None:
            raise ValueError("give 'video_id' (looked up in the feature store) or 'caption'")
        _check_k(len(self.categories or resolve_categories()), self.n_per_category)
        return self


generate_request = GenerateRequest.parse
rank_request = RankRequest.parse
push_request = PushRequest.parse

_MESSAGES = {  # pydantic error type -> the reason clients read; ge/le come from the Field
    "missing": "missing field '{where}'",
    "extra_forbidden": "unknown field '{where}'; allowed: {allowed}",
    "string_type": "field '{where}' must be a string, got {got}",
    "int_type": "field '{where}' must be an integer, got {got}",
    "tuple_type": "field '{where}' must be a list, got {got}",
    "list_type": "field '{where}' must be a list, got {got}",
    "model_type": "each instance must be a JSON object, got {got}",
    "string_too_short": "field '{where}' is empty",
    "string_too_long": "field '{where}' has {n} characters; the limit is {max_length}",
    "too_short": "field '{where}' is empty: K=0, need at least {min_length}",
    "too_long": "field '{where}' has K={actual_length}; the limit is {max_length}",
    "greater_than_equal": "field '{where}' must be between {ge} and {le}, got {input}",
    "less_than_equal": "field '{where}' must be between {ge} and {le}, got {input}",
    "value_error": "field '{where}': {error}",
}


def _message(err: Any, model: type[BaseModel]) -> str:
    """One pydantic error as one line: the field's path (`texts[1]`) and the reason."""
    loc, value = err["loc"], err["input"]
    if err["type"] == "value_error" and not loc:  # a whole-request rule (model_validator)
        return str(err["ctx"]["error"])
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    meta = model.model_fields[loc[0]].metadata if loc and loc[0] in model.model_fields else []
    bounds = {k: getattr(m, k) for m in meta for k in ("ge", "le") if hasattr(m, k)}
    ctx = {**err.get("ctx", {}), **bounds, "input": value, "got": type(value).__name__}
    text = _MESSAGES.get(err["type"], "field '{where}': {msg}")  # client data only as values
    n, allowed = len(str(value).strip()), sorted(model.model_fields)
    return text.format(where=where, n=n, allowed=allowed, msg=err["msg"], **ctx)
