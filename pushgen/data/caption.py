"""Caption videos: the dense text description the generator writes pushes from.

Two captioners share one interface (`caption_videos(videos) -> captions`):

- `TextCaptioner` (offline default): a deterministic dense caption from title, description and
  ASR text. Repeated sentences are dropped, long text is cut to a budget, and every entity of the
  source (names, places, numbers) is kept: any that the cut removed is listed at the end, so the
  generator and the faithfulness guard can rely on the caption holding them all.
- `VLMCaptioner`: any Hugging Face image-text-to-text model (LLaVA, Qwen2-VL, SmolVLM, ...) run
  on a video's frames plus its title and ASR text, batched, on GPU when present; the same entity
  guarantee is applied to its output.

Rows that break the `videos` contract, or whose frames cannot be read, are rejected with a reason.

CLI: `pushgen caption --videos videos.parquet --out captions.parquet [--model HF_ID_OR_PATH]`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pushgen.core.errors import PushgenError
from pushgen.data.contracts import validate

TEXT_CAPTIONER_ID = "pushgen/text-captioner-v1"

# Numbers (3, 1,200, 4.5, 30%) and capitalised phrases (Lionel Messi, New York, NASA).
_NUMBER = r"\d+(?:[.,:]\d+)*(?:%|st|nd|rd|th|k|m)?"
_NAME = r"[A-Z][\w'’&-]*(?:\s+(?:of|de|la|van|von|the)?\s*[A-Z][\w'’&-]*)*"
_ENTITY_RE = re.compile(rf"\b(?:{_NUMBER}|{_NAME})")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
# Capitalised only because they start a sentence: not entities.
_COMMON = set(
    "a an the this that these those it its i you your we our they he she his her my me "
    "i'm i've it's let's here's that's there's what's we're you're "
    "in on at of for with from to by about after before during into over under up out off "
    "and but or so if when why how what who where which watch see look here there today now "
    "just wow oh yes no not do does did is are was were be can will one hi hey hello".split()
)


def extract_entities(text: str) -> list[str]:
    """Names, places and numbers in `text`, in order of appearance, without repeats.

    A capitalised word that is only a sentence opener ('The', 'Watch') is not an entity; a
    multi-word name that starts with one ('The Beatles') keeps the rest ('Beatles').
    """
    seen: dict[str, None] = {}
    for match in _ENTITY_RE.finditer(text or ""):
        words = match.group(0).split()
        while words and words[0].lower().replace("’", "'") in _COMMON:
            words = words[1:]
        if words:
            seen.setdefault(" ".join(words).rstrip("'’-"), None)
    return [e for e in seen if e]


def ensure_entities(caption: str, sources: list[str]) -> str:
    """`caption`, plus a trailing 'Mentions: ...' listing source entities it does not contain."""
    # sentence breaks between sources, so 'in Mumbai' + 'In this video' is not one name
    missing = [e for e in extract_entities(". ".join(sources)) if e not in caption]
    if not missing:
        return caption
    return f"{caption.rstrip()} Mentions: {', '.join(missing)}."


def _field(value) -> str:
    """A text cell as a clean one-line string ('' for missing values)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(str(value).split())


def _sentences(text: str) -> list[str]:
    parts = [s.strip() for s in _SENTENCE_RE.split(text) if s.strip()]
    return [p if p[-1] in ".!?" else p + "." for p in parts]


