"""The whole method on real text: the Upworthy archive from ingest to a served headline.

`run_upworthy(archive, run_dir, cfg)` runs, each stage once (a rerun resumes after the last stage
that finished; its output file is the marker), with a progress line per stage and its time:

1. ingest: `pushgen.data.upworthy` writes the contracts (stories as items, headlines as pushes,
   arms as A/B tests); bad arms aside with their reason;
2. split: stories into train / judge / test (whole stories, seeded);
3. clean: the filters the data allows, thresholds from `UpworthyRunConfig.clean` (Upworthy's
   CTRs are not a video platform's); 4. label: the embedding labeller on the kept headlines;
5. sft: LoRA SFT of the generator on lede/excerpt -> headline with category control and the
   confidence weights; its loss and validation curves are in `sft/metrics.json`;
6. rankers: the fine-tuned pairwise head and frozen probes (MiniLM, all-mpnet-base-v2 when
   installed) trained on the train stories, compared on the test stories with a paired test;
   the judge (a frozen probe trained on the judge stories only) for the generated headlines;
7. select: on the test stories' A/B tests whose arms differ in headline (same image), the
   realised CTR of the ranker's pick against a random arm and the best arm;
8. generate: one headline per category for each test story, the guard, the ranker's choice,
   judged against the human headlines; `generated.parquet` one row per candidate;
9. release: `release/generator` + `release/ranker` in the serving layout (`pushgen serve`).

`pushgen.evidence.upworthy_report` turns `results.json` into the HTML side by side and the
README's real-data section.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError
from pushgen.evidence.stats import bootstrap_ci, resample_index

STAGES = ("ingest", "split", "clean", "label", "sft", "rankers", "select", "generate", "release")
PAIR_MATCH = ("eyecatcher_id",)  # same image: the headline is the only difference left
STORY_LINKS = ("text", "lede")
N_BOOT = 2000


@dataclass
class UpworthyRunConfig:
    """Sizes and settings of one real-data run (the defaults: the packaged models, full size)."""

    max_stories: int | None = None  # None: every story of the archive; else a seeded sample
    judge_fraction: float = 0.2
    test_fraction: float = 0.2
    generate_stories: int = 200  # test stories the generator writes for (>= 200 for the README)
    side_by_side: int = 30
    # Upworthy's CTRs are ~1.4% on average (a video feed's are not): crop its bottom tail only
    clean: dict = field(
        default_factory=lambda: {
            "min_ctr": 0.004,
            "min_pv": 1000,
            "min_cluster_size": 20,
            "weighting": "bounded",
        }
    )
    base_model: str = "default"  # the packaged SmolLM2-135M-Instruct
    sft_steps: int = 40
    sft_batch_size: int = 8
    sft_max_length: int = 256
    encoder: str | None = None  # None: the packaged all-MiniLM-L6-v2 (fine-tuned head, labeller)
    ranker_epochs: float = 1.0
    ranker_max_tests: int | None = 500  # train tests the fine-tuned head learns from (CPU budget)
    frozen_encoders: tuple[str, ...] = ("default", "all-mpnet-base-v2")
    # which recipe the release selects with: "auto" (the best on held-out significant pairs) or
    # one of "finetuned", "probe:<encoder>"; a setting of the release, not a code change
    ranker_recipe: str = "auto"
    max_new_tokens: int = 20
    temperature: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.judge_fraction + self.test_fraction < 1:
            raise ConfigError("judge_fraction + test_fraction must lie in (0, 1)")


def tiny_config(base_model: str, encoder: str) -> UpworthyRunConfig:
    """The whole path with tiny models on a small slice (the fast tests)."""
    return UpworthyRunConfig(
        generate_stories=6,
        side_by_side=3,
        clean={"min_ctr": 0.0, "min_pv": 0, "min_cluster_size": 20},
        base_model=base_model,
        sft_steps=4,
        sft_batch_size=4,
        sft_max_length=512,
        encoder=encoder,
        ranker_max_tests=None,
        frozen_encoders=(encoder,),
        max_new_tokens=6,
    )


class Stages:
    """Run each stage once: its marker file present means done (a rerun resumes)."""

    def __init__(self, run_dir: Path, log: Callable[[str], None] = print) -> None:
        self.run_dir, self.log = run_dir, log
        self.timing_file = run_dir / "timings.json"
        self.timings = json.loads(self.timing_file.read_text()) if self.timing_file.exists() else {}

    def run(self, name: str, marker: str, fn: Callable[[], object]) -> None:
        k = STAGES.index(name) + 1
        if (self.run_dir / marker).exists():
            self.log(f"[{k}/{len(STAGES)}] {name}: done earlier ({self.timings.get(name, '?')} s)")
            return
        self.log(f"[{k}/{len(STAGES)}] {name} ...")
        started = time.perf_counter()
        fn()
        self.timings[name] = round(time.perf_counter() - started, 1)
        self.timing_file.write_text(json.dumps(self.timings, indent=2))
        self.log(f"[{k}/{len(STAGES)}] {name}: {self.timings[name]} s")


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def split_stories(story_ids: pd.Series, cfg: UpworthyRunConfig) -> dict[str, list[str]]:
    """{train, judge, test}: every story wholly on one side, in a seeded order."""
    stories = sorted(story_ids.astype(str).unique())
    random.Random(cfg.seed).shuffle(stories)
    if cfg.max_stories is not None:
        stories = stories[: cfg.max_stories]
    n = len(stories)
    n_test, n_judge = max(1, round(n * cfg.test_fraction)), max(1, round(n * cfg.judge_fraction))
    return {
        "test": sorted(stories[:n_test]),
        "judge": sorted(stories[n_test : n_test + n_judge]),
        "train": sorted(stories[n_test + n_judge :]),
    }


# --- stages ------------------------------------------------------------------------------------


def stage_clean(run: Path, cfg: UpworthyRunConfig) -> None:
    from pushgen.data.clean import clean_metrics, clean_pushes, config_from_dict
    from pushgen.data.contracts import write_table

    split = _read(run / "split.json")
    pushes = pd.read_parquet(run / "data" / "pushes.parquet")
    videos = pd.read_parquet(run / "data" / "videos.parquet")
    train = pushes[pushes["video_id"].isin(split["train"])]
    result = clean_pushes(train, config_from_dict(cfg.clean), videos=videos)
    write_table(result.removed.astype(str), run / "clean" / "removed.parquet")
    report = {**result.report, "metrics": clean_metrics(result.report)}
    _write(run / "clean" / "report.json", report)
    write_table(result.cleaned, run / "clean" / "cleaned.parquet")


def stage_label(run: Path, cfg: UpworthyRunConfig) -> None:
    from pushgen.data.contracts import write_table
    from pushgen.data.label import EmbeddingLabeller, label_report, label_with_rejects

    labeller = EmbeddingLabeller(model_name_or_path=cfg.encoder)
    labelled, rejected = label_with_rejects(
        pd.read_parquet(run / "clean" / "cleaned.parquet"), labeller
    )
    _write(
        run / "label" / "report.json",
        {**label_report(labelled, labeller.categories), "rejected": len(rejected)},
    )
    write_table(labelled, run / "label" / "labelled.parquet")


def stage_sft(run: Path, cfg: UpworthyRunConfig) -> None:
    from pushgen.data.caption import TextCaptioner
    from pushgen.data.contracts import write_table
    from pushgen.generator.config import GeneratorTrainConfig
    from pushgen.generator.sft import build_sft_table, train_generator

    videos = pd.read_parquet(run / "data" / "videos.parquet")
    captions = TextCaptioner().caption_videos(videos)
    write_table(captions, run / "data" / "captions.parquet")
    table, no_caption = build_sft_table(
        pd.read_parquet(run / "label" / "labelled.parquet"), captions
    )
    gen_cfg = GeneratorTrainConfig(
        base_model=cfg.base_model,
        max_steps=cfg.sft_steps,
        batch_size=cfg.sft_batch_size,
        max_length=cfg.sft_max_length,
        eval_steps=max(1, cfg.sft_steps // 6),
        max_eval_rows=64,
        seed=cfg.seed,
        progress=True,
    )
    metrics = train_generator(table, run / "sft", gen_cfg)
    metrics["no_caption"] = len(no_caption)
    metrics["base_model"] = cfg.base_model
    _write(run / "sft" / "run_metrics.json", metrics)


def _arms(run: Path, stories: list[str]) -> pd.DataFrame:
    ab = pd.read_parquet(run / "data" / "ab_tests.parquet")
    captions = pd.read_parquet(run / "data" / "captions.parquet")
    lookup = dict(zip(captions["video_id"], captions["caption"], strict=True))
    ab = ab[ab["video_id"].isin(set(stories))].copy()
    ab["caption"] = ab["video_id"].map(lookup).fillna("")
    return ab.reset_index(drop=True)


def _pairs(arms: pd.DataFrame, max_p: float) -> pd.DataFrame:
    from pushgen.ranker.pairs import PairConfig, build_pairs_report

    cfg = PairConfig(max_p_value=max_p, match_on=PAIR_MATCH, carry_test=("nonrandom_assignment",))
    return build_pairs_report(arms, cfg).pairs


def _probe(pairs: pd.DataFrame, table: dict) -> np.ndarray:
    from pushgen.ranker.frozen import linear_probe

    return linear_probe(pairs, table, c=0.1).coef_[0].astype(np.float32)


def _encoder_name(encoder: str) -> str:
    return Path(str(encoder)).name


def stage_rankers(run: Path, cfg: UpworthyRunConfig) -> None:
    """Train the candidates on the train stories, the judge on the judge stories, and pick the
    release's recipe on the test stories' pairs (accuracy on significant pairs, McNemar)."""
    from pushgen.ranker.config import RankerTrainConfig
    from pushgen.ranker.frozen import EmbeddingCache
    from pushgen.ranker.frozen_eval import mcnemar_vs
    from pushgen.ranker.metrics import pairwise_metrics
    from pushgen.ranker.pairs import PairConfig, StorySplitConfig
    from pushgen.ranker.recipe import AbTestsSource, RankerRecipeConfig, train_from_ab_tests
    from pushgen.ranker.select import PairwiseRanker

    split = _read(run / "split.json")
    train, judge, test = (_arms(run, split[k]) for k in ("train", "judge", "test"))
    test_pairs = _pairs(test, 1.0)
    test_pairs = test_pairs[test_pairs["label"] != 0.5].reset_index(drop=True)
    preds, figures = {}, {}
    # fine-tuned pairwise head (the project's default recipe) on the train stories
    recipe = RankerRecipeConfig(
        pairs=PairConfig(max_p_value=0.1),
        split=StorySplitConfig(val_fraction=0.1, seed=cfg.seed),
        train=RankerTrainConfig(backbone=cfg.encoder, epochs=cfg.ranker_epochs, use_caption=False),
    )
    ft_arms = train.drop(columns=["caption"])
    tests = sorted(ft_arms["test_id"].unique())
    if cfg.ranker_max_tests is not None and len(tests) > cfg.ranker_max_tests:
        keep = set(random.Random(cfg.seed).sample(tests, cfg.ranker_max_tests))
        ft_arms = ft_arms[ft_arms["test_id"].isin(keep)]
    source = AbTestsSource(ft_arms, "upworthy", PAIR_MATCH, STORY_LINKS)
    train_from_ab_tests(source, run / "rankers" / "finetuned", recipe)
    ranker = PairwiseRanker.from_pretrained(run / "rankers" / "finetuned")
    preds["finetuned"] = ranker.score_pairs(list(test_pairs["text_a"]), list(test_pairs["text_b"]))
    # frozen probes on e_a - e_b, trained on the train stories' p < 0.1 pairs
    fit = _pairs(train, 0.1)
    judge_fit = _pairs(judge, 0.1)
    texts = sorted(
        set(fit["text_a"])
        | set(fit["text_b"])
        | set(judge_fit["text_a"])
        | set(judge_fit["text_b"])
        | set(test_pairs["text_a"])
        | set(test_pairs["text_b"])
    )
    probes = {}
    for enc in _available(cfg.frozen_encoders):
        cache = EmbeddingCache(run / "rankers" / "embeddings", None if enc == "default" else enc)
        table = dict(zip(texts, cache.embed(texts), strict=True))
        w = _probe(fit, table)
        name = f"probe:{_encoder_name(enc)}"
        diff = np.stack(
            [
                table[a] - table[b]
                for a, b in zip(test_pairs["text_a"], test_pairs["text_b"], strict=True)
            ]
        )
        preds[name] = 1.0 / (1.0 + np.exp(-diff @ w))
        probes[name] = {
            "encoder": enc,
            "coef": w.tolist(),
            "judge_coef": _probe(judge_fit, table).tolist(),
        }
    for name, p in preds.items():
        m = pairwise_metrics(p, test_pairs["label"], p_value=test_pairs["p_value"])
        figures[name] = {
            k: m[k]
            for k in ("pairs", "accuracy", "significant_pairs", "accuracy_significant", "auc")
        }
        sig = (test_pairs["p_value"] < 0.05).to_numpy()
        right = ((p[sig] > 0.5) == (test_pairs["label"].to_numpy()[sig] == 1)).astype(float)
        idx = resample_index(len(right), N_BOOT, np.random.default_rng(cfg.seed))
        figures[name]["accuracy_significant_ci"] = bootstrap_ci(right, idx) if len(right) else None
    best = max(figures, key=lambda k: figures[k]["accuracy_significant"] or 0)
    chosen = best if cfg.ranker_recipe == "auto" else cfg.ranker_recipe
    if chosen not in preds:
        raise ConfigError(f"ranker_recipe {chosen!r} was not trained; trained: {sorted(preds)}")
    paired = {n: mcnemar_vs(preds[n], preds[chosen], test_pairs) for n in preds if n != chosen}
    # the judge: the best frozen probe, refitted on the judge stories only
    judge_name = max(probes, key=lambda k: figures[k]["accuracy_significant"] or 0)
    out = {
        "figures": figures,
        "chosen": chosen,
        "setting": cfg.ranker_recipe,
        "paired_vs_chosen": paired,
        "judge": {
            "recipe": judge_name,
            "stories": len(split["judge"]),
            "fit_pairs": len(judge_fit),
        },
        "train_fit_pairs": len(fit),
        "test_pairs": len(test_pairs),
    }
    _write(run / "rankers" / "probes.json", probes)
    _write(run / "rankers" / "choice.json", out)


def _available(encoders: tuple[str, ...]) -> list[str]:
    """The frozen encoders installed here (all-mpnet-base-v2 needs `make install-mpnet`)."""
    from pushgen.core.models import resolve_encoder

    out = []
    for enc in encoders:
        try:
            resolve_encoder(None if enc == "default" else enc)
            out.append(enc)
        except Exception as exc:  # noqa: BLE001 - a missing optional package: say so, go on
            print(f"  frozen encoder {enc} not available ({exc}); skipped")
    return out


class Scorer:
    """Score texts with the chosen recipe: a pairwise model's Copeland ranking or a probe's w.e."""

    def __init__(self, run: Path, recipe: str, judge: bool = False) -> None:
        self.recipe = recipe
        if recipe == "finetuned":
            from pushgen.ranker.select import PairwiseRanker

            self.ranker = PairwiseRanker.from_pretrained(run / "rankers" / "finetuned")
        else:
            from pushgen.ranker.frozen import EmbeddingCache

            probe = _read(run / "rankers" / "probes.json")[recipe]
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
        return self._embed(texts) @ self.w

    def p_beats(self, a: list[str], b: list[str]) -> np.ndarray:
        """P(a[i] beats b[i])."""
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
    served ranker is the fine-tuned pairwise model (the servers load a pairwise model); the
    recipe the replay selected with is recorded next to it."""
    import shutil

    rel = run / "release"
    if rel.exists():
        shutil.rmtree(rel)
    shutil.copytree(run / "sft", rel / "generator", ignore=shutil.ignore_patterns("checkpoint-*"))
    shutil.copytree(
        run / "rankers" / "finetuned", rel / "ranker", ignore=shutil.ignore_patterns("data")
    )
    choice = _read(run / "rankers" / "choice.json")
    _write(
        rel / "release.json",
        {"ranker_recipe": choice["chosen"], "served_ranker": "finetuned", "setting": asdict(cfg)},
    )


