"""The replay half of a real-data run (`pushgen.evidence.upworthy`): how a recipe scores texts
(`Scorer`), selection on real clicks (`stage_select`), generated headlines judged against the
human ones (`stage_generate`) and the release in the serving layout (`stage_release`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.evidence.stats import bootstrap_ci, resample_index
from pushgen.evidence.upworthy import N_BOOT, UpworthyRunConfig, _arms, _read, _write


class Scorer:
    """Score texts with the chosen recipe: a pairwise model's Copeland ranking or a probe's w.e."""

    def __init__(self, run: Path, recipe: str, judge: bool = False) -> None:
        self.recipe = recipe
        if recipe == "finetuned":
            from pushgen.ranker.select import PairwiseRanker

            self.ranker = PairwiseRanker.from_pretrained(run / "rankers" / "finetuned")
        else:
            from pushgen.ranker.frozen import EmbeddingCache, load_set_scorer

            probe = _read(run / "rankers" / "probes.json")[recipe]
            self.set_scorer = None
            if "set_scorer" in probe:  # a set scorer: the candidates are scored together
                self.set_scorer = load_set_scorer(run / "rankers" / probe["set_scorer"])
            else:
                self.w = np.asarray(probe["judge_coef" if judge else "coef"], np.float32)
            enc = probe["encoder"]
            self.cache = EmbeddingCache(
                run / "rankers" / "embeddings", None if enc == "default" else enc
            )
            self.table: dict[str, np.ndarray] = {}

    def prepare(self, texts: list[str]) -> None:
        """Embed every text a probe will score, in one pass (one model load)."""
        if self.recipe != "finetuned":
            unique = sorted(set(texts))
            self.table = dict(zip(unique, self.cache.embed(unique), strict=True))

    def _embed(self, texts: list[str]) -> np.ndarray:
        if any(t not in self.table for t in texts):
            self.prepare([*self.table, *texts])
        return np.stack([self.table[t] for t in texts])

    def scores(self, texts: list[str]) -> np.ndarray:
        if self.recipe == "finetuned":
            return np.asarray(self.ranker.rank(texts).scores, float)
        if self.set_scorer is not None:
            from pushgen.ranker.frozen import set_scorer_scores

            self._embed(texts)
            return set_scorer_scores(self.set_scorer, [(texts, None)], self.table)[0]
        return self._embed(texts) @ self.w

    def p_beats(self, a: list[str], b: list[str]) -> np.ndarray:
        """P(a[i] beats b[i]) (a set scorer: each pair scored as a set of two)."""
        if self.recipe != "finetuned" and self.set_scorer is not None:
            s = np.array([self.scores([x, y]) for x, y in zip(a, b, strict=True)])
            return 1.0 / (1.0 + np.exp(-(s[:, 0] - s[:, 1])))
        if self.recipe == "finetuned":
            fwd = self.ranker.score_pairs(a, b)
            back = self.ranker.score_pairs(b, a)
            return (np.asarray(fwd) + 1.0 - np.asarray(back)) / 2.0
        diff = self._embed(a) @ self.w - self._embed(b) @ self.w
        return 1.0 / (1.0 + np.exp(-diff))


def stage_select(run: Path, cfg: UpworthyRunConfig) -> None:
    """Selection on real clicks: the ranker's pick among the human arms of each test-story group
    (one test, one image, >= 2 distinct headlines) against a random arm and the best arm."""
    split = _read(run / "split.json")
    choice = _read(run / "rankers" / "choice.json")
    scorer = Scorer(run, choice["chosen"])
    test = _arms(run, split["test"])
    test["eyecatcher_id"] = test["eyecatcher_id"].fillna("")
    scorer.prepare(test["text"].tolist())
    rows = []
    for (test_id, _img), g in test.groupby(["test_id", "eyecatcher_id"]):
        g = g.groupby("text", as_index=False)[["pv", "clicks"]].sum()  # one arm per headline
        if len(g) < 2 or (g["pv"] <= 0).any():
            continue
        ctr = (g["clicks"] / g["pv"]).to_numpy()
        pick = int(np.argmax(scorer.scores(g["text"].tolist())))
        rows.append(
            {
                "test_id": test_id,
                "arms": len(g),
                "pick": ctr[pick],
                "random": ctr.mean(),
                "best": ctr.max(),
                "worst": ctr.min(),
            }
        )
    df = pd.DataFrame(rows)
    idx = resample_index(len(df), N_BOOT, np.random.default_rng(cfg.seed))
    out = {"groups": len(df), "recipe": choice["chosen"]}
    for k in ("pick", "random", "best", "worst"):
        out[k] = {"mean_ctr": float(df[k].mean()), "ci": bootstrap_ci(df[k].to_numpy(), idx)}
    lift = (df["pick"] - df["random"]).to_numpy()
    out["pick_minus_random"] = {"mean": float(lift.mean()), "ci": bootstrap_ci(lift, idx)}
    b, r = df["pick"].to_numpy()[idx].mean(1), df["random"].to_numpy()[idx].mean(1)
    out["relative_uplift"] = {
        "mean": float(df["pick"].mean() / df["random"].mean() - 1),
        "ci": [float(np.percentile(b / r - 1, 2.5)), float(np.percentile(b / r - 1, 97.5))],
    }
    gap = df["best"] - df["random"]
    out["share_of_oracle_gain"] = float(lift.sum() / gap.sum()) if gap.sum() > 0 else None
    out["pick_is_best"] = float((df["pick"] == df["best"]).mean())
    (run / "select").mkdir(parents=True, exist_ok=True)
    df.to_parquet(run / "select" / "groups.parquet", index=False)
    _write(run / "select" / "select.json", out)


def stage_generate(run: Path, cfg: UpworthyRunConfig) -> None:
    """One headline per category for each test story; guard; the ranker's choice; the judge."""
    from pushgen.data.label import EmbeddingLabeller, encode_texts
    from pushgen.generator.generate import CandidateGenerator, GenerationConfig

    split = _read(run / "split.json")
    choice = _read(run / "rankers" / "choice.json")
    captions = pd.read_parquet(run / "data" / "captions.parquet").set_index("video_id")["caption"]
    ab = pd.read_parquet(run / "data" / "ab_tests.parquet")
    stories = [s for s in split["test"] if s in captions.index][: cfg.generate_stories]
    generator = CandidateGenerator.from_pretrained(run / "sft")
    categories = list(_read(run / "sft" / "pushgen_generator.json")["categories"])
    gen_cfg = GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
        repetition_penalty=1.2,
    )
    batches = generator.generate_many([captions[s] for s in stories], categories, config=gen_cfg)
    selector = Scorer(run, choice["chosen"])
    judge = Scorer(run, choice["judge"]["recipe"], judge=True)
    labeller = EmbeddingLabeller(model_name_or_path=cfg.encoder)
    every = [c.text for cands in batches for c in cands] + ab[ab["video_id"].isin(stories)][
        "text"
    ].tolist()
    selector.prepare(every)
    judge.prepare(every)
    rows, judged = [], []
    for story, cands in zip(stories, batches, strict=True):
        arms = ab[ab["video_id"] == story]
        ids = arms["test_id"].iloc[0]
        texts = [c.text for c in cands]
        ok = [c.guard_ok and bool(c.text.strip()) for c in cands]
        chosen = -1
        if any(ok):
            pool = [i for i, good in enumerate(ok) if good]
            chosen = (
                pool[int(np.argmax(selector.scores([texts[i] for i in pool])))]
                if len(pool) > 1
                else pool[0]
            )
        labels = labeller.predict([t if t.strip() else "-" for t in texts])
        for i, c in enumerate(cands):
            rows.append(
                {
                    "clickability_test_id": ids,
                    "story": story,
                    "category": c.category,
                    "text": c.text,
                    "chosen": i == chosen,
                    "guard_ok": ok[i],
                    "guard_reasons": "; ".join(c.guard_reasons)
                    or ("empty" if not c.text.strip() else ""),
                    "labelled_as": labels[i],
                }
            )
        humans = arms.groupby("text")[["pv", "clicks"]].sum().reset_index()
        if chosen >= 0:
            p = judge.p_beats([texts[chosen]] * len(humans), humans["text"].tolist())
            best = int(np.argmax((humans["clicks"] / humans["pv"].clip(lower=1)).to_numpy()))
            judged.append(
                {
                    "story": story,
                    "beat_share": float((p > 0.5).mean()),
                    "beats_best_human": float(p[best] > 0.5),
                    "p_vs_best": float(p[best]),
                }
            )
    gen = pd.DataFrame(rows)
    jd = pd.DataFrame(judged)
    # distinctness: 1 - mean cosine between the guarded candidates of one story
    dist = []
    for _, g in gen[gen["guard_ok"]].groupby("story"):
        if len(g) > 1:
            e = encode_texts(g["text"].tolist(), cfg.encoder)
            sim = e @ e.T
            dist.append(1.0 - float(sim[np.triu_indices(len(g), 1)].mean()))
    rng = np.random.default_rng(cfg.seed)
    idx = resample_index(len(jd), N_BOOT, rng)
    guard = gen["guard_reasons"].str.split("; ").explode()
    ok = gen[gen["guard_ok"]]
    out = {
        "stories": int(gen["story"].nunique()),
        "candidates": len(gen),
        "judge": choice["judge"],
        "beat_rate_vs_humans": {
            "mean": float(jd["beat_share"].mean()),
            "ci": bootstrap_ci(jd["beat_share"].to_numpy(), idx),
        },
        "beat_rate_vs_best_human": {
            "mean": float(jd["beats_best_human"].mean()),
            "ci": bootstrap_ci(jd["beats_best_human"].to_numpy(), idx),
        },
        "controllability": float((ok["labelled_as"] == ok["category"]).mean()) if len(ok) else None,
        "controllability_by_category": {
            str(k): float(v)
            for k, v in (ok["labelled_as"] == ok["category"]).groupby(ok["category"]).mean().items()
        },
        "guard_rejection_rate": float(1 - gen["guard_ok"].mean()),
        "guard_reasons": {
            str(k): int(v)
            for k, v in guard[guard != ""].str.split(":").str[0].value_counts().items()
        },
        "distinct_texts_per_story": float(ok.groupby("story")["text"].nunique().mean())
        if len(ok)
        else 0.0,
        "distinctness": float(np.mean(dist)) if dist else None,
        "stories_without_a_choice": int(gen.groupby("story")["chosen"].sum().eq(0).sum()),
    }
    out["controllability_ci"] = None
    if len(ok):
        hit = (ok["labelled_as"] == ok["category"]).to_numpy(float)
        out["controllability_ci"] = bootstrap_ci(hit, resample_index(len(hit), N_BOOT, rng))
    (run / "generate").mkdir(parents=True, exist_ok=True)
    gen.to_parquet(run / "generate" / "candidates.parquet", index=False)
    jd.to_parquet(run / "generate" / "judged.parquet", index=False)
    _write(run / "generate" / "generate.json", out)


