"""The replay's figures as tables: terminal lines and Markdown rows (README, report).

print("\\n".join(replay_lines(report)))
markdown = "\\n".join(arm_markdown(report))
"""

from __future__ import annotations

# arm key -> what it is, in display order; arms a replay did not run are left out
ARM_LABELS: dict[str, str] = {
    "human_mean": "mean human push of the video (baseline: the expected editor)",
    "human_sent": "human push that was sent (the earliest: one draw)",
    "human_best": "best human push of the video",
    "human_copeland": "human pushes + the same ranker",
    "sft_random": "SFT, random guarded candidate (no ranker)",
    "sft_copeland": "SFT + ranker, Copeland (served)",
    "sft_knockout": "SFT + ranker, knockout",
    "sft_bradley_terry": "SFT + ranker, Bradley-Terry",
    "sft_listwise": "SFT + ranker, listwise",
    "sft_oracle": "SFT, oracle best guarded candidate",
    "sft_oracle_unguarded": "SFT, best candidate before the guard",
    "sampled_random": "SFT sampled (T=0.8), one per category, random",
    "sampled_copeland": "SFT sampled (T=0.8), one per category + ranker",
    "uncontrolled_random": "SFT sampled (T=0.8), one prompt K times, random",
    "uncontrolled_copeland": "SFT sampled (T=0.8), one prompt K times + ranker",
    "base_random": "base model, random guarded candidate",
    "base_copeland": "base model + ranker",
    "base_oracle": "base model, oracle",
}
# the paper's values (Table 3 and the reward model's accuracy; see docs/method.md)
PAPER = {"beat_baseline_base": 0.44, "beat_baseline_sft": 0.83, "uplift": 0.1408, "rm": 0.7358}


def arm_keys(report: dict) -> list[str]:
    """The arms of `report` in display order (weighting ablations after the fixed ones)."""
    arms = report["arms"]
    extra = sorted(
        k for k in arms if k.startswith("weighting_") and k.endswith(("_copeland", "_random"))
    )
    return [k for k in ARM_LABELS if k in arms] + extra


def arm_label(key: str) -> str:
    """Display name of an arm key."""
    if key in ARM_LABELS:
        return ARM_LABELS[key]
    name, _, method = key.removeprefix("weighting_").rpartition("_")
    return f"SFT weighting '{name}'" + (" + ranker" if method == "copeland" else ", random")


def _pct(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}%}"


def _ci(ci, sign: bool = True) -> str:
    f = "+.1%" if sign else ".1%"
    return f"[{ci[0]:{f}}, {ci[1]:{f}}]"


def arm_markdown(report: dict, keys: list[str] | None = None) -> list[str]:
    """Markdown rows: arm, mean true CTR [CI], uplift over the mean human push [BCa CI], share of
    videos where it is higher [Wilson CI]."""
    lines = [
        "| arm | mean true CTR (95% CI) | vs the mean human push (95% BCa CI) | higher on (95% Wilson CI) |",
        "| --- | --- | --- | --- |",
    ]
    for key in keys or arm_keys(report):
        a = report["arms"][key]
        lo, hi = a["mean_ctr_ci"]
        ctr = f"{_pct(a['mean_ctr'])} ({_pct(lo)}–{_pct(hi)})"
        if "uplift" not in a:
            lines.append(f"| {arm_label(key)} | {ctr} | — | — |")
            continue
        lines.append(
            f"| {arm_label(key)} | {ctr} | {a['uplift']:+.1%} {_ci(a['uplift_ci'])} "
            f"| {a['beats_rate']:.0%} {_ci(a['beats_rate_ci'], False)} |"
        )
    return lines


def ablation_markdown(report: dict) -> list[str]:
    """One row per one-thing-changed comparison: on over off, geometric-mean uplift [BCa CI]."""
    lines = [
        "| what changes (everything else equal) | on / off mean CTR | on vs off (95% BCa CI) | on higher on |",
        "| --- | --- | --- | --- |",
    ]
    arms = report["arms"]
    for a in report.get("ablations", []):
        lines.append(
            f"| {a['change']} | {_pct(arms[a['on']]['mean_ctr'])} / {_pct(arms[a['off']]['mean_ctr'])} "
            f"| {a['uplift']:+.1%} {_ci(a['uplift_ci'])} | {a['beats_rate']:.0%} |"
        )
    return lines


