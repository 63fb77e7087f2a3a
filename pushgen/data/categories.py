"""Style categories: the control vocabulary of the generator and the labeller.

The list is configurable, but every category needs a description (the labellers and the prompt
use it), so an unknown name is an error at start rather than a silent empty class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pushgen.core.errors import ConfigError

# What each style means, in words a labeller (frozen LLM or embedding classifier) can use.
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "Suspense": "builds suspense and withholds the outcome: you won't believe what happens next",
    "Emotion": "appeals to feelings: heartwarming, touching, moving, tearjerking moments",
    "Practical": "practical value: tips, how-to, a guide, a useful trick you can use today",
    "Humor": "funny, playful, jokes, hilarious and laugh-out-loud moments",
    "Curiosity": "raises a question or an intriguing fact that makes you wonder why or how",
    "Urgency": "time pressure: now, today only, before it's gone, don't miss, breaking",
    "Social proof": "popularity: millions watched, everyone is talking about it, trending",
    "Direct address": "speaks to the reader personally: you, your, this is for you",
}

DEFAULT_CATEGORIES: tuple[str, ...] = tuple(CATEGORY_DESCRIPTIONS)


def resolve_categories(
    names: Iterable[str] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return `{category: description}` for `names` (default: all), failing on unknown names.

    `descriptions` adds or overrides definitions, so users can bring their own categories.
    """
    known = {**CATEGORY_DESCRIPTIONS, **(descriptions or {})}
    chosen = list(names) if names is not None else list(known)
    if not chosen:
        raise ConfigError("the category list is empty")
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise ConfigError(
            f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
            f"known: {sorted(known)} (pass a description to add one)"
        )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"duplicate categories in {chosen}")
    return {c: known[c] for c in chosen}
