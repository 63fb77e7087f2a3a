"""Offline replay of the whole method against the human pushes, on a simulated world.

For held-out videos (never ingested by the run: no push, no A/B arm, no validation use) the run's
generator writes one candidate per category exactly as serving does (greedy, 24 new tokens, the
guard), the run's ranker picks one, and the simulator's truth scores every text. Compared, per
video, in true CTR, against the video's **mean human push** (the expected editor):

- the human pushes: the earliest one (one draw of "the push that was sent"; `sent_redraws`
  redraws which push counts as sent), the best one, and the ranker choosing among them
  (`human_copeland`: what a team would try before any LLM);
- a random guarded candidate (the method without the ranker: the mean over candidates), each
  category's candidate, the ranker's choice (Copeland, knockout, Bradley-Terry, listwise where the
  ranker has it), the oracle best guarded candidate and the best candidate before the guard;
- ablations that change one thing: the base model instead of the SFT one (same greedy decoding),
  and category control on/off at the same decoding (one sampled candidate per category against K
  samples of one prompt, both at T=0.8); extra generators given (e.g. another SFT weighting).

A system arm serves the human push where no candidate passes the guard (replaced traffic only).
Uplifts are geometric means of per-video ratios with BCa intervals; rates have Wilson intervals
(`pushgen.evidence.stats`). The ranker's pairwise accuracy against the truth is counted on the
human pushes of each held-out video and on the SFT candidates (`ranker_pairs`).

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
from pushgen.evidence.stats import bootstrap_ci, log_ratio_uplift, resample_index, wilson

SELECTION = ("copeland", "knockout", "bradley_terry")  # plus "listwise" where the ranker has it
HEADLINE = "sft_copeland"  # the served system: SFT generator, guard, Copeland over the ranker


@dataclass
class ReplayConfig:
    """What the replay generates and how it measures."""

    videos: int = 0  # held-out videos replayed (0: all of them)
    max_new_tokens: int = 24  # the serving default
    max_chars: int = 120  # the guard's length budget (serving default)
    base_model: bool = True  # ablation: the un-tuned base model with the same prompts
    uncontrolled: bool = True  # ablation: K samples of one prompt vs one sample per category
    uncontrolled_temperature: float = 0.8  # sampling temperature of both sides of that ablation
    extra_generators: dict[str, str] = field(default_factory=dict)  # name -> generator dir
    n_boot: int = 2000  # bootstrap draws
    redraws: int = 2000  # redraws of which human push counts as sent
    seed: int = 0  # video order, the uncontrolled prompt, sampling, bootstrap, redraws
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
    """Every candidate: one per category per controlled generator (greedy); for the control
    ablation one sampled candidate per category (`sampled`) and K samples of one random
    category's prompt (`uncontrolled`). Columns: arm, video_id, category, text, guard_ok,
    guard_reasons."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    greedy = _generation(cfg, sample=False)
    rows = []
    jobs = [(name, vid) for name in generators for vid in captions]
    for name, vid in tqdm(jobs, desc="replay: generating", unit="video", disable=None):
        cands = generators[name].generate(captions[vid], categories, 1, greedy)
        rows += [(name, vid, c) for c in cands]
    if cfg.uncontrolled:  # category control on / off, both sampled at the same temperature
        sampled = _generation(cfg, sample=True)
        for vid in tqdm(captions, desc="replay: sampled, with and without control", disable=None):
            cands = generators["sft"].generate(captions[vid], categories, 1, sampled)
            rows += [("sampled", vid, c) for c in cands]
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


def pick(
    ranker: Any, texts: list[str], caption: str, methods: Sequence[str]
) -> tuple[dict[str, int], np.ndarray]:
    """({method: chosen index}, win matrix) for one candidate set; one win matrix serves the
    matrix methods."""
    from pushgen.ranker.aggregate import aggregate

    if len(texts) == 1:
        return dict.fromkeys(methods, 0), np.full((1, 1), 0.5)
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
    return out, win


