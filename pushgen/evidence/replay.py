"""Offline replay of the whole method against the human pushes, on a simulated world.

For held-out videos (neither model trained on them) the run's generator writes one candidate per
category exactly as serving does (greedy, 24 new tokens, the guard), the run's ranker picks one,
and the simulator's truth scores every text. Compared, per video, in true CTR:

- the human push that was sent (the video's earliest), the best and the mean human push;
- a random guarded candidate (the method without the ranker), each category's candidate;
- the ranker's choice (Copeland, knockout, Bradley-Terry, listwise where the ranker has it);
- the oracle best guarded candidate, and the best candidate before the guard;
- ablations: the base model instead of the SFT one, no category control (K samples of one
  prompt), and any extra generators given (e.g. SFT with another confidence weighting).

A system arm serves the human push where no candidate passes the guard (replaced traffic only).
Intervals are paired bootstraps over videos; the simulated A/B test draws binomial clicks for
the chosen and the sent human push at the sent push's own exposure.

    report, candidates, per_video = run_replay(RunArtifacts.find(run), SimWorld.load(sim), cfg)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError, PushgenError
from pushgen.data.contracts import read_table
from pushgen.evidence.replay_data import RunArtifacts, SimWorld, held_out_videos, sent_pushes
from pushgen.evidence.stats import bootstrap_ci, compare, resample_index, simulated_ab

SELECTION = ("copeland", "knockout", "bradley_terry")  # plus "listwise" where the ranker has it
HEADLINE = "sft_copeland"  # the served system: SFT generator, guard, Copeland over the ranker


@dataclass
class ReplayConfig:
    """What the replay generates and how it measures."""

    videos: int = 0  # held-out videos replayed (0: all of them)
    max_new_tokens: int = 24  # the serving default
    max_chars: int = 120  # the guard's length budget (serving default)
    base_model: bool = True  # ablation: the un-tuned base model with the same prompts
    uncontrolled: bool = True  # ablation: K samples of one prompt instead of one per category
    uncontrolled_temperature: float = 0.8  # sampling temperature of that ablation
    extra_generators: dict[str, str] = field(default_factory=dict)  # name -> generator dir
    n_boot: int = 2000  # bootstrap draws
    ab_exposure: int = 0  # views per arm in the simulated A/B test (0: the sent push's own)
    seed: int = 0  # video order, the uncontrolled prompt, bootstrap, clicks
    device: str | None = None  # None: cuda when available


# --- generation --------------------------------------------------------------------------------
def _generation(cfg: ReplayConfig, sample: bool):
    from pushgen.generator.generate import GenerationConfig

    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        max_chars=cfg.max_chars,
        do_sample=sample,
        temperature=cfg.uncontrolled_temperature,
        seed=cfg.seed,
    )


def load_generators(run: RunArtifacts, cfg: ReplayConfig) -> dict[str, Any]:
    """{"sft": run's generator, "base": its base with the same prompts, extras...}."""
    from pushgen.generator.generate import CandidateGenerator

    gen_dir = run["sft/generator"]
    sft = CandidateGenerator.from_pretrained(gen_dir, device=cfg.device)
    generators = {"sft": sft}
    if cfg.base_model:
        import json

        from pushgen.generator.generate import GENERATOR_MANIFEST

        base_id = json.loads((gen_dir / GENERATOR_MANIFEST).read_text())["base_model"]
        base = CandidateGenerator.from_pretrained(base_id, device=cfg.device)
        base.template, base.category_descriptions = sft.template, sft.category_descriptions
        generators["base"] = base
    for name, path in cfg.extra_generators.items():
        generators[name] = CandidateGenerator.from_pretrained(path, device=cfg.device)
    return generators


def candidates_for(
    generators: Mapping[str, Any],
    captions: Mapping[str, str],
    categories: Sequence[str],
    cfg: ReplayConfig,
) -> pd.DataFrame:
    """Every candidate: one per category per controlled generator; K samples of one random
    category's prompt for the uncontrolled ablation. Columns: arm, video_id, category, text,
    guard_ok, guard_reasons."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    greedy = _generation(cfg, sample=False)
    rows = []
    jobs = [(name, vid) for name in generators for vid in captions]
    for name, vid in tqdm(jobs, desc="replay: generating", unit="video", disable=None):
        cands = generators[name].generate(captions[vid], categories, 1, greedy)
        rows += [(name, vid, c) for c in cands]
    if cfg.uncontrolled:
        sampled = _generation(cfg, sample=True)
        for vid in tqdm(captions, desc="replay: one prompt, K samples", disable=None):
            one = str(rng.choice(list(categories)))
            cands = generators["sft"].generate(captions[vid], [one], len(categories), sampled)
            rows += [("uncontrolled", vid, c) for c in cands]
    return pd.DataFrame(
        [
            {
                "arm": arm,
                "video_id": vid,
                "category": c.category,
                "text": c.text,
                "guard_ok": c.guard_ok,
                "guard_reasons": "; ".join(c.guard_reasons),
            }
            for arm, vid, c in rows
        ]
    )


# --- selection -----------------------------------------------------------------------------------
def selection_methods(ranker: Any) -> list[str]:
    """The aggregation methods this ranker offers (listwise only where it exists)."""
    from pushgen.ranker import select

    return [*SELECTION, *(["listwise"] if "listwise" in select.METHODS else [])]


def pick(ranker: Any, texts: list[str], caption: str, methods: Sequence[str]) -> dict[str, int]:
    """{method: chosen index} for one candidate set; one win matrix serves the matrix methods."""
    from pushgen.ranker.aggregate import aggregate

    if len(texts) == 1:
        return dict.fromkeys(methods, 0)
    win = ranker.win_matrix(texts, caption)
    out = {}
    for m in methods:
        if m in SELECTION:
            out[m] = aggregate(win, m).chosen
        else:  # a method the ranker computes itself (listwise)
            try:
                out[m] = ranker.rank(texts, caption, method=m).chosen
            except PushgenError:
                continue
    return out


def video_rows(
    scored: pd.DataFrame,
    human: pd.DataFrame,
    sent: pd.DataFrame,
    ranker: Any,
    captions: Mapping[str, str],
    methods: Sequence[str],
    cfg: ReplayConfig,
) -> pd.DataFrame:
    """One row per video: the true CTR of every arm (system arms fall back to the sent push)."""
    from tqdm.auto import tqdm

    human_ctr = human.groupby("video_id")["true_ctr"]
    rows = []
    for vid in tqdm(list(captions), desc="replay: ranking", unit="video", disable=None):
        sent_ctr = float(sent.loc[vid, "true_ctr"])
        row = {
            "video_id": vid,
            "human_sent": sent_ctr,
            "human_best": float(human_ctr.get_group(vid).max()),
            "human_mean": float(human_ctr.get_group(vid).mean()),
            "exposure": int(cfg.ab_exposure or sent.loc[vid, "pv"]),
        }
        for arm, cands in scored[scored["video_id"] == vid].groupby("arm", sort=False):
            ok = cands[cands["guard_ok"]]
            row[f"{arm}_oracle_unguarded"] = float(cands["true_ctr"].max())
            row[f"{arm}_guarded"] = len(ok)
            if ok.empty:  # nothing servable: the human push stays
                for m in ("random", "oracle", *methods):
                    row[f"{arm}_{m}"] = sent_ctr
                continue
            ctr = ok["true_ctr"].to_numpy(float)
            row[f"{arm}_random"] = float(ctr.mean())  # expected CTR of a uniform pick
            row[f"{arm}_oracle"] = float(ctr.max())
            arm_methods = methods if arm in ("sft",) else ("copeland",)
            for m, i in pick(ranker, ok["text"].tolist(), captions[vid], arm_methods).items():
                row[f"{arm}_{m}"] = float(ctr[i])
                if arm == "sft" and m == "copeland":
                    row["chosen_text"] = ok["text"].iloc[i]
                    row["chosen_category"] = ok["category"].iloc[i]
        row["sent_text"] = str(sent.loc[vid, "text"])
        rows.append(row)
    return pd.DataFrame(rows)


# --- figures -------------------------------------------------------------------------------------
def generator_figures(scored: pd.DataFrame, human: pd.DataFrame, categories: Sequence[str]) -> dict:
    """Per generator arm: controllability (simulator's style cues), style mix, beat-baseline,
    diversity, guard rejections, mean true CTR per category."""
    from pushgen.generator.evaluate import beat_rate, distinct_n

    human_ctr = human.groupby("video_id")["true_ctr"].apply(list).to_dict()
    out = {}
    for arm, g in scored.groupby("arm", sort=False):
        hit = g["true_style"] == g["category"]
        styles = g["true_style"].fillna("(none)").value_counts(normalize=True)
        reasons = Counter(
            r.split(":")[0].split(" (")[0]
            for rs in g["guard_reasons"]
            for r in str(rs).split("; ")
            if r
        )
        beats = [
            beat_rate(c, human_ctr.get(v, []))
            for v, c in zip(g["video_id"], g["true_ctr"], strict=True)
        ]
        out[arm] = {
            "candidates": int(len(g)),
            "controllability": float(hit.mean()),
            "controllability_by_category": {
                c: float(hit[g["category"] == c].mean())
                for c in categories
                if (g["category"] == c).any()
            },
            "style_mix": {k: float(v) for k, v in styles.items()},
            "beat_baseline_rate": float(np.nanmean(beats)),
            "distinct_2": float(
                np.mean([distinct_n(t.tolist()) for _, t in g.groupby("video_id")["text"]])
            ),
            "guard_rejected_share": float((~g["guard_ok"]).mean()),
            "guard_reasons": dict(reasons),
            "mean_true_ctr": float(g["true_ctr"].mean()),
            "ctr_by_category": {
                c: float(g.loc[g["category"] == c, "true_ctr"].mean())
                for c in categories
                if (g["category"] == c).any()
            },
        }
    return out


def arm_table(per_video: pd.DataFrame, cfg: ReplayConfig) -> dict[str, dict]:
    """Every arm's mean CTR, uplift over the sent human push and beats rate, with intervals."""
    rng = np.random.default_rng(cfg.seed + 1)
    idx = resample_index(len(per_video), cfg.n_boot, rng)
    sent = per_video["human_sent"].to_numpy(float)
    skip = {"video_id", "exposure", "chosen_text", "chosen_category", "sent_text"}
    arms = [
        c
        for c in per_video.columns
        if c not in skip and not c.endswith("_guarded") and per_video[c].notna().all()
    ]
    out = {}
    for arm in arms:
        values = per_video[arm].to_numpy(float)
        out[arm] = (
            compare(values, sent, idx)
            if arm != "human_sent"
            else {
                "mean_ctr": float(sent.mean()),
                "mean_ctr_ci": bootstrap_ci(sent, idx),
                "uplift": 0.0,
                "uplift_ci": (0.0, 0.0),
                "beats_rate": 0.0,
                "beats_rate_ci": (0.0, 0.0),
            }
        )
    return out


def loss_breakdown(per_video: pd.DataFrame, gen: dict) -> dict:
    """Where the chosen push's CTR goes, in mean true CTR: human -> generator -> guard -> ranker."""
    m = per_video.mean(numeric_only=True)
    oracle, rand, chosen = m["sft_oracle"], m["sft_random"], m[HEADLINE]
    gap = oracle - rand
    return {
        "human_sent": float(m["human_sent"]),
        "human_best": float(m["human_best"]),
        "generator_mean_candidate": float(gen["sft"]["mean_true_ctr"]),
        "oracle_before_guard": float(m["sft_oracle_unguarded"]),
        "oracle_after_guard": float(oracle),
        "random_guarded_candidate": float(rand),
        "chosen": float(chosen),
        "guard_loss": float(m["sft_oracle_unguarded"] - oracle),
        "ranker_loss": float(oracle - chosen),
        "ranker_share_of_gap": float((chosen - rand) / gap) if gap > 0 else float("nan"),
        "videos_without_guarded_candidate": int((per_video["sft_guarded"] == 0).sum()),
        "guard_rejected_share": float(gen["sft"]["guard_rejected_share"]),
    }


# --- the whole replay ----------------------------------------------------------------------------
def choose_videos(run: RunArtifacts, sim: SimWorld, n: int, seed: int) -> list[str]:
    """`n` held-out videos (all when `n` is 0); asking for more than are held out is an error."""
    held = held_out_videos(run, sim)
    if not held:
        raise ConfigError(f"run {run.root} holds no video out of training: nothing to replay")
    if n < 0:
        raise ConfigError(f"--videos must be >= 0, got {n}")
    if n > len(held):
        raise ConfigError(f"asked to replay {n} videos but the run holds out only {len(held)}")
    if n == 0 or n == len(held):
        return held
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(held, n, replace=False).tolist())


def run_replay(
    run: RunArtifacts, sim: SimWorld, cfg: ReplayConfig
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(report, every scored candidate, one row per video) for `cfg.videos` held-out videos."""
    from pushgen.data.simulator import true_ctr, true_style
    from pushgen.ranker.select import PairwiseRanker

    videos = choose_videos(run, sim, cfg.videos, cfg.seed)
    for name, path in cfg.extra_generators.items():
        if not Path(path).is_dir():
            raise ConfigError(f"extra generator {name!r}: no directory at {path}")
    caps = read_table(run["caption/captions"]).set_index("video_id")["caption"]
    captions = {v: str(caps[v]) for v in videos}
    generators = load_generators(run, cfg)
    categories = list(generators["sft"].category_descriptions) or None
    if not categories:
        from pushgen.data.categories import DEFAULT_CATEGORIES

        categories = list(DEFAULT_CATEGORIES)
    ranker = PairwiseRanker.from_pretrained(run["reward/ranker"], device=cfg.device)
    methods = selection_methods(ranker)

    scored = candidates_for(generators, captions, categories, cfg)
    texts = scored["text"].astype(str)
    scored["true_ctr"] = [
        true_ctr(sim.world, v, t) for v, t in zip(scored["video_id"], texts, strict=True)
    ]
    scored["true_style"] = [true_style(t) for t in texts]
    human = sim.pushes[sim.pushes["video_id"].isin(videos)]
    sent = sent_pushes(human)
    per_video = video_rows(scored, human, sent, ranker, captions, methods, cfg)

    gen = generator_figures(scored, human, categories)
    arms = arm_table(per_video, cfg)
    idx = resample_index(len(per_video), cfg.n_boot, np.random.default_rng(cfg.seed + 2))
    exposure = per_video["exposure"].to_numpy()
    ab = {
        arm: simulated_ab(per_video[arm], per_video["human_sent"], exposure, idx, cfg.seed + 3)
        for arm in (HEADLINE, "sft_random", "base_copeland", "uncontrolled_copeland")
        if arm in per_video
    }
    report = {
        "videos": len(videos),
        "held_out": len(held_out_videos(run, sim)),
        "categories": categories,
        "selection_methods": methods,
        "headline_arm": HEADLINE,
        "config": {k: v for k, v in asdict(cfg).items() if k != "device"},
        "arms": arms,
        "simulated_ab": ab,
        "generator": gen,
        "history_style_mix": {
            k: float(v) for k, v in human["true_category"].value_counts(normalize=True).items()
        },
        "loss_breakdown": loss_breakdown(per_video, gen),
        "coverage": float((per_video["sft_guarded"] > 0).mean()),
    }
    return report, scored, per_video


def goals(report: dict, min_beats: float = 0.70, min_uplift: float = 0.14) -> dict[str, bool]:
    """The method's goals: the chosen push beats the sent human push on >= 70% of videos, and the
    simulated A/B uplift is >= +14% with the lower end of its 95% interval above 0."""
    chosen = report["arms"][HEADLINE]
    ab = report["simulated_ab"][HEADLINE]
    return {
        "beats_sent_human_70pct": chosen["beats_rate"] >= min_beats,
        "ab_uplift_14pct": ab["uplift"] >= min_uplift,
        "ab_uplift_ci_above_0": ab["uplift_ci"][0] > 0,
    }
