"""The generator's prompt: task prompt + control category + caption, in either order.

`category_first` is the paper's order; `caption_first` puts the caption before the category so
every category's prompt for one video shares a token prefix that is computed once (its KV cache
is reused). Prompts are tokenised segment by segment and concatenated, so the shared text is a
shared *token* prefix by construction, in training and in generation alike. Models with a chat
template get it (task as system message, the rest as the user turn); others get plain text.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pushgen.core.errors import ConfigError

PromptOrder = Literal["category_first", "caption_first"]
PROMPT_ORDERS: tuple[str, ...] = ("category_first", "caption_first")
_SENTINEL = "\x00PUSHGEN_USER_TURN\x00"


@dataclass
class PromptTemplate:
    """How a (caption, category) pair becomes prompt tokens; saved with every trained generator."""

    # the instruction; the system message when the model has a chat template
    task: str = (
        "You write push notifications for short videos. Write one short, catchy push "
        "(under 100 characters) in the requested style. Only mention facts from the video."
    )
    order: str = field(
        default="category_first",
        metadata={
            "help": "category_first (as in the paper) or caption_first (a prefix shared "
            "across categories)",
            "choices": PROMPT_ORDERS,
        },
    )
    category_label: str = "Style: "  # text before the control category
    caption_label: str = "Video: "  # text before the caption
    describe_categories: bool = True  # append the category's description (helps an untuned model)
    use_chat_template: bool = True  # wrap in the tokenizer's chat template when it has one
    max_caption_tokens: int = 160  # captions are cut to this many tokens so prompts stay bounded

    def __post_init__(self) -> None:
        if self.order not in PROMPT_ORDERS:
            raise ConfigError(f"prompt order must be one of {PROMPT_ORDERS}, got {self.order!r}")
        if self.max_caption_tokens < 1:
            raise ConfigError("max_caption_tokens must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptTemplate:
        """Inverse of `to_dict`; unknown keys are an error (a template from a newer version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown prompt template fields {sorted(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write the template as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> PromptTemplate:
        """Read a template written by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _chat_frame(tokenizer: Any, template: PromptTemplate) -> tuple[str, str]:
    """Text before and after the user turn: the chat template rendered around a sentinel."""
    if template.use_chat_template and getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [
                {"role": "system", "content": template.task},
                {"role": "user", "content": _SENTINEL},
            ],
            tokenize=False,
            add_generation_prompt=True,
        )
        head, _, tail = rendered.partition(_SENTINEL)
        return head, tail
    return f"{template.task}\n", "\nPush:"


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def truncate_caption(tokenizer: Any, caption: str, max_tokens: int) -> str:
    """The caption cut to `max_tokens` tokens (whole caption when shorter)."""
    ids = _encode(tokenizer, caption)
    if len(ids) <= max_tokens:
        return caption
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)


def category_line(template: PromptTemplate, category: str, description: str | None) -> str:
    """The control line, e.g. 'Style: Humor (funny, playful, ...)'."""
    if template.describe_categories and description:
        return f"{template.category_label}{category} ({description})\n"
    return f"{template.category_label}{category}\n"


def prompt_segments(
    tokenizer: Any,
    template: PromptTemplate,
    caption: str,
    category: str,
    description: str | None = None,
) -> list[str]:
    """The prompt as text segments, in order; each is tokenised on its own."""
    head, tail = _chat_frame(tokenizer, template)
    caption = truncate_caption(tokenizer, caption.strip(), template.max_caption_tokens)
    caption_part = f"{template.caption_label}{caption}\n"
    category_part = category_line(template, category, description)
    # The body ends with a newline; strip it so the chat frame's own end-of-turn follows directly.
    if template.order == "category_first":
        return [head, category_part, caption_part.rstrip("\n"), tail]
    return [head, caption_part, category_part.rstrip("\n"), tail]


def encode_prompt(
    tokenizer: Any,
    template: PromptTemplate,
    caption: str,
    category: str,
    description: str | None = None,
) -> list[int]:
    """Prompt token ids: segments tokenised separately and concatenated (stable shared prefix)."""
    ids: list[int] = []
    if getattr(tokenizer, "bos_token_id", None) is not None and not uses_chat(tokenizer, template):
        ids.append(tokenizer.bos_token_id)  # plain-text prompts start like pretraining documents
    for segment in prompt_segments(tokenizer, template, caption, category, description):
        if segment:
            ids.extend(_encode(tokenizer, segment))
    return ids


def uses_chat(tokenizer: Any, template: PromptTemplate) -> bool:
    """Whether prompts for this tokenizer are wrapped in its chat template."""
    return bool(template.use_chat_template and getattr(tokenizer, "chat_template", None))


def encode_target(tokenizer: Any, template: PromptTemplate, text: str) -> list[int]:
    """Push token ids the model learns to produce, ending with EOS so generation stops."""
    # Plain prompts end with "Push:", which a space continues; a chat turn starts on a new line.
    prefix = "" if uses_chat(tokenizer, template) else " "
    return _encode(tokenizer, prefix + text.strip()) + [tokenizer.eos_token_id]


def clean_generation(text: str) -> str:
    """A generated push as served: first non-empty line, without wrapping quotes or labels."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # chatty models announce the answer ("Here's a push notification:") on a line of its own
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    for line in lines:
        if line.lower().startswith("push:"):
            line = line[5:].strip()
        line = line.strip('"“”')
        if line:
            return line
    return ""


def common_prefix_length(sequences: list[list[int]]) -> int:
    """Length of the longest token prefix all `sequences` share."""
    if not sequences:
        return 0
    shortest = min(len(s) for s in sequences)
    for i in range(shortest):
        token = sequences[0][i]
        if any(s[i] != token for s in sequences[1:]):
            return i
    return shortest
