"""The push world: a simulator of videos, human-written pushes and A/B tests with a known truth.

Click probability = confounders (author popularity, video quality) + text effects (style x topic
affinity, length, question, numbers, faithfulness to the video; invented entities raise the hate
rate and lower clicks). Observed clicks are binomial draws from exposure, so A/B labels are noisy.
Because the truth is known, evaluation can score any text, generated ones included:

    sim = simulate(SimConfig(n_videos=200, seed=1))
    write_simulation(sim, "runs/sim")            # videos/pushes/ab_tests parquet + world.json
    world = World.load("runs/sim/world.json")
    true_ctr(world, "v000003", "3 tips from Maria Lopez to master dumplings")

Generation is vectorised over rows (numpy draws, one string format per row): 1M pushes in well
under a minute on 2 cores (`python -m bench.bench_simulate`).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.categories import DEFAULT_CATEGORIES
from pushgen.data.contracts import write_table

# --- the vocabulary of the world (pushgen/data/world_vocabulary.toml) --------------------------------

_VOCAB = tomllib.loads(
    resources.files("pushgen.data").joinpath("world_vocabulary.toml").read_text("utf-8")
)
TOPICS: dict[str, dict[str, list[str]]] = _VOCAB["topics"]
FIRST_NAMES: list[str] = _VOCAB["first_names"]
LAST_NAMES: list[str] = _VOCAB["last_names"]
PLACES: list[str] = _VOCAB["places"]
# names a writer may invent: absent from every video, so their presence is always unfaithful
INVENTED_NAMES: list[str] = _VOCAB["invented_names"]
EMOJIS: list[str] = _VOCAB["emojis"]
# Each style has several templates (varied wording) and cue phrases that identify it.
TEMPLATES: dict[str, list[str]] = _VOCAB["templates"]
CUES: dict[str, tuple[str, ...]] = {c: tuple(ks) for c, ks in _VOCAB["cues"].items()}
_CUE_RES = {c: re.compile("|".join(re.escape(k) for k in ks)) for c, ks in CUES.items()}
_NUMBER_RE = re.compile(r"\d+")
# capitalised words at the start of a sentence or after a colon are not names
_CAPWORD_RE = re.compile(r"(?<![.!?:]\s)(?<=\s)([A-Z][a-z]+)")

# --- configuration and truth ---------------------------------------------------------------------


@dataclass
class SimConfig:
    """How big and how noisy the simulated world is."""

    n_videos: int = field(default=1000, metadata={"help": "number of videos"})
    pushes_per_video: float = field(
        default=8.0, metadata={"help": "mean human pushes per video (>= 1 each)"}
    )
    ab_fraction: float = field(default=0.3, metadata={"help": "share of videos with an A/B test"})
    min_arms: int = field(
        default=2, metadata={"help": "arms per A/B test, drawn uniformly in [min_arms, max_arms]"}
    )
    max_arms: int = field(default=4, metadata={"help": "most arms per A/B test"})
    ab_pv_range: tuple[int, int] = field(
        default=(2000, 20000),
        metadata={"help": "exposures per arm (the same for all arms of a test)"},
    )
    invent_rate: float = field(
        default=0.08,
        metadata={"help": "share of human pushes that invent an entity (name or number)"},
    )
    typo_rate: float = field(default=0.05, metadata={"help": "share of pushes with a letter swap"})
    emoji_rate: float = field(
        default=0.2, metadata={"help": "share of pushes ending with an emoji"}
    )
    confounder_strength: float = field(
        default=1.0, metadata={"help": "scale of popularity/quality effects (0 = none)"}
    )
    categories: tuple[str, ...] = field(
        default=DEFAULT_CATEGORIES, metadata={"help": "styles writers use"}
    )
    seed: int = field(
        default=0, metadata={"help": "random seed (the output is a deterministic function of it)"}
    )

    def __post_init__(self) -> None:
        """Reject impossible settings with a clear message."""
        if self.n_videos < 1:
            raise ConfigError(f"n_videos must be >= 1, got {self.n_videos}")
        if self.pushes_per_video < 1:
            raise ConfigError("pushes_per_video must be >= 1")
        if not 0 <= self.ab_fraction <= 1:
            raise ConfigError("ab_fraction must be in [0, 1]")
        if not 2 <= self.min_arms <= self.max_arms:
            raise ConfigError("need 2 <= min_arms <= max_arms")
        unknown = [c for c in self.categories if c not in TEMPLATES]
        if unknown:
            raise ConfigError(f"the simulator has no writing templates for {unknown}")


@dataclass
class TextEffects:
    """Logit contributions of text features (the part a push writer controls)."""

    base: float = -3.7  # logit of a ~2.4% CTR for an average video and a plain push
    popularity: float = 0.9  # per sd of log author popularity (confounder)
    quality: float = 0.8  # per sd of latent video quality (confounder)
    question: float = 0.12
    faithful_number: float = 0.15
    faithful_entity: float = 0.08  # per entity of the video named, at most 2
    invented_entity: float = -0.45  # per invented name or number
    emoji: float = 0.04
    length_optimum: int = 55  # characters; longer pushes are truncated on lock screens
    length_penalty: float = 0.012  # per character beyond the optimum
    style_sd: float = 0.15  # sd of the global style effect
    affinity_sd: float = 0.35  # sd of the style x topic affinity


@dataclass
class World:
    """The hidden truth: effect sizes and every video's latent variables and entities."""

    seed: int
    categories: list[str]
    topics: list[str]
    effects: TextEffects
    style_effect: dict[str, float]
    affinity: dict[str, dict[str, float]]  # style -> topic -> logit
    videos: pd.DataFrame = field(
        repr=False
    )  # video_id, topic, pop_z, quality, name, place, number, thing
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {v: i for i, v in enumerate(self.videos["video_id"])}

    def video(self, video_id: str) -> dict:
        """The truth of one video, or a clear error."""
        try:
            return self.videos.iloc[self._index[video_id]].to_dict()
        except KeyError:
            raise DataContractError(f"unknown video_id {video_id!r} in this world") from None

    def to_json(self, path: str | Path) -> Path:
        """Write the world as JSON (video truth stored column-wise to stay compact)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "seed": self.seed,
            "categories": self.categories,
            "topics": self.topics,
            "effects": asdict(self.effects),
            "style_effect": self.style_effect,
            "affinity": self.affinity,
            "videos": {c: self.videos[c].tolist() for c in self.videos.columns},
        }
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read a world written by `to_json`."""
        path = Path(path)
        if not path.exists():
            raise DataContractError(f"no such world file: {path}")
        try:
            doc = json.loads(path.read_text())
            return cls(
                seed=doc["seed"],
                categories=doc["categories"],
                topics=doc["topics"],
                effects=TextEffects(**doc["effects"]),
                style_effect=doc["style_effect"],
                affinity=doc["affinity"],
                videos=pd.DataFrame(doc["videos"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataContractError(f"{path} is not a pushgen world file: {exc}") from exc


@dataclass
class Simulation:
    """The four outputs of one simulation."""

    videos: pd.DataFrame
    pushes: pd.DataFrame
    ab_tests: pd.DataFrame
    world: World


# --- text features: the same parser scores simulated and generated text ---------------------------


def true_style(text: str) -> str | None:
    """The style whose cue phrases a text uses most (first listed wins ties); None if no cue."""
    lowered = text.lower()
    best, best_hits = None, 0
    for category, cue_re in _CUE_RES.items():
        hits = len(cue_re.findall(lowered))
        if hits > best_hits:
            best, best_hits = category, hits
    return best


def text_features(text: str, video: dict) -> dict:
    """Features of `text` relative to one video's entities (what `true_ctr` is computed from)."""
    known_caps = set(str(video["name"]).split()) | set(str(video["place"]).split())
    numbers = _NUMBER_RE.findall(text)
    caps = set(_CAPWORD_RE.findall(text))
    # multi-word invented names ("Taylor Swift") count once
    invented_names = sum(1 for n in INVENTED_NAMES if n in text)
    other_caps = caps - known_caps - {w for n in INVENTED_NAMES for w in n.split()}
    invented_names += len(other_caps)
    faithful_numbers = sum(1 for n in numbers if int(n) == int(video["number"]))
    invented_numbers = len(numbers) - faithful_numbers
    faithful_entities = int(str(video["name"]) in text) + int(str(video["place"]) in text)
    return {
        "style": true_style(text),
        "length": len(text),
        "question": "?" in text,
        "faithful_number": faithful_numbers > 0,
        "faithful_entities": min(faithful_entities, 2),
        "invented": invented_names + invented_numbers,
        "emoji": any(e in text for e in EMOJIS),
    }


def text_logit_terms(world: World, topic: str, feats: dict) -> dict[str, float]:
    """The text's additive terms of the true click logit, one per feature (their sum is the
    text's part of the logit; the video's popularity and quality are the rest)."""
    eff = world.effects
    style = feats["style"]
    return {
        "style_x_topic": (
            world.style_effect[style] + world.affinity[style][topic] if style is not None else 0.0
        ),
        "question": eff.question * feats["question"],
        "faithful_number": eff.faithful_number * feats["faithful_number"],
        "faithful_entities": eff.faithful_entity * feats["faithful_entities"],
        "invented_entities": eff.invented_entity * feats["invented"],
        "emoji": eff.emoji * feats["emoji"],
        "length": -eff.length_penalty * max(0, feats["length"] - eff.length_optimum),
    }


def _text_logit(world: World, topic: str, feats: dict) -> float:
    return sum(text_logit_terms(world, topic, feats).values())


def true_ctr(world: World, video_id: str, text: str) -> float:
    """The true click probability of `text` as a push for `video_id` (any text, generated too)."""
    video = world.video(video_id)
    eff = world.effects
    logit = eff.base + eff.popularity * video["pop_z"] + eff.quality * video["quality"]
    logit += _text_logit(world, video["topic"], text_features(text, video))
    return 1.0 / (1.0 + math.exp(-logit))


# --- the generator of the world ----------------------------------------------------------------------


def _make_world(cfg: SimConfig, rng: np.random.Generator) -> World:
    topics = list(TOPICS)
    n = cfg.n_videos
    topic_idx = rng.integers(0, len(topics), n)
    n_authors = max(1, n // 5)
    # skewed popularity: a few authors are famous (log-normal followers)
    author_pop = rng.normal(0, 1, n_authors)
    author_of = np.minimum(rng.zipf(1.6, n) - 1, n_authors - 1)
    things = np.array([rng.choice(TOPICS[topics[t]]["things"]) for t in topic_idx])
    verbs = np.array([rng.choice(TOPICS[topics[t]]["verbs"]) for t in topic_idx])
    names = np.char.add(np.char.add(rng.choice(FIRST_NAMES, n), " "), rng.choice(LAST_NAMES, n))
    videos = pd.DataFrame(
        {
            "video_id": [f"v{i:06d}" for i in range(n)],
            "topic": np.array(topics)[topic_idx],
            "author_id": [f"a{a:05d}" for a in author_of],
            "pop_z": author_pop[author_of] * cfg.confounder_strength,
            "quality": rng.normal(0, 1, n) * cfg.confounder_strength,
            "name": names,
            "place": rng.choice(PLACES, n),
            "number": rng.integers(3, 60, n),
            "thing": things,
            "verb": verbs,
        }
    )
    effects = TextEffects()
    cats = list(cfg.categories)
    style_effect = dict(
        zip(cats, rng.normal(0, effects.style_sd, len(cats)).round(4).tolist(), strict=True)
    )
    affinity = {
        c: dict(
            zip(
                topics,
                rng.normal(0, effects.affinity_sd, len(topics)).round(4).tolist(),
                strict=True,
            )
        )
        for c in cats
    }
    return World(cfg.seed, cats, topics, effects, style_effect, affinity, videos)


def _video_table(world: World, rng: np.random.Generator) -> pd.DataFrame:
    v = world.videos
    title = v["name"] + " " + v["verb"] + "s a " + v["thing"] + " in " + v["place"]
    description = (
        "In this "
        + v["topic"]
        + " video, "
        + v["name"]
        + " shows "
        + v["number"].astype(str)
        + " moments from a "
        + v["thing"]
        + " in "
        + v["place"]
        + "."
    )
    asr = (
        "hi everyone, I'm "
        + v["name"]
        + ", today in "
        + v["place"]
        + " we "
        + v["verb"]
        + " a "
        + v["thing"]
        + " and it took "
        + v["number"].astype(str)
        + " tries"
    )
    published = pd.Timestamp("2026-01-01") + pd.to_timedelta(
        rng.integers(0, 300 * 24 * 3600, len(v)), unit="s"
    )
    return pd.DataFrame(
        {
            "video_id": v["video_id"],
            "title": title,
            "description": description,
            "asr_text": asr,
            "frames": [[] for _ in range(len(v))],
            "topic": v["topic"],
            "author_id": v["author_id"],
            "published_at": published,
        }
    )


def _write_texts(
    world: World,
    cfg: SimConfig,
    rng: np.random.Generator,
    video_rows: np.ndarray,
    categories: np.ndarray,
) -> tuple[list[str], np.ndarray]:
    """Human-style pushes for the given videos in the given styles; returns texts and invented counts."""
    v = world.videos
    n = len(video_rows)
    tmpl_pick = rng.random(n)
    invent = rng.random(n) < cfg.invent_rate
    invent_kind = rng.random(n) < 0.5  # a name, else an exaggerated number
    typo = rng.random(n) < cfg.typo_rate
    emoji = rng.random(n) < cfg.emoji_rate
    emoji_pick = rng.integers(0, len(EMOJIS), n)
    fake_names = rng.choice(INVENTED_NAMES, n)
    typo_pos = rng.random(n)
    name, place = v["name"].to_numpy(), v["place"].to_numpy()
    number, thing, verb = v["number"].to_numpy(), v["thing"].to_numpy(), v["verb"].to_numpy()
    texts: list[str] = []
    invented = np.zeros(n, dtype=np.int64)
    for i in range(n):
        r = video_rows[i]
        options = TEMPLATES[categories[i]]
        template = options[int(tmpl_pick[i] * len(options))]
        nm, num = name[r], int(number[r])
        if invent[i] and invent_kind[i]:
            nm = fake_names[i]
            invented[i] = "{name}" in template
        elif invent[i]:
            num = num * 10 + 7  # an exaggerated claim no caption supports
            invented[i] = "{num}" in template
        text = template.format(name=nm, place=place[r], num=num, thing=thing[r], verb=verb[r])
        if typo[i]:
            text = _swap_letters(text, typo_pos[i])
        if emoji[i]:
            text = f"{text} {EMOJIS[emoji_pick[i]]}"
        texts.append(text)
    return texts, invented


def _swap_letters(text: str, pos: float) -> str:
    """A typo: swap two adjacent lowercase letters somewhere in the text."""
    k = int(pos * (len(text) - 2))
    if text[k].islower() and text[k + 1].islower():
        return text[:k] + text[k + 1] + text[k] + text[k + 2 :]
    return text


def _true_ctr_vector(world: World, video_rows: np.ndarray, texts: list[str]) -> np.ndarray:
    """Vectorised `true_ctr` over rows (same parser, the per-video part computed once)."""
    v = world.videos
    eff = world.effects
    base = eff.base + eff.popularity * v["pop_z"].to_numpy() + eff.quality * v["quality"].to_numpy()
    records = v.to_dict("records")
    topics = v["topic"].to_numpy()
    logit = np.empty(len(texts))
    for i, (r, text) in enumerate(zip(video_rows, texts, strict=True)):
        logit[i] = base[r] + _text_logit(world, topics[r], text_features(text, records[r]))
    return 1.0 / (1.0 + np.exp(-logit))


def _engagement(
    world: World,
    rng: np.random.Generator,
    video_rows: np.ndarray,
    ctr: np.ndarray,
    invented: np.ndarray,
) -> dict[str, np.ndarray]:
    """Exposure, clicks and the after-click rates the hard filter reads."""
    n = len(video_rows)
    quality = world.videos["quality"].to_numpy()[video_rows]
    pop = world.videos["pop_z"].to_numpy()[video_rows]
    pv = np.maximum(50, rng.lognormal(8.0 + 0.3 * pop, 0.9, n)).astype(np.int64)
    clicks = rng.binomial(pv, ctr)
    return {
        "pv": pv,
        "clicks": clicks.astype(np.int64),
        "ctr": clicks / pv,
        "svr": np.clip(0.30 - 0.08 * quality + rng.normal(0, 0.08, n), 0, 1),
        "lvtr": np.clip(0.55 + 0.10 * quality + rng.normal(0, 0.10, n), 0, 1),
        "htr": np.clip(0.003 + 0.012 * invented + np.abs(rng.normal(0, 0.003, n)), 0, 1),
    }


def simulate(cfg: SimConfig | None = None) -> Simulation:
    """Simulate a world: videos, human pushes with engagement, and A/B tests, all from `cfg.seed`."""
    cfg = cfg or SimConfig()
    rng = np.random.default_rng(cfg.seed)
    world = _make_world(cfg, rng)
    videos = _video_table(world, rng)
    cats = np.array(cfg.categories)

    # human pushes: every video gets at least one, styles drawn with a mild global skew
    counts = 1 + rng.poisson(cfg.pushes_per_video - 1, cfg.n_videos)
    rows = np.repeat(np.arange(cfg.n_videos), counts)
    style_p = rng.dirichlet(np.full(len(cats), 8.0))
    push_cats = cats[rng.choice(len(cats), len(rows), p=style_p)]
    texts, invented = _write_texts(world, cfg, rng, rows, push_cats)
    ctr = _true_ctr_vector(world, rows, texts)
    eng = _engagement(world, rng, rows, ctr, invented)
    sent = pd.to_datetime(videos["published_at"].to_numpy()[rows]) + pd.to_timedelta(
        rng.integers(600, 72 * 3600, len(rows)), unit="s"
    )
    pushes = pd.DataFrame(
        {
            "push_id": [f"p{i:08d}" for i in range(len(rows))],
            "video_id": videos["video_id"].to_numpy()[rows],
            "text": texts,
            "sent_at": sent,
            **eng,
            "true_category": push_cats,
            "true_ctr": ctr,
        }
    )

    # A/B tests: arms in distinct styles for the same video, equal exposure per arm
    ab_videos = np.flatnonzero(rng.random(cfg.n_videos) < cfg.ab_fraction)
    arms = rng.integers(cfg.min_arms, cfg.max_arms + 1, len(ab_videos))
    arm_rows = np.repeat(ab_videos, arms)
    arm_cats = (
        np.concatenate([rng.choice(cats, k, replace=False) for k in arms]) if len(arms) else []
    )
    arm_texts, arm_invented = _write_texts(world, cfg, rng, arm_rows, np.asarray(arm_cats))
    arm_ctr = _true_ctr_vector(world, arm_rows, arm_texts)
    test_pv = rng.integers(cfg.ab_pv_range[0], cfg.ab_pv_range[1] + 1, len(ab_videos))
    arm_pv = np.repeat(test_pv, arms)
    test_ids = np.repeat([f"t{i:06d}" for i in range(len(ab_videos))], arms)
    arm_index = np.concatenate([np.arange(k) for k in arms]) if len(arms) else np.array([])
    ab_tests = pd.DataFrame(
        {
            "test_id": test_ids,
            "video_id": videos["video_id"].to_numpy()[arm_rows],
            "push_id": [f"{t}-{int(a)}" for t, a in zip(test_ids, arm_index, strict=True)],
            "text": arm_texts,
            "pv": arm_pv.astype(np.int64),
            "clicks": rng.binomial(arm_pv, arm_ctr).astype(np.int64),
            "true_category": np.asarray(arm_cats, dtype=object),
            "true_ctr": arm_ctr,
        }
    )
    return Simulation(videos, pushes, ab_tests, world)


def write_simulation(sim: Simulation, out_dir: str | Path) -> dict[str, Path]:
    """Write videos/pushes/ab_tests parquet and world.json into `out_dir`; returns the paths."""
    out = Path(out_dir)
    return {
        "videos": write_table(sim.videos, out / "videos.parquet"),
        "pushes": write_table(sim.pushes, out / "pushes.parquet"),
        "ab_tests": write_table(sim.ab_tests, out / "ab_tests.parquet"),
        "world": sim.world.to_json(out / "world.json"),
    }
