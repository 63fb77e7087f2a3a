"""The quality gate: promote a candidate release only if it is no worse than production.

Before `register`, the candidate (the models this run trained) and the production version (the
store's `LATEST`) are scored on the same held-out data, the candidate's own held-out split:

- generator: controllability (share of candidates the labeller assigns to the requested
  category) and, when the simulator's world is known, the replayed true-CTR uplift (mean true
  CTR of the generated candidates minus that of the videos' human pushes);
- ranker: pairwise accuracy and expected calibration error on the held-out A/B pairs (both
  orders scored, decisions on the symmetrised probability).

Promotion needs no regression beyond the stated tolerance on any figure (`GateConfig`); a part
carried over from production unchanged is not compared. With no production version (an empty
store) the first candidate passes: there is nothing to regress from. The production ranker may
have trained on some of the candidate's held-out tests, which can only flatter production, so
the gate errs towards keeping what serves now.

    decision = run_gate(GateInputs(...), GateConfig())
    decision["promote"], decision["checks"]
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pushgen.core.errors import ConfigError

PARTS = ("generator", "ranker")


@dataclass
class GateConfig:
    """Tolerances (how much worse a candidate may be) and the size of the held-out check."""

    controllability_tolerance: float = 0.05  # candidate >= production - this (absolute share)
    uplift_tolerance: float = 0.005  # replayed true-CTR uplift: candidate >= production - this
    accuracy_tolerance: float = 0.03  # ranker pairwise accuracy: candidate >= production - this
    ece_tolerance: float = 0.05  # ranker ECE: candidate <= production + this
    n_videos: int = 12  # held-out videos the two generators write for (one candidate/category)
    max_new_tokens: int = 40  # generation budget per candidate
    encoder: str | None = None  # sentence encoder of the category labeller (None: MiniLM)
    seed: int = 0  # video sampling


@dataclass
class GateInputs:
    """Local paths of what the gate reads."""

    generator_dir: str  # the candidate generator (SFT output or carried-over copy)
    ranker_dir: str  # the candidate ranker
    captions: str  # captions table (video_id, caption)
    pushes: str  # human pushes of the run's data (for the uplift's baseline)
    ab_tests: str  # the run's A/B tests (held-out stories from the ranker's split.json)
    world: str  # world.json (`{}` for real data: no true CTR)
    store_uri: str  # the artifact store holding the production version
    parts: tuple[str, ...] = PARTS  # the parts this run trained (others were carried over)
    production: str = "latest"  # the version to compare with ("latest": what serves now)
    heldout_dir: str | None = None  # whose split.json/calibration.json pick the held-out pairs


def parse_parts(text: str) -> tuple[str, ...]:
    """`"both"`, `"generator"`, `"ranker"` or `"generator,ranker"` -> the parts tuple."""
    names = [p.strip() for p in str(text).replace("both", "generator,ranker").split(",")]
    names = [p for p in names if p]
    bad = sorted(set(names) - set(PARTS))
    if bad or not names:
        raise ConfigError(f"bad retrain part(s) {text!r}: use generator, ranker or both")
    return tuple(p for p in PARTS if p in names)


def production_version(store_uri: str, version: str = "latest") -> dict | None:
    """The manifest of `version` (default: the store's LATEST), or None when `latest` is asked
    of a store with no version yet; a named version that does not exist is a `StoreError`."""
    from pushgen.core.store import LATEST, ArtifactStore

    store = ArtifactStore.from_uri(store_uri)
    if version == "latest" and not store.exists(LATEST):
        return None
    return store.resolve(version)


# ----------------------------------------------------------------------------- scoring


def score_generators(
    generators: dict[str, Any], inputs: GateInputs, cfg: GateConfig
) -> dict[str, dict]:
    """{name: {controllability, [mean_true_ctr, uplift]}} for each generator, same videos."""
    from pushgen.data.categories import DEFAULT_CATEGORIES
    from pushgen.data.label import EmbeddingLabeller
    from pushgen.data.simulator import World, true_ctr
    from pushgen.generator.evaluate import generate_candidates, pick_eval_videos
    from pushgen.generator.generate import GenerationConfig

    captions = pd.read_parquet(inputs.captions).drop_duplicates("video_id")
    cand = next(iter(generators.values()))
    split_file = Path(inputs.generator_dir) / "split.json"
    split = json.loads(split_file.read_text()) if split_file.exists() else {}
    videos = (
        pick_eval_videos(
            captions["video_id"].tolist(),
            split.get("val_videos", []),
            split.get("train_videos", []),
            cfg.n_videos,
            cfg.seed,
        )
        or captions["video_id"].tolist()[: cfg.n_videos]
    )
    chosen = captions[captions["video_id"].isin(videos)]
    by_video = dict(zip(chosen["video_id"], chosen["caption"].astype(str), strict=True))
    categories = list(cand.category_descriptions) or list(DEFAULT_CATEGORIES)
    labeller = EmbeddingLabeller(categories, cfg.encoder)
    world_doc = json.loads(Path(inputs.world).read_text() or "{}")
    world = World.load(inputs.world) if world_doc else None
    human = None
    if world is not None:
        pushes = pd.read_parquet(inputs.pushes)
        pushes = pushes[pushes["video_id"].isin(set(by_video))]
        human = (
            float(
                np.mean(
                    [
                        true_ctr(world, v, t)
                        for v, t in zip(pushes["video_id"], pushes["text"], strict=True)
                    ]
                )
            )
            if len(pushes)
            else None
        )
    # greedy: the same model on the same prompt writes the same push, so the comparison is stable
    gen_cfg = GenerationConfig(max_new_tokens=cfg.max_new_tokens, do_sample=False, seed=cfg.seed)
    out = {}
    for name, generator in generators.items():
        cands = generate_candidates(generator, by_video, categories, gen_cfg)
        texts = cands["text"].astype(str).tolist()
        labels = labeller.predict(texts) if texts else []
        figures = {
            "videos": len(by_video),
            "controllability": float(np.mean(np.asarray(labels) == cands["category"].to_numpy())),
        }
        if world is not None:
            ctr = [true_ctr(world, v, t) for v, t in zip(cands["video_id"], texts, strict=True)]
            figures["mean_true_ctr"] = float(np.mean(ctr))
            if human is not None:
                figures["uplift"] = figures["mean_true_ctr"] - human
        out[name] = figures
    return out


def score_rankers(rankers: dict[str, Any], inputs: GateInputs) -> dict[str, dict]:
    """{name: {pairs, accuracy, ece, temperature}} for each ranker on the candidate's held-out
    A/B pairs, the tests its temperature was fitted on left out (pushgen/ranker/calibrate.py).
    A ranker saved without a temperature (older than calibration) is fitted on those calibration
    pairs here, so calibrated ECE is compared with calibrated ECE."""
    from pushgen.ranker.calibrate import fit_temperature, read_calibration, scaled
    from pushgen.ranker.metrics import pairwise_metrics
    from pushgen.ranker.pairs import PairConfig, build_pairs_report
    from pushgen.ranker.recipe import read_ab_tests
    from pushgen.ranker.scoring import score_both_orders

    source = read_ab_tests(inputs.ab_tests)
    arms = source.arms
    heldout = inputs.heldout_dir or inputs.ranker_dir  # default: the candidate's own split
    split_file = Path(heldout) / "split.json"
    if split_file.exists():
        val = set(json.loads(split_file.read_text()).get("val_test_ids", []))
        held = arms[arms["test_id"].astype(str).isin(val)]
        arms = held if len(held) else arms
    cal_ids = set((read_calibration(heldout) or {}).get("calibration_test_ids", []))
    in_cal = arms["test_id"].astype(str).isin(cal_ids)
    cfg = PairConfig(match_on=source.match_on)
    pairs = build_pairs_report(arms[~in_cal] if (~in_cal).any() else arms, cfg).pairs
    cal_pairs = build_pairs_report(arms[in_cal], cfg).pairs if in_cal.any() else pairs.iloc[:0]
    out = {}
    for name, ranker in rankers.items():
        if pairs.empty:
            out[name] = {"pairs": 0, "accuracy": None, "ece": None}
            continue
        p_ab, p_ba = score_both_orders(ranker, pairs)
        temperature = float(getattr(ranker.settings, "temperature", 1.0))
        refit = temperature == 1.0 and not cal_pairs.empty and not hasattr(ranker, "score_sets")
        if refit:  # uncalibrated: fit it on the same calibration pairs as the candidate's
            c_ab, c_ba = score_both_orders(ranker, cal_pairs)
            temperature = fit_temperature(c_ab, c_ba, cal_pairs["label"].to_numpy(float))
            p_ab, p_ba = scaled(p_ab, temperature), scaled(p_ba, temperature)
        m = pairwise_metrics(p_ab, pairs["label"], p_ba=p_ba)
        out[name] = {
            "pairs": m["pairs"],
            "accuracy": m["accuracy"],
            "ece": m["ece"],
            "temperature": temperature,
            "temperature_fitted_by_gate": refit,
        }
    return out


# ----------------------------------------------------------------------------- decision


def compare(scores: dict[str, dict[str, dict]], cfg: GateConfig) -> list[dict]:
    """One check per figure: candidate vs production, the allowed direction and tolerance."""
    rules = (
        ("generator", "controllability", "higher", cfg.controllability_tolerance),
        ("generator", "uplift", "higher", cfg.uplift_tolerance),
        ("ranker", "accuracy", "higher", cfg.accuracy_tolerance),
        ("ranker", "ece", "lower", cfg.ece_tolerance),
    )
    checks = []
    for part, metric, better, tol in rules:
        if part not in scores:
            continue
        cand = scores[part]["candidate"].get(metric)
        prod = scores[part]["production"].get(metric)
        if cand is None or prod is None or np.isnan(cand) or np.isnan(prod):
            continue  # not measurable here (e.g. no true CTR on real data): not gated
        delta = cand - prod
        ok = delta >= -tol if better == "higher" else delta <= tol
        checks.append(
            {
                "part": part,
                "metric": metric,
                "candidate": float(cand),
                "production": float(prod),
                "delta": float(delta),
                "better": better,
                "tolerance": tol,
                "ok": bool(ok),
            }
        )
    return checks


def run_gate(inputs: GateInputs, cfg: GateConfig | None = None) -> dict:
    """Score candidate and production on the same held-out data and decide; JSON-ready."""
    from pushgen.core.store import ArtifactStore
    from pushgen.generator.generate import CandidateGenerator
    from pushgen.ranker.select import PairwiseRanker

    cfg = cfg or GateConfig()
    prod = production_version(inputs.store_uri, inputs.production)
    decision: dict[str, Any] = {"config": asdict(cfg), "parts": list(inputs.parts)}
    if prod is None:
        return {
            **decision,
            "promote": True,
            "production_version": None,
            "checks": [],
            "reason": "first version: no production version to compare with, promoted",
        }
    decision["production_version"] = prod["version"]
    scores: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="pushgen-gate-") as tmp:
        store = ArtifactStore.from_uri(inputs.store_uri)
        prod_dir = store.fetch(prod["version"], Path(tmp), names=list(inputs.parts))
        if "generator" in inputs.parts:
            gens = {
                "candidate": CandidateGenerator.from_pretrained(inputs.generator_dir),
                "production": CandidateGenerator.from_pretrained(prod_dir / "generator"),
            }
            scores["generator"] = score_generators(gens, inputs, cfg)
        if "ranker" in inputs.parts:
            rankers = {
                "candidate": PairwiseRanker.from_pretrained(inputs.ranker_dir),
                "production": PairwiseRanker.from_pretrained(prod_dir / "ranker"),
            }
            scores["ranker"] = score_rankers(rankers, inputs)
    checks = compare(scores, cfg)
    failed = [c for c in checks if not c["ok"]]
    reason = (
        "no regression beyond tolerance"
        if not failed
        else "regression: "
        + ", ".join(
            f"{c['part']} {c['metric']} {c['candidate']:.3f} vs {c['production']:.3f}"
            for c in failed
        )
    )
    return {**decision, "promote": not failed, "scores": scores, "checks": checks, "reason": reason}


def decision_markdown(decision: dict) -> str:
    """The gate's decision as a Markdown section for the run's report."""
    verdict = "PROMOTED" if decision["promote"] else "REJECTED"
    lines = [
        f"## quality gate: {verdict}",
        "",
        f"production version: {decision.get('production_version') or 'none'}; "
        f"parts compared: {', '.join(decision['parts'])}",
        f"reason: {decision['reason']}",
    ]
    if decision.get("checks"):
        lines += [
            "",
            "| part | metric | candidate | production | delta | tolerance | ok |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in decision["checks"]:
            sign = "-" if c["better"] == "higher" else "+"
            lines.append(
                f"| {c['part']} | {c['metric']} | {c['candidate']:.3f} | {c['production']:.3f} "
                f"| {c['delta']:+.3f} | {sign}{c['tolerance']} | {'yes' if c['ok'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def decision_metrics(decision: dict) -> dict[str, float]:
    """Flat figures for a KFP Metrics artifact (`gate.<part>.<metric>.<who>`)."""
    flat = {
        "gate.promote": float(decision["promote"]),
        "gate.checks": float(len(decision["checks"])),
    }
    for c in decision["checks"]:
        for who in ("candidate", "production", "delta"):
            flat[f"gate.{c['part']}.{c['metric']}.{who}"] = c[who]
    return flat