def loss_markdown(report: dict) -> list[str]:
    """Where the chosen push's CTR comes from and goes, in mean true CTR."""
    b = report["loss_breakdown"]
    rows = [
        ("mean human push (baseline)", _pct(b["human_mean"])),
        ("human pushes + ranker", _pct(b["human_copeland"])),
        ("best human push", _pct(b["human_best"])),
        (
            "generator: mean SFT candidate (guard-rejected included)",
            _pct(b["generator_mean_candidate"]),
        ),
        ("best candidate before the guard", _pct(b["oracle_before_guard"])),
        ("best guarded candidate (oracle)", _pct(b["oracle_after_guard"])),
        ("random guarded candidate", _pct(b["random_guarded_candidate"])),
        ("ranker's choice", _pct(b["chosen"])),
        ("loss to the guard (oracle before − after)", _pct(b["guard_loss"], 3)),
        ("loss to the ranker (oracle − chosen)", _pct(b["ranker_loss"], 3)),
        (
            "ranker's share of the random→oracle gap, SFT candidates",
            f"{b['ranker_share_of_gap']:.0%}",
        ),
        (
            "ranker's share of the mean→best gap, human pushes",
            f"{b['ranker_share_of_human_gap']:.0%}",
        ),
        ("candidates the guard rejected", f"{b['guard_rejected_share']:.1%}"),
        (
            "videos with no guarded candidate (human push kept)",
            str(b["videos_without_guarded_candidate"]),
        ),
    ]
    return ["| step | figure |", "| --- | --- |", *(f"| {a} | {v} |" for a, v in rows)]


TERM_LABELS = {
    "style_x_topic": "style × topic",
    "question": "question mark",
    "faithful_number": "the video's own number",
    "faithful_entities": "the video's own name / place",
    "invented_entities": "invented names or numbers",
    "emoji": "emoji",
    "length": "length over the optimum",
    "text_logit": "**all text terms**",
}


def breakdown_markdown(report: dict) -> list[str]:
    """The chosen push's logit advantage split into the simulator's text terms, and feature
    shares per group."""
    b = report.get("breakdown") or {}
    if not b.get("terms"):
        return []
    lines = [
        "| simulator's text term (logit) | chosen − mean human | chosen − mean SFT candidate | ranker's human pick − mean human |",
        "| --- | --- | --- | --- |",
    ]
    for t in b["terms"]:
        lines.append(
            f"| {TERM_LABELS.get(t['term'], t['term'])} | {t['chosen_minus_human_mean']:+.3f} "
            f"| {t['chosen_minus_sft_mean']:+.3f} | {t['human_pick_minus_human_mean']:+.3f} |"
        )
    lines += [
        "",
        "| feature (share of pushes; entities and inventions per push; length in characters) | chosen | mean SFT candidate | ranker's human pick | mean human push |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in b["features"]:
        if f["feature"] == "length":
            fmt = "{:.0f}".format
        elif f["feature"] in ("faithful_entities", "invented"):
            fmt = "{:.2f}".format  # a count per push
        else:
            fmt = "{:.0%}".format
        lines.append(
            f"| {f['feature'].replace('_', ' ')} | {fmt(f['chosen'])} | {fmt(f['sft_mean'])} "
            f"| {fmt(f['human_pick'])} | {fmt(f['human_mean'])} |"
        )
    return lines


def style_topic_markdown(report: dict, top: int = 10) -> list[str]:
    """The chosen push's style × the video's topic: videos and CTR advantage over the mean
    human push (the `top` most frequent cells)."""
    cells = (report.get("breakdown") or {}).get("style_topic", [])[:top]
    if not cells:
        return []
    return [
        "| chosen style | topic | videos | CTR − mean human push | style × topic term − human mean |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {c['style']} | {c['topic']} | {c['videos']} | {c['ctr_advantage']:+.2%} "
            f"| {c['style_term_advantage']:+.3f} |"
            for c in cells
        ),
    ]


def replay_lines(report: dict) -> list[str]:
    """The replay for the terminal: arms, the sent push redrawn, the paper's metrics, goals."""
    lines = [
        f"replay: {report['videos']} held-out videos ({report['held_out']} held out: "
        f"{report.get('held_out_rule', '')}), coverage {report['coverage']:.0%}"
    ]
    lines.append(f"{'arm':<56}{'true CTR':>9}{'vs mean':>9}  {'95% BCa CI':<17}{'higher':>7}")
    for key in arm_keys(report):
        a = report["arms"][key]
        if "uplift" not in a:
            lines.append(f"{arm_label(key):<56}{_pct(a['mean_ctr']):>9}")
            continue
        lines.append(
            f"{arm_label(key):<56}{_pct(a['mean_ctr']):>9}{a['uplift']:>+9.1%}  "
            f"{_ci(a['uplift_ci']):<17}{a['beats_rate']:>7.0%}"
        )
    r = report.get("sent_redraws")
    if r:
        lines.append(
            f"vs the sent push, redrawn {r['redraws']} times: median {r['median_uplift']:+.1%}, "
            f"95% range {_ci(r['uplift_range_95'])} (earliest push: {r['earliest_push_uplift']:+.1%})"
        )
    bb = report.get("beat_baseline", {})
    if bb:
        lines.append(
            "beat-baseline rate (generated pushes above the mean human push): "
            + ", ".join(f"{k} {v['rate']:.1%}" for k, v in bb.items())
        )
    if "goals" in report:
        lines.append(
            "goals: "
            + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in report["goals"].items())
        )
    return lines
