"""Batched multi-category generation on a tiny Llama: equals one-by-one greedy, both orders."""

from __future__ import annotations

import pytest

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.generator.generate import CandidateGenerator, GenerationConfig
from pushgen.generator.prompts import common_prefix_length

CATEGORIES = ["Suspense", "Humor", "Practical", "Social proof", "Urgency"]
CAPTION = "Maria Lopez folds dumplings in Lisbon and shows 12 ways to seal them"


@pytest.fixture(scope="module")
def generator(tiny_causal_lm_dir) -> CandidateGenerator:
    """The tiny model in float64 with large random weights: outputs differ per prompt, and
    padding cannot flip a near-tie argmax through rounding."""
    import torch

    from pushgen.core.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_causal_lm_dir, device="cpu")
    model = model.double()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.0)
    return CandidateGenerator(model, tokenizer)


def _greedy(order: str, share: bool, max_new_tokens: int = 10) -> GenerationConfig:
    return GenerationConfig(
        do_sample=False, prompt_order=order, share_prefix=share, max_new_tokens=max_new_tokens
    )


@pytest.mark.parametrize("order", ["category_first", "caption_first"])
@pytest.mark.parametrize("share", [False, True])
def test_batched_equals_one_by_one_greedy(generator, order: str, share: bool) -> None:
    batched = generator.generate(CAPTION, CATEGORIES, config=_greedy(order, share))
    single = [generator.generate(CAPTION, [c], config=_greedy(order, False))[0] for c in CATEGORIES]
    assert [c.category for c in batched] == CATEGORIES
    assert [c.raw_text for c in batched] == [c.raw_text for c in single]
    assert len({c.raw_text for c in batched}) > 1  # the check could fail: rows really differ


def test_caption_first_shares_the_caption_prefix(generator) -> None:
    paper = generator.prompt_ids(
        CAPTION, CATEGORIES, GenerationConfig(prompt_order="category_first")
    )
    shared = generator.prompt_ids(
        CAPTION, CATEGORIES, GenerationConfig(prompt_order="caption_first")
    )
    caption_tokens = len(generator.tokenizer(CAPTION, add_special_tokens=False)["input_ids"])
    # both orders hold the same tokens, but only caption_first puts the caption in the prefix
    assert sorted(map(len, paper)) == sorted(map(len, shared))
    assert common_prefix_length(shared) >= common_prefix_length(paper) + caption_tokens


def test_sampling_is_seeded_and_n_per_category(generator) -> None:
    cfg = GenerationConfig(seed=5, max_new_tokens=8, prompt_order="caption_first")
    first = generator.generate(CAPTION, CATEGORIES[:2], n_per_category=3, config=cfg)
    again = generator.generate(CAPTION, CATEGORIES[:2], n_per_category=3, config=cfg)
    other = generator.generate(
        CAPTION, CATEGORIES[:2], n_per_category=3, config=GenerationConfig(seed=6, max_new_tokens=8)
    )
    assert [c.category for c in first] == ["Suspense"] * 3 + ["Humor"] * 3
    assert [c.raw_text for c in first] == [c.raw_text for c in again]
    assert [c.raw_text for c in first] != [c.raw_text for c in other]
    assert all(c.new_tokens <= 8 for c in first)


def test_guard_flags_or_drops(generator) -> None:
    flagged = generator.generate(CAPTION, CATEGORIES, config=GenerationConfig(max_chars=5))
    assert any(not c.guard_ok for c in flagged)
    bad = [c for c in flagged if not c.guard_ok]
    assert all(c.guard_reasons for c in bad)
    dropped = generator.generate(
        CAPTION, CATEGORIES, config=GenerationConfig(max_chars=5, guard="drop")
    )
    assert len(dropped) == len(flagged) - len(bad)


def test_generate_many_and_bad_requests(generator) -> None:
    cfg = GenerationConfig(max_new_tokens=4)
    many = generator.generate_many([CAPTION, "a puppy learns to swim"], ["Humor"], config=cfg)
    assert [len(x) for x in many] == [1, 1]
    with pytest.raises(ConfigError, match="unknown category"):
        generator.generate(CAPTION, ["Nonsense"], config=cfg)
    with pytest.raises(PushgenError, match="caption"):
        generator.generate("  ", ["Humor"], config=cfg)
    with pytest.raises(ConfigError):
        GenerationConfig(prompt_order="sideways")


def test_prompt_orders_put_the_caption_where_asked(generator) -> None:
    for order, first, second in (
        ("category_first", "Style: Humor", "Video: "),
        ("caption_first", "Video: ", "Style: Humor"),
    ):
        (ids,) = generator.prompt_ids(CAPTION, ["Humor"], GenerationConfig(prompt_order=order))
        text = generator.tokenizer.decode(ids)
        assert text.index(first) < text.index(second), order
        assert CAPTION in text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('"Maria folds dumplings!"\nMore text', "Maria folds dumplings!"),
        ("Here's a push notification:\nMaria folds dumplings", "Maria folds dumplings"),
        ("Push: Maria folds dumplings", "Maria folds dumplings"),
        ("   \n ", ""),
    ],
)
def test_clean_generation(raw: str, clean: str) -> None:
    from pushgen.generator.prompts import clean_generation

    assert clean_generation(raw) == clean


def test_fixed_length_decoding(generator) -> None:
    cfg = GenerationConfig(max_new_tokens=7, min_new_tokens=7, do_sample=False)
    assert {c.new_tokens for c in generator.generate(CAPTION, CATEGORIES, config=cfg)} == {7}