def stage_release(run: Path, cfg: UpworthyRunConfig) -> None:
    """`release/generator` and `release/ranker`: the serving layout `pushgen serve` reads. The
    ranker is the recipe the run chose (`ranker_recipe`, a setting): the fine-tuned pairwise
    model as trained, or a frozen encoder (copied in) with its probe or set scorer
    (`serving.frozen_ranker`'s layout), which the ranker server loads the same way."""
    import shutil

    from pushgen.core.models import resolve_encoder
    from pushgen.ranker.frozen import MAX_LENGTH, POOL_LAYERS

    rel = run / "release"
    if rel.exists():
        shutil.rmtree(rel)
    shutil.copytree(run / "sft", rel / "generator", ignore=shutil.ignore_patterns("checkpoint-*"))
    choice = _read(run / "rankers" / "choice.json")
    chosen = choice["chosen"]
    if chosen == "finetuned":
        shutil.copytree(
            run / "rankers" / "finetuned", rel / "ranker", ignore=shutil.ignore_patterns("data")
        )
    else:
        probe = _read(run / "rankers" / "probes.json")[chosen]
        enc = probe["encoder"]
        shutil.copytree(
            resolve_encoder(None if enc == "default" else enc), rel / "ranker" / "encoder"
        )
        manifest = {"kind": "set" if "set_scorer" in probe else "probe", "recipe": chosen}
        if "set_scorer" in probe:
            shutil.copytree(run / "rankers" / probe["set_scorer"], rel / "ranker" / "set_scorer")
        else:
            manifest["coef"] = probe["coef"]
        _write(
            rel / "ranker" / "frozen_ranker.json",
            {**manifest, "layers": POOL_LAYERS, "max_length": MAX_LENGTH},
        )
    _write(
        rel / "release.json",
        {"ranker_recipe": chosen, "served_ranker": chosen, "setting": asdict(cfg)},
    )