def pairs_right(win: np.ndarray, ctr: np.ndarray) -> tuple[int, int, float]:
    """(pairs the win matrix orders as the true CTRs do, pairs with unequal true CTR, the sum
    of those pairs' |log CTR ratio|: how far apart they are)."""
    i, j = np.triu_indices(len(ctr), k=1)
    differ = ctr[i] != ctr[j]
    right = (win[i, j] > 0.5) == (ctr[i] > ctr[j])
    gap = np.abs(np.log(ctr[i]) - np.log(ctr[j]))[differ].sum()
    return int((right & differ).sum()), int(differ.sum()), float(gap)


def video_rows(
    scored: pd.DataFrame,
    human: pd.DataFrame,
    sent: pd.DataFrame,
    ranker: Any,
    captions: Mapping[str, str],
    methods: Sequence[str],
    cfg: ReplayConfig,
) -> pd.DataFrame:
    """One row per video: the true CTR of every arm (system arms fall back to the mean human
    push, the expected editor, when nothing passes the guard), and the ranker's right pairs."""
    from tqdm.auto import tqdm

    by_video = {v: g.drop_duplicates("text") for v, g in human.groupby("video_id")}
    rows = []
    for vid in tqdm(list(captions), desc="replay: ranking", unit="video", disable=None):
        h = by_video[vid]
        h_ctr = h["true_ctr"].to_numpy(float)
        row = {
            "video_id": vid,
            "human_pushes": len(h),
            "human_sent": float(sent.loc[vid, "true_ctr"]),
            "human_best": float(h_ctr.max()),
            "human_mean": float(h_ctr.mean()),
        }
        chosen, win = pick(ranker, h["text"].tolist(), captions[vid], ("copeland",))
        row["human_copeland"] = float(h_ctr[chosen["copeland"]])
        row["human_copeland_text"] = str(h["text"].iloc[chosen["copeland"]])
        row["human_pairs_right"], row["human_pairs"], row["human_pairs_gap"] = pairs_right(
            win, h_ctr
        )
        for arm, cands in scored[scored["video_id"] == vid].groupby("arm", sort=False):
            ok = cands[cands["guard_ok"]]
            row[f"{arm}_oracle_unguarded"] = float(cands["true_ctr"].max())
            row[f"{arm}_guarded"] = len(ok)
            if ok.empty:  # nothing servable: the editors' push stays
                for m in ("random", "oracle", *methods):
                    row[f"{arm}_{m}"] = row["human_mean"]
                continue
            ctr = ok["true_ctr"].to_numpy(float)
            row[f"{arm}_random"] = float(ctr.mean())  # expected CTR of a uniform pick
            row[f"{arm}_oracle"] = float(ctr.max())
            arm_methods = methods if arm in ("sft",) else ("copeland",)
            picked, win = pick(ranker, ok["text"].tolist(), captions[vid], arm_methods)
            for m, i in picked.items():
                row[f"{arm}_{m}"] = float(ctr[i])
            if arm == "sft":
                i = picked["copeland"]
                row["chosen_text"] = ok["text"].iloc[i]
                row["chosen_category"] = ok["category"].iloc[i]
                row["sft_pairs_right"], row["sft_pairs"], row["sft_pairs_gap"] = pairs_right(
                    win, ctr
                )
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


TEXT_COLUMNS = {"video_id", "chosen_text", "chosen_category", "sent_text", "human_copeland_text"}


def arm_columns(per_video: pd.DataFrame) -> list[str]:
    """The per-video columns that hold an arm's true CTR."""
    return [
        c
        for c in per_video.columns
        if c not in TEXT_COLUMNS
        and not c.endswith(("_guarded", "_pairs", "_pairs_right", "_pairs_gap"))
        and c != "human_pushes"
        and per_video[c].notna().all()
    ]


def arm_table(per_video: pd.DataFrame, cfg: ReplayConfig) -> dict[str, dict]:
    """Every arm's mean CTR (percentile interval) and its uplift over the video's mean human push
    (geometric mean of per-video ratios, BCa interval) and beats rate (Wilson interval)."""
    idx = resample_index(len(per_video), cfg.n_boot, np.random.default_rng(cfg.seed + 1))
    base = per_video["human_mean"].to_numpy(float)
    out = {}
    for arm in arm_columns(per_video):
        values = per_video[arm].to_numpy(float)
        row = {"mean_ctr": float(values.mean()), "mean_ctr_ci": bootstrap_ci(values, idx)}
        if arm != "human_mean":
            row |= log_ratio_uplift(values, base, cfg.n_boot, cfg.seed + 2)
        out[arm] = row
    return out


