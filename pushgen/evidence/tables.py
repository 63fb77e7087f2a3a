"""The replay's figures as tables: terminal lines and Markdown rows (README, report).

print("\\n".join(replay_lines(report)))
markdown = "\\n".join(arm_markdown(report))
"""

from __future__ import annotations

# arm key -> what it is, in display order; arms a replay did not run are left out
ARM_LABELS: dict[str, str] = {
    "human_sent": "human push that was sent",
    "human_mean": "mean human push of the video",
    "human_best": "best human push of the video",
    "sft_random": "SFT, random guarded candidate (no ranker)",
    "sft_copeland": "SFT + ranker, Copeland (served)",
    "sft_knockout": "SFT + ranker, knockout",
    "sft_bradley_terry": "SFT + ranker, Bradley-Terry",
    "sft_listwise": "SFT + ranker, listwise",
    "sft_oracle": "SFT, oracle best guarded candidate",
    "sft_oracle_unguarded": "SFT, best candidate before the guard",
    "uncontrolled_random": "no category control (1 prompt, K samples), random",
    "uncontrolled_copeland": "no category control + ranker",
    "base_random": "base model, random guarded candidate",
    "base_copeland": "base model + ranker",
    "base_oracle": "base model, oracle",
}


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


def _ci(ci) -> str:
    return f"[{ci[0]:+.1%}, {ci[1]:+.1%}]"


def arm_markdown(report: dict) -> list[str]:
    """Markdown rows: arm, mean true CTR [CI], uplift over the sent human push [CI], beats rate."""
    lines = [
        "| arm | mean true CTR (95% CI) | vs the sent human push (95% CI) | beats it on |",
        "| --- | --- | --- | --- |",
    ]
    for key in arm_keys(report):
        a = report["arms"][key]
        lo, hi = a["mean_ctr_ci"]
        if key == "human_sent":
            lines.append(
                f"| {arm_label(key)} | {_pct(a['mean_ctr'])} ({_pct(lo)}–{_pct(hi)}) | — | — |"
            )
            continue
        lines.append(
            f"| {arm_label(key)} | {_pct(a['mean_ctr'])} ({_pct(lo)}–{_pct(hi)}) "
            f"| {a['uplift']:+.1%} {_ci(a['uplift_ci'])} "
            f"| {a['beats_rate']:.0%} {_ci(a['beats_rate_ci']).replace('+', '')} |"
        )
    return lines


def ab_markdown(report: dict) -> list[str]:
    """Markdown rows of the simulated A/B tests (chosen vs the sent human push)."""
    lines = [
        "| system arm vs the sent human push | views per arm | CTR system / human | measured uplift (95% CI) | videos won |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, ab in report["simulated_ab"].items():
        lines.append(
            f"| {arm_label(key)} | {ab['exposure_per_arm_total']:,} | {_pct(ab['ctr_system'])} / "
            f"{_pct(ab['ctr_human'])} | {ab['uplift']:+.1%} {_ci(ab['uplift_ci'])} "
            f"| {ab['videos_won']:.0%} |"
        )
    return lines


def loss_markdown(report: dict) -> list[str]:
    """Where the chosen push's CTR comes from and goes, in mean true CTR."""
    b = report["loss_breakdown"]
    rows = [
        ("human push that was sent", _pct(b["human_sent"])),
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
        ("ranker's share of the random→oracle gap", f"{b['ranker_share_of_gap']:.0%}"),
        ("candidates the guard rejected", f"{b['guard_rejected_share']:.1%}"),
        (
            "videos with no guarded candidate (human push kept)",
            str(b["videos_without_guarded_candidate"]),
        ),
    ]
    return ["| step | figure |", "| --- | --- |", *(f"| {a} | {v} |" for a, v in rows)]


def replay_lines(report: dict) -> list[str]:
    """The replay for the terminal: arms, A/B tests, goals."""
    lines = [
        f"replay: {report['videos']} held-out videos ({report['held_out']} held out), "
        f"coverage {report['coverage']:.0%}"
    ]
    lines.append(f"{'arm':<52}{'true CTR':>9}{'vs sent':>9}  {'95% CI':<17}{'beats':>6}")
    for key in arm_keys(report):
        a = report["arms"][key]
        lines.append(
            f"{arm_label(key):<52}{_pct(a['mean_ctr']):>9}{a['uplift']:>+9.1%}  "
            f"{_ci(a['uplift_ci']):<17}{a['beats_rate']:>6.0%}"
        )
    for key, ab in report["simulated_ab"].items():
        lines.append(
            f"simulated A/B, {arm_label(key)} vs sent: uplift {ab['uplift']:+.1%} "
            f"{_ci(ab['uplift_ci'])} over {ab['exposure_per_arm_total']:,} views per arm"
        )
    if "goals" in report:
        lines.append(
            "goals: "
            + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in report["goals"].items())
        )
    return lines