class Captioner(ABC):
    """Base interface: subclasses implement `_caption_rows(valid videos) -> list[str]`."""

    captioner_id: str = "unknown"

    def caption_with_rejects(self, videos: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(captions table, rejected video rows with `reject_reason`)."""
        valid, rejected = validate("videos", videos)
        valid, unreadable = self._check_inputs(valid)
        rejected = pd.concat([rejected, unreadable], ignore_index=True)
        captions = pd.DataFrame(
            {
                "video_id": valid["video_id"].to_numpy(),
                "caption": self._caption_rows(valid) if len(valid) else [],
                "captioner": self.captioner_id,
                "created_at": pd.Timestamp(datetime.now(UTC)).tz_localize(None),
            }
        )
        if "topic" in valid.columns:
            # an extra column (the contract allows it): lets `clean` cluster by topic from captions
            captions["topic"] = valid["topic"].to_numpy()
        return captions, rejected

    def caption_videos(self, videos: pd.DataFrame) -> pd.DataFrame:
        """The `captions` table for the valid rows of `videos`."""
        return self.caption_with_rejects(videos)[0]

    def _check_inputs(self, valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Hook for row checks beyond the contract; returns (kept, rejected with reason)."""
        return valid, valid.iloc[:0].assign(reject_reason=pd.Series(dtype=object))

    @abstractmethod
    def _caption_rows(self, videos: pd.DataFrame) -> list[str]:
        """One caption per row of the (already validated) videos table."""


@dataclass
class TextCaptionConfig:
    """How the offline text captioner condenses a video's texts."""

    max_chars: int = 400  # budget for title + description + ASR sentences (entities always kept)
    asr_sentences: int = 4  # at most this many ASR sentences (speech is long and repetitive)


class TextCaptioner(Captioner):
    """Deterministic dense caption from title, description and ASR text (the offline default)."""

    captioner_id = TEXT_CAPTIONER_ID

    def __init__(self, config: TextCaptionConfig | None = None) -> None:
        self.config = config or TextCaptionConfig()

    def caption_one(self, title: str, description: str = "", asr_text: str = "") -> str:
        """One caption: title first, then description, then what is said, no sentence twice."""
        title, description, asr = _field(title), _field(description), _field(asr_text)
        parts = _sentences(title) + _sentences(description)
        parts += [f"Said: {s}" for s in _sentences(asr)[: self.config.asr_sentences]]
        kept, seen, length = [], set(), 0
        for part in parts:
            key = re.sub(r"\W+", " ", part.lower().removeprefix("said: ")).strip()
            if key in seen:
                continue
            if kept and length + len(part) > self.config.max_chars:
                break
            seen.add(key)
            kept.append(part)
            length += len(part) + 1
        return ensure_entities(" ".join(kept), [title, description, asr])

    def _caption_rows(self, videos: pd.DataFrame) -> list[str]:
        return [
            self.caption_one(t, d, a)
            for t, d, a in zip(
                videos["title"], videos["description"], videos["asr_text"], strict=True
            )
        ]


@dataclass
class VLMCaptionConfig:
    """How a vision-language model is run on frames."""

    batch_size: int = 4  # videos per generate() call
    max_frames: int = 4  # frames per video, evenly spaced over the list
    max_new_tokens: int = 96  # caption length budget in tokens
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str | None = None  # None: bf16 on capable GPUs, fp32 elsewhere
    prompt: str = (
        "Describe this video densely for a push notification writer: who, what, where, numbers. "
        "Title: {title}. Speech: {asr}"
    )


class VLMCaptioner(Captioner):
    """Caption videos with any HF image-text-to-text model on their frames, title and ASR text.

    Videos without frames get the text caption (there is nothing for the vision model to see).
    """

    def __init__(self, model_name_or_path: str, config: VLMCaptionConfig | None = None) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from pushgen.core.models import pick_device, pick_dtype

        self.config = config or VLMCaptionConfig()
        self.captioner_id = str(model_name_or_path)
        self.device = pick_device(self.config.device)
        try:
            self.processor = AutoProcessor.from_pretrained(model_name_or_path)
            self.model = AutoModelForImageTextToText.from_pretrained(
                model_name_or_path, dtype=pick_dtype(self.device, self.config.dtype)
            )
        except (OSError, ValueError) as exc:
            raise PushgenError(
                f"cannot load image-text-to-text model {model_name_or_path!r}: {exc}".splitlines()[
                    0
                ]
            ) from exc
        self.model.to(self.device).eval()
        self.processor.tokenizer.padding_side = "left"  # generation continues on the right
        self.text_captioner = TextCaptioner()

    def _check_inputs(self, valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Reject videos whose frame files cannot be opened as images."""
        from PIL import Image

        bad: dict[int, str] = {}
        for idx, frames in zip(valid.index, valid["frames"], strict=True):
            for path in self._pick_frames(frames):
                try:
                    with Image.open(path) as img:
                        img.verify()
                except Exception as exc:  # PIL raises several types for unreadable files
                    bad[idx] = f"unreadable frame {path}: {type(exc).__name__}"
                    break
        rejected = valid.loc[list(bad)].assign(reject_reason=list(bad.values()))
        return valid.drop(index=list(bad)), rejected

    def _pick_frames(self, frames) -> list[str]:
        frames = [] if frames is None or (isinstance(frames, float)) else list(frames)
        if len(frames) <= self.config.max_frames:
            return [str(f) for f in frames]
        picks = np.linspace(0, len(frames) - 1, self.config.max_frames).round().astype(int)
        return [str(frames[i]) for i in picks]

    def _caption_rows(self, videos: pd.DataFrame) -> list[str]:
        rows = list(videos.itertuples(index=False))
        out: list[str] = [""] * len(rows)
        with_frames = [i for i, r in enumerate(rows) if self._pick_frames(r.frames)]
        frameless = set(range(len(rows))) - set(with_frames)
        for i, r in enumerate(rows):
            if i in frameless:
                out[i] = self.text_captioner.caption_one(r.title, r.description, r.asr_text)
        step = self.config.batch_size
        for start in tqdm(range(0, len(with_frames), step), desc="captioning", disable=None):
            batch = with_frames[start : start + step]
            texts = self.generate([rows[i] for i in batch])
            for i, text in zip(batch, texts, strict=True):
                r = rows[i]
                sources = [_field(r.title), _field(r.description), _field(r.asr_text)]
                out[i] = ensure_entities(text.strip() or _field(r.title), sources)
        return out

    def generate(self, rows: list) -> list[str]:
        """Raw model captions for one batch of video rows (all with frames)."""
        import torch
        from PIL import Image

        prompts, images = [], []
        for r in rows:
            frames = [Image.open(p).convert("RGB") for p in self._pick_frames(r.frames)]
            text = self.config.prompt.format(title=_field(r.title), asr=_field(r.asr_text)[:600])
            content = [{"type": "image"} for _ in frames] + [{"type": "text", "text": text}]
            messages = [{"role": "user", "content": content}]
            prompts.append(self.processor.apply_chat_template(messages, add_generation_prompt=True))
            images.append(frames)
        inputs = self.processor(text=prompts, images=images, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


def make_captioner(model: str | None = None, config: VLMCaptionConfig | None = None) -> Captioner:
    """The text captioner for None/'text', else a VLM captioner for the named model."""
    if model is None or model in {"text", TEXT_CAPTIONER_ID}:
        return TextCaptioner()
    return VLMCaptioner(model, config)