def sent_redraws(
    per_video: pd.DataFrame, human: pd.DataFrame, arm: str, redraws: int, seed: int
) -> dict:
    """The headline arm's uplift over "the push that was sent" when which human push counts as
    sent is redrawn (uniformly among the video's pushes) `redraws` times: median and 95% range,
    beside the one draw the data records (the earliest push)."""
    rng = np.random.default_rng(seed)
    ctrs = human.groupby("video_id")["true_ctr"].apply(lambda c: c.to_numpy(float)).to_dict()
    system = np.log(per_video[arm].to_numpy(float))
    picks = [rng.integers(0, len(ctrs[v]), redraws) for v in per_video["video_id"]]
    logs = np.stack(
        [np.log(ctrs[v][p]) for v, p in zip(per_video["video_id"], picks, strict=True)]
    )  # videos x redraws
    draws = np.expm1(system.mean() - logs.mean(axis=0))
    earliest = log_ratio_uplift(per_video[arm], per_video["human_sent"], 200, seed)
    return {
        "median_uplift": float(np.median(draws)),
        "uplift_range_95": (float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))),
        "redraws": redraws,
        "earliest_push_uplift": earliest["uplift"],
    }


def beat_baseline(scored: pd.DataFrame, per_video: pd.DataFrame) -> dict[str, dict]:
    """The paper's beat-baseline rate per generator arm: the share of generated pushes (guard
    rejects included) whose true CTR exceeds the video's mean human push; Wilson interval."""
    base = per_video.set_index("video_id")["human_mean"]
    out = {}
    for arm, g in scored.groupby("arm", sort=False):
        wins = int((g["true_ctr"].to_numpy(float) > base.loc[g["video_id"]].to_numpy()).sum())
        out[arm] = {"rate": wins / len(g), "rate_ci": wilson(wins, len(g)), "pushes": len(g)}
    return out


def ranker_pairs(per_video: pd.DataFrame) -> dict[str, dict]:
    """The ranker's pairwise accuracy against the simulator's truth, on the held-out videos'
    human pushes and on their guarded SFT candidates (pairs within a video; Wilson intervals)."""
    out = {}
    for what in ("human", "sft"):
        if f"{what}_pairs" not in per_video:
            continue
        right = int(per_video[f"{what}_pairs_right"].fillna(0).sum())
        n = int(per_video[f"{what}_pairs"].fillna(0).sum())
        gap = float(per_video[f"{what}_pairs_gap"].fillna(0).sum())
        out[what] = {
            "pairs": n,
            "right": right,
            "mean_abs_log_ctr_gap": gap / n if n else float("nan"),
            "accuracy": right / n if n else float("nan"),
            "accuracy_ci": wilson(right, n),
        }
    return out


def ablations(per_video: pd.DataFrame, cfg: ReplayConfig) -> list[dict]:
    """Pairs of arms that differ in one thing, averages against averages: `on` over `off` as a
    geometric-mean uplift with its BCa interval."""
    pairs = [
        (
            "category control, random candidate (both sampled at T=0.8)",
            "sampled_random",
            "uncontrolled_random",
        ),
        (
            "category control, ranker's pick (both sampled at T=0.8)",
            "sampled_copeland",
            "uncontrolled_copeland",
        ),
        ("SFT vs base model, random candidate (both greedy)", "sft_random", "base_random"),
        ("SFT vs base model, ranker's pick (both greedy)", "sft_copeland", "base_copeland"),
        ("ranker vs random pick, SFT candidates", "sft_copeland", "sft_random"),
        ("ranker vs random pick, human pushes", "human_copeland", "human_mean"),
        (
            "greedy vs sampled at T=0.8, category control, random candidate",
            "sft_random",
            "sampled_random",
        ),
    ]
    out = []
    for name, on, off in pairs:
        if on in per_video and off in per_video:
            r = log_ratio_uplift(per_video[on], per_video[off], cfg.n_boot, cfg.seed + 3)
            out.append({"change": name, "on": on, "off": off, **r})
    return out


