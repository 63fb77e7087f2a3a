"""The guard: invented entities and numbers, and the length budget (no model needed)."""

from __future__ import annotations

import pytest

from pushgen.generator.guard import check_candidate, invented_entities, invented_numbers

CAPTION = (
    "Maria Lopez folds dumplings in Lisbon. In this cooking video, Maria Lopez shows 12 moments "
    "from a dumplings class in Lisbon."
)


@pytest.mark.parametrize(
    "text",
    [
        "You won't believe how Maria folds these dumplings!",
        "12 dumpling tricks from Lisbon you need today",
        "Why does Maria Lopez's dumpling trick work?",
        "Trending: Maria Lopez's dumplings go viral",
        "Millions are watching this dumpling class",  # plural magnitude: hyperbole, not a figure
        "Hey, this one is for you",
        "Twelve ways to fold dumplings",  # spelled-out number that the caption states
    ],
)
def test_faithful_pushes_pass(text: str) -> None:
    result = check_candidate(text, CAPTION, max_chars=100)
    assert result.ok, result.reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Taylor Swift tries Maria's dumplings", "invented entity: Taylor, Swift"),
        ("Breaking: Beyonce in Lisbon right now", "invented entity: Beyonce"),
        ("Oprah's favourite dumplings", "invented entity: Oprah"),
        ("Gordon Ramsay is shocked by these dumplings", "invented entity: Gordon, Ramsay"),
        ("Maria shows 127 dumpling folds", "invented number: 127"),
        ("Five secrets of Maria's dumplings", "invented number: Five"),
        ("A million views for these dumplings", "invented number: million"),
    ],
)
def test_invented_facts_are_caught(text: str, reason: str) -> None:
    result = check_candidate(text, CAPTION, max_chars=100)
    assert not result.ok
    assert reason in result.reasons


def test_length_budget_and_empty_text() -> None:
    long = "Maria folds dumplings " * 10
    assert check_candidate(long, CAPTION, max_chars=60).reasons == [
        f"over length budget ({len(long)} > 60 chars)"
    ]
    assert "empty text" in check_candidate("   ", CAPTION, max_chars=60).reasons


def test_number_formats_match() -> None:
    assert invented_numbers("1,200 fans and 3.50 euros", "1200 fans paid 3.5 euros") == []
    assert invented_entities("Lisbon lights", "a night in lisbon") == []


def test_guard_against_simulator_truth(sim) -> None:
    """On simulated human pushes the guard finds the names writers invented, and little else."""
    from pushgen.data.caption import TextCaptioner
    from pushgen.data.simulator import INVENTED_NAMES

    captioner = TextCaptioner()
    captions = {
        r.video_id: captioner.caption_one(r.title, r.description, r.asr_text)
        for r in sim.videos.itertuples()
    }
    flagged = [
        not check_candidate(t, captions[v], 200).ok
        for v, t in zip(sim.pushes.video_id, sim.pushes.text, strict=True)
    ]
    invented = [any(n in t for n in INVENTED_NAMES) for t in sim.pushes.text]
    hits = [f for f, i in zip(flagged, invented, strict=True) if i]
    clean = [
        f
        for f, i, t in zip(flagged, invented, sim.pushes.text, strict=True)
        if not i and not any(ch.isdigit() for ch in t)  # digits may be exaggerated numbers
    ]
    assert len(hits) >= 10
    assert sum(hits) / len(hits) >= 0.95
    assert sum(clean) / len(clean) <= 0.02


def test_title_case_headlines_are_judged_by_words_not_capitals() -> None:
    lede = "Community radio stations keep people informed when a hurricane cuts the power."
    ok = check_candidate("How Community Radio Stations Can Help In Disaster Situations", lede)
    assert ok.ok, ok.reasons
    bad = check_candidate("Why Oprah Says Community Radio Stations Matter", lede)
    assert bad.reasons == ["invented entity: Oprah"]
    assert not check_candidate("The Cariniumite Trick Every Station Uses", lede).ok
    # contractions, inflections and hyphenated words are ordinary words taken apart
    assert check_candidate("Radio Stations Aren't Scarier Than Spot-On Hosts", lede).ok
    assert check_candidate("Why Radio Stations Doesn’t Matter Isn't Fair", lede).ok
    # only a negation drops its "n": a name that is a word plus "n" is still a name
    zebran = check_candidate("Why Zebran Says Community Radio Stations Matter", lede)
    assert zebran.reasons == ["invented entity: Zebran"]
    # sentence case keeps the stricter rule: a run of capitalised words is a name
    assert (
        "invented entity: Taylor, Swift"
        in check_candidate("Taylor Swift listens to community radio", lede).reasons
    )
