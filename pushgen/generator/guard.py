"""Guard against the paper's reward-hacking failure: pushes that invent facts or run too long.

A candidate fails when it names an entity (a capitalised name) or a number that the caption does
not contain, or when it exceeds the length budget. The check is lexical on purpose: it is cheap
enough to run on every candidate in the serving path and its reasons are readable.

Headlines are often written in Title Case ("How Community Radio Can Help In A Disaster"), where a
capital says nothing about a name. In such a text a capitalised word absent from the caption
counts as a name only when it is not an ordinary word: not a whole word of the packaged encoder's
lowercase WordPiece vocabulary (about 20,000 English words). That still catches rare names and
made-up words (Oprah, Kardashian, "Cariniumite"), and misses names that are also frequent
vocabulary words (Taylor, Swift, Obama) in Title-Case text only; sentence-case text keeps the
stricter rule.

    >>> check_candidate("Taylor Swift sings 5 songs", "a girl sings two songs", max_chars=80).ok
    False
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

# Capitalised words that start sentences or address the reader; never entities on their own.
COMMON_CAPITALISED = frozenset(
    """a an the this that these those it its i you your we our they their he she his her my me
    what why how when where who which watch see look meet don't dont can't cant won't wont never
    now today here there breaking new wow oh hey omg just only every everyone all no yes and but
    or so if then finally must best top hidden real true ultimate wait stop is are was were do
    does did be will would could should may might let's lets get make find try take discover
    learn must-see video clip""".split()
)

# Spelled-out numbers, so "five" in a push matches "5" in a caption and vice versa.
NUMBER_WORDS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
    "fifty": "50",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "dozen": "12",
}
# "one" is too often a pronoun ("this one is for you") to count as a claim.
_NUMBER_WORD_CLAIMS = {w: d for w, d in NUMBER_WORDS.items() if w != "one"}
# Plural magnitudes ("millions are watching") are social-proof hyperbole, not a stated figure;
# "a million views" or "5 million" are figures and are checked.
_VAGUE_QUANTITIES = frozenset({"hundreds", "thousands", "millions", "billions", "dozens"})

_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’-]*")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_POSSESSIVE = re.compile(r"['’]s$")
_SENTENCE_END = re.compile(r"[.!?;\"“”…]\s*$|^\W*$")  # a colon does not end one: "Breaking: Oprah"


@dataclass
class GuardResult:
    """Whether a candidate may be served, and why not."""

    ok: bool
    reasons: list[str] = field(default_factory=list)


def _normalise_number(token: str) -> str:
    """'1,000' -> '1000', '3.50' -> '3.5', so formatting differences do not count as inventions."""
    token = token.replace(",", "").rstrip(".")
    if "." in token:
        token = token.rstrip("0").rstrip(".")
    return token


def caption_numbers(caption: str) -> set[str]:
    """Numbers a caption states, as digits (spelled-out numbers included, plural or not)."""
    found = {_normalise_number(m) for m in _NUMBER.findall(caption)}
    for word in _WORD.findall(caption.lower()):
        word = word.rstrip("s")
        if word in NUMBER_WORDS:
            found.add(NUMBER_WORDS[word])
    return found


def invented_numbers(text: str, caption: str) -> list[str]:
    """Numbers in `text` (digits or spelled-out claims like 'millions') absent from `caption`."""
    known = caption_numbers(caption)
    invented = [m for m in _NUMBER.findall(text) if _normalise_number(m) not in known]
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered in _VAGUE_QUANTITIES:
            continue
        stem = lowered.rstrip("s")
        if stem in _NUMBER_WORD_CLAIMS and _NUMBER_WORD_CLAIMS[stem] not in known:
            invented.append(word)
    return invented


def _is_capitalised(word: str) -> bool:
    return word[:1].isupper()


@lru_cache(maxsize=1)
def ordinary_words() -> frozenset[str]:
    """Whole lowercase words of the packaged all-MiniLM-L6-v2's WordPiece vocabulary."""
    from pushgen.core.models import default_encoder_path

    vocab = (default_encoder_path() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha() and len(w) > 1)


