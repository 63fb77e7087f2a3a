"""Where the chosen push's advantage comes from, in the simulator's own terms.

The simulator's true click logit of a text is a sum of terms (`text_logit_terms`: style × topic,
question, faithful number, faithful entities, invented entities, emoji, length) plus the video's
own part, which is the same for every push of a video. So the logit difference between two pushes
of one video splits exactly into those terms. Per video, for the chosen push, the mean guarded
SFT candidate, the ranker's pick among the human pushes and the mean human push, this module
averages each term over videos and lists the differences that say *what* the ranker learned:

- chosen − mean human push: where the method's advantage over the expected editor comes from;
- chosen − mean SFT candidate: what the ranker selects for among generated candidates;
- ranker's human pick − mean human push: what it selects for among the editors' pushes.

    b = feature_breakdown(sim, per_video, scored, human)   # {"terms": [...], "features": [...], ...}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pushgen.evidence.replay_data import SimWorld

FEATURES = ("question", "faithful_number", "faithful_entities", "invented", "emoji", "length")
COUNTS = ("faithful_entities", "invented", "length")  # per-push means; the others are shares


def _terms(sim: SimWorld, video_id: str, texts: list[str]) -> pd.DataFrame:
    """One row per text: its logit terms and its features."""
    from pushgen.data.simulator import text_features, text_logit_terms

    video = sim.world.video(video_id)
    rows = []
    for t in texts:
        f = text_features(t, video)
        terms = text_logit_terms(sim.world, video["topic"], f)
        rows.append(
            {**terms, "text_logit": sum(terms.values())}
            | {f"has_{k}": float(f[k]) for k in FEATURES}
            | {"style": f["style"] or "(none)", "topic": video["topic"]}
        )
    return pd.DataFrame(rows)


def feature_breakdown(
    sim: SimWorld, per_video: pd.DataFrame, scored: pd.DataFrame, human: pd.DataFrame
) -> dict:
    """Term-by-term logit differences (means over videos), feature shares per group, and the
    chosen push's advantage over the mean human push by its style × the video's topic."""
    groups: dict[str, list[pd.Series]] = {
        "chosen": [],
        "sft_mean": [],
        "human_pick": [],
        "human_mean": [],
    }
    cells = []
    sft = scored[(scored["arm"] == "sft") & scored["guard_ok"]]
    sft_by = dict(tuple(sft.groupby("video_id")))
    human_by = dict(tuple(human.groupby("video_id")))
    numeric = None
    for _, r in per_video.iterrows():
        vid = r["video_id"]
        if not isinstance(r.get("chosen_text"), str) or vid not in sft_by:
            continue  # no guarded candidate: the human push stayed, nothing to explain
        chosen = _terms(sim, vid, [r["chosen_text"]])
        cands = _terms(sim, vid, sft_by[vid]["text"].astype(str).tolist())
        hum = _terms(sim, vid, human_by[vid]["text"].astype(str).drop_duplicates().tolist())
        pick = _terms(sim, vid, [r["human_copeland_text"]])
        numeric = [c for c in chosen.columns if c not in ("style", "topic")]
        groups["chosen"].append(chosen[numeric].iloc[0])
        groups["sft_mean"].append(cands[numeric].mean())
        groups["human_pick"].append(pick[numeric].iloc[0])
        groups["human_mean"].append(hum[numeric].mean())
        cells.append(
            {
                "style": chosen["style"].iloc[0],
                "topic": chosen["topic"].iloc[0],
                "ctr_advantage": float(r["sft_copeland"] - r["human_mean"]),
                "style_term_advantage": float(
                    chosen["style_x_topic"].iloc[0] - hum["style_x_topic"].mean()
                ),
            }
        )
    if not cells:
        return {"videos": 0, "terms": [], "features": [], "style_topic": []}
    mean = {g: pd.DataFrame(v).mean() for g, v in groups.items()}
    term_names = [c for c in numeric if not c.startswith("has_")]
    terms = [
        {
            "term": t,
            "chosen_minus_human_mean": float(mean["chosen"][t] - mean["human_mean"][t]),
            "chosen_minus_sft_mean": float(mean["chosen"][t] - mean["sft_mean"][t]),
            "human_pick_minus_human_mean": float(mean["human_pick"][t] - mean["human_mean"][t]),
        }
        for t in term_names
    ]
    features = [{"feature": f, **{g: float(mean[g][f"has_{f}"]) for g in groups}} for f in FEATURES]
    cell = pd.DataFrame(cells)
    style_topic = (
        cell.groupby(["style", "topic"])
        .agg(
            videos=("ctr_advantage", "size"),
            ctr_advantage=("ctr_advantage", "mean"),
            style_term_advantage=("style_term_advantage", "mean"),
        )
        .reset_index()
        .sort_values(["videos", "ctr_advantage"], ascending=False)
    )
    by_style = (
        cell.groupby("style")
        .agg(videos=("ctr_advantage", "size"), ctr_advantage=("ctr_advantage", "mean"))
        .reset_index()
        .sort_values("videos", ascending=False)
    )
    return {
        "videos": len(cell),
        "terms": terms,
        "features": features,
        "style_topic": style_topic.to_dict("records"),
        "by_style": by_style.to_dict("records"),
        "share_of_advantage_from_style": _share(terms, "style_x_topic"),
    }


def _share(terms: list[dict], name: str) -> float:
    """`name`'s share of the chosen push's logit advantage over the mean human push."""
    total = next(t["chosen_minus_human_mean"] for t in terms if t["term"] == "text_logit")
    part = next(t["chosen_minus_human_mean"] for t in terms if t["term"] == name)
    return float(part / total) if total else float(np.nan)