def loss_breakdown(per_video: pd.DataFrame, gen: dict) -> dict:
    """Where the chosen push's CTR goes, in mean true CTR: human -> generator -> guard -> ranker."""
    m = per_video.mean(numeric_only=True)
    oracle, rand, chosen = m["sft_oracle"], m["sft_random"], m[HEADLINE]
    gap = oracle - rand
    h_gap = m["human_best"] - m["human_mean"]
    return {
        "human_mean": float(m["human_mean"]),
        "human_sent": float(m["human_sent"]),
        "human_best": float(m["human_best"]),
        "human_copeland": float(m["human_copeland"]),
        "generator_mean_candidate": float(gen["sft"]["mean_true_ctr"]),
        "oracle_before_guard": float(m["sft_oracle_unguarded"]),
        "oracle_after_guard": float(oracle),
        "random_guarded_candidate": float(rand),
        "chosen": float(chosen),
        "guard_loss": float(m["sft_oracle_unguarded"] - oracle),
        "ranker_loss": float(oracle - chosen),
        "ranker_share_of_gap": float((chosen - rand) / gap) if gap > 0 else float("nan"),
        "ranker_share_of_human_gap": (
            float((m["human_copeland"] - m["human_mean"]) / h_gap) if h_gap > 0 else float("nan")
        ),
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
    run: RunArtifacts, sim: SimWorld, cfg: ReplayConfig, unseen_only: bool = True
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(report, every scored candidate, one row per video) for `cfg.videos` held-out videos
    (`unseen_only`: never ingested by the run; False: not trained on, see `held_out_videos`)."""
    from pushgen.data.simulator import true_ctr, true_style
    from pushgen.evidence.breakdown import feature_breakdown
    from pushgen.ranker.select import PairwiseRanker

    held = held_out_videos(run, sim, unseen_only)
    if cfg.videos > len(held) or not held:
        choose_videos(run, sim, cfg.videos, cfg.seed)  # the one-line error
    videos = (
        held
        if cfg.videos in (0, len(held))
        else sorted(
            np.random.default_rng(cfg.seed).choice(held, cfg.videos, replace=False).tolist()
        )
    )
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
    report = {
        "videos": len(videos),
        "held_out": len(held),
        "held_out_rule": "never ingested" if unseen_only else "not trained on",
        "categories": categories,
        "selection_methods": methods,
        "headline_arm": HEADLINE,
        "baseline": "human_mean",
        "config": {k: v for k, v in asdict(cfg).items() if k != "device"},
        "arms": arm_table(per_video, cfg),
        "sent_redraws": sent_redraws(per_video, human, HEADLINE, cfg.redraws, cfg.seed + 4),
        "beat_baseline": beat_baseline(scored, per_video),
        "ranker_pairs": ranker_pairs(per_video),
        "ablations": ablations(per_video, cfg),
        "generator": gen,
        "history_style_mix": {
            k: float(v) for k, v in human["true_category"].value_counts(normalize=True).items()
        },
        "loss_breakdown": loss_breakdown(per_video, gen),
        "coverage": float((per_video["sft_guarded"] > 0).mean()),
        "breakdown": feature_breakdown(sim, per_video, scored, human),
    }
    report["vs_baselines"] = {  # the same draws as the arm table's (identical for the mean)
        b: log_ratio_uplift(per_video[HEADLINE], per_video[b], cfg.n_boot, cfg.seed + 2)
        for b in ("human_mean", "human_sent", "human_best", "human_copeland")
    }
    covered = per_video[per_video["sft_guarded"] > 0]
    report["replaced_traffic"] = (
        log_ratio_uplift(covered[HEADLINE], covered["human_mean"], cfg.n_boot, cfg.seed + 5)
        if len(covered)
        else {}
    )
    return report, scored, per_video


def goals(report: dict, min_beat_baseline: float = 0.70) -> dict[str, bool]:
    """The method's goals: the chosen push beats the video's mean human push with the lower end
    of the 95% interval above 0, and the SFT generator's beat-baseline rate is >= 70%."""
    chosen = report["arms"][HEADLINE]
    return {
        "uplift_over_mean_human_ci_above_0": chosen["uplift_ci"][0] > 0,
        "beat_baseline_70pct": report["beat_baseline"]["sft"]["rate"] >= min_beat_baseline,
    }