_CONTRACTION = re.compile(r"['’](t|re|ve|ll|d|m|s)$", re.IGNORECASE)
_NEGATION = re.compile(r"n['’]t$", re.IGNORECASE)  # "isn't": the stem is "is", not "isn"
_SUFFIXES = ("iest", "ier", "ness", "ing", "est", "ies", "ed", "er", "es", "ly", "s", "y")


def is_ordinary(word: str) -> bool:
    """A vocabulary word, or one once its contraction, inflection or hyphenated parts are
    taken apart ("Isn't", "Celebs", "Scarier", "Spot-On"); single letters count as ordinary."""
    w = _CONTRACTION.sub("", word.lower()).strip("'’-")
    if len(w) <= 1 or w in ordinary_words():
        return True
    if "-" in w:
        return all(is_ordinary(part) for part in w.split("-") if part)
    if _NEGATION.search(word) and w[:-1] in ordinary_words():  # "isn't" -> "isn" -> "is"
        return True
    vocab = ordinary_words()
    for suffix in _SUFFIXES:
        stem = w[: -len(suffix)]
        if w.endswith(suffix) and len(stem) >= 3:
            if {stem, stem + "e", stem + "y", stem[:-1]} & vocab:
                return True
    return False


def is_title_case(text: str) -> bool:
    """At least 80% of three or more words of four letters or more after the first are
    capitalised (a headline style; a name or two in a sentence does not make it)."""
    words = [w for w in _WORD.findall(text)[1:] if len(w) >= 4]
    return len(words) >= 3 and sum(_is_capitalised(w) for w in words) >= 0.8 * len(words)


def invented_entities(text: str, caption: str) -> list[str]:
    """Capitalised names in `text` that the caption never mentions (case-insensitive).

    A sentence-initial capital is ordinary English, so a word there counts only when it is part
    of a run of capitalised words ("Taylor Swift") or possessive ("Oprah's story"); common
    reader-facing words never count. In Title-Case text only words outside `ordinary_words`
    can be names (the module's docstring says what that misses).
    """
    caption_words = {_POSSESSIVE.sub("", w.lower()) for w in _WORD.findall(caption)}
    title_case = is_title_case(text)
    invented: list[str] = []
    matches = list(_WORD.finditer(text))
    for i, match in enumerate(matches):
        possessive = bool(_POSSESSIVE.search(match.group()))
        word = _POSSESSIVE.sub("", match.group()).strip("'’-")
        if not word or not _is_capitalised(word) or word.lower() in COMMON_CAPITALISED:
            continue
        if word.lower() in caption_words or word.lower().rstrip("s") in caption_words:
            continue
        if title_case:
            if not is_ordinary(word):
                invented.append(word)
            continue
        at_sentence_start = bool(_SENTENCE_END.search(text[: match.start()]))
        # a run of names is capitalised words separated by spaces only ("Taylor Swift")
        in_run = any(
            0 <= j < len(matches)
            and _is_capitalised(matches[j].group())
            and text[
                min(match.end(), matches[j].end()) : max(match.start(), matches[j].start())
            ].strip()
            == ""
            for j in (i - 1, i + 1)
        )
        if at_sentence_start and not (in_run or possessive):
            continue
        invented.append(word)
    return invented


def check_candidate(text: str, caption: str, max_chars: int = 120) -> GuardResult:
    """Check one generated push against its caption; `reasons` lists every failed rule."""
    reasons: list[str] = []
    if not text.strip():
        reasons.append("empty text")
    if len(text) > max_chars:
        reasons.append(f"over length budget ({len(text)} > {max_chars} chars)")
    entities = invented_entities(text, caption)
    if entities:
        reasons.append(f"invented entity: {', '.join(dict.fromkeys(entities))}")
    numbers = invented_numbers(text, caption)
    if numbers:
        reasons.append(f"invented number: {', '.join(dict.fromkeys(numbers))}")
    return GuardResult(ok=not reasons, reasons=reasons)
