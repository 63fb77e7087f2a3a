"""The whole method on real text: the Upworthy archive from ingest to a served headline.

The settings (`UpworthyRunConfig`) and the data and training stages; the replay stages are in
`upworthy_replay`, and `upworthy_run.run_upworthy(archive, run_dir, cfg)` runs them all, each
once (a rerun resumes after the last stage that finished), with a progress line per stage and
its time:

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
from dataclasses import dataclass, field
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
    generate_stories: int = 400  # test stories the generator writes for (>= 200 for the README)
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
    # the styles the release writes in: the five the gold set finds on Upworthy (Practical,
    # Social proof and Urgency are 16 of 170 headlines there); None: every style in the data
    categories: tuple[str, ...] | None = (
        "Curiosity",
        "Emotion",
        "Humor",
        "Suspense",
        "Direct address",
    )
    sft_steps: int = 150
    sft_batch_size: int = 8
    sft_eval_rows: int = 64  # validation rows per evaluation
    sft_evals: int = 6  # validation evaluations during the run (plus one before it)
    sft_max_length: int = 256
    # the prompt: lede/excerpt first (a prefix all categories share), cut to this many tokens
    prompt_task: str = "Write a headline for this story in the given style."
    max_caption_tokens: int = 96
    encoder: str | None = None  # None: the packaged all-MiniLM-L6-v2 (fine-tuned head, labeller)
    ranker_epochs: float = 1.0
    ranker_max_tests: int | None = None  # train tests the fine-tuned head learns from (CPU budget)
    frozen_encoders: tuple[str, ...] = ("default", "all-mpnet-base-v2")
    # beside each frozen encoder's linear probe, a set scorer (`pushgen.ranker.frozen`) trained
    # on whole train tests and started at that probe ("set:<encoder>")
    set_scorers: bool = True
    # which recipe the release selects with: "auto" (the best on held-out significant pairs) or
    # one of "finetuned", "probe:<encoder>"; a setting of the release, not a code change
    ranker_recipe: str = "auto"
    eval_max_p: float = 1.0  # recipes are compared on test pairs with p <= this
    eval_max_pairs: int | None = None  # ... or a seeded sample of that many (CPU budget)
    max_new_tokens: int = 20
    temperature: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.judge_fraction + self.test_fraction < 1:
            raise ConfigError("judge_fraction + test_fraction must lie in (0, 1)")


def two_core_config() -> UpworthyRunConfig:
    """What fits 2 idle CPU cores in well under an hour: every story ingested, cleaned,
    labelled and split; a 120-step SFT (batch 8); the fine-tuned pairwise head on 600 train
    tests (its K(K-1) cross-encoder passes are what 2 cores cannot afford over all of them);
    the frozen MiniLM and all-mpnet-base-v2 probes and set scorers on every train test; recipes
    compared on every significant test pair; 240 test stories written. `full` is the size the
    method is meant to run at (on a GPU)."""
    return UpworthyRunConfig(
        sft_steps=120,
        sft_eval_rows=32,
        sft_evals=4,
        ranker_max_tests=600,
        eval_max_p=0.05,
        generate_stories=240,
    )


def tiny_config(base_model: str, encoder: str) -> UpworthyRunConfig:
    """The whole path with tiny models on a small slice (the fast tests)."""
    return UpworthyRunConfig(
        generate_stories=6,
        side_by_side=3,
        clean={"min_ctr": 0.0, "min_pv": 0, "min_cluster_size": 20},
        base_model=base_model,
        categories=None,
        sft_steps=4,
        sft_batch_size=4,
        sft_max_length=512,
        encoder=encoder,
        ranker_max_tests=None,
        frozen_encoders=(encoder,),
        max_new_tokens=6,
    )


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
    from pushgen.generator.prompts import PromptTemplate
    from pushgen.generator.sft import build_sft_table, train_generator

    videos = pd.read_parquet(run / "data" / "videos.parquet")
    captions = TextCaptioner().caption_videos(videos)
    write_table(captions, run / "data" / "captions.parquet")
    table, no_caption = build_sft_table(
        pd.read_parquet(run / "label" / "labelled.parquet"), captions
    )
    gen_cfg = GeneratorTrainConfig(
        base_model=cfg.base_model,
        categories=list(cfg.categories) if cfg.categories else None,
        max_steps=cfg.sft_steps,
        batch_size=cfg.sft_batch_size,
        max_length=cfg.sft_max_length,
        eval_steps=max(1, cfg.sft_steps // cfg.sft_evals),
        max_eval_rows=cfg.sft_eval_rows,
        template=PromptTemplate(
            task=cfg.prompt_task,
            order="caption_first",
            caption_label="Story: ",
            max_caption_tokens=cfg.max_caption_tokens,
        ),
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
    test_pairs = _pairs(test, cfg.eval_max_p)
    test_pairs = test_pairs[test_pairs["label"] != 0.5].reset_index(drop=True)
    if cfg.eval_max_pairs is not None and len(test_pairs) > cfg.eval_max_pairs:
        test_pairs = test_pairs.sample(cfg.eval_max_pairs, random_state=cfg.seed)
        test_pairs = test_pairs.reset_index(drop=True)
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
    if cfg.set_scorers:  # the set scorer reads every arm of a train test, not only its pairs
        texts = sorted(set(texts) | set(train["text"].astype(str)))
    probes = {}
    for enc in _available(cfg.frozen_encoders):
        cache = EmbeddingCache(run / "rankers" / "embeddings", None if enc == "default" else enc)
        table = dict(zip(texts, cache.embed(texts), strict=True))
        w = _probe(fit, table)
        name = f"probe:{_encoder_name(enc)}"
        if cfg.set_scorers:
            set_name = f"set:{_encoder_name(enc)}"
            preds[set_name] = _set_scorer(
                run / "rankers" / set_name.replace(":", "-"), train, table, w, test_pairs, cfg
            )
            probes[set_name] = {"encoder": enc, "set_scorer": set_name.replace(":", "-")}
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
    if cfg.eval_max_p < 1.0:  # only significant pairs were scored: no all-pairs figure
        for f in figures.values():
            f["accuracy"] = None
    best = max(figures, key=lambda k: figures[k]["accuracy_significant"] or 0)
    chosen = best if cfg.ranker_recipe == "auto" else cfg.ranker_recipe
    if chosen not in preds:
        raise ConfigError(f"ranker_recipe {chosen!r} was not trained; trained: {sorted(preds)}")
    paired = {n: mcnemar_vs(preds[n], preds[chosen], test_pairs) for n in preds if n != chosen}
    # the judge: the best frozen linear probe, refitted on the judge stories only
    linear = [k for k in probes if k.startswith("probe:")]
    judge_name = max(linear, key=lambda k: figures[k]["accuracy_significant"] or 0)
    out = {
        "figures": figures,
        "chosen": chosen,
        "best_measured": best,
        "setting": cfg.ranker_recipe,
        "eval_max_p": cfg.eval_max_p,
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


def _set_scorer(
    out: Path,
    train: pd.DataFrame,
    table: dict,
    probe_coef: np.ndarray,
    test_pairs: pd.DataFrame,
    cfg: UpworthyRunConfig,
) -> np.ndarray:
    """Train a set scorer on the train stories' tests (started at the linear probe, saved under
    `out`) and return its P(a beats b) on `test_pairs`, each test scored in one pass."""
    from pushgen.ranker.frozen import (
        FrozenListwiseConfig,
        save_set_scorer,
        set_scorer_scores,
        train_set_scorer,
    )
    from pushgen.ranker.listwise_train import ab_test_groups
    from pushgen.ranker.pairs import PairConfig
    from pushgen.ranker.scoring import pair_probs_by_test

    groups = ab_test_groups(
        train.drop(columns=["caption"]), PairConfig(max_p_value=0.1, match_on=PAIR_MATCH)
    )
    set_cfg = FrozenListwiseConfig(dim=len(probe_coef), anchor="probe", seed=cfg.seed)
    model = train_set_scorer(groups, table, set_cfg, probe_coef=probe_coef)
    save_set_scorer(model, out, {"train_tests": len(groups)})
    return pair_probs_by_test(lambda sets: set_scorer_scores(model, sets, table), test_pairs)


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