def run_upworthy(
    archive: str | Path,
    run_dir: str | Path,
    cfg: UpworthyRunConfig | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Every stage, resuming; returns the collected results (also `<run_dir>/results.json`)."""
    from pushgen.data.upworthy import ingest_upworthy

    cfg = cfg or UpworthyRunConfig()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    settings = run / "settings.json"
    if settings.exists() and _read(settings) != json.loads(json.dumps(asdict(cfg), default=str)):
        log(f"settings differ from the run in {run}: use a new directory (or delete it) to rerun")
        raise ConfigError(f"{run} holds a run with other settings ({settings})")
    _write(settings, asdict(cfg))
    st = Stages(run, log)
    st.run("ingest", "data/ingest_report.json", lambda: ingest_upworthy(archive, run / "data"))

    def split() -> None:
        videos = pd.read_parquet(run / "data" / "videos.parquet")
        _write(run / "split.json", split_stories(videos["video_id"], cfg))

    st.run("split", "split.json", split)
    st.run("clean", "clean/cleaned.parquet", lambda: stage_clean(run, cfg))
    st.run("label", "label/labelled.parquet", lambda: stage_label(run, cfg))
    st.run("sft", "sft/run_metrics.json", lambda: stage_sft(run, cfg))
    st.run("rankers", "rankers/choice.json", lambda: stage_rankers(run, cfg))
    st.run("select", "select/select.json", lambda: stage_select(run, cfg))
    st.run("generate", "generate/generate.json", lambda: stage_generate(run, cfg))
    st.run("release", "release/release.json", lambda: stage_release(run, cfg))
    from pushgen.evidence.upworthy_report import collect

    results = collect(run, replace(cfg))
    _write(run / "results.json", results)
    return results
